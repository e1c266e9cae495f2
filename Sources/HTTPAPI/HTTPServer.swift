// The NIO server on a Unix domain socket and, opt-in, TCP listeners: binding (own path, TCP
// addresses or systemd's descriptors), one task per connection, the body size limit while the
// body streams in, peer-credential refusal on the socket and API keys on TCP, disconnect →
// cancellation of the request's task, and graceful shutdown with a deadline. Every listener
// shares one set of limits and connection caps. Routing and response shapes live in Router;
// this file only moves requests and bytes.
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#endif

public struct HTTPServerConfiguration: Sendable {
  /// Largest request body accepted; a larger one gets 413 as soon as it is known.
  public var maxBodyBytes: Int
  /// Largest body of a training-sample push (`POST /v1/adapters/{name}/samples`), which may be
  /// a large (often chunked) JSONL upload.
  public var maxPushBytes: Int
  /// File mode given to a socket bound by path (systemd's `SocketMode=` covers activation).
  public var socketMode: UInt32
  public var peerPolicy: PeerPolicy
  /// A connection that sends nothing for this long while no response is owed is closed.
  public var idleTimeout: Duration
  /// A request's head and body must arrive within this long of its first byte, however steadily
  /// they trickle in (the idle timer alone restarts on every byte); past it: 408 and close.
  public var requestTimeout: Duration
  /// Open connections beyond this get 503 with `Retry-After` and are closed, so a flood of
  /// clients runs into a clear answer instead of the process's descriptor limit.
  public var maxConnections: Int
  /// Open connections one uid may hold (`SO_PEERCRED`); more get 429. Privileged uids are exempt.
  public var maxConnectionsPerUser: Int
  /// Of `maxConnections`, this many are kept for privileged uids, so a flood by other users
  /// never locks root or the service's own user out of `/health`.
  public var reservedConnections: Int
  /// Root and the daemon's own user by default.
  public var privilegedUIDs: Set<UInt32>
  /// Keys every request on a TCP listener must carry; nil = none (loopback listeners only).
  public var apiKeys: APIKeys?
  public var logger: Logger

  public init(
    maxBodyBytes: Int = 4 << 20, maxPushBytes: Int = 64 << 20, socketMode: UInt32 = 0o660,
    peerPolicy: PeerPolicy = .init(),
    idleTimeout: Duration = .seconds(60), requestTimeout: Duration = .seconds(60),
    maxConnections: Int = 512, maxConnectionsPerUser: Int = 64, reservedConnections: Int = 16,
    privilegedUIDs: Set<UInt32> = [0, UInt32(getuid())], apiKeys: APIKeys? = nil,
    logger: Logger = Logger(label: "droplorad.http", factory: { _ in SwiftLogNoOpLogHandler() })
  ) {
    self.maxBodyBytes = maxBodyBytes
    self.maxPushBytes = maxPushBytes
    self.socketMode = socketMode
    self.peerPolicy = peerPolicy
    self.idleTimeout = idleTimeout
    self.requestTimeout = requestTimeout
    self.maxConnections = maxConnections
    self.maxConnectionsPerUser = maxConnectionsPerUser
    self.reservedConnections = reservedConnections
    self.privilegedUIDs = privilegedUIDs
    self.apiKeys = apiKeys
    self.logger = logger
  }

  /// Whether one more connection from `uid` fits, given what is open now (not counting it).
  public func admission(uid: UInt32?, open total: Int, openByUID: Int) -> ConnectionAdmission {
    admission(identity: uid.map { .uid($0) } ?? .unknown, open: total, openByIdentity: openByUID)
  }

  /// Whether one more connection from `identity` fits; only uids can be privileged.
  public func admission(identity: ClientIdentity, open total: Int, openByIdentity: Int) -> ConnectionAdmission {
    if case .uid(let uid) = identity, privilegedUIDs.contains(uid) {
      return total < maxConnections ? .admitted : .overTotal(limit: maxConnections)
    }
    if openByIdentity >= maxConnectionsPerUser { return .overPerUser(limit: maxConnectionsPerUser) }
    let shared = max(0, maxConnections - reservedConnections)
    return total < shared ? .admitted : .overTotal(limit: maxConnections)
  }
}

