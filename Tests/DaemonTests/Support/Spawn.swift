// Child processes through posix_spawn and waitpid. Foundation's Process watches children from a
// run-loop thread and was seen to hang in waitUntilExit here when several children overlap
// (the daemon plus its clients), so these tests manage their children directly.
import Foundation

#if canImport(Glibc)
  import Glibc
#endif

final class Child: @unchecked Sendable {
  // unchecked: `status` is written once, by whoever reaps the child, under `lock`.
  let pid: pid_t
  private let lock = NSLock()
  private var status: Int32?

  /// Starts `arguments[0]` (looked up on PATH) with stdout and stderr sent to files (nil: /dev/null).
  init(_ arguments: [String], environment: [String: String]? = nil, stdout: String? = nil, stderr: String? = nil) throws {
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, stdout ?? "/dev/null", O_WRONLY | O_CREAT | O_APPEND, 0o644)
    posix_spawn_file_actions_addopen(&actions, 2, stderr ?? "/dev/null", O_WRONLY | O_CREAT | O_APPEND, 0o644)
    let environment = environment ?? ProcessInfo.processInfo.environment
    let argv = arguments.map { strdup($0) } + [nil]
    let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
    defer {
      argv.forEach { free($0) }
      envp.forEach { free($0) }
    }
    // Children start with default signal handling and nothing blocked, whatever the test
    // runner ignores or blocks (dispositions and the mask are inherited across exec).
    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    defer { posix_spawnattr_destroy(&attributes) }
    var all = sigset_t()
    var none = sigset_t()
    sigfillset(&all)
    sigemptyset(&none)
    posix_spawnattr_setsigdefault(&attributes, &all)
    posix_spawnattr_setsigmask(&attributes, &none)
    posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))
    var pid = pid_t()
    let result = posix_spawnp(&pid, arguments[0], &actions, &attributes, argv, envp)
    guard result == 0 else { throw TestFailure("cannot start \(arguments[0]): \(String(cString: strerror(result)))") }
    self.pid = pid
  }

  deinit {
    if exitStatus(waiting: false) == nil {
      kill(pid, SIGKILL)
      _ = exitStatus(waiting: true)
    }
  }

  var isRunning: Bool { exitStatus(waiting: false) == nil }

  /// The exit status (128 + signal when killed); nil while running unless `waiting`.
  func exitStatus(waiting: Bool) -> Int32? {
    lock.withLock {
      if let status { return status }
      var raw: Int32 = 0
      let reaped = waitpid(pid, &raw, waiting ? 0 : WNOHANG)
      guard reaped == pid else { return nil }
      let signal = raw & 0x7f
      status = signal == 0 ? (raw >> 8) & 0xff : 128 + signal
      return status
    }
  }

  /// Waits up to `timeout` seconds; SIGKILL and -1 past it.
  func wait(timeout: TimeInterval = 300) -> Int32 {
    let deadline = Date(timeIntervalSinceNow: timeout)
    while Date() < deadline {
      if let status = exitStatus(waiting: false) { return status }
      usleep(10_000)
    }
    kill(pid, SIGKILL)
    _ = exitStatus(waiting: true)
    return -1
  }

  func signal(_ number: Int32) { kill(pid, number) }
}

struct ToolOutput: CustomStringConvertible {
  var status: Int32
  var stdout: String
  var stderr: String
  var description: String { "exit \(status)\nstdout: \(stdout)\nstderr: \(stderr)" }
}

/// Runs a program to completion and collects its output.
func runTool(_ arguments: [String], environment: [String: String]? = nil, timeout: TimeInterval = 300) throws -> ToolOutput {
  let directory = try makeTemporaryDirectory()
  defer { try? FileManager.default.removeItem(atPath: directory) }
  let child = try Child(arguments, environment: environment, stdout: directory + "/out", stderr: directory + "/err")
  let status = child.wait(timeout: timeout)
  return ToolOutput(
    status: status, stdout: (try? String(contentsOfFile: directory + "/out", encoding: .utf8)) ?? "",
    stderr: (try? String(contentsOfFile: directory + "/err", encoding: .utf8)) ?? "")
}
