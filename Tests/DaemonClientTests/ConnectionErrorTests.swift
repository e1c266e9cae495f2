// What the client says when it cannot reach the daemon: no socket, a socket nobody accepts
// on (a dead daemon's leftover), something that is not a socket, and an adapter name it
// refuses to put in a URL.
import DaemonClient
import Foundation
import Testing

#if canImport(Glibc)
  import Glibc
#endif

@Suite struct ConnectionErrorTests {
  @Test func missingSocket() async throws {
    let dir = try temporaryDirectory("noclient")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let path = dir + "/absent.sock"
    await #expect(throws: DaemonClientError.socketMissing(path: path)) {
      _ = try await DaemonClient(socketPath: path).health()
    }
    #expect(DaemonClientError.socketMissing(path: path).description.contains("is droplorad running?"))
  }

  @Test func socketWithoutListener() async throws {
    let dir = try temporaryDirectory("stale")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let path = dir + "/stale.sock"
    // Bound but never listening: connect(2) gets ECONNREFUSED, as with a dead daemon's file.
    let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var addr = sockaddr_un()
    addr.sun_family = sa_family_t(AF_UNIX)
    withUnsafeMutableBytes(of: &addr.sun_path) { raw in
      let bytes = Array(path.utf8)
      raw.copyBytes(from: bytes)
      raw[bytes.count] = 0
    }
    let rc = withUnsafePointer(to: &addr) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
    }
    try #require(rc == 0)
    await #expect(throws: DaemonClientError.notRunning(path: path)) {
      _ = try await DaemonClient(socketPath: path).adapters()
    }
  }

  @Test func notASocket() async throws {
    let dir = try temporaryDirectory("plain")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let path = dir + "/file"
    try #require(FileManager.default.createFile(atPath: path, contents: Data()))
    await #expect(throws: DaemonClientError.notASocket(path: path)) {
      _ = try await DaemonClient(socketPath: path).models()
    }
  }

  @Test func invalidAdapterNameNeverReachesTheDaemon() async throws {
    // No daemon at all: the name is refused before connecting.
    let client = DaemonClient(socketPath: "/nonexistent/d.sock")
    for name in ["../etc", "a/b", "", "..", String(repeating: "x", count: 65)] {
      do {
        try await client.unloadAdapter(name: name)
        Issue.record("'\(name)' was accepted")
      } catch DaemonClientError.invalidArgument(_) {
      } catch {
        Issue.record("'\(name)': \(error)")
      }
    }
  }
}