/// Who a connection counts against for the per-user cap: a uid on the socket; on TCP the
/// remote address until a request shows an API key, then that key's name.
public enum ClientIdentity: Sendable, Hashable {
  case uid(UInt32)
  case remoteAddress(String)
  case apiKey(String)
  /// A socket peer whose credentials could not be read.
  case unknown
}

public enum ConnectionAdmission: Sendable, Equatable {
  case admitted
  case overTotal(limit: Int)
  case overPerUser(limit: Int)
}

public enum HTTPServerError: Error, Sendable, Equatable {
  /// Another process answers on the socket path; we refuse to steal it.
  case socketInUse(path: String)
  /// Something that is not a socket sits at the path.
  case pathNotASocket(path: String)
  case invalidDescriptor(CInt)
  case chmodFailed(path: String, errno: Int32)
  case bindFailed(path: String, message: String)
  /// A TCP listener on an address other machines can reach, and no API keys configured.
  case keysRequired(address: String)
  /// Another socket is bound to the TCP address (`EADDRINUSE`).
  case addressInUse(address: String)
}

extension HTTPServerError: CustomStringConvertible {
  public var description: String {
    switch self {
    case .socketInUse(let path):
      return "another process (a running droplorad?) already serves on \(path); stop it, or set "
        + "server.socket_path (--socket) to another path"
    case .pathNotASocket(let path):
      return "\(path) exists and is not a socket; remove it or set server.socket_path (--socket) to another path"
    case .invalidDescriptor(let fd): return "descriptor \(fd) is not an open socket"
    case .chmodFailed(let path, let e): return "cannot set the mode of \(path): \(String(cString: strerror(e)))"
    case .bindFailed(let path, let message): return "cannot listen on \(path): \(message)"
    case .keysRequired(let address):
      return "refusing to listen on \(address) without API keys: it is not a loopback address; set "
        + "server.api_keys_file or listen on 127.0.0.1 / [::1]"
    case .addressInUse(let address):
      return "another process (a running droplorad?) already listens on \(address); stop it, or change "
        + "that address in server.listen"
    }
  }
}

/// Whether a numeric address is reachable from this machine only: 127.0.0.0/8, ::1, or an
/// IPv4-mapped 127.x.y.z. Anything else (names included) counts as reachable from elsewhere.
public func isLoopbackAddress(_ host: String) -> Bool {
  var v4 = in_addr()
  if inet_pton(AF_INET, host, &v4) == 1 {
    return withUnsafeBytes(of: &v4) { $0[0] } == 127
  }
  var v6 = in6_addr()
  guard inet_pton(AF_INET6, host, &v6) == 1 else { return false }
  let b = withUnsafeBytes(of: &v6) { Array($0) }
  let isOne = b[0..<15].allSatisfy { $0 == 0 } && b[15] == 1
  let mapped = b[0..<10].allSatisfy { $0 == 0 } && b[10] == 0xff && b[11] == 0xff && b[12] == 127
  return isOne || mapped
}

/// Which kind of listener a connection came in on.
enum Transport: Sendable, Equatable {
  case unix
  case tcp(remote: String)
}

typealias ConnectionChannel = NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>

/// An accepted connection, with what the peer-credential check found.
struct Accepted: Sendable {
  var channel: ConnectionChannel
  var peer: PeerCredentials?
  var admitted: Bool
  var transport: Transport
}

