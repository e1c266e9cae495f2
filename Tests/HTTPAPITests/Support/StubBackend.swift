// A scripted InferenceBackend: answers with fixed tokens, can be told to fail in each of the
// ways a real one can, and records what it saw (requests, cancellations) for the tests.
import Foundation
import HTTPAPI
import NIOConcurrencyHelpers

final class StubBackend: InferenceBackend {
  struct State {
    var tokens = ["Hel", "lo", ", ", "world", "!"]
    /// Per-token delay; a long one with `endless` makes a generation that only cancellation ends.
    var delay: Duration = .zero
    var endless = false
    var failWith: BackendError?
    /// Fails the stream itself after this many tokens (an error after the status is out).
    var failAfterTokens: Int?
    var ready = true
    var adapters: [AdapterInfo] = [AdapterInfo(name: "math", rank: 8, alpha: 16, targets: ["q", "v"])]
    var lastChat: ChatCompletionRequest?
    var lastCompletion: CompletionRequest?
    var started = 0
    var cancelled = 0
    var finishedNormally = 0
  }
  let state = NIOLockedValueBox(State())

  func update(_ f: (inout State) -> Void) { state.withLockedValue(f) }
  var snapshot: State { state.withLockedValue { $0 } }

  func models() async -> [ModelInfo] {
    [ModelInfo(id: "smollm2-135m", kind: .base, created: 1_700_000_000)]
      + snapshot.adapters.map { ModelInfo(id: $0.name, kind: .adapter) }
  }

  func chat(_ request: ChatCompletionRequest, choices: Int) async throws -> [AsyncThrowingStream<GenerationEvent, any Error>] {
    state.withLockedValue { $0.lastChat = request }
    return try (0..<choices).map { _ in try generate(model: request.model, promptTokens: request.messages.count * 7) }
  }

  func complete(_ request: CompletionRequest, choices: Int) async throws -> [AsyncThrowingStream<GenerationEvent, any Error>] {
    state.withLockedValue { $0.lastCompletion = request }
    return try (0..<choices).map { _ in try generate(model: request.model, promptTokens: 3) }
  }

  private func generate(model: String?, promptTokens: Int) throws -> AsyncThrowingStream<GenerationEvent, any Error> {
    let s = snapshot
    if let e = s.failWith { throw e }
    if let model, model != "smollm2-135m", !s.adapters.contains(where: { $0.name == model }) {
      throw BackendError.modelNotFound(model)
    }
    state.withLockedValue { $0.started += 1 }
    let (stream, continuation) = AsyncThrowingStream.makeStream(of: GenerationEvent.self)
    let producer = Task {
      var n = 0
      repeat {
        for t in s.tokens {
          if s.delay > .zero { try? await Task.sleep(for: s.delay) }
          if Task.isCancelled { return }
          if let k = s.failAfterTokens, n == k {
            continuation.finish(throwing: BackendError.internalFailure("compute thread died"))
            return
          }
          continuation.yield(.text(t))
          n += 1
        }
      } while s.endless && !Task.isCancelled
      state.withLockedValue { $0.finishedNormally += 1 }
      continuation.yield(.finished(.stop, Usage(promptTokens: promptTokens, completionTokens: n)))
      continuation.finish()
    }
    // The contract under test: the consumer going away cancels the producer.
    continuation.onTermination = { [state] termination in
      if case .cancelled = termination { state.withLockedValue { $0.cancelled += 1 } }
      producer.cancel()
    }
    return stream
  }

  func adapters() async -> [AdapterInfo] { snapshot.adapters }

  func loadAdapter(name: String, path: String) async throws -> AdapterInfo {
    try state.withLockedValue { s in
      if s.adapters.contains(where: { $0.name == name }) { throw BackendError.adapterExists(name) }
      let info = AdapterInfo(name: name, rank: 16, alpha: 32, targets: ["q", "k", "v"])
      s.adapters.append(info)
      return info
    }
  }

  func createAdapter(_ spec: AdapterSpec) async throws -> AdapterInfo {
    try state.withLockedValue { s in
      if s.adapters.contains(where: { $0.name == spec.name }) { throw BackendError.adapterExists(spec.name) }
      let spec = spec.resolved(
        defaultRank: 32, defaultAlpha: 64, defaultTargets: ["q", "k", "v", "up", "down"], defaultPruningRate: 0.1)
      let info = AdapterInfo(
        name: spec.name, rank: spec.rank, alpha: spec.alpha, targets: spec.targets, pruningRate: spec.pruningRate)
      s.adapters.append(info)
      return info
    }
  }

  func unloadAdapter(name: String) async throws {
    try state.withLockedValue { s in
      guard let i = s.adapters.firstIndex(where: { $0.name == name }) else { throw BackendError.adapterNotFound(name) }
      s.adapters.remove(at: i)
    }
  }

  func setDefaultAdapter(name: String?) async throws {
    try state.withLockedValue { s in
      if let name, !s.adapters.contains(where: { $0.name == name }) { throw BackendError.adapterNotFound(name) }
      for i in s.adapters.indices { s.adapters[i].isDefault = s.adapters[i].name == name }
    }
  }

  func health() async -> HealthReport {
    snapshot.ready ? HealthReport(ready: true, status: "serving") : HealthReport(ready: false, status: "loading model")
  }

  func metricsText() async -> String {
    "# HELP droplorad_requests_total Requests.\n# TYPE droplorad_requests_total counter\ndroplorad_requests_total 3\n"
  }
}

/// A server on a fresh socket in a temp dir, torn down after `body`.
func withServer(
  _ backend: StubBackend = StubBackend(), configuration: HTTPServerConfiguration = .init(),
  _ body: (String, StubBackend, HTTPServer) async throws -> Void
) async throws {
  let dir = FileManager.default.temporaryDirectory.appendingPathComponent("httpapi-\(UUID().uuidString.prefix(8))")
  try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
  defer { try? FileManager.default.removeItem(at: dir) }
  let path = dir.appendingPathComponent("d.sock").path
  let server = try await HTTPServer.bind(path: path, backend: backend, configuration: configuration)
  let running = Task { await server.run() }
  do {
    try await body(path, backend, server)
  } catch {
    await server.shutdown(gracePeriod: .seconds(1))
    await running.value
    throw error
  }
  await server.shutdown(gracePeriod: .seconds(1))
  await running.value
}

/// Polls `condition` until it holds or `seconds` pass. Generous: the whole suite runs in
/// parallel on 2 cores, and compute-heavy suites can hold the concurrency pool for seconds.
func eventually(_ seconds: Double = 30, _ condition: () -> Bool) async -> Bool {
  let end = Date().addingTimeInterval(seconds)
  while Date() < end {
    if condition() { return true }
    try? await Task.sleep(for: .milliseconds(10))
  }
  return condition()
}
