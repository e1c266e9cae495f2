// A small InferenceBackend for the client tests: it answers a chat with the last user message
// and how many messages it received (so multi-turn history is visible in the answer), streamed
// a word at a time. It can be told to refuse, to fail mid-stream or to generate until
// cancelled, and it counts cancellations.
import Foundation
import HTTPAPI
import NIOConcurrencyHelpers

final class EchoBackend: InferenceBackend {
  struct State {
    var adapters: [AdapterInfo] = [AdapterInfo(name: "math", rank: 8, alpha: 16, targets: ["q", "v"], pruningRate: 0.5)]
    var ready = true
    var refuse: BackendError?
    var failAfterWords: Int?
    var endless = false
    var cancelled = 0
    var lastChat: ChatCompletionRequest?
    var loadedPaths: [String] = []
    /// Every line of every push, in order.
    var pushedLines: [String] = []
  }
  let state = NIOLockedValueBox(State())
  func update(_ f: (inout State) -> Void) { state.withLockedValue(f) }
  var snapshot: State { state.withLockedValue { $0 } }

  static let baseModel = "tiny-base"

  func models() async -> [ModelInfo] {
    [ModelInfo(id: Self.baseModel, kind: .base)] + snapshot.adapters.map { ModelInfo(id: $0.name, kind: .adapter) }
  }

  func chat(_ request: ChatCompletionRequest, choices: Int) async throws -> [AsyncThrowingStream<GenerationEvent, any Error>] {
    state.withLockedValue { $0.lastChat = request }
    let last = request.messages.last { $0.role == .user }?.content ?? ""
    return try (0..<choices).map { _ in
      try words("echo(\(request.messages.count)): \(last)", model: request.model, prompt: request.messages.count)
    }
  }

  func complete(_ request: CompletionRequest, choices: Int) async throws -> [AsyncThrowingStream<GenerationEvent, any Error>] {
    let prompt: String
    switch request.prompt {
    case .text(let text): prompt = text
    case .tokens(let ids): prompt = "\(ids)"
    }
    return try (0..<choices).map { _ in try words("after \(prompt)", model: request.model, prompt: 1) }
  }

  private func words(_ text: String, model: String?, prompt: Int) throws -> AsyncThrowingStream<GenerationEvent, any Error> {
    let s = snapshot
    if let e = s.refuse { throw e }
    if let model, model != Self.baseModel, !s.adapters.contains(where: { $0.name == model }) {
      throw BackendError.modelNotFound(model)
    }
    let pieces = text.split(separator: " ", omittingEmptySubsequences: false).enumerated().map { i, w in
      i == 0 ? String(w) : " " + w
    }
    let (stream, continuation) = AsyncThrowingStream.makeStream(of: GenerationEvent.self)
    let producer = Task {
      var n = 0
      repeat {
        for p in pieces {
          if Task.isCancelled { return }
          if let k = s.failAfterWords, n == k {
            continuation.finish(throwing: BackendError.internalFailure("compute thread died"))
            return
          }
          continuation.yield(.text(p))
          n += 1
          if s.endless { try? await Task.sleep(for: .milliseconds(5)) }
        }
      } while s.endless && !Task.isCancelled
      continuation.yield(.finished(.stop, Usage(promptTokens: prompt, completionTokens: n)))
      continuation.finish()
    }
    continuation.onTermination = { [state] termination in
      if case .cancelled = termination { state.withLockedValue { $0.cancelled += 1 } }
      producer.cancel()
    }
    return stream
  }

  func adapters() async -> [AdapterInfo] { snapshot.adapters }

  /// Accepts every non-empty line.
  func pushSamples(adapter: String, jsonl bytes: [UInt8]) async throws -> SampleIngestResult {
    let jsonl = String(decoding: bytes, as: UTF8.self)
    var lines = jsonl.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
    if jsonl.hasSuffix("\n") { lines.removeLast() }
    state.withLockedValue { $0.pushedLines += lines }
    return SampleIngestResult(accepted: lines.filter { !$0.isEmpty }.count, duplicates: 0, rejected: [])
  }

  /// No adapter has saved a version.
  func trainingVersions(adapter: String) async throws -> [TrainingVersionInfo] { [] }

  func loadAdapter(name: String, path: String) async throws -> AdapterInfo {
    try state.withLockedValue { s in
      if s.adapters.contains(where: { $0.name == name }) { throw BackendError.adapterExists(name) }
      let info = AdapterInfo(name: name, rank: 4, alpha: 8, targets: ["q"])
      s.adapters.append(info)
      s.loadedPaths.append(path)
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
    """
    # HELP droplorad_requests_total Requests answered.
    # TYPE droplorad_requests_total counter
    droplorad_requests_total{route="models"} 2
    droplorad_requests_total{route="chat"} 7
    # TYPE droplorad_time_to_first_token_seconds histogram
    droplorad_time_to_first_token_seconds_bucket{le="0.1"} 3
    droplorad_time_to_first_token_seconds_sum 0.25
    droplorad_time_to_first_token_seconds_count 3
    droplorad_queue_depth 0

    """
  }
}

/// The real HTTPAPI server with an EchoBackend on a fresh socket, torn down after `body`.
func withDaemon(
  _ backend: EchoBackend = EchoBackend(), _ body: (String, EchoBackend) async throws -> Void
) async throws {
  let dir = try temporaryDirectory("client")
  defer { try? FileManager.default.removeItem(atPath: dir) }
  let path = dir + "/d.sock"
  let server = try await HTTPServer.bind(path: path, backend: backend)
  let running = Task { await server.run() }
  do {
    try await body(path, backend)
  } catch {
    await server.shutdown(gracePeriod: .seconds(1))
    await running.value
    throw error
  }
  await server.shutdown(gracePeriod: .seconds(1))
  await running.value
}

/// A new directory under /tmp (short: socket paths have a 107-byte limit).
func temporaryDirectory(_ prefix: String) throws -> String {
  let path = "/tmp/\(prefix)-\(UUID().uuidString.prefix(8))"
  try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
  return path
}

/// Polls `condition` until it holds or `seconds` pass (the suite shares 2 cores with others).
func eventually(_ seconds: Double = 30, _ condition: () -> Bool) async -> Bool {
  let end = Date().addingTimeInterval(seconds)
  while Date() < end {
    if condition() { return true }
    try? await Task.sleep(for: .milliseconds(10))
  }
  return condition()
}

/// The package's root directory, for the unit files and man pages.
let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
  .deletingLastPathComponent().deletingLastPathComponent()