/// A bound TCP listener: where it listens and whether only this machine can reach it.
public struct TCPListener: Sendable, Equatable {
  public var host: String
  public var port: Int
  public var isLoopback: Bool
  public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

public final class HTTPServer: Sendable {
  private let listeners = NIOLockedValueBox<[NIOAsyncChannel<Accepted, Never>]>([])
  private let tcp = NIOLockedValueBox<[TCPListener]>([])
  private let boundPath = NIOLockedValueBox<String?>(nil)
  private let group: any EventLoopGroup
  private let router: Router
  /// Everything but the socket's mode can change live (`update`); connections read it when
  /// accepted and per request.
  private let live: NIOLockedValueBox<HTTPServerConfiguration>
  private var configuration: HTTPServerConfiguration { live.withLockedValue { $0 } }
  private let connections = ConnectionRegistry()
  /// The path we bound and must unlink on shutdown; nil under socket activation.
  public var socketPath: String? { boundPath.withLockedValue { $0 } }
  /// The TCP listeners, with the ports the kernel picked for port 0.
  public var tcpListeners: [TCPListener] { tcp.withLockedValue { $0 } }

  /// A server with no listener yet: add them (`listen(unixPath:)`, `listen(host:port:)`,
  /// `adopt(descriptor:)`) before `run`.
  public init(
    backend: any InferenceBackend, configuration: HTTPServerConfiguration = .init(),
    group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
  ) {
    self.live = NIOLockedValueBox(configuration)
    self.router = Router(backend: backend)
    self.group = group
  }

  /// A server on `path` (see `listen(unixPath:)`).
  public static func bind(
    path: String, backend: any InferenceBackend, configuration: HTTPServerConfiguration = .init(),
    group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
  ) async throws -> HTTPServer {
    let server = HTTPServer(backend: backend, configuration: configuration, group: group)
    try await server.listen(unixPath: path)
    return server
  }

  /// A server on a descriptor that is already bound and listening (see `adopt(descriptor:)`).
  public static func withBoundSocket(
    _ descriptor: CInt, backend: any InferenceBackend, configuration: HTTPServerConfiguration = .init(),
    group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
  ) async throws -> HTTPServer {
    let server = HTTPServer(backend: backend, configuration: configuration, group: group)
    try await server.adopt(descriptor: descriptor)
    return server
  }

  /// Checks that `path` is free to bind: nothing there, or a stale socket no process answers
  /// on. Throws `socketInUse` / `pathNotASocket` otherwise, and never removes anything, so the
  /// daemon can fail fast before loading the model.
  public static func checkSocketPath(_ path: String) throws(HTTPServerError) {
    var st = stat()
    guard lstat(path, &st) == 0 else { return }
    guard (st.st_mode & S_IFMT) == S_IFSOCK else { throw .pathNotASocket(path: path) }
    if socketAnswers(at: path) { throw .socketInUse(path: path) }
  }

  /// Whether TCP `host:port` (numeric) can be bound now, tried the way `listen(host:port:)`
  /// binds it (SO_REUSEADDR, so a closed listener's TIME_WAIT does not count) and released at
  /// once: lets the daemon refuse a taken port before it maps the model. Port 0 always passes.
  public static func checkTCPAddress(host: String, port: Int) throws(HTTPServerError) {
    let shown = host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    var storage = sockaddr_storage()
    let length: socklen_t
    let family: Int32
    var v4 = in_addr()
    var v6 = in6_addr()
    if inet_pton(AF_INET, host, &v4) == 1 {
      family = AF_INET
      length = socklen_t(MemoryLayout<sockaddr_in>.size)
      withUnsafeMutableBytes(of: &storage) { raw in
        let address = raw.baseAddress!.assumingMemoryBound(to: sockaddr_in.self)
        address.pointee.sin_family = sa_family_t(AF_INET)
        address.pointee.sin_port = in_port_t(UInt16(port).bigEndian)
        address.pointee.sin_addr = v4
      }
    } else if inet_pton(AF_INET6, host, &v6) == 1 {
      family = AF_INET6
      length = socklen_t(MemoryLayout<sockaddr_in6>.size)
      withUnsafeMutableBytes(of: &storage) { raw in
        let address = raw.baseAddress!.assumingMemoryBound(to: sockaddr_in6.self)
        address.pointee.sin6_family = sa_family_t(AF_INET6)
        address.pointee.sin6_port = in_port_t(UInt16(port).bigEndian)
        address.pointee.sin6_addr = v6
      }
    } else {
      throw .bindFailed(path: shown, message: "not a numeric address")
    }
    let fd = socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { throw .bindFailed(path: shown, message: String(cString: strerror(errno))) }
    defer { close(fd) }
    var one: Int32 = 1
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
    let rc = withUnsafePointer(to: &storage) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { posixBind(fd, $0, length) }
    }
    guard rc == 0 else {
      let e = errno
      if e == EADDRINUSE { throw .addressInUse(address: shown) }
      throw .bindFailed(path: shown, message: String(cString: strerror(e)))
    }
  }

