// listenFileDescriptors in a child process (LISTEN_PID must name the process that reads it):
// the SystemdProbe helper is started with LISTEN_FDS/LISTEN_PID/LISTEN_FDNAMES set by a shell
// that execs it (so $$ is its pid), and under systemd-socket-activate with a real listening
// Unix socket. In this process, without LISTEN_* set, the list is empty.
import Foundation
import Testing

#if canImport(Glibc)
  import Glibc
#endif

import Systemd

/// SystemdProbe, built next to the test bundle by `swift build --build-tests`.
let probePath: String? = {
  let directory = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
  let path = directory.appendingPathComponent("SystemdProbe").path
  return FileManager.default.isExecutableFile(atPath: path) ? path : nil
}()
let socketActivatePath = ["/usr/bin/systemd-socket-activate", "/bin/systemd-socket-activate"].first {
  FileManager.default.isExecutableFile(atPath: $0)
}

/// Runs `executable` with `arguments` and exactly `environment`; returns its standard output.
func run(_ executable: String, _ arguments: [String], environment: [String: String]) throws -> String {
  let process = Process()
  process.executableURL = URL(fileURLWithPath: executable)
  process.arguments = arguments
  process.environment = environment
  let out = Pipe()
  process.standardOutput = out
  try process.run()
  let data = out.fileHandleForReading.readDataToEndOfFile()
  process.waitUntilExit()
  return String(decoding: data, as: UTF8.self)
}

@Suite struct SocketActivationTests {
  @Test func notActivatedIsEmpty() throws {
    // This process has no LISTEN_* (the test runner is not socket-activated).
    #expect(try SocketActivation.listenFileDescriptors(unsetEnvironment: false) == [])
  }

  @Test(.enabled(if: probePath != nil, "SystemdProbe not built next to the tests"))
  func descriptorsWithNames() throws {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sda-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    let a = dir.appendingPathComponent("a").path
    let b = dir.appendingPathComponent("b").path
    // fds 3 and 4 are plain files: passed and named, but not listening sockets.
    let script = "exec env LISTEN_PID=$$ \"$0\" 3<>\"$1\" 4<>\"$2\""
    let output = try run(
      "/bin/sh", ["-c", script, probePath!, a, b],
      environment: ["LISTEN_FDS": "2", "LISTEN_FDNAMES": "api:admin", "PATH": "/usr/bin:/bin"])
    #expect(output == "count 2\n3 api false\n4 admin false\n")

    // Without names, each is "unknown".
    let unnamed = try run(
      "/bin/sh", ["-c", "exec env LISTEN_PID=$$ \"$0\" 3<>\"$1\"", probePath!, a],
      environment: ["LISTEN_FDS": "1", "PATH": "/usr/bin:/bin"])
    #expect(unnamed == "count 1\n3 unknown false\n")
  }

  @Test(.enabled(if: probePath != nil, "SystemdProbe not built next to the tests"))
  func otherProcessesDescriptorsAreIgnored() throws {
    // LISTEN_PID names another process: the descriptors are not for us.
    let output = try run(probePath!, [], environment: ["LISTEN_FDS": "1", "LISTEN_PID": "1"])
    #expect(output == "count 0\n")
    #expect(try run(probePath!, [], environment: [:]) == "count 0\n")
  }

  @Test(.enabled(if: probePath != nil && socketActivatePath != nil, "needs SystemdProbe and systemd-socket-activate"))
  func underSystemdSocketActivate() throws {
    var template = Array("/tmp/sda-XXXXXX".utf8CString)
    let directory = try #require(mkdtemp(&template).map { String(cString: $0) })
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let socketPath = directory + "/droplorad.sock"
    let process = Process()
    process.executableURL = URL(fileURLWithPath: socketActivatePath!)
    process.arguments = ["-l", socketPath, "--fdname=api", probePath!]
    process.environment = ["PATH": "/usr/bin:/bin"]
    let out = Pipe()
    process.standardOutput = out
    process.standardError = FileHandle.nullDevice
    try process.run()
    defer { if process.isRunning { process.terminate() } }
    // systemd-socket-activate starts the program at the first connection.
    let client = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(client) }
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: socketPath.utf8) }
    var connected = false
    for _ in 0..<500 where !connected {
      connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
          connect(client, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) == 0
        }
      }
      if !connected { usleep(10_000) }
    }
    try #require(connected, "could not connect to \(socketPath)")
    let deadline = Date().addingTimeInterval(10)
    while process.isRunning && Date() < deadline { usleep(10_000) }
    try #require(!process.isRunning, "the probe did not exit")
    let output = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    #expect(output == "count 1\n3 api true\n")
  }
}
