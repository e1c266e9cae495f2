// One HTTP/1.1 exchange per connection over the daemon's Unix socket, on SwiftNIO's client
// codec. A fresh connection per call keeps the client stateless (a streamed chat and a status
// call never share a connection) and the cost is a local connect. Connection failures are
// turned into the errors DaemonClientError names, with the socket path in them.
import NIOCore
import NIOHTTP1
import NIOPosix

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#endif

/// What the caller sees of a response: the head once, then body chunks in order.
enum ResponsePart: Sendable {
  case head(HTTPResponseHead)
  case body(ByteBuffer)
}

struct UnixHTTPTransport: Sendable {
  let socketPath: String
  let connectTimeout: TimeAmount
  let group: any EventLoopGroup

  typealias Connection = NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>

  /// Sends one request and hands every response part to `handle` until the response ends.
  /// Runs in the caller's task: cancelling it closes the connection, which the daemon takes
  /// as a disconnect and stops the generation.
  func exchange(
    method: HTTPMethod, path: String, body: [UInt8]?, accept: String,
    handle: (ResponsePart) async throws -> Void
  ) async throws {
    let connection = try await connect()
    try await connection.executeThenClose { inbound, outbound in
      var headers = HTTPHeaders()
      headers.add(name: "Host", value: "localhost")
      headers.add(name: "User-Agent", value: "droplora")
      headers.add(name: "Accept", value: accept)
      // One exchange per connection: the server closes after answering.
      headers.add(name: "Connection", value: "close")
      if let body {
        headers.add(name: "Content-Type", value: "application/json")
        headers.add(name: "Content-Length", value: String(body.count))
      }
      do {
        try await outbound.write(.head(HTTPRequestHead(version: .http1_1, method: method, uri: path, headers: headers)))
        if let body, !body.isEmpty { try await outbound.write(.body(.byteBuffer(ByteBuffer(bytes: body)))) }
        try await outbound.write(.end(nil))
      } catch {
        // The server may have answered early (e.g. 413) and closed; read what it said.
      }
      var ended = false
      var sawHead = false
      for try await part in inbound {
        switch part {
        case .head(let h):
          // 1xx heads are interim; the final head follows.
          if h.status.code < 200 { continue }
          sawHead = true
          try await handle(.head(h))
        case .body(let b):
          if sawHead { try await handle(.body(b)) }
        case .end:
          ended = sawHead
        }
        if ended { break }
      }
      try Task.checkCancellation()
      if !ended { throw DaemonClientError.connectionClosed }
    }
  }

  private func connect() async throws -> Connection {
    try Self.checkPath(socketPath)
    do {
      return try await ClientBootstrap(group: group)
        .connectTimeout(connectTimeout)
        .connect(unixDomainSocketPath: socketPath) { channel in
          channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.addHTTPClientHandlers()
            return try Connection(wrappingChannelSynchronously: channel)
          }
        }
    } catch let e as IOError {
      throw Self.describe(errno: e.errnoCode, path: socketPath) ?? .connectFailed(path: socketPath, reason: "\(e)")
    } catch ChannelError.connectTimeout {
      throw DaemonClientError.connectFailed(path: socketPath, reason: "no answer within \(connectTimeout)")
    } catch let e as SocketAddressError {
      throw DaemonClientError.connectFailed(path: socketPath, reason: "\(e)")
    } catch {
      throw DaemonClientError.connectFailed(path: socketPath, reason: "\(error)")
    }
  }

  /// A look at the path before connecting gives clearer errors than connect(2)'s errno alone.
  static func checkPath(_ path: String) throws(DaemonClientError) {
    var st = stat()
    guard lstat(path, &st) == 0 else {
      throw describe(errno: errno, path: path) ?? .connectFailed(path: path, reason: String(cString: strerror(errno)))
    }
    guard (st.st_mode & S_IFMT) == S_IFSOCK else { throw .notASocket(path: path) }
  }

  static func describe(errno code: Int32, path: String) -> DaemonClientError? {
    switch code {
    case ENOENT, ENOTDIR: return .socketMissing(path: path)
    case ECONNREFUSED: return .notRunning(path: path)
    case EACCES, EPERM: return .permissionDenied(path: path)
    default: return nil
    }
  }
}
