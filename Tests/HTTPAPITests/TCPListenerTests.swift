// The opt-in TCP listener (issue 17): API keys on every request, the same routes as the socket,
// refusal of a non-loopback address without keys, per-key connection caps, and the key file's
// permission and format checks.
import Foundation
import HTTPAPI
import Testing

#if canImport(Glibc)
  import Glibc
#endif

let goodKey = "sk-test-0123456789abcdef"

/// A server on a socket and on 127.0.0.1 (a free port), with `keys`.
func withTCPServer(
  keys: APIKeys?, configuration: HTTPServerConfiguration = .init(),
  _ body: (_ socket: String, _ port: Int, StubBackend, HTTPServer) async throws -> Void
) async throws {
  var configuration = configuration
  configuration.apiKeys = keys
  let dir = FileManager.default.temporaryDirectory.appendingPathComponent("httpapi-tcp-\(UUID().uuidString.prefix(8))")
  try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
  defer { try? FileManager.default.removeItem(at: dir) }
  let backend = StubBackend()
  let server = HTTPServer(backend: backend, configuration: configuration)
  let path = dir.appendingPathComponent("d.sock").path
  try await server.listen(unixPath: path)
  try await server.listen(host: "127.0.0.1", port: 0)
  let port = try #require(server.tcpListeners.first).port
  let running = Task { await server.run() }
  do {
    try await body(path, port, backend, server)
  } catch {
    await server.shutdown(gracePeriod: .seconds(1))
    await running.value
    throw error
  }
  await server.shutdown(gracePeriod: .seconds(1))
  await running.value
}

@Suite struct TCPListenerTests {
  let keys = try! APIKeys([(name: "alice", key: goodKey), (name: "bob", key: "sk-bob-fedcba9876543210")])

  @Test func requestsNeedAValidBearerKey() async throws {
    try await withTCPServer(keys: keys) { socket, port, backend, server in
      #expect(server.tcpListeners.first?.isLoopback == true)
      let missing = try await tcpRequest(port: port, "POST", "/v1/chat/completions", json: chatBody)
      #expect(missing.status == 401)
      #expect(missing.header("www-authenticate") == "Bearer")
      #expect(try errorObject(missing)["code"] as? String == "invalid_api_key")
      let wrong = try await tcpRequest(
        port: port, "POST", "/v1/chat/completions", json: chatBody,
        headers: ["Authorization": "Bearer sk-test-0123456789abcdeX"])
      #expect(wrong.status == 401)
      let prefix = try await tcpRequest(
        port: port, "GET", "/v1/models", headers: ["Authorization": "Bearer sk-test-0123456789abcde"])
      #expect(prefix.status == 401)
      let basic = try await tcpRequest(port: port, "GET", "/v1/models", headers: ["Authorization": goodKey])
      #expect(basic.status == 401)
      #expect(backend.snapshot.started == 0)
      // The right key: the same routes as the socket.
      let chat = try await tcpRequest(
        port: port, "POST", "/v1/chat/completions", json: chatBody, headers: ["Authorization": "Bearer \(goodKey)"])
      #expect(chat.status == 200)
      let models = try await tcpRequest(port: port, "GET", "/v1/models", headers: ["authorization": "bearer \(goodKey)"])
      #expect(models.status == 200)
      #expect(try await tcpRequest(port: port, "GET", "/nope", headers: ["Authorization": "Bearer \(goodKey)"]).status == 404)
      // The socket needs no key.
      #expect(try await request(socket, "GET", "/v1/models").status == 200)
    }
  }

  @Test func theSocketLimitsApplyOnTCP() async throws {
    var config = HTTPServerConfiguration()
    config.maxBodyBytes = 2048
    try await withTCPServer(keys: keys, configuration: config) { _, port, _, _ in
      let big = #"{"messages":[{"role":"user","content":""# + String(repeating: "a", count: 4096) + #""}]}"#
      let r = try await tcpRequest(
        port: port, "POST", "/v1/chat/completions", json: big, headers: ["Authorization": "Bearer \(goodKey)"])
      #expect(r.status == 413)
    }
  }

