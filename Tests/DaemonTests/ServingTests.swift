// End to end through the socket: chat (plain and streamed) gives what the offline CLI gives,
// OpenAI's shapes, the errors a client can cause, and the limits: queue full → 503 with
// Retry-After, a client that goes away cancels its generation.
import Foundation
import Testing

#if canImport(Glibc)
  import Glibc
#endif

/// One daemon at a time: each maps the model and uses both cores.
@Suite(.serialized, .enabled(if: Paths.available, "needs droplorad built next to the tests and models/ fetched"))
struct DaemonTests {}

extension DaemonTests {
  @Suite struct Serving {
    static let question = "What is the capital of France?"

    func chatBody(_ content: String, maxTokens: Int, stream: Bool = false, model: String? = nil) -> String {
      var object: [String: Any] = [
        "messages": [["role": "user", "content": content]], "max_tokens": maxTokens, "temperature": 0,
        "stream": stream,
      ]
      if stream { object["stream_options"] = ["include_usage": true] }
      if let model { object["model"] = model }
      return String(decoding: try! JSONSerialization.data(withJSONObject: object), as: UTF8.self)
    }

    @Test func chatEqualsTheOfflineCLIAndStreamsTheSameText() throws {
      let daemon = try DaemonProcess()
      defer { daemon.stop() }
      let reply = try curl(daemon.socketPath, "POST", "/v1/chat/completions", json: chatBody(Self.question, maxTokens: 24))
      #expect(reply.status == 200, "\(reply.body)")
      let object = try reply.json()
      let choices = try #require(object["choices"] as? [[String: Any]])
      let message = try #require(choices.first?["message"] as? [String: Any])
      let content = try #require(message["content"] as? String)
      let usage = try #require(object["usage"] as? [String: Any])
      #expect(usage["completion_tokens"] as? Int == 24)
      #expect(object["object"] as? String == "chat.completion")

      let offline = try runTool([
        Paths.cli, "generate", "--model", Paths.model, "--temperature", "0", "--max-tokens", "24", "--json", Self.question,
      ])
      #expect(offline.status == 0, "\(offline)")
      let expected = try #require(
        try JSONSerialization.jsonObject(with: Data(offline.stdout.utf8)) as? [String: Any])["text"] as? String
      #expect(content == expected)

      // Streamed: OpenAI chunks, the same text, usage before [DONE].
      let streamed = try curl(
        daemon.socketPath, "POST", "/v1/chat/completions", json: chatBody(Self.question, maxTokens: 24, stream: true))
      #expect(streamed.status == 200)
      #expect(streamed.headers["content-type"]?.hasPrefix("text/event-stream") == true)
      let events = streamed.body.components(separatedBy: "\n\n").filter { !$0.isEmpty }
      #expect(events.last == "data: [DONE]")
      var text = ""
      var sawUsage = false
      for event in events.dropLast() {
        let payload = try #require(event.hasPrefix("data: ") ? String(event.dropFirst(6)) : nil)
        let chunk = try #require(try JSONSerialization.jsonObject(with: Data(payload.utf8)) as? [String: Any])
        #expect(chunk["object"] as? String == "chat.completion.chunk")
        if let usage = chunk["usage"] as? [String: Any] {
          sawUsage = usage["completion_tokens"] as? Int == 24
        }
        for choice in chunk["choices"] as? [[String: Any]] ?? [] {
          text += (choice["delta"] as? [String: Any])?["content"] as? String ?? ""
        }
      }
      #expect(text == expected)
      #expect(sawUsage)

      // The second request's prompt equals the first's: all but its last token come from the cache.
      let metrics = try curl(daemon.socketPath, "GET", "/metrics")
      let reused = metrics.body.split(separator: "\n").first { $0.hasPrefix("droplorad_prompt_tokens_reused_total ") }
      let prompt = try #require(usage["prompt_tokens"] as? Int)
      #expect(reused == "droplorad_prompt_tokens_reused_total \(prompt - 1)")
      #expect(metrics.status == 200)
      #expect(metrics.body.contains("droplorad_requests_total{outcome=\"ok\"} 2"))
      #expect(metrics.body.contains("droplorad_generated_tokens_total 48"))
      #expect(metrics.body.contains("# TYPE droplorad_time_to_first_token_seconds histogram"))
    }

