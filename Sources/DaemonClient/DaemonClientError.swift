// Every way a call to the daemon can fail, worded for the person at the terminal: where the
// socket is, what is probably wrong and what to do, or the server's own OpenAI-shaped message.

/// The daemon's `{"error":{"message","type","param","code"}}` body, with the HTTP status.
public struct ServerError: Sendable, Equatable, Decodable {
  public var status: Int
  public var message: String
  public var type: String?
  public var param: String?
  public var code: String?

  public init(status: Int, message: String, type: String? = nil, param: String? = nil, code: String? = nil) {
    self.status = status
    self.message = message
    self.type = type
    self.param = param
    self.code = code
  }

  private struct Body: Decodable {
    struct Detail: Decodable {
      var message: String
      var type: String?
      var param: String?
      var code: String?
    }
    var error: Detail
  }

  /// The error in a body, or nil when the body is not OpenAI's error shape.
  static func parse(status: Int, body: [UInt8]) -> ServerError? {
    guard let b = try? JSONCoding.decoder.decode(Body.self, from: body) else { return nil }
    return ServerError(status: status, message: b.error.message, type: b.error.type, param: b.error.param, code: b.error.code)
  }

  public init(from decoder: any Decoder) throws {
    let b = try Body(from: decoder)
    self.init(status: 0, message: b.error.message, type: b.error.type, param: b.error.param, code: b.error.code)
  }
}

public enum DaemonClientError: Error, Sendable, Equatable, CustomStringConvertible {
  /// Nothing at the socket path (or its directory is missing).
  case socketMissing(path: String)
  /// A socket file exists but no process accepts on it (a daemon that died or is stopped).
  case notRunning(path: String)
  case permissionDenied(path: String)
  case notASocket(path: String)
  case connectFailed(path: String, reason: String)
  /// The daemon answered with an error status (or an error event in a stream).
  case server(ServerError)
  /// The answer is not what this client understands (wrong content type, bad JSON).
  case badResponse(String)
  /// The daemon closed the connection before the answer was complete.
  case connectionClosed
  /// A value this client refuses to send (e.g. an adapter name that is not a valid name).
  case invalidArgument(String)

  public var description: String {
    switch self {
    case .socketMissing(let path):
      return "no daemon socket at \(path): is droplorad running? Start it (systemctl start droplorad), "
        + "or point the client at its socket with --socket PATH or DROPLORA_SOCKET"
    case .notRunning(let path):
      return "droplorad is not running: nothing accepts connections on \(path) (a socket file left behind); "
        + "start it with systemctl start droplorad"
    case .permissionDenied(let path):
      return "permission denied on \(path): the socket is for members of its group (droplora by default); "
        + "ask an administrator to run usermod -aG droplora $USER, then log in again"
    case .notASocket(let path):
      return "\(path) is not a Unix socket; pass the daemon's socket with --socket PATH"
    case .connectFailed(let path, let reason):
      return "cannot connect to droplorad at \(path): \(reason)"
    case .server(let e):
      let code = e.code.map { " \($0)" } ?? ""
      return "droplorad refused the request (\(e.status)\(code)): \(e.message)"
    case .badResponse(let what):
      return "unexpected answer from droplorad: \(what)"
    case .connectionClosed:
      return "droplorad closed the connection before the answer was complete"
    case .invalidArgument(let what):
      return what
    }
  }
}