  /// Binds `path`, replacing a stale socket file left by a dead daemon (but never a live one or
  /// a non-socket), then sets the configured file mode.
  public func listen(unixPath path: String) async throws {
    try removeStaleSocket(at: path)
    let channel: NIOAsyncChannel<Accepted, Never>
    do {
      channel = try await Self.bootstrap(group: group).bind(
        unixDomainSocketPath: path, cleanupExistingSocketFile: false,
        childChannelInitializer: Self.childInitializer(live, tcp: false))
    } catch {
      throw HTTPServerError.bindFailed(path: path, message: String(describing: error))
    }
    // Between bind and chmod the mode comes from the umask; the peer check covers that window.
    if chmod(path, mode_t(configuration.socketMode)) != 0 {
      let e = errno
      try? await channel.channel.close()
      throw HTTPServerError.chmodFailed(path: path, errno: e)
    }
    boundPath.withLockedValue { $0 = path }
    listeners.withLockedValue { $0.append(channel) }
  }

  /// Listens on TCP `host:port` (numeric; port 0 picks a free one). A non-loopback address
  /// needs API keys in the configuration.
  public func listen(host: String, port: Int) async throws {
    let shown = host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    guard isLoopbackAddress(host) || configuration.apiKeys != nil else { throw HTTPServerError.keysRequired(address: shown) }
    let channel: NIOAsyncChannel<Accepted, Never>
    do {
      channel = try await Self.bootstrap(group: group)
        .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
        .bind(host: host, port: port, childChannelInitializer: Self.childInitializer(live, tcp: true))
    } catch {
      throw HTTPServerError.bindFailed(path: shown, message: String(describing: error))
    }
    try await addTCP(channel)
  }

  /// Serves on a descriptor that is already bound and listening (systemd socket activation):
  /// a Unix socket, or a TCP socket under the same rules as `listen(host:port:)`.
  public func adopt(descriptor: CInt) async throws {
    // NIO preconditions on a valid descriptor; a bad LISTEN_FDS must be an error, not a trap.
    guard descriptor >= 0, fcntl(descriptor, F_GETFD) != -1 else {
      throw HTTPServerError.invalidDescriptor(descriptor)
    }
    let isTCP = Self.isInetSocket(descriptor)
    let channel = try await Self.bootstrap(group: group).bind(
      descriptor, childChannelInitializer: Self.childInitializer(live, tcp: isTCP))
    if isTCP {
      try await addTCP(channel)
    } else {
      listeners.withLockedValue { $0.append(channel) }
    }
  }

  private func addTCP(_ channel: NIOAsyncChannel<Accepted, Never>) async throws {
    let address = channel.channel.localAddress
    let host = address?.ipAddress ?? "?"
    let listener = TCPListener(host: host, port: address?.port ?? 0, isLoopback: isLoopbackAddress(host))
    guard listener.isLoopback || configuration.apiKeys != nil else {
      try? await channel.channel.close()
      throw HTTPServerError.keysRequired(address: listener.description)
    }
    tcp.withLockedValue { $0.append(listener) }
    listeners.withLockedValue { $0.append(channel) }
  }

