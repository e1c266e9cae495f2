// Runs a tool to completion and returns its exit status and both output streams; used for
// the droplora binary, systemd-analyze, systemd-sysusers and groff. Runs on its own thread:
// a server under test in this process needs the concurrency pool while the child runs.
import Foundation

struct RunResult: Sendable {
  var status: Int32
  var stdout: String
  var stderr: String
}

/// Handed from the stderr reader thread to the waiting one (the semaphore orders the access).
private final class DataBox: @unchecked Sendable {
  var data = Data()
}

func runTool(
  _ argv: [String], stdin: String = "", environment: [String: String] = [:], directory: String? = nil
) async throws -> RunResult {
  try await withCheckedThrowingContinuation { continuation in
    Thread {
      continuation.resume(
        with: Result {
          let p = Process()
          p.executableURL = URL(fileURLWithPath: argv[0])
          p.arguments = Array(argv.dropFirst())
          // Nothing from the test runner's environment (DROPLORA_SOCKET, MANPATH) leaks in.
          p.environment = ["PATH": "/usr/bin:/bin:/usr/sbin:/sbin"].merging(environment) { $1 }
          if let directory { p.currentDirectoryURL = URL(fileURLWithPath: directory) }
          let input = Pipe()
          let out = Pipe()
          let err = Pipe()
          p.standardInput = input
          p.standardOutput = out
          p.standardError = err
          try p.run()
          input.fileHandleForWriting.write(Data(stdin.utf8))
          try input.fileHandleForWriting.close()
          // Read both pipes at once so neither can fill up and stall the child.
          let errData = DataBox()
          let errDone = DispatchSemaphore(value: 0)
          Thread {
            errData.data = err.fileHandleForReading.readDataToEndOfFile()
            errDone.signal()
          }.start()
          let outData = out.fileHandleForReading.readDataToEndOfFile()
          errDone.wait()
          p.waitUntilExit()
          return RunResult(
            status: p.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
            stderr: String(decoding: errData.data, as: UTF8.self))
        })
    }.start()
  }
}

/// The first of `candidates` that is an executable file.
func tool(_ candidates: String...) -> String? {
  candidates.first { FileManager.default.isExecutableFile(atPath: $0) }
}
