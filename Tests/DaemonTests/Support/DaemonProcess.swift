// Runs the real droplorad binary (built next to the tests by `swift build --build-tests`) on a
// temporary socket, the way systemd would: NOTIFY_SOCKET points at a datagram socket this
// process reads, so READY=1, RELOADING=1 and STOPPING=1 are observed, not assumed. Requests go
// through curl, the client the issue promises works unchanged.
import Foundation
import Testing

#if canImport(Glibc)
  import Glibc
#endif

enum Paths {
  static let buildDirectory = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
  static let daemon = buildDirectory.appendingPathComponent("droplorad").path
  static let cli = buildDirectory.appendingPathComponent("droplora").path
  /// The package root: Tests/DaemonTests/Support/<this file> → three levels up.
  static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().deletingLastPathComponent()
  static let model = root.appendingPathComponent("models/SmolLM2-135M-Instruct.Q4_1.gguf").path
  /// Gemma 3 270M (scripts/fetch-gemma3.sh), for the Gemma end-to-end test.
  static let gemma3 =
    ProcessInfo.processInfo.environment["DROPLORA_GEMMA3_MODEL"]
    ?? root.appendingPathComponent("models/gemma-3-270m-q4_k_m.gguf").path
  static var available: Bool {
    FileManager.default.isExecutableFile(atPath: daemon) && FileManager.default.fileExists(atPath: model)
  }
}

/// Whether this CPU has AVX512-BF16, which `training.compute_type: bf16` needs (read here
/// rather than asked of the daemon's own check, so the tests judge that check).
let cpuHasAVX512BF16 =
  (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8))?.contains(" avx512_bf16") == true

struct TestFailure: Error, CustomStringConvertible {
  var description: String
  init(_ description: String) { self.description = description }
}

/// A fresh directory under /tmp with a short path (socket paths hold at most 107 bytes).
func makeTemporaryDirectory() throws -> String {
  var template = Array("/tmp/dld-XXXXXX".utf8CString)
  guard let made = mkdtemp(&template) else { throw TestFailure("mkdtemp failed") }
  let path = String(cString: made)
  chmod(path, 0o755)  // so an unprivileged client can reach the socket inside
  return path
}

/// Datagrams from the daemon's sd_notify calls, collected by a reader thread.
final class NotificationCollector: @unchecked Sendable {
  // unchecked: `received` is guarded by `condition`.
  let path: String
  private let fd: Int32
  private let condition = NSCondition()
  private var received: [String] = []

  init(directory: String) throws {
    path = directory + "/notify"
    unlink(path)  // a previous daemon's collector in the same directory
    fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: path.utf8) }
    let status = withUnsafePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
    }
    guard status == 0 else { throw TestFailure("cannot bind \(path)") }
    let reader = self.fd
    Thread { [weak self] in
      var buffer = [UInt8](repeating: 0, count: 4096)
      while true {
        let n = recv(reader, &buffer, buffer.count, 0)
        if n <= 0 { return }
        guard let self else { return }
        self.condition.withLock {
          self.received.append(String(decoding: buffer[..<n], as: UTF8.self))
          self.condition.broadcast()
        }
      }
    }.start()
  }

  deinit {
    shutdown(fd, Int32(SHUT_RDWR))
    close(fd)
  }

  var messages: [String] { condition.withLock { received } }

  /// Waits until a datagram contains `line` (a whole `KEY=value` line); returns that datagram.
  @discardableResult
  func wait(for line: String, after count: Int = 0, timeout: TimeInterval = 120) throws -> String {
    let deadline = Date(timeIntervalSinceNow: timeout)
    condition.lock()
    defer { condition.unlock() }
    while true {
      if let hit = received.dropFirst(count).first(where: { $0.split(separator: "\n").contains(Substring(line)) }) {
        return hit
      }
      guard condition.wait(until: deadline) else {
        throw TestFailure("no '\(line)' notification within \(timeout) s; got \(received)")
      }
    }
  }
}

final class DaemonProcess: @unchecked Sendable {
  let directory: String
  let socketPath: String
  let child: Child
  let notifications: NotificationCollector
  let logPath: String