  private static func isInetSocket(_ fd: CInt) -> Bool {
    var storage = sockaddr_storage()
    var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
    let rc = withUnsafeMutablePointer(to: &storage) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
    }
    return rc == 0 && (Int32(storage.ss_family) == AF_INET || Int32(storage.ss_family) == AF_INET6)
  }

  /// The API keys in force.
  public var apiKeys: APIKeys? { configuration.apiKeys }

  /// The peer policy in force.
  public var peerPolicy: PeerPolicy { configuration.peerPolicy }

  /// Replaces the peer policy (a configuration reload); connections already admitted stay.
  public func updatePeerPolicy(_ newPolicy: PeerPolicy) {
    live.withLockedValue { $0.peerPolicy = newPolicy }
  }

  /// A configuration reload: body limits and API keys apply to the next request, caps, timeouts
  /// and the peer policy to connections accepted from now on. The socket's file mode stays as
  /// bound, and keys are never dropped while a non-loopback listener is open.
  public func update(_ newConfiguration: HTTPServerConfiguration) {
    let exposed = tcpListeners.contains { !$0.isLoopback }
    live.withLockedValue { current in
      let mode = current.socketMode
      let keys = current.apiKeys
      current = newConfiguration
      current.socketMode = mode
      if exposed && current.apiKeys == nil {
        current.logger.error("keeping the API keys: a non-loopback TCP listener is open")
        current.apiKeys = keys
      }
    }
  }

  private static func bootstrap(group: any EventLoopGroup) -> ServerBootstrap {
    ServerBootstrap(group: group)
      .serverChannelOption(.backlog, value: 256)
      // An accept error (EMFILE, ECONNABORTED) must not end the accept loop.
      .serverChannelInitializer { channel in
        channel.eventLoop.makeCompletedFuture {
          try channel.pipeline.syncOperations.addHandler(AcceptErrorAbsorber())
        }
      }
  }

  private static func childInitializer(
    _ live: NIOLockedValueBox<HTTPServerConfiguration>, tcp: Bool
  ) -> @Sendable (any Channel) -> EventLoopFuture<Accepted> {
    { channel in
      // TCP has no peer credentials: API keys, checked per request, take their place.
      let credentials = tcp ? channel.eventLoop.makeSucceededFuture(nil) : peerCredentials(of: channel)
      return credentials.flatMapThrowing { peer in
        let configuration = live.withLockedValue { $0 }
        try channel.pipeline.syncOperations.configureHTTPServerPipeline(
          withPipeliningAssistance: true, withErrorHandling: true)
        let closer = IdleConnectionCloser()
        // First in the pipeline: it must see raw bytes, before the decoder has a head to show.
        try channel.pipeline.syncOperations.addHandler(
          RequestDeadline(timeout: timeAmount(configuration.requestTimeout), closer: closer), position: .first)
        try channel.pipeline.syncOperations.addHandlers(
          IdleStateHandler(readTimeout: timeAmount(configuration.idleTimeout)), closer)
        let wrapped = try ConnectionChannel(wrappingChannelSynchronously: channel)
        if tcp {
          let remote = channel.remoteAddress?.ipAddress ?? "unknown"
          return Accepted(channel: wrapped, peer: nil, admitted: true, transport: .tcp(remote: remote))
        }
        return Accepted(
          channel: wrapped, peer: peer, admitted: configuration.peerPolicy.admits(peer), transport: .unix)
      }
    }
  }

  /// Serves until `shutdown` closes the listening sockets and every connection has ended.
  public func run() async {
    let channels = listeners.withLockedValue { $0 }
    await withDiscardingTaskGroup { listening in
      for serverChannel in channels {
        listening.addTask {
          do {
            try await serverChannel.executeThenClose { inbound in
              await withDiscardingTaskGroup { group in
                do {
                  for try await accepted in inbound {
                    group.addTask { await self.serve(accepted) }
                  }
                } catch {
                  self.configuration.logger.error("accept loop ended: \(error)")
                }
              }
            }
          } catch {
            self.configuration.logger.error("server channel: \(error)")
          }
        }
      }
    }
  }

  /// Stops accepting, lets requests in flight finish for up to `gracePeriod`, then closes what
  /// is left (which cancels those requests' generations). Idle keep-alive connections close at once.
  public func shutdown(gracePeriod: Duration) async {
    connections.startDraining()
    for serverChannel in listeners.withLockedValue({ $0 }) { try? await serverChannel.channel.close() }
    if let socketPath { unlink(socketPath) }
    let clock = ContinuousClock()
    let deadline = clock.now + gracePeriod
    while connections.count > 0 && clock.now < deadline {
      connections.closeIdle()
      try? await Task.sleep(for: .milliseconds(10))
    }
    connections.closeAll()
  }

  // MARK: one connection

  /// What the reading side hands the request task.
  private enum Inbound: Sendable {
    case request(HTTPRequest)
    case tooLarge(HTTPRequestHead, limit: Int)
    case refused(HTTPRequestHead)
    case overCapacity(HTTPRequestHead, ConnectionAdmission)
    case unauthorized(HTTPRequestHead)
  }

  /// Sample pushes may be large; every other request stays under `maxBodyBytes`.
  private func bodyLimit(for head: HTTPRequestHead) -> Int {
    let path = head.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? ""
    if head.method == .POST, case .adapterSamples = Route.match(path: path) { return configuration.maxPushBytes }
    return configuration.maxBodyBytes
  }

  private func serve(_ accepted: Accepted) async {
    let channel = accepted.channel
    var identity: ClientIdentity
    switch accepted.transport {
    case .unix: identity = accepted.peer.map { .uid($0.uid) } ?? .unknown
    case .tcp(let remote): identity = .remoteAddress(remote)
    }
    let (id, admission) = connections.add(channel.channel, identity: identity, configuration: configuration)
    defer { connections.remove(id) }
    let overCapacity = admission != .admitted
    let configuration = self.configuration
    // On TCP a connection counts against its remote address until it shows a key: one over
    // the address's cap (idle clients holding its places, keyed or not) is judged again under
    // its key, so key-less connections cannot lock the key holders out.
    let keyMayAdmit: Bool = {
      guard case .tcp = accepted.transport, configuration.apiKeys != nil, case .overPerUser = admission else { return false }
      return true
    }()
    let logger = configuration.logger
    do {
      try await channel.executeThenClose { inbound, outbound in
        let (requests, queue) = AsyncStream.makeStream(of: Inbound.self)
        await withTaskGroup(of: Void.self) { group in
          group.addTask { await self.respond(to: requests, outbound: outbound, connection: id, channel: channel.channel) }
          // Reading side: runs until the peer goes away or we close, so a disconnect is seen
          // even while a generation is running.
          var head: HTTPRequestHead?
          var body = ByteBuffer()
          var discarding = false
          var limit = configuration.maxBodyBytes
          do {
            for try await part in inbound {
              switch part {
              case .head(let h):
                if discarding { continue }
                connections.begin(id)
                limit = bodyLimit(for: h)
                if !accepted.admitted {
                  logger.notice("refused peer \(String(describing: accepted.peer))")
                  queue.yield(.refused(h))
                  discarding = true
                } else if overCapacity && !keyMayAdmit {
                  queue.yield(.overCapacity(h, admission))
                  discarding = true
                } else if let refusal = authenticate(h, transport: accepted.transport, connection: id, identity: &identity) {
                  queue.yield(refusal)
                  discarding = true
                } else if let length = h.headers.first(name: "content-length").flatMap(Int.init), length > limit {
                  queue.yield(.tooLarge(h, limit: limit))
                  discarding = true
                } else {
                  head = h
                  body.clear()
                  // curl asks before sending bodies over 1 KiB and otherwise stalls a second.
                  if h.headers[canonicalForm: "expect"].contains(where: { $0.lowercased() == "100-continue" }) {
                    try? await outbound.write(.head(HTTPResponseHead(version: h.version, status: .continue)))
                  }
                }
              case .body(var chunk):
                guard !discarding, head != nil else { continue }
                if body.readableBytes + chunk.readableBytes > limit {
                  // Chunked or lying about its length: stop at the limit, keep nothing more.
                  queue.yield(.tooLarge(head!, limit: limit))
                  discarding = true
                  head = nil
                  body = ByteBuffer()
                } else {
                  body.writeBuffer(&chunk)
                }
              case .end:
                if let h = head, !discarding { queue.yield(.request(HTTPRequest(head: h, body: body))) }
                head = nil
                body = ByteBuffer()
              }
            }
          } catch {
            logger.debug("connection read ended: \(error)")
          }
          queue.finish()
          // The peer is gone (or we closed): stop whatever its request is still doing.
          group.cancelAll()
        }
      }
    } catch {
      logger.debug("connection ended: \(error)")
    }
  }

  /// On TCP with keys configured: the request's key, or a refusal. The first key a connection
  /// shows makes it count against that key's per-user cap.
  private func authenticate(
    _ head: HTTPRequestHead, transport: Transport, connection id: Int, identity: inout ClientIdentity
  ) -> Inbound? {
    guard case .tcp = transport else { return nil }
    let configuration = self.configuration
    guard let keys = configuration.apiKeys else { return nil }
    guard let name = keys.identify(authorization: head.headers.first(name: "authorization")) else {
      return .unauthorized(head)
    }
    let keyed = ClientIdentity.apiKey(name)
    guard identity != keyed else { return nil }
    let admission = connections.identify(id, as: keyed, configuration: configuration)
    guard admission == .admitted else { return .overCapacity(head, admission) }
    identity = keyed
    return nil
  }

  private func respond(
    to requests: AsyncStream<Inbound>, outbound: NIOAsyncChannelOutboundWriter<HTTPServerResponsePart>,
    connection id: Int, channel: any Channel
  ) async {
    for await item in requests {
      let keepOpen: Bool
      switch item {
      case .refused(let h):
        let w = ResponseWriter(outbound: outbound, version: h.version, keepAlive: false)
        try? await router.writeRefusal(.forbidden, writer: w)
        keepOpen = false
      case .overCapacity(let h, let admission):
        let w = ResponseWriter(outbound: outbound, version: h.version, keepAlive: false)
        switch admission {
        case .overPerUser(let limit):
          try? await router.writeRefusal(.tooManyConnectionsForUser(limit: limit), writer: w)
        default:
          try? await router.writeRefusal(.tooManyConnections(limit: configuration.maxConnections), writer: w)
        }
        keepOpen = false
      case .unauthorized(let h):
        let w = ResponseWriter(outbound: outbound, version: h.version, keepAlive: false)
        try? await router.writeRefusal(.unauthorized, writer: w)
        keepOpen = false
      case .tooLarge(let h, let limit):
        let w = ResponseWriter(outbound: outbound, version: h.version, keepAlive: false)
        try? await router.writeRefusal(.bodyTooLarge(limit: limit), writer: w)
        keepOpen = false
      case .request(let r):
        let keepAlive = r.head.isKeepAlive && !connections.isDraining
        let w = ResponseWriter(outbound: outbound, version: r.head.version, keepAlive: keepAlive)
        do {
          try await router.handle(r, writer: w)
          keepOpen = keepAlive
        } catch {
          keepOpen = false
        }
      }
      connections.end(id)
      if !keepOpen || Task.isCancelled {
        try? await channel.close()
        return
      }
    }
  }
}

