// Notifier against a datagram socket standing in for systemd: NOTIFY_SOCKET points at a socket
// bound in a temporary directory, and each call's datagram is read back and checked. Also the
// no-op without NOTIFY_SOCKET and the watchdog interval from WATCHDOG_USEC / WATCHDOG_PID.
// Serialized: these tests set process-wide environment variables.
import Foundation
import Testing

import Systemd

#if canImport(Glibc)
  import Glibc
#endif

/// A bound AF_UNIX datagram socket in a fresh temporary directory.
final class NotifySocket {
  let fd: Int32
  let directory: String
  let path: String

  init() throws {
    // sun_path holds 108 bytes: keep the path short.
    var template = Array("/tmp/sdn-XXXXXX".utf8CString)
    guard let dir = mkdtemp(&template) else { throw POSIXError(.EIO) }
    directory = String(cString: dir)
    path = directory + "/notify"
    fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    withUnsafeMutableBytes(of: &address.sun_path) { raw in
      raw.copyBytes(from: path.utf8)
    }
    let bound = withUnsafePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
    }
    guard bound == 0 else { throw POSIXError(.EADDRINUSE) }
    var timeout = timeval(tv_sec: 5, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
  }

  deinit {
    close(fd)
    unlink(path)
    rmdir(directory)
  }

  /// The next datagram, or nil after `timeout` (MSG_DONTWAIT when zero).
  func receive(wait: Bool = true) -> String? {
    var buffer = [UInt8](repeating: 0, count: 4096)
    let n = recv(fd, &buffer, buffer.count, wait ? 0 : Int32(MSG_DONTWAIT))
    guard n >= 0 else { return nil }
    return String(decoding: buffer[0..<n], as: UTF8.self)
  }
}

@Suite(.serialized) struct NotifierTests {
  let notifier = Notifier()

  @Test func notificationsReachTheSocket() throws {
    let socket = try NotifySocket()
    setenv("NOTIFY_SOCKET", socket.path, 1)
    defer { unsetenv("NOTIFY_SOCKET") }
    #expect(notifier.isEnabled)

    #expect(try notifier.ready(status: "serving on /run/droplora/droplorad.sock"))
    #expect(socket.receive() == "READY=1\nSTATUS=serving on /run/droplora/droplorad.sock")

    #expect(try notifier.status("2 generations\nrunning"))
    #expect(socket.receive() == "STATUS=2 generations running")

    #expect(try notifier.watchdog())
    #expect(socket.receive() == "WATCHDOG=1")

    let before = Notifier.monotonicMicroseconds()
    #expect(try notifier.reloading())
    let after = Notifier.monotonicMicroseconds()
    let reloading = try #require(socket.receive())
    let lines = reloading.split(separator: "\n")
    #expect(lines.count == 2 && lines[0] == "RELOADING=1")
    let usec = try #require(lines.last.flatMap { $0.hasPrefix("MONOTONIC_USEC=") ? UInt64($0.dropFirst(15)) : nil })
    #expect(before <= usec && usec <= after)

    #expect(try notifier.stopping(status: "shutting down"))
    #expect(socket.receive() == "STOPPING=1\nSTATUS=shutting down")
    #expect(socket.receive(wait: false) == nil)
  }

  @Test func noOpWithoutNotifySocket() throws {
    unsetenv("NOTIFY_SOCKET")
    #expect(!notifier.isEnabled)
    #expect(try notifier.ready() == false)
    #expect(try notifier.watchdog() == false)
    #expect(try notifier.stopping() == false)
  }

  @Test func unreachableSocketThrows() {
    setenv("NOTIFY_SOCKET", "/tmp/sdn-does-not-exist/notify", 1)
    defer { unsetenv("NOTIFY_SOCKET") }
    let error = #expect(throws: SystemdError.self) { try notifier.ready() }
    #expect(error?.call == "sd_notify")
    #expect(error?.errno == ENOENT)
  }

  @Test func watchdogInterval() throws {
    unsetenv("WATCHDOG_USEC")
    unsetenv("WATCHDOG_PID")
    #expect(try notifier.watchdogInterval() == nil)

    setenv("WATCHDOG_USEC", "30000000", 1)
    defer {
      unsetenv("WATCHDOG_USEC")
      unsetenv("WATCHDOG_PID")
    }
    #expect(try notifier.watchdogInterval() == .seconds(30))
    setenv("WATCHDOG_PID", "\(getpid())", 1)
    #expect(try notifier.watchdogInterval() == .seconds(30))
    // Meant for another process (e.g. the parent of a fork): not ours to ping.
    setenv("WATCHDOG_PID", "\(getpid() + 1)", 1)
    #expect(try notifier.watchdogInterval() == nil)
  }
}