  @Test func connectionsPerKeyAreCapped() async throws {
    var config = HTTPServerConfiguration()
    config.maxConnectionsPerUser = 2
    config.privilegedUIDs = []
    try await withTCPServer(keys: keys, configuration: config) { _, port, _, _ in
      let statuses = try await offPool { () -> [Int] in
        // Two keep-alive connections of alice, each identified by a first request.
        var open: [UnixHTTPClient] = []
        var statuses: [Int] = []
        for _ in 0..<3 {
          let c = try UnixHTTPClient(tcpHost: "127.0.0.1", port: port)
          try c.send("GET /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(goodKey)\r\n\r\n")
          statuses.append(try c.readResponse().status)
          open.append(c)
        }
        // Bob has his own allowance.
        let b = try UnixHTTPClient(tcpHost: "127.0.0.1", port: port)
        try b.send("GET /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer sk-bob-fedcba9876543210\r\n\r\n")
        statuses.append(try b.readResponse().status)
        return statuses
      }
      #expect(statuses == [200, 200, 429, 200])
    }
  }

  /// Key-less connections fill their address's cap; a client showing a key from that same
  /// address is still served (under its key's cap), one without a key still is not.
  @Test func idleConnectionsWithoutAKeyDoNotLockOutKeyHolders() async throws {
    var config = HTTPServerConfiguration()
    config.maxConnectionsPerUser = 2
    config.privilegedUIDs = []
    try await withTCPServer(keys: keys, configuration: config) { _, port, _, _ in
      let statuses = try await offPool { () -> [Int] in
        let idle = try (0..<2).map { _ in try UnixHTTPClient(tcpHost: "127.0.0.1", port: port) }
        usleep(200_000)  // both accepted and counted against 127.0.0.1
        var statuses: [Int] = []
        let keyed = try UnixHTTPClient(tcpHost: "127.0.0.1", port: port)
        try keyed.send("GET /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(goodKey)\r\n\r\n")
        statuses.append(try keyed.readResponse().status)
        let bare = try UnixHTTPClient(tcpHost: "127.0.0.1", port: port)
        try bare.send("GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n")
        statuses.append(try bare.readResponse().status)
        _ = idle
        return statuses
      }
      #expect(statuses == [200, 401])
    }
  }