func timeAmount(_ d: Duration) -> TimeAmount {
  let (seconds, attoseconds) = d.components
  return .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
}

/// Swallows errors on the listening channel so a failed accept doesn't finish the accept stream.
private final class AcceptErrorAbsorber: ChannelInboundHandler, Sendable {
  typealias InboundIn = any Channel
  typealias InboundOut = any Channel
  func errorCaught(context: ChannelHandlerContext, error: any Error) {}
}

/// Live connections and how many requests each has in flight, for graceful shutdown.
final class ConnectionRegistry: Sendable {
  private struct Entry {
    var channel: any Channel
    var inFlight: Int
    var identity: ClientIdentity
    /// Refused over a cap: it gets its answer and closes, and holds no place meanwhile.
    var counted: Bool
  }
  private struct State {
    var entries: [Int: Entry] = [:]
    var nextID = 0
    var draining = false
  }
  private let state = NIOLockedValueBox(State())

  /// Registers a connection and decides, in the same critical section, whether it fits the caps.
  func add(
    _ channel: any Channel, identity: ClientIdentity = .unknown, configuration: HTTPServerConfiguration = .init()
  ) -> (Int, ConnectionAdmission) {
    let (id, draining, admission) = state.withLockedValue { s in
      let (total, same) = Self.counts(s, identity: identity, excluding: nil)
      let admission = configuration.admission(identity: identity, open: total, openByIdentity: same)
      s.nextID += 1
      s.entries[s.nextID] = Entry(channel: channel, inFlight: 0, identity: identity, counted: admission == .admitted)
      return (s.nextID, s.draining, admission)
    }
    // Accepted in the instant before the listener closed: nothing is in flight, so close it.
    if draining { channel.close(promise: nil) }
    return (id, admission)
  }
  /// Moves a connection to another identity (a TCP client that showed its API key), if that
  /// identity's cap has room; otherwise the connection stops counting and is to be refused.
  func identify(_ id: Int, as identity: ClientIdentity, configuration: HTTPServerConfiguration) -> ConnectionAdmission {
    state.withLockedValue { s in
      guard s.entries[id] != nil else { return .admitted }
      let (total, same) = Self.counts(s, identity: identity, excluding: id)
      let admission = configuration.admission(identity: identity, open: total, openByIdentity: same)
      s.entries[id]!.identity = identity
      s.entries[id]!.counted = admission == .admitted
      return admission
    }
  }

