// The daemon's start-up (issue 18) and its opt-in TCP listener (issue 17), end to end: a second
// daemon on a live socket fails fast without touching it, SIGTERM while the model loads exits 0,
// log lines outside systemd carry a timestamp and a level word, and a TCP listener answers only
// requests with a key from an owner-only key file.
import Foundation
import Testing

#if canImport(Glibc)
  import Glibc
#endif

/// A TCP port nobody listens on right now.
func freeTCPPort() throws -> Int {
  let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
  defer { close(fd) }
  var addr = sockaddr_in()
  addr.sin_family = sa_family_t(AF_INET)
  addr.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
  var length = socklen_t(MemoryLayout<sockaddr_in>.size)
  let rc = withUnsafeMutablePointer(to: &addr) {
    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { p -> Int32 in
      guard bind(fd, p, length) == 0 else { return -1 }
      return getsockname(fd, p, &length)
    }
  }
  guard rc == 0 else { throw TestFailure("no free port") }
  return Int(UInt16(bigEndian: addr.sin_port))
}

extension DaemonTests {
  @Suite struct Startup {
    @Test func aSecondDaemonOnALiveSocketFailsFastAndLeavesItAlone() throws {
      let first = try DaemonProcess()
      defer { first.stop() }
      let started = Date()
      let second = try Child(
        [
          Paths.daemon, "--model", Paths.model, "--socket", first.socketPath, "--state-directory",
          first.directory + "/state2", "--adapters-directory", first.directory + "/adapters2",
        ], environment: ["PATH": "/usr/bin:/bin"], stdout: first.directory + "/second.log",
        stderr: first.directory + "/second.log")
      let status = second.wait(timeout: 60)
      let log = (try? String(contentsOfFile: first.directory + "/second.log", encoding: .utf8)) ?? ""
      #expect(status == 1, "\(log)")
      #expect(log.contains("already serves on \(first.socketPath)"), "\(log)")
      #expect(!log.contains("socketInUse"), "\(log)")
      // Refused before the model was loaded.
      #expect(!log.contains("mapped"), "\(log)")
      #expect(Date().timeIntervalSince(started) < 30)
      #expect(try curl(first.socketPath, "GET", "/health").status == 200)
    }

    /// A `server.listen` port another process holds is refused before the model is mapped,
    /// naming the address and the key to change.
    @Test func aTakenTCPPortFailsFastBeforeTheModel() throws {
      let directory = try makeTemporaryDirectory()
      defer { try? FileManager.default.removeItem(atPath: directory) }
      let holder = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
      defer { close(holder) }
      var address = sockaddr_in()
      address.sin_family = sa_family_t(AF_INET)
      address.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
      var length = socklen_t(MemoryLayout<sockaddr_in>.size)
      let bound = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { p in
          bind(holder, p, length) == 0 && listen(holder, 1) == 0 && getsockname(holder, p, &length) == 0
        }
      }
      try #require(bound)
      let port = Int(UInt16(bigEndian: address.sin_port))
      let started = Date()
      let daemon = try DaemonProcess(
        arguments: ["--set", "server.listen=[\"127.0.0.1:\(port)\"]"], directory: directory, waitForReady: false)
      #expect(daemon.waitForExit(timeout: 60) == 1, "\(daemon.log)")
      #expect(daemon.log.contains("already listens on 127.0.0.1:\(port)"), "\(daemon.log)")
      #expect(daemon.log.contains("server.listen"), "\(daemon.log)")
      #expect(!daemon.log.contains("addressInUse") && !daemon.log.contains("loading "), "\(daemon.log)")
      #expect(!FileManager.default.fileExists(atPath: daemon.socketPath))
      #expect(Date().timeIntervalSince(started) < 30)
    }

    @Test func sigtermWhileStartingExitsCleanly() throws {
      let daemon = try DaemonProcess(waitForReady: false)
      // The line printed just before the model is mapped.
      let deadline = Date(timeIntervalSinceNow: 60)
      while !daemon.log.contains("loading ") && Date() < deadline { usleep(2000) }
      daemon.signal(SIGTERM)
      let started = Date()
      let status = daemon.waitForExit(timeout: 30)
      #expect(status == 0, "\(daemon.log)")
      #expect(Date().timeIntervalSince(started) < 20)
      // Outside systemd the log is for people: a UTC timestamp and a level word, no <N> prefix.
      let first = daemon.log.split(separator: "\n").first.map(String.init) ?? ""
      #expect(first.range(of: #"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z info droplorad: loading "#, options: .regularExpression) != nil, "\(daemon.log)")
      #expect(!daemon.log.contains("<6>"))
    }

    @Test func tcpListenerNeedsAKeyFromAPrivateFile() throws {
      let directory = try makeTemporaryDirectory()
      defer { try? FileManager.default.removeItem(atPath: directory) }
      let keys = directory + "/keys"
      let key = "sk-daemon-test-0123456789"
      try "ci \(key)\n".write(toFile: keys, atomically: true, encoding: .utf8)
      chmod(keys, 0o644)
      let port = try freeTCPPort()
      let listen = ["--set", "server.listen=[\"127.0.0.1:\(port)\"]", "--set", "server.api_keys_file=\(keys)"]
      // World-readable keys: refused at once, saying how to fix it.
      let open = try DaemonProcess(arguments: listen, directory: directory, waitForReady: false)
      #expect(open.waitForExit(timeout: 60) == 1)
      #expect(open.log.contains("chmod 600"), "\(open.log)")
      // Non-loopback without keys: refused.
      let exposed = try DaemonProcess(
        arguments: ["--set", "server.listen=[\"0.0.0.0:\(port)\"]"], directory: directory, waitForReady: false)
      #expect(exposed.waitForExit(timeout: 60) == 1)
      #expect(exposed.log.contains("not a loopback address"), "\(exposed.log)")

      chmod(keys, 0o600)
      let daemon = try DaemonProcess(arguments: listen, directory: directory)
      defer { daemon.stop() }
      func get(_ headers: [String]) throws -> String {
        let run = try runTool(
          ["curl", "-sS", "--max-time", "60", "-o", "/dev/null", "-w", "%{http_code}"] + headers.flatMap { ["-H", $0] }
            + ["http://127.0.0.1:\(port)/v1/models"])
        return run.stdout
      }
      #expect(try get([]) == "401")
      #expect(try get(["Authorization: Bearer sk-daemon-test-012345678X"]) == "401")
      #expect(try get(["Authorization: Bearer \(key)"]) == "200")
      let chat = try runTool([
        "curl", "-sS", "--max-time", "300", "-H", "Authorization: Bearer \(key)", "-H", "Content-Type: application/json",
        "--data-binary", #"{"messages":[{"role":"user","content":"hi"}],"max_tokens":2}"#,
        "http://127.0.0.1:\(port)/v1/chat/completions",
      ])
      #expect(chat.stdout.contains("\"chat.completion\""), "\(chat)")
      #expect(try curl(daemon.socketPath, "GET", "/v1/models").status == 200)
    }
  }
}
