// Typed calls for every route of droplorad(8), over its Unix socket. Request bodies are the
// HTTPAPI module's own Codable types, so client and server cannot drift apart on field names.
// Error statuses become `DaemonClientError.server` with the daemon's message.
import Foundation
import HTTPAPI
import NIOCore
import NIOHTTP1
import NIOPosix

public struct DaemonClient: Sendable {
  public let socketPath: String
  private let transport: UnixHTTPTransport
  /// Largest non-streamed body read; a sane daemon's answers are far smaller.
  static let maxBodyBytes = 64 << 20

  public init(
    socketPath: String, connectTimeout: Duration = .seconds(10),
    group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
  ) {
    self.socketPath = socketPath
    let (s, atto) = connectTimeout.components
    transport = UnixHTTPTransport(
      socketPath: socketPath, connectTimeout: .nanoseconds(s * 1_000_000_000 + atto / 1_000_000_000), group: group)
  }

  // MARK: generation

  /// One chat answer, returned when complete.
  public func chat(_ request: ChatCompletionRequest) async throws -> ChatCompletion {
    var r = request
    r.stream = false
    return try await json(.POST, "/v1/chat/completions", body: encode(r))
  }

  /// A chat answer as it is generated: chunks until the daemon's `[DONE]`. Ending the
  /// iteration early (or cancelling the task) disconnects, and the daemon stops generating.
  public func streamChat(_ request: ChatCompletionRequest) -> AsyncThrowingStream<ChatChunk, any Error> {
    var r = request
    r.stream = true
    return events(.POST, "/v1/chat/completions", body: Result { try encode(r) })
  }

  /// A raw-prompt completion, returned when complete.
  public func complete(_ request: CompletionRequest) async throws -> TextCompletion {
    var r = request
    r.stream = false
    return try await json(.POST, "/v1/completions", body: encode(r))
  }

  /// A raw-prompt completion as it is generated.
  public func streamCompletion(_ request: CompletionRequest) -> AsyncThrowingStream<TextCompletion, any Error> {
    var r = request
    r.stream = true
    return events(.POST, "/v1/completions", body: Result { try encode(r) })
  }

  // MARK: models and adapters

  public func models() async throws -> [ModelEntry] {
    let list: ListBody<ModelEntry> = try await json(.GET, "/v1/models")
    return list.data
  }

  public func adapters() async throws -> [AdapterInfo] {
    let list: ListBody<AdapterInfo> = try await json(.GET, "/v1/adapters")
    return list.data
  }

  /// Loads an adapter file; `path` is relative to the daemon's adapters directory.
  public func loadAdapter(name: String, path: String) async throws -> AdapterInfo {
    try Self.checkName(name)
    return try await json(.POST, "/v1/adapters", body: encode(AdapterPostRequest(name: name, path: path)))
  }

  /// Creates an empty adapter for training; nil leaves a value to the daemon's defaults.
  public func createAdapter(
    name: String, rank: Int? = nil, alpha: Double? = nil, targets: [String]? = nil, pruningRate: Double? = nil
  ) async throws -> AdapterInfo {
    try Self.checkName(name)
    let body = AdapterPostRequest(name: name, rank: rank, alpha: alpha, targets: targets, pruningRate: pruningRate)
    return try await json(.POST, "/v1/adapters", body: encode(body))
  }

  public func unloadAdapter(name: String) async throws {
    try Self.checkName(name)
    _ = try await send(.DELETE, "/v1/adapters/\(name)")
  }

  /// Makes `name` the adapter used when a request names none; returns the new adapter list.
  @discardableResult
  public func setDefaultAdapter(name: String) async throws -> [AdapterInfo] {
    try Self.checkName(name)
    let list: ListBody<AdapterInfo> = try await json(.POST, "/v1/adapters/\(name)/default")
    return list.data
  }

  /// Goes back to serving the base model by default; returns the new adapter list.
  @discardableResult
  public func clearDefaultAdapter() async throws -> [AdapterInfo] {
    // The route is per adapter (DELETE /v1/adapters/NAME/default); with no default set there
    // is nothing to clear.
    let current = try await adapters()
    guard let name = current.first(where: \.isDefault)?.name else { return current }
    let list: ListBody<AdapterInfo> = try await json(.DELETE, "/v1/adapters/\(name)/default")
    return list.data
  }

  // MARK: streamed training

  /// Pushes JSON lines (one sample each, with an optional string `"id"` that makes a retry
  /// harmless); they are durable when this returns.
  public func pushSamples(adapter: String, jsonl: [UInt8]) async throws -> SampleIngestResult {
    try Self.checkName(adapter)
    return try await json(.POST, "/v1/adapters/\(adapter)/samples", body: jsonl)
  }

  public func trainingStatus(adapter: String) async throws -> TrainingStatusInfo {
    try Self.checkName(adapter)
    return try await json(.GET, "/v1/adapters/\(adapter)/training")
  }

  public func controlTraining(adapter: String, action: TrainingAction) async throws -> TrainingStatusInfo {
    try await controlTraining(adapter: adapter, control: TrainingControl(action: action))
  }

  /// An action and/or hyper-parameter changes (learning rate, batch size, publish interval).
  public func controlTraining(adapter: String, control: TrainingControl) async throws -> TrainingStatusInfo {
    try Self.checkName(adapter)
    return try await json(.POST, "/v1/adapters/\(adapter)/training", body: encode(control))
  }

  public func trainingVersions(adapter: String) async throws -> [TrainingVersionInfo] {
    try Self.checkName(adapter)
    let list: ListBody<TrainingVersionInfo> = try await json(.GET, "/v1/adapters/\(adapter)/versions")
    return list.data
  }