  /// Counted connections in all, and those of `identity`, leaving out connection `excluding`.
  private static func counts(_ s: State, identity: ClientIdentity, excluding: Int?) -> (Int, Int) {
    var total = 0
    var same = 0
    for (key, e) in s.entries where e.counted && key != excluding {
      total += 1
      if e.identity == identity { same += 1 }
    }
    return (total, same)
  }

  func remove(_ id: Int) { state.withLockedValue { _ = $0.entries.removeValue(forKey: id) } }
  func begin(_ id: Int) { state.withLockedValue { $0.entries[id]?.inFlight += 1 } }
  func end(_ id: Int) { state.withLockedValue { s in s.entries[id].map { s.entries[id]!.inFlight = max(0, $0.inFlight - 1) } } }
  var count: Int { state.withLockedValue { $0.entries.count } }
  var isDraining: Bool { state.withLockedValue { $0.draining } }
  func startDraining() { state.withLockedValue { $0.draining = true } }

  func closeIdle() {
    let idle = state.withLockedValue { $0.entries.values.filter { $0.inFlight == 0 }.map(\.channel) }
    for c in idle { c.close(promise: nil) }
  }
  func closeAll() {
    let all = state.withLockedValue { $0.entries.values.map(\.channel) }
    for c in all { c.close(promise: nil) }
  }
}

/// Removes a socket file no process listens on any more; refuses a live socket or a non-socket.
private func removeStaleSocket(at path: String) throws {
  try HTTPServer.checkSocketPath(path)
  unlink(path)  // a stale socket, or ENOENT
}

private func socketAnswers(at path: String) -> Bool {
  let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
  guard fd >= 0 else { return false }
  defer { close(fd) }
  var addr = sockaddr_un()
  addr.sun_family = sa_family_t(AF_UNIX)
  let bytes = Array(path.utf8)
  guard bytes.count < MemoryLayout.size(ofValue: addr.sun_path) else { return false }
  withUnsafeMutableBytes(of: &addr.sun_path) { raw in
    raw.copyBytes(from: bytes)
    raw[bytes.count] = 0
  }
  let rc = withUnsafePointer(to: &addr) {
    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
  }
  return rc == 0
}

/// `bind(2)`, named apart from NIO's bootstrap `bind` methods in scope inside HTTPServer.
private func posixBind(_ fd: Int32, _ address: UnsafePointer<sockaddr>, _ length: socklen_t) -> Int32 {
  bind(fd, address, length)
}