  /// Starts droplorad with the default model and `arguments`, and waits for READY=1.
  init(
    arguments: [String] = [], directory: String? = nil, waitForReady: Bool = true, launcher: [String] = [],
    environment extra: [String: String] = [:], model: String = Paths.model
  ) throws {
    let directory = try directory ?? makeTemporaryDirectory()
    self.directory = directory
    socketPath = directory + "/d.sock"
    notifications = try NotificationCollector(directory: directory)
    logPath = directory + "/daemon.log"
    let daemonArguments =
      [
        Paths.daemon, "--model", model, "--socket", socketPath, "--state-directory", directory + "/state",
        "--adapters-directory", directory + "/adapters", "--threads", "2", "--context-size", "1024",
      ] + arguments
    var environment = ProcessInfo.processInfo.environment
    environment["NOTIFY_SOCKET"] = notifications.path
    for key in ["LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "WATCHDOG_USEC", "WATCHDOG_PID", "JOURNAL_STREAM"] {
      environment[key] = nil
    }
    environment.merge(extra) { $1 }
    child = try Child(launcher + daemonArguments, environment: environment, stdout: logPath, stderr: logPath)
    if waitForReady {
      // Poll so a daemon that exits at once (a bad flag) fails the test at once, with its log.
      let deadline = Date(timeIntervalSinceNow: 120)
      while (try? notifications.wait(for: "READY=1", timeout: 0.5)) == nil {
        guard child.isRunning, Date() < deadline else {
          throw TestFailure("droplorad did not get ready (exit status \(child.exitStatus(waiting: false).map(String.init) ?? "none"))\nlog:\n\(log)")
        }
      }
    }
  }

  var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

  func signal(_ number: Int32) { child.signal(number) }

  /// SIGTERM, then the exit status (-1 and SIGKILL after `timeout`).
  @discardableResult
  func stop(timeout: TimeInterval = 30) -> Int32 {
    signal(SIGTERM)
    return waitForExit(timeout: timeout)
  }

  func waitForExit(timeout: TimeInterval = 30) -> Int32 { child.wait(timeout: timeout) }
}

/// What curl got.
struct CurlResponse {
  var status: Int
  var headers: [String: String]
  var body: String

  func json() throws -> [String: Any] {
    guard let object = try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any] else {
      throw TestFailure("not a JSON object: \(body)")
    }
    return object
  }
}

/// Runs curl against the daemon's socket. `user` runs it as that uid/gid (via setpriv).
func curl(
  _ socket: String, _ method: String, _ path: String, json: String? = nil, data: Data? = nil,
  asUser user: UInt32? = nil, extra: [String] = []
) throws -> CurlResponse {
  let directory = try makeTemporaryDirectory()
  defer { try? FileManager.default.removeItem(atPath: directory) }
  let headerFile = directory + "/headers"
  let bodyFile = directory + "/body"
  var arguments = [
    "curl", "-sS", "--max-time", "300", "--unix-socket", socket, "-X", method, "-D", headerFile, "-o", bodyFile,
    "-w", "%{http_code}",
  ]
  if let json {
    let requestFile = directory + "/request"
    try Data(json.utf8).write(to: URL(fileURLWithPath: requestFile))
    arguments += ["-H", "Content-Type: application/json", "--data-binary", "@" + requestFile]
  } else if let data {
    let requestFile = directory + "/request"
    try data.write(to: URL(fileURLWithPath: requestFile))
    arguments += ["-H", "Content-Type: application/json", "--data-binary", "@" + requestFile]
  }
  arguments += extra + ["http://localhost" + path]
  if let user {
    chmod(directory, 0o777)
    arguments = ["setpriv", "--reuid=\(user)", "--regid=\(user)", "--clear-groups"] + arguments
  }
  let output = try runTool(arguments)
  guard let status = Int(output.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) else {
    throw TestFailure("curl gave no status: \(output)")
  }
  var headers: [String: String] = [:]
  let headerText = (try? String(contentsOfFile: headerFile, encoding: .utf8)) ?? ""
  for line in headerText.split(separator: "\r\n") {
    if let colon = line.firstIndex(of: ":") {
      headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
    }
  }
  let body = (try? String(contentsOfFile: bodyFile, encoding: .utf8)) ?? ""
  return CurlResponse(status: status, headers: headers, body: body)
}

