// Routes: which method and path go to which backend call, and how each answer is written
// (JSON, Prometheus text, or server-sent events). Knows nothing of sockets: it reads a complete
// request and writes through a `ResponseWriter`. Every error, whatever its origin, goes out
// through `APIError.response`.
import Foundation
import NIOCore
import NIOHTTP1

/// A request whose body has been read completely (within the size limit).
struct HTTPRequest: Sendable {
  var head: HTTPRequestHead
  var body: ByteBuffer
}

enum Route: Equatable {
  case chatCompletions, completions, models, health, metrics
  case adapters
  case adapter(String)
  case adapterDefault(String)
  case adapterSamples(String)
  case adapterTraining(String)
  case adapterVersions(String)
  case adapterRollback(String)

  /// The path without its query; percent-escapes are not decoded, so no name can smuggle a '/'.
  static func match(path: String) -> Route? {
    let parts = path.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
    switch parts {
    case ["", "v1", "chat", "completions"]: return .chatCompletions
    case ["", "v1", "completions"]: return .completions
    case ["", "v1", "models"]: return .models
    case ["", "health"]: return .health
    case ["", "metrics"]: return .metrics
    case ["", "v1", "adapters"]: return .adapters
    default:
      if parts.count == 4, parts[0] == "", parts[1] == "v1", parts[2] == "adapters" { return .adapter(parts[3]) }
      if parts.count == 5, parts[0] == "", parts[1] == "v1", parts[2] == "adapters" {
        switch parts[4] {
        case "default": return .adapterDefault(parts[3])
        case "samples": return .adapterSamples(parts[3])
        case "training": return .adapterTraining(parts[3])
        case "versions": return .adapterVersions(parts[3])
        case "rollback": return .adapterRollback(parts[3])
        default: return nil
        }
      }
      return nil
    }
  }

  var allowedMethods: [HTTPMethod] {
    switch self {
    case .chatCompletions, .completions: return [.POST]
    case .models, .health, .metrics: return [.GET]
    case .adapters: return [.GET, .POST]
    case .adapter: return [.DELETE]
    case .adapterDefault: return [.POST, .DELETE]
    case .adapterSamples, .adapterRollback: return [.POST]
    case .adapterTraining: return [.GET, .POST]
    case .adapterVersions: return [.GET]
    }
  }
}

struct Router: Sendable {
  let backend: any InferenceBackend

  static let jsonEncoder: JSONEncoder = {
    let e = JSONEncoder()
    e.outputFormatting = [.withoutEscapingSlashes, .sortedKeys]
    return e
  }()

  /// Handles one request to completion. Throws only when the client can no longer be written
  /// to (the caller then closes the connection); every other failure becomes an error response.
  func handle(_ request: HTTPRequest, writer: ResponseWriter) async throws(ResponseWriter.Gone) {
    do {
      try await dispatch(request, writer: writer)
    } catch let gone as ResponseWriter.Gone {
      throw gone
    } catch {
      if writer.headWritten {
        // Mid-stream: the status is already out; say what happened as a final event.
        try await writer.writeSSEError(APIError.from(error).response.body)
      } else {
        try await writer.writeError(APIError.from(error))
      }
    }
  }

  private func dispatch(_ request: HTTPRequest, writer: ResponseWriter) async throws {
    let path = request.head.uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first
      .map(String.init) ?? ""
    guard let route = Route.match(path: path) else {
      throw APIError.routeNotFound(method: request.head.method.rawValue, path: String(path.prefix(200)))
    }
    guard route.allowedMethods.contains(request.head.method) else {
      throw APIError.methodNotAllowed(allowed: route.allowedMethods)
    }
    switch (route, request.head.method) {
    case (.chatCompletions, _):
      let req = try decode(ChatCompletionRequest.self, from: request.body)
      try req.validate()
      try await chat(req, writer: writer)
    case (.completions, _):
      let req = try decode(CompletionRequest.self, from: request.body)
      try req.validate()
      try await complete(req, writer: writer)
    case (.models, _):
      let list = ModelList(
        data: await backend.models().map {
          .init(id: $0.id, created: $0.created, ownedBy: $0.ownedBy, kind: $0.kind)
        })
      try await writer.writeJSON(list)
    case (.health, _):
      let h = await backend.health()
      try await writer.writeJSON(HealthBody(status: h.status, ready: h.ready), status: h.ready ? .ok : .serviceUnavailable)
    case (.metrics, _):
      let text = await backend.metricsText()
      try await writer.writeFull(
        status: .ok, contentType: "text/plain; version=0.0.4; charset=utf-8", body: Array(text.utf8))
    case (.adapters, .GET):
      try await writer.writeJSON(AdapterList(data: await backend.adapters()))
    case (.adapters, _):
      let req = try decode(AdapterPostRequest.self, from: request.body)
      let info: AdapterInfo
      switch try req.validated() {
      case .load(let name, let path): info = try await backend.loadAdapter(name: name, path: path)
      case .create(let spec): info = try await backend.createAdapter(spec)
      }
      try await writer.writeJSON(info, status: .created)
    case (.adapter(let name), _):
      try AdapterName.validate(name, field: "name")
      try await backend.unloadAdapter(name: name)
      try await writer.writeFull(status: .noContent, contentType: nil, body: [])
    case (.adapterDefault(let name), let method):
      try AdapterName.validate(name, field: "name")
      // POST makes this adapter the default; DELETE goes back to serving the base model.
      try await backend.setDefaultAdapter(name: method == .POST ? name : nil)
      try await writer.writeJSON(AdapterList(data: await backend.adapters()))
    case (.adapterSamples(let name), _):
      try AdapterName.validate(name, field: "name")
      guard let jsonl = String(validating: request.body.readableBytesView, as: UTF8.self) else {
        throw APIError.badJSON("the body must be UTF-8 JSON lines")
      }
      try await writer.writeJSON(try await backend.pushSamples(adapter: name, jsonl: jsonl))
    case (.adapterTraining(let name), .GET):
      try AdapterName.validate(name, field: "name")
      try await writer.writeJSON(try await backend.trainingStatus(adapter: name))
    case (.adapterTraining(let name), _):
      try AdapterName.validate(name, field: "name")
      let req = try decode(TrainingControl.self, from: request.body)
      try req.validate()
      try await writer.writeJSON(try await backend.controlTraining(adapter: name, control: req))
    case (.adapterVersions(let name), _):
      try AdapterName.validate(name, field: "name")
      try await writer.writeJSON(VersionList(data: try await backend.trainingVersions(adapter: name)))
    case (.adapterRollback(let name), _):
      try AdapterName.validate(name, field: "name")
      let req = try decode(RollbackRequest.self, from: request.body)
      try await writer.writeJSON(try await backend.rollback(adapter: name, version: req.version))
    }
  }

