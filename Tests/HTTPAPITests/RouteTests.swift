// The routes over a real Unix socket with the stub backend: chat (plain and streamed as
// OpenAI chunks), completions, models, adapters, health, metrics, keep-alive. Expected shapes
// are OpenAI's documented ones, written out here by hand.
import Foundation
import HTTPAPI
import Testing

@Suite struct RouteTests {
  @Test func chatCompletion() async throws {
    try await withServer { path, backend, _ in
      let r = try await request(
        path, "POST", "/v1/chat/completions",
        json: #"{"model":"math","messages":[{"role":"user","content":"hi"}],"max_tokens":5,"temperature":0.2,"top_p":0.9,"top_k":40,"min_p":0.05,"repeat_penalty":1.1,"seed":7,"stop":"\n\n"}"#)
      #expect(r.status == 200)
      #expect(r.header("content-type") == "application/json")
      let j = try r.json()
      #expect(j["object"] as? String == "chat.completion")
      #expect((j["id"] as? String)?.hasPrefix("chatcmpl-") == true)
      #expect(j["model"] as? String == "math")
      let choice = try #require((j["choices"] as? [[String: Any]])?.first)
      #expect(choice["finish_reason"] as? String == "stop")
      let message = try #require(choice["message"] as? [String: Any])
      #expect(message["role"] as? String == "assistant")
      #expect(message["content"] as? String == "Hello, world!")
      let usage = try #require(j["usage"] as? [String: Any])
      #expect(usage["prompt_tokens"] as? Int == 7)
      #expect(usage["completion_tokens"] as? Int == 5)
      #expect(usage["total_tokens"] as? Int == 12)
      // Every field reached the backend under its on-disk name.
      let seen = try #require(backend.snapshot.lastChat)
      #expect(seen.model == "math")
      #expect(seen.messages == [ChatMessage(role: .user, content: "hi")])
      #expect(
        seen.sampling
          == SamplingParameters(
            maxTokens: 5, temperature: 0.2, topP: 0.9, topK: 40, minP: 0.05, repeatPenalty: 1.1, seed: 7,
            stop: ["\n\n"]))
      #expect(seen.stream == false)
    }
  }

  @Test func stopAsArrayAndContentParts() async throws {
    try await withServer { path, backend, _ in
      let r = try await request(
        path, "POST", "/v1/chat/completions",
        json: #"{"messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}],"stop":["x","y"],"user":"ignored"}"#
      )
      #expect(r.status == 200)
      // No model named: the response names what served it, here the base model.
      #expect(try r.json()["model"] as? String == "smollm2-135m")
      let seen = try #require(backend.snapshot.lastChat)
      #expect(seen.messages[0].content == "ab")
      #expect(seen.sampling.stop == ["x", "y"])
      #expect(seen.model == nil)
    }
  }

