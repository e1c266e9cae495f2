// DaemonClient against the real HTTPAPI server: every route, streamed and not, multi-turn
// history, and the daemon's errors arriving as DaemonClientError.server with its message.
import DaemonClient
import Foundation
import HTTPAPI
import Testing

@Suite struct ClientCallTests {
  @Test func chatWholeAndStreamed() async throws {
    try await withDaemon { path, backend in
      let client = DaemonClient(socketPath: path)
      let request = ChatCompletionRequest(
        model: "math", messages: [ChatMessage(role: .user, content: "two plus two")],
        sampling: SamplingParameters(maxTokens: 9, temperature: 0.3, seed: 5, stop: ["\n"]))
      let whole = try await client.chat(request)
      #expect(whole.text == "echo(1): two plus two")
      #expect(whole.model == "math")
      #expect(whole.choices.first?.finishReason == "stop")
      #expect(whole.usage == Usage(promptTokens: 1, completionTokens: 4))
      // The sampling fields reached the backend under their wire names.
      #expect(backend.snapshot.lastChat?.sampling == request.sampling)
      #expect(backend.snapshot.lastChat?.stream == false)

      var pieces: [String] = []
      var finish: String?
      for try await chunk in client.streamChat(request) {
        if !chunk.text.isEmpty { pieces.append(chunk.text) }
        if let f = chunk.finishReason { finish = f }
      }
      #expect(pieces == ["echo(1):", " two", " plus", " two"])
      #expect(finish == "stop")
      #expect(backend.snapshot.lastChat?.stream == true)
    }
  }

  @Test func historyGoesWithEachTurn() async throws {
    try await withDaemon { path, backend in
      let client = DaemonClient(socketPath: path)
      var conversation = Conversation(system: "be brief")
      for question in ["first", "second"] {
        var answer = ""
        let request = ChatCompletionRequest(messages: conversation.messages(asking: question))
        for try await chunk in client.streamChat(request) { answer += chunk.text }
        conversation.record(question: question, answer: answer)
      }
      // system + user, then system + user + assistant + user.
      #expect(conversation.turns.map(\.content) == ["first", "echo(2): first", "second", "echo(4): second"])
      let sent = try #require(backend.snapshot.lastChat).messages
      #expect(sent.map(\.role) == [.system, .user, .assistant, .user])
      #expect(sent[0].content == "be brief")
      conversation.reset()
      #expect(conversation.messages(asking: "x").count == 2)
    }
  }

  @Test func completions() async throws {
    try await withDaemon { path, _ in
      let client = DaemonClient(socketPath: path)
      let whole = try await client.complete(CompletionRequest(prompt: "once"))
      #expect(whole.text == "after once")
      var streamed = ""
      for try await piece in client.streamCompletion(CompletionRequest(prompt: "twice")) { streamed += piece.text }
      #expect(streamed == "after twice")
    }
  }

  @Test func modelsAndAdapterLifecycle() async throws {
    try await withDaemon { path, backend in
      let client = DaemonClient(socketPath: path)
      #expect(try await client.models().map(\.id) == [EchoBackend.baseModel, "math"])
      #expect(try await client.models().first?.kind == "base")

      let loaded = try await client.loadAdapter(name: "code", path: "code/peft")
      #expect(loaded.name == "code")
      #expect(backend.snapshot.loadedPaths == ["code/peft"])
      let created = try await client.createAdapter(name: "fresh", rank: 16, targets: ["q", "k"], pruningRate: 0.3)
      #expect(created == AdapterInfo(name: "fresh", rank: 16, alpha: 32, targets: ["q", "k"], pruningRate: 0.3))
      #expect(try await client.adapters().map(\.name) == ["math", "code", "fresh"])

      let afterSet = try await client.setDefaultAdapter(name: "code")
      #expect(afterSet.filter(\.isDefault).map(\.name) == ["code"])
      let afterClear = try await client.clearDefaultAdapter()
      #expect(afterClear.allSatisfy { !$0.isDefault })
      // Clearing with no default set is not an error.
      #expect(try await client.clearDefaultAdapter().count == 3)

      try await client.unloadAdapter(name: "code")
      #expect(try await client.adapters().map(\.name) == ["math", "fresh"])
    }
  }

  @Test func serverErrorsCarryTheDaemonsMessage() async throws {
    try await withDaemon { path, _ in
      let client = DaemonClient(socketPath: path)
      let missing = await #expect(throws: DaemonClientError.self) {
        try await client.unloadAdapter(name: "nope")
      }
      guard case .server(let e) = missing else { Issue.record("not a server error: \(String(describing: missing))"); return }
      #expect(e.status == 404)
      #expect(e.code == "adapter_not_found")
      #expect(e.message.contains("'nope'"))

      let duplicate = await #expect(throws: DaemonClientError.self) {
        try await client.createAdapter(name: "math")
      }
      guard case .server(let d) = duplicate else { Issue.record("not a server error"); return }
      #expect(d.status == 409)

      // A streamed request refused before the stream starts.
      let unknownModel = await #expect(throws: DaemonClientError.self) {
        for try await _ in client.streamChat(ChatCompletionRequest(model: "ghost", messages: [.init(role: .user, content: "hi")])) {}
      }
      guard case .server(let m) = unknownModel else { Issue.record("not a server error"); return }
      #expect(m.status == 404)
      #expect(m.param == "model")

      // A value the daemon validates.
      let bad = await #expect(throws: DaemonClientError.self) {
        try await client.createAdapter(name: "wide", rank: 5000)
      }
      guard case .server(let b) = bad else { Issue.record("not a server error"); return }
      #expect(b.status == 400 && b.param == "rank")
    }
  }

  @Test func errorInsideAStream() async throws {
    let backend = EchoBackend()
    backend.update { $0.failAfterWords = 2 }
    try await withDaemon(backend) { path, _ in
      var received = ""
      let error = await #expect(throws: DaemonClientError.self) {
        for try await chunk in DaemonClient(socketPath: path).streamChat(
          ChatCompletionRequest(messages: [.init(role: .user, content: "a b c d")]))
        {
          received += chunk.text
        }
      }
      #expect(received == "echo(1): a")
      guard case .server(let e) = error else { Issue.record("not a server error: \(String(describing: error))"); return }
      #expect(e.message.contains("compute thread died"))
    }
  }

  @Test func stoppingTheIterationCancelsTheGeneration() async throws {
    let backend = EchoBackend()
    backend.update { $0.endless = true }
    try await withDaemon(backend) { path, backend in
      var count = 0
      for try await _ in DaemonClient(socketPath: path).streamChat(
        ChatCompletionRequest(messages: [.init(role: .user, content: "go on")]))
      {
        count += 1
        if count == 5 { break }
      }
      #expect(await eventually { backend.snapshot.cancelled == 1 })
    }
  }

  @Test func healthReadyAndNotAndMetrics() async throws {
    try await withDaemon { path, backend in
      let client = DaemonClient(socketPath: path)
      #expect(try await client.health() == HealthStatus(status: "serving", ready: true))
      backend.update { $0.ready = false }
      // 503 with the health body is an answer, not a failure.
      #expect(try await client.health() == HealthStatus(status: "loading model", ready: false))
      let samples = PrometheusText.parse(try await client.metrics())
      #expect(samples.contains(MetricSample(name: "droplorad_requests_total", labels: ["route": "chat"], value: 7)))
      #expect(samples.contains(MetricSample(name: "droplorad_time_to_first_token_seconds_sum", labels: [:], value: 0.25)))
      #expect(samples.count == 6)  // every sample line of the backend's text, comments skipped
    }
  }
}