  private func decode<T: Decodable>(_ type: T.Type, from body: ByteBuffer) throws(APIError) -> T {
    guard body.readableBytes > 0 else { throw .badJSON("the request needs a JSON body") }
    do {
      return try JSONDecoder().decode(T.self, from: Data(body.readableBytesView))
    } catch let e as DecodingError {
      throw APIError.fromDecoding(e)
    } catch {
      throw .badJSON("the body is not valid JSON")
    }
  }

  // MARK: generation

  static func makeID(_ prefix: String) -> String {
    var g = SystemRandomNumberGenerator()
    let hex = (0..<3).map { _ in String(g.next() as UInt64, radix: 16) }.joined()
    return prefix + hex
  }

  private func chat(_ req: ChatCompletionRequest, writer: ResponseWriter) async throws {
    let id = Self.makeID("chatcmpl-")
    let created = Int(Date().timeIntervalSince1970)
    let model = await resolvedModel(req.model)
    let events = try await backend.chat(req)
    if !req.stream {
      let (text, reason, usage) = try await collect(events)
      try await writer.writeJSON(
        ChatCompletionResponse(
          id: id, created: created, model: model,
          choices: [.init(index: 0, message: .init(role: .assistant, content: text), finishReason: reason)],
          usage: usage))
      return
    }
    func chunk(_ delta: ChatCompletionChunk.Delta, _ reason: FinishReason? = nil) -> ChatCompletionChunk {
      ChatCompletionChunk(
        id: id, created: created, model: model,
        choices: [.init(index: 0, delta: delta, finishReason: reason)])
    }
    try await writer.writeSSEHead()
    try await writer.writeSSE(chunk(.init(role: .assistant, content: "")))
    var finish: (FinishReason, Usage)?
    for try await event in events {
      switch event {
      case .text(let t): if !t.isEmpty { try await writer.writeSSE(chunk(.init(content: t))) }
      case .finished(let r, let u): finish = (r, u)
      }
    }
    try Task.checkCancellation()
    guard let (reason, usage) = finish else { throw APIError.internalFailure("generation ended without finishing") }
    try await writer.writeSSE(chunk(.init(), reason))
    if req.includeUsageInStream {
      try await writer.writeSSE(ChatCompletionChunk(id: id, created: created, model: model, choices: [], usage: usage))
    }
    try await writer.writeSSEDone()
  }

  private func complete(_ req: CompletionRequest, writer: ResponseWriter) async throws {
    let id = Self.makeID("cmpl-")
    let created = Int(Date().timeIntervalSince1970)
    let model = await resolvedModel(req.model)
    let events = try await backend.complete(req)
    if !req.stream {
      let (text, reason, usage) = try await collect(events)
      try await writer.writeJSON(
        TextCompletionResponse(
          id: id, created: created, model: model,
          choices: [.init(text: text, index: 0, finishReason: reason)], usage: usage))
      return
    }
    func chunk(_ text: String, _ reason: FinishReason?, _ usage: Usage? = nil) -> TextCompletionResponse {
      TextCompletionResponse(
        id: id, created: created, model: model, choices: [.init(text: text, index: 0, finishReason: reason)],
        usage: usage)
    }
    try await writer.writeSSEHead()
    var finish: (FinishReason, Usage)?
    for try await event in events {
      switch event {
      case .text(let t): if !t.isEmpty { try await writer.writeSSE(chunk(t, nil)) }
      case .finished(let r, let u): finish = (r, u)
      }
    }
    try Task.checkCancellation()
    guard let (reason, usage) = finish else { throw APIError.internalFailure("generation ended without finishing") }
    try await writer.writeSSE(chunk("", reason, req.includeUsageInStream ? usage : nil))
    try await writer.writeSSEDone()
  }

  /// What `model` says in the response when the request named none: the default adapter, else
  /// the base model, as the backend will choose.
  private func resolvedModel(_ requested: String?) async -> String {
    if let requested { return requested }
    if let adapter = await backend.adapters().first(where: \.isDefault) { return adapter.name }
    return await backend.models().first { $0.kind == .base }?.id ?? "default"
  }

  private func collect(
    _ events: AsyncThrowingStream<GenerationEvent, any Error>
  ) async throws -> (String, FinishReason, Usage) {
    var text = ""
    var finish: (FinishReason, Usage)?
    for try await event in events {
      switch event {
      case .text(let t): text += t
      case .finished(let r, let u): finish = (r, u)
      }
    }
    // A cancelled iteration ends quietly; don't dress a disconnect up as a finished answer.
    try Task.checkCancellation()
    guard let (reason, usage) = finish else { throw APIError.internalFailure("generation ended without finishing") }
    return (text, reason, usage)
  }
}