  @Test func chatStreaming() async throws {
    try await withServer { path, _, _ in
      let r = try await request(
        path, "POST", "/v1/chat/completions",
        json: #"{"messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"include_usage":true}}"#)
      #expect(r.status == 200)
      #expect(r.header("content-type") == "text/event-stream")
      #expect(r.header("transfer-encoding") == "chunked")
      let events = sseEvents(r.text)
      #expect(events.last == "[DONE]")
      let chunks = try events.dropLast().map {
        try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
      }
      // role first, then 5 content deltas, then finish, then usage.
      #expect(chunks.count == 8)
      let ids = Set(chunks.compactMap { $0["id"] as? String })
      #expect(ids.count == 1)
      #expect(chunks.allSatisfy { $0["object"] as? String == "chat.completion.chunk" })
      func choice(_ i: Int) -> [String: Any]? { (chunks[i]["choices"] as? [[String: Any]])?.first }
      let first = try #require(choice(0))
      #expect((first["delta"] as? [String: Any])?["role"] as? String == "assistant")
      #expect(first["finish_reason"] is NSNull)
      var text = ""
      for i in 1...5 {
        let c = try #require(choice(i))
        #expect(c["finish_reason"] is NSNull)
        text += ((c["delta"] as? [String: Any])?["content"] as? String) ?? ""
      }
      #expect(text == "Hello, world!")
      let last = try #require(choice(6))
      #expect(last["finish_reason"] as? String == "stop")
      #expect((last["delta"] as? [String: Any])?.isEmpty == true)
      #expect((chunks[7]["choices"] as? [Any])?.isEmpty == true)
      #expect((chunks[7]["usage"] as? [String: Any])?["completion_tokens"] as? Int == 5)
    }
  }

  @Test func completions() async throws {
    try await withServer { path, backend, _ in
      let r = try await request(path, "POST", "/v1/completions", json: #"{"prompt":"Once","max_tokens":3}"#)
      #expect(r.status == 200)
      let j = try r.json()
      #expect(j["object"] as? String == "text_completion")
      let choice = try #require((j["choices"] as? [[String: Any]])?.first)
      #expect(choice["text"] as? String == "Hello, world!")
      #expect(choice["logprobs"] is NSNull)
      #expect(backend.snapshot.lastCompletion?.prompt == "Once")

      let s = try await request(path, "POST", "/v1/completions", json: #"{"prompt":["Once"],"stream":true}"#)
      let events = sseEvents(s.text)
      #expect(events.last == "[DONE]")
      #expect(events.count == 7)
      let final = try #require(try JSONSerialization.jsonObject(with: Data(events[5].utf8)) as? [String: Any])
      #expect((final["choices"] as? [[String: Any]])?.first?["finish_reason"] as? String == "stop")
    }
  }

  @Test func completionPromptsInEveryOpenAISpelling() async throws {
    try await withServer { path, backend, _ in
      let spellings: [(String, CompletionPrompt)] = [
        (#""Once""#, .text("Once")), (#"["Once"]"#, .text("Once")),
        ("[1, 2, 3]", .tokens([1, 2, 3])), ("[[4, 5]]", .tokens([4, 5])),
      ]
      for (prompt, expected) in spellings {
        let r = try await request(path, "POST", "/v1/completions", json: #"{"prompt":\#(prompt),"max_tokens":2}"#)
        #expect(r.status == 200, "\(prompt)")
        #expect(backend.snapshot.lastCompletion?.prompt == expected, "\(prompt)")
      }
      let refused: [(String, String)] = [
        (#"["a", "b"]"#, "prompt"), ("[]", "prompt"), ("[[1], [2]]", "prompt"), (#"[1, "a"]"#, "prompt"),
        ("[1, 2.5]", "prompt[1]"), ("[[7, 1e30]]", "prompt[0][1]"), ("{}", "prompt"),
      ]
      let started = backend.snapshot.started
      for (prompt, param) in refused {
        let r = try await request(path, "POST", "/v1/completions", json: #"{"prompt":\#(prompt)}"#)
        #expect(r.status == 400, "\(prompt)")
        #expect(try errorObject(r)["param"] as? String == param, "\(prompt)")
      }
      #expect(backend.snapshot.started == started)
    }
  }

  @Test func modelsHealthMetrics() async throws {
    try await withServer { path, backend, _ in
      let m = try await request(path, "GET", "/v1/models")
      #expect(m.status == 200)
      let j = try m.json()
      #expect(j["object"] as? String == "list")
      let data = try #require(j["data"] as? [[String: Any]])
      #expect(data.map { $0["id"] as? String } == ["smollm2-135m", "math"])
      #expect(data.allSatisfy { $0["object"] as? String == "model" && $0["owned_by"] is String })

      let h = try await request(path, "GET", "/health")
      #expect(h.status == 200)
      #expect(try h.json()["status"] as? String == "serving")
      backend.update { $0.ready = false }
      #expect(try await request(path, "GET", "/health").status == 503)

      let metrics = try await request(path, "GET", "/metrics")
      #expect(metrics.status == 200)
      #expect(metrics.header("content-type")?.hasPrefix("text/plain; version=0.0.4") == true)
      #expect(metrics.text.contains("droplorad_requests_total 3\n"))
    }
  }

  @Test func adapterRoutes() async throws {
    try await withServer { path, backend, _ in
      let list = try await request(path, "GET", "/v1/adapters")
      #expect(list.status == 200)
      #expect(((try list.json()["data"]) as? [[String: Any]])?.first?["name"] as? String == "math")

      let load = try await request(path, "POST", "/v1/adapters", json: #"{"name":"code-v2","path":"code/adapter.gguf"}"#)
      #expect(load.status == 201)
      #expect(try load.json()["name"] as? String == "code-v2")

      let create = try await request(
        path, "POST", "/v1/adapters", json: #"{"name":"new_1","rank":16,"pruning_rate":0.5,"targets":["q","v"]}"#)
      #expect(create.status == 201)
      let c = try create.json()
      #expect(c["rank"] as? Int == 16)
      #expect(c["alpha"] as? Double == 32)
      #expect(c["pruning_rate"] as? Double == 0.5)

      let dup = try await request(path, "POST", "/v1/adapters", json: #"{"name":"math","rank":4}"#)
      #expect(dup.status == 409)

      let def = try await request(path, "POST", "/v1/adapters/new_1/default")
      #expect(def.status == 200)
      #expect(backend.snapshot.adapters.first { $0.isDefault }?.name == "new_1")
      let undef = try await request(path, "DELETE", "/v1/adapters/new_1/default")
      #expect(undef.status == 200)
      #expect(backend.snapshot.adapters.allSatisfy { !$0.isDefault })

      let del = try await request(path, "DELETE", "/v1/adapters/math")
      #expect(del.status == 204)
      #expect(!backend.snapshot.adapters.contains { $0.name == "math" })
      let again = try await request(path, "DELETE", "/v1/adapters/math")
      #expect(again.status == 404)
      #expect(try again.json()["error"].flatMap { $0 as? [String: Any] }?["code"] as? String == "adapter_not_found")
    }
  }

  @Test func keepAliveServesSeveralRequestsOnOneConnection() async throws {
    try await withServer { path, _, _ in
      try await offPool {
        let c = try UnixHTTPClient(path: path)
        for _ in 0..<3 {
          try c.send("GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n")
          let r = try c.readResponse()
          guard r.status == 200, r.header("connection") != "close" else { throw ClientError("keep-alive broken") }
        }
        // Two pipelined requests come back in order.
        try c.send("GET /health HTTP/1.1\r\nHost: x\r\n\r\nGET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        let a = try c.readResponse()
        let b = try c.readResponse()
        guard a.text.contains("serving"), b.text.contains("droplorad_requests_total") else {
          throw ClientError("pipelined answers out of order")
        }
      }
    }
  }
}
