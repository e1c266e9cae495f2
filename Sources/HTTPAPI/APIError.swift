// Every failure the HTTP layer reports, and the ONE place that turns an error into a status,
// headers and OpenAI's error body `{"error":{"message","type","param","code"}}`.
import Foundation
import Grammar
import NIOHTTP1

public enum APIError: Error, Sendable, Equatable {
  /// The body is not JSON, or not the JSON shape of the route.
  case badJSON(String)
  /// A field has a value out of range; the first value is the field name (OpenAI's `param`).
  case invalidField(String, String)
  case routeNotFound(method: String, path: String)
  case methodNotAllowed(allowed: [HTTPMethod])
  case bodyTooLarge(limit: Int)
  case forbidden
  /// A request on a TCP listener without a valid `Authorization: Bearer` key.
  case unauthorized
  /// The daemon's connection cap (`limits.max_connections`) is reached.
  case tooManyConnections(limit: Int)
  /// This uid's cap (`limits.max_connections_per_user`) is reached.
  case tooManyConnectionsForUser(limit: Int)
  case backend(BackendError)
  /// A JSON Schema the output should follow cannot be compiled; `field` is where it was given.
  case schema(field: String, JSONSchemaError)
  /// A GBNF `grammar` does not parse or cannot be matched.
  case grammar(field: String, GrammarError)
  case internalFailure(String)
}

/// A complete error response, ready to write.
struct ErrorResponse {
  var status: HTTPResponseStatus
  var headers: HTTPHeaders
  var body: ErrorBody
}

struct ErrorBody: Codable, Equatable {
  struct Detail: Codable, Equatable {
    var message: String
    var type: String
    var param: String?
    var code: String?

    func encode(to encoder: any Encoder) throws {
      // OpenAI writes `param` and `code` as explicit nulls; clients index them without checks.
      var c = encoder.container(keyedBy: CodingKeys.self)
      try c.encode(message, forKey: .message)
      try c.encode(type, forKey: .type)
      try c.encode(param, forKey: .param)
      try c.encode(code, forKey: .code)
    }
  }
  var error: Detail
}

extension APIError {
  /// Wraps anything thrown below the HTTP layer; unknown errors become 500 without internals.
  static func from(_ error: any Error) -> APIError {
    switch error {
    case let e as APIError: return e
    case let e as BackendError: return .backend(e)
    case let e as DecodingError: return .fromDecoding(e)
    default: return .internalFailure("internal error: \(String(describing: type(of: error)))")
    }
  }

