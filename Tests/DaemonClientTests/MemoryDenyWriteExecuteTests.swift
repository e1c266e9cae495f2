// droplorad.service sets MemoryDenyWriteExecute=yes. The kernel's PR_SET_MDWE (inherited
// across exec) enforces the same rule (no writable+executable mapping, no mapping made
// executable later), so droplora runs under it here: the Swift runtime, Foundation, NIO,
// OpenBLAS and the C kernels the daemon shares must all work without W+X memory.
import Foundation
import Testing

let python = tool("/usr/bin/python3", "/bin/python3")
let defaultModel = packageRoot.appendingPathComponent("models/SmolLM2-135M-Instruct.Q4_1.gguf").path

/// Runs droplora with PR_SET_MDWE(PR_MDWE_REFUSE_EXEC_GAIN) set; a kernel without it fails the
/// prctl and the wrapper exits 99.
func dropLoraWithoutWriteExecute(_ arguments: [String]) async throws -> RunResult {
  let script = """
    import ctypes, os, sys
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(65, 1, 0, 0, 0) != 0 or libc.prctl(66, 0, 0, 0, 0) != 1:
        sys.exit(99)
    os.execv(sys.argv[1], sys.argv[1:])
    """
  return try await runTool([python!, "-c", script, dropLoraPath] + arguments)
}

@Suite(.enabled(if: python != nil, "needs python3 for prctl"))
struct MemoryDenyWriteExecuteTests {
  @Test(.enabled(if: FileManager.default.fileExists(atPath: defaultModel), "needs scripts/fetch-model.sh"))
  func offlineGenerationRuns() async throws {
    let r = try await dropLoraWithoutWriteExecute([
      "generate", "--model", defaultModel, "--max-tokens", "4", "--temperature", "0", "--threads", "2", "Hi",
    ])
    #expect(r.status == 0, "\(r.stderr)")
    #expect(!r.stdout.isEmpty)
  }

  @Test func clientRuns() async throws {
    try await withDaemon { path, _ in
      let r = try await dropLoraWithoutWriteExecute(["status", "--socket", path])
      #expect(r.status == 0, "\(r.stderr)")
      #expect(r.stdout.contains("serving"))
    }
  }
}
