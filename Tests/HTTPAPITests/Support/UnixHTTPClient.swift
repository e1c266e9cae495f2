// A deliberately small HTTP/1.1 client over a raw Unix socket, written for these tests so
// they check the server against bytes on the wire, not against NIO's own client. Blocking
// I/O runs on a Dispatch thread so the server's tasks keep the cooperative pool.
import Dispatch
import Foundation

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#endif

struct ClientError: Error, CustomStringConvertible {
  var description: String
  init(_ d: String) { description = d }
}

struct HTTPResponse: @unchecked Sendable {
  var status: Int
  var headers: [(String, String)]
  var body: [UInt8]
  var text: String { String(decoding: body, as: UTF8.self) }
  func header(_ name: String) -> String? {
    headers.first { $0.0.lowercased() == name.lowercased() }?.1
  }
  func json() throws -> [String: Any] {
    guard let obj = try JSONSerialization.jsonObject(with: Data(body)) as? [String: Any] else {
      throw ClientError("body is not a JSON object: \(text)")
    }
    return obj
  }
}

/// Runs blocking work on its own thread: Dispatch's global queues share their width with the
/// Swift concurrency pool on Linux, so blocking there would starve the server under test.
func offPool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
  try await withCheckedThrowingContinuation { c in
    let t = Thread { c.resume(with: Result { try body() }) }
    t.start()
  }
}

final class UnixHTTPClient: @unchecked Sendable {
  // unchecked: each client is used by one test task at a time.
  let fd: Int32
  private var buffer: [UInt8] = []
  private(set) var sawEOF = false