  /// The status mapping, in one switch.
  var response: ErrorResponse {
    var headers = HTTPHeaders()
    let status: HTTPResponseStatus
    let type: String
    var param: String? = nil
    var code: String? = nil
    let message: String
    switch self {
    case .badJSON(let m):
      (status, type, code, message) = (.badRequest, "invalid_request_error", "invalid_json", m)
    case .invalidField(let field, let m):
      (status, type, code, message) = (.badRequest, "invalid_request_error", "invalid_value", "\(field): \(m)")
      param = field
    case .routeNotFound(let method, let path):
      (status, type, code) = (.notFound, "invalid_request_error", "unknown_route")
      message = "no route for \(method) \(path); see droplorad(8) for the routes"
    case .methodNotAllowed(let allowed):
      (status, type, code) = (.methodNotAllowed, "invalid_request_error", "method_not_allowed")
      let list = allowed.map(\.rawValue).joined(separator: ", ")
      headers.add(name: "Allow", value: list)
      message = "method not allowed here; use \(list)"
    case .bodyTooLarge(let limit):
      (status, type, code) = (.payloadTooLarge, "invalid_request_error", "body_too_large")
      message = "request body exceeds \(limit) bytes"
    case .forbidden:
      (status, type, code) = (.forbidden, "permission_error", "peer_not_allowed")
      message = "this user is not in the daemon's allowed_uids / allowed_groups"
    case .unauthorized:
      (status, type, code) = (.unauthorized, "invalid_request_error", "invalid_api_key")
      headers.add(name: "WWW-Authenticate", value: "Bearer")
      message = "missing or wrong API key; send Authorization: Bearer KEY (a key from server.api_keys_file)"
    case .tooManyConnections(let limit):
      (status, type, code) = (.serviceUnavailable, "server_error", "too_many_connections")
      headers.add(name: "Retry-After", value: "1")
      message = "the daemon has its maximum of \(limit) connections open (limits.max_connections); retry after 1 s"
    case .tooManyConnectionsForUser(let limit):
      (status, type, code) = (.tooManyRequests, "rate_limit_error", "too_many_connections")
      headers.add(name: "Retry-After", value: "1")
      message = "this user already holds \(limit) connections to the daemon (limits.max_connections_per_user); close some"
    case .schema(let field, let e):
      // An unsupported keyword is a refusal of a valid schema; anything else is a bad schema.
      (status, type) = (.badRequest, "invalid_request_error")
      code = e.keyword == nil ? "invalid_schema" : "unsupported_schema"
      message = "\(field): \(e)"
      param = field
    case .grammar(let field, let e):
      (status, type, code, message) = (.badRequest, "invalid_request_error", "invalid_grammar", "\(field): \(e)")
      param = field
    case .internalFailure(let m):
      (status, type, code, message) = (.internalServerError, "server_error", "internal_error", m)
    case .backend(let b):
      switch b {
      case .modelNotFound(let m):
        (status, type, code) = (.notFound, "invalid_request_error", "model_not_found")
        message = "model '\(m)' does not exist; GET /v1/models lists the base model and adapters"
        param = "model"
      case .adapterNotFound(let n):
        (status, type, code) = (.notFound, "invalid_request_error", "adapter_not_found")
        message = "adapter '\(n)' is not loaded; GET /v1/adapters lists them"
      case .adapterExists(let n):
        (status, type, code) = (.conflict, "invalid_request_error", "adapter_exists")
        message = "adapter '\(n)' is already loaded; DELETE it first or pick another name"
        param = "name"
      case .invalidRequest(let field, let m):
        (status, type, code) = (.badRequest, "invalid_request_error", "invalid_value")
        param = field
        message = field.map { "\($0): \(m)" } ?? m
      case .saturated(let seconds):
        (status, type, code) = (.serviceUnavailable, "server_error", "server_busy")
        headers.add(name: "Retry-After", value: String(max(1, seconds)))
        message = "too many generations queued; retry after \(max(1, seconds)) s"
      case .rateLimited(let seconds):
        (status, type, code) = (.tooManyRequests, "rate_limit_error", "rate_limited")
        headers.add(name: "Retry-After", value: String(max(1, seconds)))
        message = "too many requests; retry after \(max(1, seconds)) s"
      case .unavailable(let m):
        (status, type, code, message) = (.serviceUnavailable, "server_error", "unavailable", m)
      case .insufficientStorage(let m):
        (status, type, code, message) = (.insufficientStorage, "server_error", "insufficient_storage", m)
      case .internalFailure(let m):
        (status, type, code, message) = (.internalServerError, "server_error", "internal_error", m)
      }
    }
    return ErrorResponse(
      status: status, headers: headers,
      body: ErrorBody(error: .init(message: message, type: type, param: param, code: code)))
  }

  /// Names the field a decoding failure is about, e.g. `messages[0].role`.
  static func fromDecoding(_ error: DecodingError) -> APIError {
    func path(_ keys: [any CodingKey]) -> String {
      var out = ""
      for k in keys {
        if let i = k.intValue { out += "[\(i)]" } else { out += out.isEmpty ? k.stringValue : ".\(k.stringValue)" }
      }
      return out
    }
    switch error {
    case .keyNotFound(let key, let ctx):
      let field = path(ctx.codingPath + [key])
      return .invalidField(field, "required field is missing")
    case .typeMismatch(let type, let ctx):
      let field = path(ctx.codingPath)
      return field.isEmpty
        ? .badJSON("the body must be a JSON object") : .invalidField(field, "expected \(describe(type))")
    case .valueNotFound(let type, let ctx):
      return .invalidField(path(ctx.codingPath), "expected \(describe(type)), got null")
    case .dataCorrupted(let ctx):
      let field = path(ctx.codingPath)
      return field.isEmpty
        ? .badJSON("the body is not valid JSON") : .invalidField(field, ctx.debugDescription)
    @unknown default:
      return .badJSON("the body could not be decoded")
    }
  }

  private static func describe(_ type: Any.Type) -> String {
    switch type {
    case is String.Type: return "a string"
    case is Bool.Type: return "true or false"
    case is Int.Type, is UInt64.Type: return "an integer"
    case is Double.Type: return "a number"
    default:
      let name = String(describing: type)
      if name.hasPrefix("Array") { return "an array" }
      if name.contains("Role") { return "one of system, user, assistant" }
      return "a value of the right shape"
    }
  }
}