    @Test func completionsAndModels() throws {
      // With the fp16 KV cache the configuration offers.
      let daemon = try DaemonProcess(arguments: ["--set", "model.kv_cache_type=f16"])
      defer { daemon.stop() }
      let models = try curl(daemon.socketPath, "GET", "/v1/models").json()
      let ids = (models["data"] as? [[String: Any]] ?? []).compactMap { $0["id"] as? String }
      #expect(ids == ["SmolLM2-135M-Instruct.Q4_1"])
      let reply = try curl(
        daemon.socketPath, "POST", "/v1/completions",
        json: #"{"model": "SmolLM2-135M-Instruct.Q4_1", "prompt": "The sky is", "max_tokens": 5, "temperature": 0}"#)
      #expect(reply.status == 200, "\(reply.body)")
      let choices = try #require(try reply.json()["choices"] as? [[String: Any]])
      #expect((choices.first?["text"] as? String)?.isEmpty == false)
      #expect(try curl(daemon.socketPath, "GET", "/health").json()["ready"] as? Bool == true)
    }

    @Test func clientErrorsGetOpenAIErrorsAndTheDaemonKeepsServing() throws {
      let daemon = try DaemonProcess(arguments: [
        "--set", "limits.max_request_bytes=4096", "--set", "limits.max_tokens=100", "--set", "generation.max_tokens=50",
      ])
      defer { daemon.stop() }
      func expectError(_ response: CurlResponse, _ status: Int, param: String? = nil, sourceLocation: SourceLocation = #_sourceLocation) throws {
        #expect(response.status == status, "\(response.body)", sourceLocation: sourceLocation)
        let error = try #require(try response.json()["error"] as? [String: Any], sourceLocation: sourceLocation)
        #expect((error["message"] as? String)?.isEmpty == false, sourceLocation: sourceLocation)
        if let param { #expect(error["param"] as? String == param, sourceLocation: sourceLocation) }
      }
      let socket = daemon.socketPath
      try expectError(try curl(socket, "POST", "/v1/chat/completions", json: chatBody("hi", maxTokens: 4, model: "nope")), 404)
      // Past limits.max_tokens a request is capped (droplorad(8)), not refused; fields are strict.
      #expect(try curl(socket, "POST", "/v1/chat/completions", json: chatBody("hi", maxTokens: 101)).status == 200)
      try expectError(
        try curl(socket, "POST", "/v1/chat/completions", json: #"{"messages":[{"role":"user","content":"hi"}],"n":5}"#), 400,
        param: "n")
      try expectError(try curl(socket, "POST", "/v1/chat/completions", json: "{\"messages\": [}"), 400)
      try expectError(try curl(socket, "POST", "/v1/chat/completions", json: chatBody(String(repeating: "x", count: 5000), maxTokens: 4)), 413)
      // 1100 one-token words (3.3 kB, under the body limit) overflow the 1024-token context.
      let long = String(repeating: "hi ", count: 1100)
      try expectError(try curl(socket, "POST", "/v1/completions", json: #"{"prompt": "\#(long)", "max_tokens": 4}"#), 400, param: "prompt")
      // Token-id prompts (as OpenAI and llama-server take them): an id outside the vocabulary is named.
      try expectError(try curl(socket, "POST", "/v1/completions", json: #"{"prompt": [1, 2, 99999999], "max_tokens": 2}"#), 400, param: "prompt[2]")
      #expect(try curl(socket, "POST", "/v1/completions", json: #"{"prompt": [1, 9690, 198], "max_tokens": 2}"#).status == 200)
      try expectError(try curl(socket, "GET", "/v1/nothing"), 404)
      try expectError(try curl(socket, "DELETE", "/v1/models"), 405)
      let ok = try curl(socket, "POST", "/v1/chat/completions", json: chatBody("hi", maxTokens: 2))
      #expect(ok.status == 200)
    }

    @Test func fullQueueIsRefusedWithRetryAfterAndADisconnectCancels() throws {
      let daemon = try DaemonProcess(arguments: [
        "--set", "limits.max_concurrent_generations=1", "--set", "limits.queue_limit=0",
      ])
      defer { daemon.stop() }
      // A long streamed generation holds the only slot.
      let long = try Child([
        "curl", "-sN", "--unix-socket", daemon.socketPath, "http://localhost/v1/chat/completions", "-d",
        chatBody("Write a very long story about the sea.", maxTokens: 900, stream: true),
      ])
      try waitForMetric(daemon, "droplorad_running_generations 1.0")

      let refused = try curl(daemon.socketPath, "POST", "/v1/chat/completions", json: chatBody("hi", maxTokens: 2))
      #expect(refused.status == 503, "\(refused.body)")
      #expect(Int(refused.headers["retry-after"] ?? "") ?? 0 >= 1)

      long.signal(SIGTERM)  // the client goes away mid-stream
      _ = long.wait()
      try waitForMetric(daemon, "droplorad_running_generations 0.0")
      try waitForMetric(daemon, "droplorad_requests_total{outcome=\"cancelled\"} 1")
      let after = try curl(daemon.socketPath, "POST", "/v1/chat/completions", json: chatBody("hi", maxTokens: 2))
      #expect(after.status == 200)

      // Issue 17's metrics: refusals by reason (the 503 above, a 400), the build, and the
      // latency, queue and length histograms of the requests that ran.
      let bad = try curl(daemon.socketPath, "POST", "/v1/chat/completions", json: #"{"messages": [], "max_tokens": 1}"#)
      #expect(bad.status == 400)
      try waitForMetric(daemon, #"droplorad_requests_refused_total{reason="server_busy",status="503"} 1"#)
      let text = try curl(daemon.socketPath, "GET", "/metrics").body
      let lines = text.split(separator: "\n").map(String.init)
      #expect(lines.contains { $0.hasPrefix(#"droplorad_requests_refused_total{reason="invalid_value",status="400"} "#) }, "\(text)")
      #expect(lines.contains { $0.hasPrefix("droplorad_build_info{version=") && $0.hasSuffix(" 1.0") }, "\(text)")
      for histogram in [
        "droplorad_request_duration_seconds", "droplorad_time_per_output_token_seconds", "droplorad_queue_wait_seconds",
        "droplorad_prompt_length_tokens", "droplorad_completion_length_tokens",
      ] {
        let count = lines.first { $0.hasPrefix(histogram + "_count ") }.flatMap { Double($0.split(separator: " ")[1]) }
        #expect((count ?? 0) >= 1, "\(histogram): \(text)")
      }
      #expect(lines.contains { $0.hasPrefix("droplorad_kv_cache_budget_bytes ") && !$0.hasSuffix(" 0.0") }, "\(text)")
      #expect(lines.contains { $0.hasPrefix("droplorad_forward_passes_total ") && !$0.hasSuffix(" 0") }, "\(text)")
    }
  }
}

/// Polls /metrics until a line appears.
func waitForMetric(_ daemon: DaemonProcess, _ line: String, timeout: TimeInterval = 60) throws {
  let deadline = Date(timeIntervalSinceNow: timeout)
  var last = ""
  while Date() < deadline {
    last = try curl(daemon.socketPath, "GET", "/metrics").body
    if last.split(separator: "\n").contains(Substring(line)) { return }
    usleep(50_000)
  }
  throw TestFailure("metric '\(line)' not seen within \(timeout) s:\n\(last)")
}
