// The `droplora` client commands as a user runs them: the binary built next to the tests,
// talking to the real HTTPAPI server in this process over a temporary socket.
import Foundation
import Testing

#if canImport(Glibc)
  import Glibc
#endif

/// droplora, built next to the test bundle by `swift build --build-tests`.
let dropLoraPath: String = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
  .deletingLastPathComponent().appendingPathComponent("droplora").path

/// droplora with `arguments`; `prefix` runs it through another tool (setpriv).
func droplora(
  _ arguments: [String], stdin: String = "", environment: [String: String] = [:], prefix: [String] = []
) async throws -> RunResult {
  try await runTool(prefix + [dropLoraPath] + arguments, stdin: stdin, environment: environment)
}

@Suite
struct CLITests {
  @Test func askStreamsTheAnswer() async throws {
    try await withDaemon { path, backend in
      let r = try await droplora(["ask", "--socket", path, "--adapter", "math", "--max-tokens", "7", "--temperature", "0", "what is 2+2"])
      #expect(r.status == 0, "\(r.stderr)")
      #expect(r.stdout == "echo(1): what is 2+2\n")
      let seen = try #require(backend.snapshot.lastChat)
      #expect(seen.model == "math")
      #expect(seen.sampling.maxTokens == 7 && seen.sampling.temperature == 0)
      #expect(seen.stream)
    }
  }

  @Test func askJSONAndTheSocketFromTheEnvironment() async throws {
    try await withDaemon { path, backend in
      let r = try await droplora(["ask", "--json", "--system", "terse", "hi"], environment: ["DROPLORA_SOCKET": path])
      #expect(r.status == 0, "\(r.stderr)")
      let object = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
      #expect(object["object"] as? String == "chat.completion")
      let choice = try #require((object["choices"] as? [[String: Any]])?.first)
      #expect((choice["message"] as? [String: Any])?["content"] as? String == "echo(2): hi")
      #expect(backend.snapshot.lastChat?.stream == false)
    }
  }

  @Test func chatFromAPipeKeepsHistory() async throws {
    try await withDaemon { path, backend in
      let r = try await droplora(
        ["chat", "--socket", path, "--system", "s"], stdin: "first\n\nsecond\n/reset\nthird\n/exit\nnever sent\n")
      #expect(r.status == 0, "\(r.stderr)")
      // system+user; then system+user+assistant+user; after /reset system+user again.
      #expect(r.stdout == "echo(2): first\necho(4): second\necho(2): third\n")
      #expect(backend.snapshot.lastChat?.messages.last?.content == "third")
    }
  }

  @Test func chatGoesOnAfterARefusalAndExitsNonZero() async throws {
    try await withDaemon { path, _ in
      let r = try await droplora(["chat", "--socket", path, "--adapter", "ghost"], stdin: "hello\n")
      #expect(r.status == 1)
      #expect(r.stderr.contains("model 'ghost' does not exist"))
      #expect(r.stdout == "")
    }
  }

  @Test func adaptersCommands() async throws {
    try await withDaemon { path, backend in
      var r = try await droplora(["adapters", "create", "--socket", path, "fresh", "--rank", "4", "--alpha", "8", "--targets", "q,v", "--pruning-rate", "0.25"])
      #expect(r.status == 0, "\(r.stderr)")
      #expect(r.stdout == "created fresh (rank 4, alpha 8, pruning rate 0.25, targets q,v, version 0)\n")

      r = try await droplora(["adapters", "load", "--socket", path, "code", "code/adapter.gguf"])
      #expect(r.status == 0, "\(r.stderr)")
      #expect(backend.snapshot.loadedPaths == ["code/adapter.gguf"])

      r = try await droplora(["adapters", "default", "--socket", path, "fresh"])
      #expect(r.status == 0, "\(r.stderr)")
      #expect(backend.snapshot.adapters.first { $0.isDefault }?.name == "fresh")

      r = try await droplora(["adapters", "list", "--socket", path])
      #expect(r.status == 0)
      // list is what `droplora adapters` does without a subcommand.
      #expect(try await droplora(["adapters", "--socket", path]).stdout == r.stdout)
      let lines = r.stdout.split(separator: "\n")
      #expect(lines.count == 4)
      #expect(lines.first?.hasPrefix("NAME") == true)
      #expect(lines.contains { $0.hasPrefix("fresh ") && $0.contains("yes") && $0.hasSuffix("q,v") })

      r = try await droplora(["adapters", "default", "--socket", path, "--clear"])
      #expect(r.status == 0, "\(r.stderr)")
      #expect(backend.snapshot.adapters.allSatisfy { !$0.isDefault })

      r = try await droplora(["adapters", "unload", "--socket", path, "code"])
      #expect(r.status == 0)
      r = try await droplora(["adapters", "list", "--socket", path, "--json"])
      let list = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
      #expect((list["data"] as? [[String: Any]])?.compactMap { $0["name"] as? String } == ["math", "fresh"])

      r = try await droplora(["adapters", "unload", "--socket", path, "code"])
      #expect(r.status != 0)
      #expect(r.stderr.contains("adapter 'code' is not loaded"))

      r = try await droplora(["adapters", "default", "--socket", path])
      #expect(r.status != 0)
      #expect(r.stderr.contains("either an adapter NAME or --clear"))
    }
  }

