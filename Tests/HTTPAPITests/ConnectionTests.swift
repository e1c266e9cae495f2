// What happens on the socket itself: disconnects cancel generations, peer credentials refuse,
// many clients at once, hostile bytes, curl, graceful shutdown, socket activation, and the
// socket file's life (stale file replaced, live socket kept, mode set).
import Foundation
import HTTPAPI
import Testing

#if canImport(Glibc)
  import Glibc
#endif

let chatBody = #"{"messages":[{"role":"user","content":"hi"}]}"#

func post(_ target: String, _ json: String, close: Bool = true) -> String {
  "POST \(target) HTTP/1.1\r\nHost: x\r\n\(close ? "Connection: close\r\n" : "")Content-Type: application/json\r\nContent-Length: \(json.utf8.count)\r\n\r\n\(json)"
}

@Suite struct ConnectionTests {
  @Test func disconnectCancelsStreamingGeneration() async throws {
    let backend = StubBackend()
    backend.update {
      $0.endless = true
      $0.delay = .milliseconds(5)
    }
    try await withServer(backend) { path, backend, _ in
      try await offPool {
        let c = try UnixHTTPClient(path: path)
        try c.send(post("/v1/chat/completions", #"{"messages":[{"role":"user","content":"hi"}],"stream":true}"#))
        let (status, _) = try c.readHead()
        guard status == 200, try c.nextDataLine() != nil, try c.nextDataLine() != nil else {
          throw ClientError("no stream")
        }
        c.closeNow()
      }
      #expect(await eventually { backend.snapshot.cancelled == 1 })
      #expect(backend.snapshot.finishedNormally == 0)
    }
  }

  @Test func disconnectCancelsNonStreamingGeneration() async throws {
    let backend = StubBackend()
    backend.update {
      $0.endless = true
      $0.delay = .milliseconds(5)
    }
    try await withServer(backend) { path, backend, _ in
      let c = try UnixHTTPClient(path: path)
      try c.send(post("/v1/chat/completions", chatBody))
      #expect(await eventually { backend.snapshot.started == 1 })
      c.closeNow()
      // Nothing is written while it generates, so only the read side can notice the peer left.
      #expect(await eventually { backend.snapshot.cancelled == 1 })
    }
  }

  @Test func peerOutsideTheAllowListIsRefused() async throws {
    var config = HTTPServerConfiguration()
    // Nobody runs tests as these ids.
    config.peerPolicy = PeerPolicy(uids: [4_242_424], gids: [4_242_424])
    try await withServer(configuration: config) { path, backend, _ in
      let (r, closed) = try await offPool {
        let c = try UnixHTTPClient(path: path)
        try c.send("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: \(chatBody.utf8.count)\r\n\r\n\(chatBody)")
        let r = try c.readResponse()
        return (r, c.waitForClose())
      }
      #expect(r.status == 403)
      #expect(try errorObject(r)["code"] as? String == "peer_not_allowed")
      #expect(closed)
      #expect(backend.snapshot.started == 0)
    }
    // The same server admits the current uid once it is listed.
    config.peerPolicy = PeerPolicy(uids: [getuid()])
    try await withServer(configuration: config) { path, _, _ in
      let r = try await request(path, "GET", "/health")
      #expect(r.status == 200)
    }
    config.peerPolicy = PeerPolicy(gids: [getgid()])
    try await withServer(configuration: config) { path, _, _ in
      let r = try await request(path, "GET", "/health")
      #expect(r.status == 200)
    }
  }

  @Test func manyConcurrentClients() async throws {
    let backend = StubBackend()
    backend.update { $0.delay = .milliseconds(1) }
    try await withServer(backend) { path, backend, _ in
      let statuses = try await withThrowingTaskGroup(of: (Int, String).self) { group in
        for i in 0..<48 {
          group.addTask {
            let stream = i % 2 == 0
            let r = try await request(
              path, "POST", "/v1/chat/completions",
              json: #"{"messages":[{"role":"user","content":"hi"}],"stream":\#(stream)}"#)
            return (r.status, stream ? (sseEvents(r.text).last ?? "") : ((try? r.json()["object"] as? String) ?? ""))
          }
        }
        return try await group.reduce(into: []) { $0.append($1) }
      }
      #expect(statuses.count == 48)
      #expect(statuses.allSatisfy { $0.0 == 200 })
      #expect(statuses.filter { $0.1 == "[DONE]" }.count == 24)
      #expect(statuses.filter { $0.1 == "chat.completion" }.count == 24)
      #expect(backend.snapshot.finishedNormally == 48)
    }
  }

  @Test func hostileBytesDoNotTakeTheServerDown() async throws {
    try await withServer { path, _, _ in
      let attacks: [[UInt8]] = [
        Array("GARBAGE\r\n\r\n".utf8),
        Array("GET / HTTP/9.9\r\n\r\n".utf8),
        (0..<4096).map { UInt8(truncatingIfNeeded: $0 &* 131) },
        Array(("GET /health HTTP/1.1\r\nX-Big: " + String(repeating: "a", count: 200_000) + "\r\n\r\n").utf8),
        Array(("GET /health HTTP/1.1\r\n" + (0..<20000).map { "H\($0): v\r\n" }.joined() + "\r\n").utf8),
        Array("POST /v1/chat/completions HTTP/1.1\r\nContent-Length: -5\r\n\r\n".utf8),
        Array("POST /v1/chat/completions HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\nhello".utf8),
        Array("POST /v1/chat/completions HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n".utf8),
        Array("GET /health HTTP/1.1\r\nHost: x\r\n".utf8),  // never finished, then dropped
      ]
      for attack in attacks {
        // Once hanging up mid-request, once waiting for whatever the server says.
        try await offPool {
          let c = try UnixHTTPClient(path: path, timeoutSeconds: 2)
          try? c.send(attack)
          c.closeNow()
        }
        let answered = try await offPool { () -> Int in
          let c = try UnixHTTPClient(path: path, timeoutSeconds: 2)
          try? c.send(attack)
          return (try? c.readResponse().status) ?? 0
        }
        // Either a 4xx or a closed connection, never a 2xx for nonsense or a dead server.
        #expect(answered == 0 || (400..<500).contains(answered), "\(answered)")
        #expect(try await request(path, "GET", "/health").status == 200)
      }
    }
  }

  @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/curl"), "curl not installed"))
  func curlWorksUnchanged() async throws {
    try await withServer { path, _, _ in
      func curl(_ args: [String]) async throws -> String {
        try await offPool {
          let p = Process()
          p.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
          p.arguments = ["-sS", "--max-time", "10", "--unix-socket", path] + args
          let out = Pipe()
          p.standardOutput = out
          try p.run()
          let data = out.fileHandleForReading.readDataToEndOfFile()
          p.waitUntilExit()
          return String(decoding: data, as: UTF8.self)
        }
      }
      let plain = try await curl([
        "-H", "Content-Type: application/json", "-d", chatBody, "http://localhost/v1/chat/completions",
      ])
      #expect(plain.contains(#""content":"Hello, world!""#))
      let streamed = try await curl([
        "-N", "-d", #"{"messages":[{"role":"user","content":"hi"}],"stream":true}"#,
        "http://localhost/v1/chat/completions",
      ])
      #expect(sseEvents(streamed).last == "[DONE]")
      let code = try await curl(["-o", "/dev/null", "-w", "%{http_code}", "http://localhost/nope"])
      #expect(code == "404")
      // A body over 1 KiB makes curl send `Expect: 100-continue` (the interim answer itself is
      // checked byte-exactly below; timing curl here would flake on a loaded machine).
      let long = #"{"messages":[{"role":"user","content":"\#(String(repeating: "x", count: 4000))"}]}"#
      let big = try await curl(["-o", "/dev/null", "-w", "%{http_code}", "-d", long, "http://localhost/v1/chat/completions"])
      #expect(big == "200")
    }
  }

  @Test func idleConnectionsCloseButSlowGenerationsDoNot() async throws {
    var config = HTTPServerConfiguration()
    config.idleTimeout = .milliseconds(300)
    let backend = StubBackend()
    backend.update { $0.delay = .milliseconds(200) }  // 5 tokens: ~1 s of silence on the wire
    try await withServer(backend, configuration: config) { path, _, _ in
      let (silentClosed, halfHeadClosed, slow) = try await offPool {
        let silent = try UnixHTTPClient(path: path)
        let halfHead = try UnixHTTPClient(path: path)
        try halfHead.send("GET /health HTTP/1.1\r\nHost: x\r\n")
        let slow = try UnixHTTPClient(path: path)
        try slow.send(post("/v1/chat/completions", chatBody, close: false))
        let r = try slow.readResponse()
        return (silent.waitForClose(), halfHead.waitForClose(), r)
      }
      #expect(silentClosed)
      #expect(halfHeadClosed)
      #expect(slow.status == 200)
      #expect(try slow.json()["object"] as? String == "chat.completion")
    }
  }

  @Test func connectionsBeyondTheCapGet503() async throws {
    var config = HTTPServerConfiguration()
    config.maxConnections = 2
    try await withServer(configuration: config) { path, _, _ in
      let (statuses, retryAfter) = try await offPool {
        let held = try (0..<2).map { _ in try UnixHTTPClient(path: path) }
        // The held ones are registered once accepted; ask through them so that has happened.
        for c in held {
          try c.send("GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
          _ = try c.readResponse()
        }
        // Swift may end `held`'s lifetime (closing its sockets) after its last use above; keep
        // the connections open until the extra one has its answer.
        return try withExtendedLifetime(held) {
          let extra = try UnixHTTPClient(path: path)
          try extra.send("GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
          let r = try extra.readResponse()
          return ([r.status], r.header("retry-after"))
        }
      }
      #expect(statuses == [503])
      #expect(retryAfter == "1")
      // Once they are gone, new clients are served again.
      var status = 0
      for _ in 0..<300 where status != 200 {
        status = try await request(path, "GET", "/health").status
        if status != 200 { try await Task.sleep(for: .milliseconds(20)) }
      }
      #expect(status == 200)
    }
  }

  /// One byte every 100 ms restarts the idle timer each time; the request deadline still ends it.
  @Test func requestTricklingInIsCutAtTheDeadline() async throws {
    var config = HTTPServerConfiguration()
    config.idleTimeout = .seconds(10)
    config.requestTimeout = .milliseconds(800)
    try await withServer(configuration: config) { path, _, _ in
      let (elapsed, response) = try await offPool {
        let c = try UnixHTTPClient(path: path, timeoutSeconds: 10)
        let start = ContinuousClock.now
        let bytes = Array("GET /health HTTP/1.1\r\nHost: x\r\n".utf8) + Array(repeating: UInt8(ascii: "a"), count: 200)
        for b in bytes {
          if (try? c.send([b])) == nil { break }  // the server closed
          var pollFD = pollfd(fd: c.fd, events: Int16(POLLIN), revents: 0)
          if poll(&pollFD, 1, 100) > 0 { break }  // it answered
        }
        let r = try c.readResponse()
        return (ContinuousClock.now - start, r)
      }
      #expect(response.status == 408)
      #expect(try errorObject(response)["code"] as? String == "request_timeout")
      #expect(elapsed < .seconds(5))
    }
  }

  @Test func connectionsBeyondTheUserCapGet429() async throws {
    var config = HTTPServerConfiguration()
    config.privilegedUIDs = []  // the test's own uid is an ordinary client here
    config.maxConnectionsPerUser = 3
    try await withServer(configuration: config) { path, _, _ in
      let (status, code) = try await offPool {
        let held = try (0..<3).map { _ in try UnixHTTPClient(path: path) }
        for c in held {
          try c.send("GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
          _ = try c.readResponse()
        }
        return try withExtendedLifetime(held) {
          let extra = try UnixHTTPClient(path: path)
          try extra.send("GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
          let r = try extra.readResponse()
          return (r.status, try errorObject(r)["code"] as? String)
        }
      }
      #expect(status == 429)
      #expect(code == "too_many_connections")
      var ok = 0
      for _ in 0..<300 where ok != 200 {
        ok = try await request(path, "GET", "/health").status
        if ok != 200 { try await Task.sleep(for: .milliseconds(20)) }
      }
      #expect(ok == 200)
    }
  }

  /// 600 idle connections by ordinary users (today: /health answers 503 to everyone, root too).
  @Test func privilegedUsersKeepAReserveUnderAFlood() {
    var config = HTTPServerConfiguration()
    config.maxConnections = 512
    config.reservedConnections = 16
    config.maxConnectionsPerUser = 64
    config.privilegedUIDs = [0, 990]
    // One user alone stops at its own cap, leaving the rest for everyone else.
    #expect(config.admission(uid: 1000, open: 64, openByUID: 64) == .overPerUser(limit: 64))
    #expect(config.admission(uid: 1001, open: 64, openByUID: 0) == .admitted)
    // Many users together fill the shared part; root and the service user still get in.
    #expect(config.admission(uid: 1042, open: 496, openByUID: 10) == .overTotal(limit: 512))
    #expect(config.admission(uid: nil, open: 496, openByUID: 10) == .overTotal(limit: 512))
    #expect(config.admission(uid: 0, open: 496, openByUID: 0) == .admitted)
    #expect(config.admission(uid: 990, open: 511, openByUID: 200) == .admitted)
    #expect(config.admission(uid: 0, open: 512, openByUID: 0) == .overTotal(limit: 512))
    // The default treats root and the running user as privileged.
    #expect(HTTPServerConfiguration().privilegedUIDs == [0, getuid()])
  }

  /// The same flood end to end, from one ordinary uid: it is held to its own cap (429); a
  /// privileged user may use the reserve beyond the shared part.
  @Test func anIdleFloodDoesNotLockOutThePrivilegedUser() async throws {
    var config = HTTPServerConfiguration()
    config.maxConnectionsPerUser = 8
    config.maxConnections = 16
    config.reservedConnections = 4
    config.privilegedUIDs = []
    try await withServer(configuration: config) { path, _, _ in
      let flood = try await offPool { try (0..<40).map { _ in try UnixHTTPClient(path: path) } }
      try await Task.sleep(for: .milliseconds(200))  // let the server accept them all
      let extra = try await request(path, "GET", "/health")
      #expect(extra.status == 429)
      #expect(flood.allSatisfy { $0.fd >= 0 })  // keeps the flood open until here
    }
    config.privilegedUIDs = [getuid()]
    try await withServer(configuration: config) { path, _, _ in
      // Privileged: no per-user cap, and the reserve is theirs: 15 idle ones, then /health.
      let held = try await offPool { try (0..<15).map { _ in try UnixHTTPClient(path: path) } }
      try await Task.sleep(for: .milliseconds(200))
      #expect(try await request(path, "GET", "/health").status == 200)
      #expect(held.allSatisfy { $0.fd >= 0 })
    }
  }

  @Test func expectContinueGetsAnInterimResponse() async throws {
    try await withServer { path, _, _ in
      let (interim, final) = try await offPool {
        let c = try UnixHTTPClient(path: path)
        try c.send(
          "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: \(chatBody.utf8.count)\r\n\r\n")
        let (s, _) = try c.readHead()
        try c.send(chatBody)
        return (s, try c.readResponse().status)
      }
      #expect(interim == 100)
      #expect(final == 200)
    }
  }

  @Test func gracefulShutdownLetsInFlightRequestsFinish() async throws {
    let backend = StubBackend()
    backend.update { $0.delay = .milliseconds(60) }  // 5 tokens: ~300 ms
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("httpapi-sd-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    let path = dir.appendingPathComponent("d.sock").path
    let server = try await HTTPServer.bind(path: path, backend: backend)
    let running = Task { await server.run() }
    let idle = try UnixHTTPClient(path: path)  // keep-alive, never sends: closed at shutdown
    let inFlight = Task { try await request(path, "POST", "/v1/chat/completions", json: chatBody) }
    #expect(await eventually { backend.snapshot.started == 1 })
    await server.shutdown(gracePeriod: .seconds(30))
    await running.value
    let r = try await inFlight.value
    #expect(r.status == 200)
    #expect(try r.json()["object"] as? String == "chat.completion")
    #expect(backend.snapshot.cancelled == 0)
    #expect(try await offPool { idle.waitForClose() })
    #expect(!FileManager.default.fileExists(atPath: path))
    #expect((try? UnixHTTPClient(path: path)) == nil)
  }

  @Test func shutdownDeadlineCancelsStragglers() async throws {
    let backend = StubBackend()
    backend.update {
      $0.endless = true
      $0.delay = .milliseconds(5)
    }
    try await withServer(backend) { path, backend, server in
      let c = try UnixHTTPClient(path: path)
      try c.send(post("/v1/chat/completions", chatBody))
      #expect(await eventually { backend.snapshot.started == 1 })
      let clock = ContinuousClock()
      let took = await clock.measure { await server.shutdown(gracePeriod: .milliseconds(200)) }
      #expect(took < .seconds(15))  // 200 ms plus slack for a loaded machine
      #expect(await eventually { backend.snapshot.cancelled == 1 })
    }
  }

  @Test func socketFileLifecycle() async throws {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("httpapi-fs-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    let path = dir.appendingPathComponent("d.sock").path

    // A stale socket file (bound, nobody listening) is replaced.
    let fd = try bindUnixSocket(path, listen: false)
    close(fd)
    var config = HTTPServerConfiguration()
    config.socketMode = 0o600
    let server = try await HTTPServer.bind(path: path, backend: StubBackend(), configuration: config)
    let running = Task { await server.run() }
    var st = stat()
    #expect(stat(path, &st) == 0)
    #expect(st.st_mode & 0o777 == 0o600)
    #expect(try await request(path, "GET", "/health").status == 200)

    // A live one is not stolen.
    await #expect(throws: HTTPServerError.socketInUse(path: path)) {
      _ = try await HTTPServer.bind(path: path, backend: StubBackend())
    }
    #expect(try await request(path, "GET", "/health").status == 200)
    await server.shutdown(gracePeriod: .seconds(1))
    await running.value

    // Nor is a regular file.
    let file = dir.appendingPathComponent("plain").path
    _ = FileManager.default.createFile(atPath: file, contents: Data("x".utf8))
    await #expect(throws: HTTPServerError.pathNotASocket(path: file)) {
      _ = try await HTTPServer.bind(path: file, backend: StubBackend())
    }
  }

  @Test func servesOnAnInheritedDescriptor() async throws {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("httpapi-fd-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    let path = dir.appendingPathComponent("act.sock").path
    // What systemd does for a .socket unit: bind and listen, then hand over the descriptor.
    let fd = try bindUnixSocket(path, listen: true)
    let server = try await HTTPServer.withBoundSocket(fd, backend: StubBackend())
    let running = Task { await server.run() }
    #expect(try await request(path, "GET", "/v1/models").status == 200)
    await server.shutdown(gracePeriod: .seconds(1))
    await running.value
    // Socket activation: the path belongs to systemd, so it stays.
    #expect(FileManager.default.fileExists(atPath: path))

    await #expect(throws: HTTPServerError.invalidDescriptor(-1)) {
      _ = try await HTTPServer.withBoundSocket(-1, backend: StubBackend())
    }
    await #expect(throws: HTTPServerError.invalidDescriptor(987_654)) {
      _ = try await HTTPServer.withBoundSocket(987_654, backend: StubBackend())
    }
  }
}

func bindUnixSocket(_ path: String, listen doListen: Bool) throws -> Int32 {
  let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
  var addr = sockaddr_un()
  addr.sun_family = sa_family_t(AF_UNIX)
  let bytes = Array(path.utf8)
  withUnsafeMutableBytes(of: &addr.sun_path) { raw in
    raw.copyBytes(from: bytes)
    raw[bytes.count] = 0
  }
  let rc = withUnsafePointer(to: &addr) {
    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
  }
  guard rc == 0, !doListen || listen(fd, 16) == 0 else { throw ClientError("bind/listen: \(errno)") }
  return fd
}