  init(path: String, timeoutSeconds: Int = 30) throws {
    fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw ClientError("socket: \(errno)") }
    var tv = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    var addr = sockaddr_un()
    addr.sun_family = sa_family_t(AF_UNIX)
    let bytes = Array(path.utf8)
    withUnsafeMutableBytes(of: &addr.sun_path) { raw in
      raw.copyBytes(from: bytes)
      raw[bytes.count] = 0
    }
    let fd = self.fd
    let rc = withUnsafePointer(to: &addr) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
    }
    guard rc == 0 else {
      let e = errno
      close(fd)
      throw ClientError("connect: errno \(e)")
    }
  }

  /// A TCP connection to `host:port` (IPv4), with the same reading helpers.
  init(tcpHost host: String, port: Int, timeoutSeconds: Int = 30) throws {
    fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw ClientError("socket: \(errno)") }
    var tv = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = in_port_t(UInt16(port).bigEndian)
    inet_pton(AF_INET, host, &addr.sin_addr)
    let fd = self.fd
    let rc = withUnsafePointer(to: &addr) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard rc == 0 else {
      let e = errno
      close(fd)
      throw ClientError("connect: errno \(e)")
    }
  }

  deinit { close(fd) }

  /// Sends everything; MSG_NOSIGNAL so a server that already closed gives EPIPE, not SIGPIPE.
  func send(_ bytes: [UInt8]) throws {
    var off = 0
    while off < bytes.count {
      let n = bytes[off...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
      if n < 0 {
        if errno == EINTR { continue }
        throw ClientError("send: errno \(errno)")
      }
      off += n
    }
  }
  func send(_ s: String) throws { try send(Array(s.utf8)) }

  /// Reads what is available (blocking up to the timeout); false at EOF or reset.
  @discardableResult
  func fill() throws -> Bool {
    var chunk = [UInt8](repeating: 0, count: 65536)
    let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
    if n > 0 {
      buffer += chunk[0..<n]
      return true
    }
    if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { throw ClientError("read timed out") }
    sawEOF = true
    return false
  }

  func closeNow() { shutdown(fd, Int32(SHUT_RDWR)) }

  private func takeLine() throws -> String? {
    while true {
      if let i = buffer.firstIndex(of: 0x0A) {
        var line = Array(buffer[..<i])
        buffer.removeFirst(i + 1)
        if line.last == 0x0D { line.removeLast() }
        return String(decoding: line, as: UTF8.self)
      }
      if try !fill() { return nil }
    }
  }

  private func take(_ n: Int) throws -> [UInt8] {
    while buffer.count < n { if try !fill() { throw ClientError("EOF inside a body") } }
    let out = Array(buffer[..<n])
    buffer.removeFirst(n)
    return out
  }

  /// Reads a status line and headers.
  func readHead() throws -> (Int, [(String, String)]) {
    guard let statusLine = try takeLine() else { throw ClientError("EOF before a response") }
    let parts = statusLine.split(separator: " ", maxSplits: 2)
    guard parts.count >= 2, let status = Int(parts[1]) else { throw ClientError("bad status line: \(statusLine)") }
    var headers: [(String, String)] = []
    while let line = try takeLine(), !line.isEmpty {
      guard let colon = line.firstIndex(of: ":") else { throw ClientError("bad header: \(line)") }
      headers.append((String(line[..<colon]), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)))
    }
    return (status, headers)
  }

  /// Reads one response. Chunked bodies are de-chunked; without a length, reads to EOF.
  func readResponse() throws -> HTTPResponse {
    let (status, headers) = try readHead()
    let r = HTTPResponse(status: status, headers: headers, body: [])
    var body: [UInt8] = []
    if status == 204 || (100..<200).contains(status) {
    } else if let len = r.header("content-length").flatMap(Int.init) {
      body = try take(len)
    } else if r.header("transfer-encoding")?.lowercased() == "chunked" {
      while true {
        guard let sizeLine = try takeLine(), let size = Int(sizeLine.split(separator: ";").first ?? "", radix: 16)
        else {
          throw ClientError("bad chunk size")
        }
        if size == 0 {
          while let l = try takeLine(), !l.isEmpty {}
          break
        }
        body += try take(size)
        _ = try takeLine()
      }
    } else {
      while try fill() {}
      body = buffer
      buffer = []
    }
    return HTTPResponse(status: status, headers: headers, body: body)
  }

  /// True when the server closes the connection (EOF or reset) within the timeout.
  func waitForClose() -> Bool {
    do {
      while try fill() {}
      return true
    } catch {
      return false
    }
  }

  /// Next `data:` payload of an SSE body (chunk-size lines are skipped as non-data lines).
  func nextDataLine() throws -> String? {
    while let line = try takeLine() {
      if line.hasPrefix("data: ") { return String(line.dropFirst(6)) }
    }
    return nil
  }
}

/// One request with `Connection: close`, response read to the end.
func request(
  _ path: String, _ method: String, _ target: String, json: String? = nil, headers: [String: String] = [:]
) async throws -> HTTPResponse {
  try await offPool {
    let c = try UnixHTTPClient(path: path)
    var req = "\(method) \(target) HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
    for (k, v) in headers { req += "\(k): \(v)\r\n" }
    if let json {
      req += "Content-Type: application/json\r\nContent-Length: \(json.utf8.count)\r\n\r\n\(json)"
    } else {
      req += "\r\n"
    }
    try c.send(req)
    return try c.readResponse()
  }
}

/// The `data:` payloads of an SSE body.
func sseEvents(_ body: String) -> [String] {
  body.components(separatedBy: "\n").filter { $0.hasPrefix("data: ") }.map { String($0.dropFirst(6)) }
}

/// One request over TCP, like `request` over the socket.
func tcpRequest(
  port: Int, _ method: String, _ target: String, json: String? = nil, headers: [String: String] = [:]
) async throws -> HTTPResponse {
  try await offPool {
    let c = try UnixHTTPClient(tcpHost: "127.0.0.1", port: port)
    var req = "\(method) \(target) HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
    for (k, v) in headers { req += "\(k): \(v)\r\n" }
    if let json {
      req += "Content-Type: application/json\r\nContent-Length: \(json.utf8.count)\r\n\r\n\(json)"
    } else {
      req += "\r\n"
    }
    try c.send(req)
    return try c.readResponse()
  }
}