  @Test func status() async throws {
    try await withDaemon { path, backend in
      var r = try await droplora(["status", "--socket", path])
      #expect(r.status == 0, "\(r.stderr)")
      #expect(r.stdout.contains("serving"))
      #expect(r.stdout.contains("base model: \(EchoBackend.baseModel)"))
      #expect(r.stdout.contains("math (rank 8"))
      // Families sorted by name, each family's samples together and sorted, buckets left out.
      let metrics = r.stdout.components(separatedBy: "metrics:\n").last ?? ""
      let lines = metrics.split(separator: "\n").map { $0.replacingOccurrences(of: " +", with: " ", options: .regularExpression) }
      #expect(lines == [
        " droplorad_queue_depth 0",
        " droplorad_requests_total", " route=chat 7", " route=models 2",
        " droplorad_time_to_first_token_seconds", " count 3", " sum 0.25",
      ], "\(r.stdout)")
      #expect(!r.stdout.contains("_bucket"))

      r = try await droplora(["status", "--socket", path, "--json"])
      #expect(r.status == 0, "\(r.stderr)")
      let report = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
      #expect((report["health"] as? [String: Any])?["ready"] as? Bool == true)
      #expect((report["adapters"] as? [[String: Any]])?.compactMap { $0["name"] as? String } == ["math"])
      #expect((report["models"] as? [[String: Any]])?.first?["id"] as? String == EchoBackend.baseModel)
      let families = try #require(report["metrics"] as? [[String: Any]])
      #expect(families.compactMap { $0["name"] as? String } == [
        "droplorad_queue_depth", "droplorad_requests_total", "droplorad_time_to_first_token_seconds",
      ])
      let requests = try #require(families[1]["samples"] as? [[String: Any]])
      #expect(requests.compactMap { ($0["labels"] as? [String: String])?["route"] } == ["chat", "models"])
      #expect(requests.compactMap { $0["value"] as? Double } == [7, 2])
      #expect(families[2]["type"] as? String == "histogram")
      backend.update { $0.ready = false }
      r = try await droplora(["status", "--socket", path])
      #expect(r.status == 3)
      #expect(r.stdout.contains("loading model (not ready)"))
    }
  }

  @Test func pushCountsTheLinesOfTheFile() async throws {
    try await withDaemon { path, backend in
      let dir = try temporaryDirectory("push")
      defer { try? FileManager.default.removeItem(atPath: dir) }
      let file = dir + "/samples.jsonl"
      let line = #"{"prompt":"p","completion":"c"}"#
      try String(repeating: line + "\n", count: 5000).write(toFile: file, atomically: true, encoding: .utf8)
      var r = try await droplora(["push", "--socket", path, "--adapter", "math", "--chunk-kib", "64", file])
      #expect(r.status == 0, "\(r.stderr)")
      #expect(r.stdout == "5000 accepted, 0 already in the journal, 0 rejected\n")
      #expect(backend.snapshot.pushedLines.count == 5000)
      // CRLF line ends are line ends too.
      backend.update { $0.pushedLines = [] }
      try String(repeating: line + "\r\n", count: 3).write(toFile: file, atomically: true, encoding: .utf8)
      r = try await droplora(["push", "--socket", path, "--adapter", "math", file])
      #expect(r.stdout == "3 accepted, 0 already in the journal, 0 rejected\n", "\(r.stderr)")
      #expect(backend.snapshot.pushedLines.count == 3 && !backend.snapshot.pushedLines.contains { $0.contains("\r") })
    }
  }

  @Test func trainingVersionsSaysWhenThereAreNone() async throws {
    try await withDaemon { path, _ in
      let r = try await droplora(["training", "versions", "--socket", path, "--adapter", "math"])
      #expect(r.status == 0, "\(r.stderr)")
      #expect(r.stdout == "no published versions of math yet (training saves a candidate every training.publish_every steps)\n")
    }
  }

  @Test func daemonNotRunning() async throws {
    let r = try await droplora(["status", "--socket", "/tmp/no-such-dir-\(UUID().uuidString)/d.sock"])
    #expect(r.status == 1)
    #expect(r.stderr.contains("is droplorad running?"))
  }

  /// Root passes any file mode, so the refused user is played by nobody through setpriv.
  @Test(.enabled(if: getuid() == 0 && FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv")))
  func permissionDenied() async throws {
    try await withDaemon { path, _ in
      // The directory must let nobody reach the socket; the socket itself must not.
      chmod((path as NSString).deletingLastPathComponent, 0o755)
      chmod(path, 0o600)
      let r = try await droplora(
        ["status", "--socket", path], prefix: ["/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"])
      #expect(r.status == 1, "\(r.stdout)")
      #expect(r.stderr.contains("permission denied on \(path)"))
    }
  }
}