  public func rollback(adapter: String, version: Int) async throws -> TrainingStatusInfo {
    try Self.checkName(adapter)
    return try await json(.POST, "/v1/adapters/\(adapter)/rollback", body: Array(#"{"version":\#(version)}"#.utf8))
  }

  // MARK: health and metrics

  /// The daemon's state; a 503 with the health body is an answer (not ready), not an error.
  public func health() async throws -> HealthStatus {
    let (status, body) = try await send(.GET, "/health", acceptingStatus: [200, 503])
    return try decode(HealthStatus.self, body, status: status)
  }

  /// The Prometheus text exposition, unchanged; `PrometheusText.parse` reads it.
  public func metrics() async throws -> String {
    let (_, body) = try await send(.GET, "/metrics", accept: "text/plain")
    return String(decoding: body, as: UTF8.self)
  }

  // MARK: plumbing

  static func checkName(_ name: String) throws(DaemonClientError) {
    guard AdapterName.isValid(name) else {
      throw .invalidArgument(
        "'\(name)' is not an adapter name: 1 to \(AdapterName.maxLength) characters of A-Z a-z 0-9 . _ -")
    }
  }

  private func encode<T: Encodable>(_ value: T) throws -> [UInt8] {
    Array(try JSONCoding.encoder.encode(value))
  }

  private func decode<T: Decodable>(_ type: T.Type, _ body: [UInt8], status: Int) throws -> T {
    do {
      return try JSONCoding.decoder.decode(T.self, from: body)
    } catch {
      throw DaemonClientError.badResponse("\(status) with a body that is not the expected JSON (\(error))")
    }
  }

  private func json<T: Decodable>(_ method: HTTPMethod, _ path: String, body: [UInt8]? = nil) async throws -> T {
    let (status, bytes) = try await send(method, path, body: body)
    return try decode(T.self, bytes, status: status)
  }

  /// One exchange with a complete body; statuses outside `acceptingStatus` (default 2xx) throw.
  private func send(
    _ method: HTTPMethod, _ path: String, body: [UInt8]? = nil, accept: String = "application/json",
    acceptingStatus: Set<Int>? = nil
  ) async throws -> (Int, [UInt8]) {
    var status = 0
    var bytes: [UInt8] = []
    try await transport.exchange(method: method, path: path, body: body, accept: accept) { part in
      switch part {
      case .head(let h): status = Int(h.status.code)
      case .body(let b):
        guard bytes.count + b.readableBytes <= Self.maxBodyBytes else {
          throw DaemonClientError.badResponse("a response body over \(Self.maxBodyBytes) bytes")
        }
        bytes.append(contentsOf: b.readableBytesView)
      }
    }
    let ok = acceptingStatus.map { $0.contains(status) } ?? (200..<300).contains(status)
    guard ok else { throw Self.serverError(status: status, body: bytes) }
    return (status, bytes)
  }

  static func serverError(status: Int, body: [UInt8]) -> DaemonClientError {
    if let e = ServerError.parse(status: status, body: body) { return .server(e) }
    let text = String(decoding: body.prefix(300), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    return .server(ServerError(status: status, message: text.isEmpty ? "HTTP \(status)" : text))
  }

  /// A streamed route: JSON events until `data: [DONE]`. An error status before the stream,
  /// an error event inside it, or a stream that ends without `[DONE]` all throw.
  private func events<T: Decodable & Sendable>(
    _ method: HTTPMethod, _ path: String, body: Result<[UInt8], any Error>
  ) -> AsyncThrowingStream<T, any Error> {
    let transport = self.transport
    let (stream, continuation) = AsyncThrowingStream.makeStream(of: T.self)
    let task = Task {
      do {
        var status = 0
        var isEventStream = false
        var errorBody: [UInt8] = []
        var parser = ServerSentEventParser()
        var done = false
        try await transport.exchange(
          method: method, path: path, body: try body.get(), accept: "text/event-stream"
        ) { part in
          switch part {
          case .head(let h):
            status = Int(h.status.code)
            isEventStream = h.headers.first(name: "content-type")?.lowercased().hasPrefix("text/event-stream") ?? false
            if status == 200 && !isEventStream {
              throw DaemonClientError.badResponse("a stream was asked for but the answer is not text/event-stream")
            }
          case .body(let b):
            guard status == 200 else {
              if errorBody.count < 1 << 20 { errorBody.append(contentsOf: b.readableBytesView) }
              return
            }
            let parsed: [ServerSentEvent]
            do {
              parsed = try parser.feed(b.readableBytesView)
            } catch {
              throw DaemonClientError.badResponse("an event-stream line longer than \(parser.maxLineBytes) bytes")
            }
            for event in parsed where !done {
              if event.data == "[DONE]" {
                done = true
                continue
              }
              let data = Array(event.data.utf8)
              // The daemon reports a failure after the status went out as one error event.
              if let e = ServerError.parse(status: status, body: data) { throw DaemonClientError.server(e) }
              do {
                continuation.yield(try JSONCoding.decoder.decode(T.self, from: data))
              } catch {
                throw DaemonClientError.badResponse("a stream event that is not the expected JSON: \(event.data.prefix(200))")
              }
            }
          }
        }
        if status != 200 { throw Self.serverError(status: status, body: errorBody) }
        if !done { throw DaemonClientError.connectionClosed }
        continuation.finish()
      } catch {
        continuation.finish(throwing: error)
      }
    }
    continuation.onTermination = { _ in task.cancel() }
    return stream
  }
}
