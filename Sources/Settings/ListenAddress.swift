// A TCP address to listen on (`server.listen`): a numeric IPv4 address or a bracketed IPv6
// address and a port, e.g. `127.0.0.1:8080` or `[::1]:8080`. Numeric only, so whether it is a
// loopback address (which decides whether API keys are optional; HTTPAPI's `isLoopbackAddress`
// says) never depends on DNS.
#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#endif

public struct ListenAddress: Sendable, Equatable, CustomStringConvertible {
  /// The address without brackets: `127.0.0.1`, `::1`.
  public var host: String
  /// 0 lets the kernel pick a free port (tests).
  public var port: Int
  public var isIPv6: Bool

  public init(host: String, port: Int) throws(ListenAddressError) {
    guard (0...65535).contains(port) else { throw .badPort("\(port)") }
    if Self.isNumeric(host, family: AF_INET) {
      isIPv6 = false
    } else if Self.isNumeric(host, family: AF_INET6) {
      isIPv6 = true
    } else {
      throw .notNumeric(host)
    }
    self.host = host
    self.port = port
  }

  /// Parses `HOST:PORT` or `[HOST]:PORT`.
  public init(parsing text: String) throws(ListenAddressError) {
    let host: Substring
    let portText: Substring
    if text.hasPrefix("[") {
      guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else {
        throw .malformed(text)
      }
      host = text[text.index(after: text.startIndex)..<close]
      portText = text[text.index(close, offsetBy: 2)...]
    } else {
      guard let colon = text.lastIndex(of: ":"), !text[..<colon].contains(":") else { throw .malformed(text) }
      host = text[..<colon]
      portText = text[text.index(after: colon)...]
    }
    guard let port = Int(portText) else { throw .badPort(String(portText)) }
    try self.init(host: String(host), port: port)
  }

  public var description: String { isIPv6 ? "[\(host)]:\(port)" : "\(host):\(port)" }

  private static func isNumeric(_ text: String, family: Int32) -> Bool {
    var buffer = in6_addr()  // large enough for either family
    return inet_pton(family, text, &buffer) == 1
  }
}

public enum ListenAddressError: Error, Sendable, Equatable, CustomStringConvertible {
  case malformed(String)
  case badPort(String)
  case notNumeric(String)

  public var description: String {
    switch self {
    case .malformed(let t): return "\"\(t)\" is not HOST:PORT (e.g. 127.0.0.1:8080 or [::1]:8080)"
    case .badPort(let p): return "\"\(p)\" is not a port in 0...65535"
    case .notNumeric(let h):
      return "\"\(h)\" is not a numeric IPv4 or IPv6 address (names are not resolved; use 127.0.0.1 or [::1])"
    }
  }
}