  /// The daemon checks its TCP addresses before it maps the model: a port another listener
  /// holds is named, a free one (or the same one after that listener closed) passes and stays
  /// free.
  @Test func checkTCPAddressFindsATakenPort() async throws {
    try await withTCPServer(keys: nil) { _, port, _, _ in
      #expect(throws: HTTPServerError.addressInUse(address: "127.0.0.1:\(port)")) {
        try HTTPServer.checkTCPAddress(host: "127.0.0.1", port: port)
      }
      #expect(HTTPServerError.addressInUse(address: "127.0.0.1:\(port)").description.contains("server.listen"))
    }
    try HTTPServer.checkTCPAddress(host: "127.0.0.1", port: 0)
    try HTTPServer.checkTCPAddress(host: "::1", port: 0)
    #expect(throws: HTTPServerError.self) { try HTTPServer.checkTCPAddress(host: "localhost", port: 80) }
    // The check releases the port at once: a real listener can take it right after.
    let server = HTTPServer(backend: StubBackend())
    try await server.listen(host: "127.0.0.1", port: 0)
    let port = try #require(server.tcpListeners.first).port
    await server.shutdown(gracePeriod: .zero)
    try HTTPServer.checkTCPAddress(host: "127.0.0.1", port: port)
    let again = HTTPServer(backend: StubBackend())
    try await again.listen(host: "127.0.0.1", port: port)
    await again.shutdown(gracePeriod: .zero)
  }

  @Test func loopbackWithoutKeysServesNonLoopbackIsRefused() async throws {
    try await withTCPServer(keys: nil) { _, port, _, _ in
      let open = try await tcpRequest(port: port, "GET", "/v1/models")
      #expect(open.status == 200)
    }
    let server = HTTPServer(backend: StubBackend())
    await #expect(throws: HTTPServerError.keysRequired(address: "0.0.0.0:0")) {
      try await server.listen(host: "0.0.0.0", port: 0)
    }
    await #expect(throws: HTTPServerError.keysRequired(address: "[::]:0")) {
      try await server.listen(host: "::", port: 0)
    }
    #expect(server.tcpListeners.isEmpty)
    #expect(isLoopbackAddress("127.0.0.1") && isLoopbackAddress("127.3.2.1") && isLoopbackAddress("::1"))
    #expect(isLoopbackAddress("::ffff:127.0.0.1"))
    #expect(!isLoopbackAddress("0.0.0.0") && !isLoopbackAddress("::") && !isLoopbackAddress("10.0.0.1"))
    #expect(!isLoopbackAddress("localhost") && !isLoopbackAddress("128.0.0.1"))
  }

  @Test func aReloadCannotDropTheKeysOfAnExposedListener() async throws {
    var config = HTTPServerConfiguration()
    config.apiKeys = keys
    let server = HTTPServer(backend: StubBackend(), configuration: config)
    try await server.listen(host: "0.0.0.0", port: 0)
    server.update(HTTPServerConfiguration())
    #expect(server.apiKeys == keys)
    await server.shutdown(gracePeriod: .seconds(1))
  }

  @Test func keyFileMustBeOwnerOnlyAndWellFormed() throws {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("keys-\(UUID().uuidString.prefix(8))")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    let path = dir.appendingPathComponent("keys").path
    func write(_ text: String, mode: mode_t) {
      unlink(path)
      _ = FileManager.default.createFile(atPath: path, contents: Data(text.utf8))
      chmod(path, mode)
    }
    write("# clients\n\nalice \(goodKey)\nsk-anonymous-0123456789\n", mode: 0o600)
    let keys = try APIKeys.load(path: path)
    #expect(keys.keys.map(\.name) == ["alice", "key2"])
    #expect(keys.identify(authorization: "Bearer sk-anonymous-0123456789") == "key2")
    #expect(keys.identify(authorization: "Bearer \(goodKey)") == "alice")
    #expect(keys.identify(authorization: nil) == nil)
    #expect(keys.identify(authorization: "Bearer ") == nil)

    write("alice \(goodKey)\n", mode: 0o640)
    #expect(throws: APIKeyFileError.tooOpen(path: path, mode: 0o640)) { try APIKeys.load(path: path) }
    write("alice \(goodKey)\n", mode: 0o604)
    #expect(throws: APIKeyFileError.tooOpen(path: path, mode: 0o604)) { try APIKeys.load(path: path) }
    write("alice short\n", mode: 0o600)
    #expect(throws: APIKeyFileError.malformed(path: path, line: 1, reason: "a key needs at least 16 characters")) {
      try APIKeys.load(path: path)
    }
    write("a b c\n", mode: 0o600)
    #expect(throws: APIKeyFileError.malformed(path: path, line: 1, reason: "expected KEY or NAME KEY")) {
      try APIKeys.load(path: path)
    }
    write("# nothing\n", mode: 0o600)
    #expect(throws: APIKeyFileError.malformed(path: path, line: 0, reason: "no keys")) { try APIKeys.load(path: path) }
    // A symlink is not followed (it could point anywhere the daemon may read).
    let link = dir.appendingPathComponent("link").path
    write("alice \(goodKey)\n", mode: 0o600)
    symlink(path, link)
    #expect(throws: (any Error).self) { try APIKeys.load(path: link) }
    #expect(String(describing: APIKeyFileError.tooOpen(path: "/k", mode: 0o644)).contains("chmod 600 /k"))
  }
}
