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
  case chatCompletions, completions, models, health, metrics, tokenize, detokenize, loraAdapters
  case model(String)
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
    case ["", "tokenize"]: return .tokenize
    case ["", "detokenize"]: return .detokenize
    case ["", "lora-adapters"]: return .loraAdapters
    default:
      if parts.count == 4, parts[0] == "", parts[1] == "v1", parts[2] == "models" {
        return .model(parts[3].removingPercentEncoding ?? parts[3])
      }
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
    case .chatCompletions, .completions, .tokenize, .detokenize: return [.POST]
    case .models, .model, .health, .metrics, .loraAdapters: return [.GET]
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
      let apiError = APIError.from(error)
      if writer.headWritten {
        // Mid-stream: the status is already out; say what happened as a final event.
        let response = apiError.response
        backend.requestRefused(status: Int(response.status.code), code: response.body.error.code ?? "error")
        try await writer.writeSSEError(response.body)
      } else {
        try await writeRefusal(apiError, writer: writer)
      }
    }
  }

  /// Writes an error answer and counts it; every refusal, the connection-level ones included,
  /// goes through here.
  func writeRefusal(_ error: APIError, writer: ResponseWriter) async throws(ResponseWriter.Gone) {
    let response = error.response
    backend.requestRefused(status: Int(response.status.code), code: response.body.error.code ?? "error")
    try await writer.writeError(error)
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
      var req = try decode(ChatCompletionRequest.self, from: request.body)
      try req.validate()
      (req.model, req.adapterScaling) = try await resolveAdapter(model: req.model, scaling: req.adapterScaling, lora: req.lora)
      req.lora = nil
      try await chat(req, writer: writer)
    case (.completions, _):
      var req = try decode(CompletionRequest.self, from: request.body)
      try req.validate()
      (req.model, req.adapterScaling) = try await resolveAdapter(model: req.model, scaling: req.adapterScaling, lora: req.lora)
      req.lora = nil
      try await complete(req, writer: writer)
    case (.loraAdapters, _):
      try await writer.writeJSON(await loraAdapterList())
    case (.models, _):
      let list = ModelList(
        data: await backend.models().map {
          .init(id: $0.id, created: $0.created, ownedBy: $0.ownedBy, kind: $0.kind)
        })
      try await writer.writeJSON(list)
    case (.model(let id), _):
      guard let m = await backend.models().first(where: { $0.id == id }) else {
        throw BackendError.modelNotFound(String(id.prefix(256)))
      }
      try await writer.writeJSON(ModelList.Entry(id: m.id, created: m.created, ownedBy: m.ownedBy, kind: m.kind))
    case (.tokenize, _):
      let req = try decode(TokenizeRequest.self, from: request.body)
      let pieces = try await backend.tokenize(
        req.content, addSpecial: req.addSpecial, parseSpecial: req.parseSpecial)
      try await writer.writeJSON(TokenizeResponse(pieces: pieces, withPieces: req.withPieces))
    case (.detokenize, _):
      let req = try decode(DetokenizeRequest.self, from: request.body)
      try await writer.writeJSON(DetokenizeResponse(content: try await backend.detokenize(req.tokens)))
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
      // Not decoded here: one line that is not UTF-8 must cost that line, not the push.
      let jsonl = Array(request.body.readableBytesView)
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
      let decoder = JSONDecoder()
      decoder.userInfo[.requestBody] = String(decoding: body.readableBytesView, as: UTF8.self)
      return try decoder.decode(T.self, from: Data(body.readableBytesView))
    } catch let e as DecodingError {
      throw APIError.fromDecoding(e)
    } catch let e as APIError {
      throw e
    } catch {
      throw .badJSON("the body is not valid JSON")
    }
  }
}
