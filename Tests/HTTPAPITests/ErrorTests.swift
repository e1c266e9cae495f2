// Every error status in OpenAI's error shape, over the socket: bad JSON and bad fields (naming
// the field), unknown routes and models, 405 with Allow, 413 by length and while streaming in,
// 429/503 with Retry-After, 500. Plus the validation tables on their own.
import Foundation
import HTTPAPI
import Testing

#if canImport(Glibc)
  import Glibc
#endif

/// Checks OpenAI's error shape and returns `error`.
func errorObject(_ r: HTTPResponse) throws -> [String: Any] {
  let e = try #require(try r.json()["error"] as? [String: Any])
  #expect(e["message"] is String)
  #expect(e["type"] is String)
  #expect(e.keys.contains("param"))
  #expect(e.keys.contains("code"))
  return e
}

struct BadRequestCase: Sendable, CustomTestStringConvertible {
  var body: String
  var param: String?
  var code: String
  var testDescription: String { "\(code) \(param ?? "-")" }
}

@Suite struct ErrorTests {
  static let badRequests: [BadRequestCase] = [
    .init(body: "{not json", param: nil, code: "invalid_json"),
    .init(body: "[1,2]", param: nil, code: "invalid_json"),
    .init(body: "{}", param: "messages", code: "invalid_value"),
    .init(body: #"{"messages":[]}"#, param: "messages", code: "invalid_value"),
    .init(body: #"{"messages":[{"role":"wizard","content":"x"}]}"#, param: "messages[0].role", code: "invalid_value"),
    .init(body: #"{"messages":[{"role":"user"}]}"#, param: "messages[0].content", code: "invalid_value"),
    .init(body: #"{"messages":[{"role":"user","content":"x"}],"temperature":"hot"}"#, param: "temperature", code: "invalid_value"),
    .init(body: #"{"messages":[{"role":"user","content":"x"}],"temperature":-1}"#, param: "temperature", code: "invalid_value"),
    .init(body: #"{"messages":[{"role":"user","content":"x"}],"top_p":0}"#, param: "top_p", code: "invalid_value"),
    .init(body: #"{"messages":[{"role":"user","content":"x"}],"top_k":-3}"#, param: "top_k", code: "invalid_value"),
    .init(body: #"{"messages":[{"role":"user","content":"x"}],"min_p":2}"#, param: "min_p", code: "invalid_value"),
    .init(body: #"{"messages":[{"role":"user","content":"x"}],"repeat_penalty":0}"#, param: "repeat_penalty", code: "invalid_value"),
    .init(body: #"{"messages":[{"role":"user","content":"x"}],"max_tokens":0}"#, param: "max_tokens", code: "invalid_value"),
    .init(body: #"{"messages":[{"role":"user","content":"x"}],"seed":-1}"#, param: "seed", code: "invalid_value"),
    .init(body: #"{"messages":[{"role":"user","content":"x"}],"stop":[""]}"#, param: "stop", code: "invalid_value"),
    .init(body: #"{"messages":[{"role":"user","content":"x"}],"stop":5}"#, param: "stop", code: "invalid_value"),
    .init(body: #"{"messages":[{"role":"user","content":"x"}],"model":""}"#, param: "model", code: "invalid_value"),
  ]

  @Test(arguments: badRequests) func badChatRequests(_ c: BadRequestCase) async throws {
    try await withServer { path, backend, _ in
      let r = try await request(path, "POST", "/v1/chat/completions", json: c.body)
      #expect(r.status == 400)
      let e = try errorObject(r)
      #expect(e["type"] as? String == "invalid_request_error")
      #expect(e["code"] as? String == c.code)
      if let p = c.param {
        #expect(e["param"] as? String == p)
        #expect((e["message"] as? String)?.contains(p) == true)
      } else {
        #expect(e["param"] is NSNull)
      }
      #expect(backend.snapshot.started == 0)
    }
  }

  @Test func routeAndMethodErrors() async throws {
    try await withServer { path, _, _ in
      let nf = try await request(path, "GET", "/v2/nothing")
      #expect(nf.status == 404)
      #expect(try errorObject(nf)["code"] as? String == "unknown_route")

      let m = try await request(path, "GET", "/v1/chat/completions")
      #expect(m.status == 405)
      #expect(m.header("allow") == "POST")
      #expect(try errorObject(m)["code"] as? String == "method_not_allowed")
      let m2 = try await request(path, "PUT", "/v1/adapters")
      #expect(m2.status == 405)
      #expect(m2.header("allow") == "GET, POST")

      let model = try await request(
        path, "POST", "/v1/chat/completions", json: #"{"model":"nope","messages":[{"role":"user","content":"x"}]}"#)
      #expect(model.status == 404)
      let e = try errorObject(model)
      #expect(e["code"] as? String == "model_not_found")
      #expect(e["param"] as? String == "model")

      let noBody = try await request(path, "POST", "/v1/completions")
      #expect(noBody.status == 400)
    }
  }

  @Test func adapterValidation() async throws {
    try await withServer { path, backend, _ in
      for name in ["..", ".", "a%2Fb", String(repeating: "x", count: 65), "sp%20ace"] {
        let r = try await request(path, "DELETE", "/v1/adapters/\(name)")
        #expect(r.status == 400, "\(name)")
        #expect(try errorObject(r)["param"] as? String == "name")
      }
      for body in [
        #"{"name":"../etc","rank":4}"#, #"{"name":"ok","path":"../../etc/passwd"}"#,
        #"{"name":"ok","path":"/etc/passwd"}"#, #"{"name":"ok","rank":0}"#, #"{"name":"ok","pruning_rate":1}"#,
        #"{"name":"ok","path":"a.gguf","rank":4}"#,
      ] {
        let r = try await request(path, "POST", "/v1/adapters", json: body)
        #expect(r.status == 400, "\(body)")
        _ = try errorObject(r)
      }
      #expect(backend.snapshot.adapters.count == 1)
    }
  }

  @Test func saturationAndRateLimitCarryRetryAfter() async throws {
    try await withServer { path, backend, _ in
      let chat = #"{"messages":[{"role":"user","content":"x"}]}"#
      backend.update { $0.failWith = .saturated(retryAfterSeconds: 7) }
      let busy = try await request(path, "POST", "/v1/chat/completions", json: chat)
      #expect(busy.status == 503)
      #expect(busy.header("retry-after") == "7")
      #expect(try errorObject(busy)["code"] as? String == "server_busy")

      backend.update { $0.failWith = .rateLimited(retryAfterSeconds: 2) }
      let limited = try await request(path, "POST", "/v1/chat/completions", json: chat)
      #expect(limited.status == 429)
      #expect(limited.header("retry-after") == "2")

      backend.update { $0.failWith = .internalFailure("kernel exploded") }
      let boom = try await request(path, "POST", "/v1/chat/completions", json: chat)
      #expect(boom.status == 500)
      #expect(try errorObject(boom)["type"] as? String == "server_error")

      backend.update { $0.failWith = .unavailable("loading model") }
      #expect(try await request(path, "POST", "/v1/completions", json: #"{"prompt":"x"}"#).status == 503)
    }
  }

  @Test func failureAfterTheStatusIsOut() async throws {
    let backend = StubBackend()
    backend.update { $0.failAfterTokens = 2 }
    try await withServer(backend) { path, _, _ in
      let s = try await request(
        path, "POST", "/v1/chat/completions", json: #"{"messages":[{"role":"user","content":"x"}],"stream":true}"#)
      #expect(s.status == 200)
      let events = sseEvents(s.text)
      #expect(events.count == 4)  // role, two deltas, the error; no [DONE]
      let last = try #require(try JSONSerialization.jsonObject(with: Data(events[3].utf8)) as? [String: Any])
      #expect((last["error"] as? [String: Any])?["type"] as? String == "server_error")

      let plain = try await request(path, "POST", "/v1/chat/completions", json: #"{"messages":[{"role":"user","content":"x"}]}"#)
      #expect(plain.status == 500)
      _ = try errorObject(plain)
    }
  }

  @Test func bodyTooLargeByContentLength() async throws {
    var config = HTTPServerConfiguration()
    config.maxBodyBytes = 1024
    try await withServer(configuration: config) { path, backend, _ in
      // Announce 10 MB but send only the head: the 413 must come without the body.
      let r = try await offPool {
        let c = try UnixHTTPClient(path: path)
        try c.send("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n\r\n")
        return try c.readResponse()
      }
      #expect(r.status == 413)
      #expect(r.header("connection") == "close")
      #expect(try errorObject(r)["code"] as? String == "body_too_large")
      #expect(backend.snapshot.started == 0)
    }
  }

  @Test func bodyTooLargeWhileStreamingIn() async throws {
    var config = HTTPServerConfiguration()
    config.maxBodyBytes = 4096
    try await withServer(configuration: config) { path, _, _ in
      let r = try await offPool {
        let c = try UnixHTTPClient(path: path)
        try c.send("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        // Keep sending 1 KiB chunks; the server answers once past 4 KiB and stops reading.
        for _ in 0..<64 {
          do { try c.send("400\r\n" + String(repeating: "a", count: 1024) + "\r\n") } catch { break }
        }
        return try c.readResponse()
      }
      #expect(r.status == 413)
      // Still serving afterwards.
      #expect(try await request(path, "GET", "/health").status == 200)
    }
  }
}

@Suite struct ValidationTests {
  @Test func peerPolicy() {
    let me = PeerCredentials(pid: 1, uid: getuid(), gid: getgid())
    #expect(PeerPolicy().admits(nil))
    #expect(!PeerPolicy(uids: [4_242_424]).admits(nil))
    #expect(!PeerPolicy(uids: [4_242_424], gids: [4_242_424]).admits(me))
    #expect(PeerPolicy(uids: [me.uid]).admits(me))
    #expect(PeerPolicy(gids: [me.gid]).admits(me))
    // Group membership comes from the databases too: a peer whose process runs with another
    // gid is still admitted through its user's groups.
    let groups = groupMemberships(uid: me.uid)
    #expect(!groups.isEmpty)
    let other = PeerCredentials(pid: 1, uid: me.uid, gid: 4_242_424)
    #expect(PeerPolicy(gids: groups).admits(other))
    #expect(!PeerPolicy(gids: [4_242_425]).admits(other))
  }

  @Test(arguments: [
    ("math", true), ("a.b_c-D9", true), (String(repeating: "z", count: 64), true),
    ("", false), (".", false), ("..", false), ("a/b", false), ("a b", false), ("ü", false),
    (String(repeating: "z", count: 65), false), ("...", true),
  ])
  func adapterNames(_ name: String, _ valid: Bool) {
    #expect(AdapterName.isValid(name) == valid)
  }

  @Test func requestsRoundTripWithOnDiskNames() throws {
    let req = ChatCompletionRequest(
      model: "m", messages: [.init(role: .system, content: "s")],
      sampling: .init(maxTokens: 3, topK: 2, repeatPenalty: 1.2, stop: ["a"]), stream: true)
    let data = try JSONEncoder().encode(req)
    let keys = Set((try JSONSerialization.jsonObject(with: data) as? [String: Any] ?? [:]).keys)
    #expect(keys == ["model", "messages", "stream", "max_tokens", "top_k", "repeat_penalty", "stop"])
    #expect(try JSONDecoder().decode(ChatCompletionRequest.self, from: data) == req)
  }
}
