// The daemon as systemd runs it: READY=1 once serving, SIGHUP reloads (RELOADING=1 … READY=1,
// new limits live, a broken file keeps the old ones), SIGTERM drains (STOPPING=1, running
// generations finish, exit 0, socket removed), socket activation through
// systemd-socket-activate, SO_PEERCRED refusal, and --check-config.
import Foundation
import Testing

#if canImport(Glibc)
  import Glibc
#endif

extension DaemonTests {
  @Suite struct Lifecycle {
    func completionTokens(_ socket: String) throws -> Int {
      let reply = try curl(
        socket, "POST", "/v1/chat/completions",
        json: #"{"messages": [{"role": "user", "content": "Count from 1 to 50, separated by commas."}], "temperature": 0}"#)
      #expect(reply.status == 200, "\(reply.body)")
      return try #require((try reply.json()["usage"] as? [String: Any])?["completion_tokens"] as? Int)
    }

    @Test func sighupReloadsLiveSettingsAndSurvivesABrokenFile() throws {
      let directory = try makeTemporaryDirectory()
      defer { try? FileManager.default.removeItem(atPath: directory) }
      let config = directory + "/droplorad.yaml"
      try "generation:\n  max_tokens: 6\n".write(toFile: config, atomically: true, encoding: .utf8)
      let daemon = try DaemonProcess(arguments: ["--config", config], directory: directory)
      defer { daemon.stop() }
      #expect(daemon.notifications.messages.first { $0.contains("READY=1") }?.contains("STATUS=serving") == true)
      #expect(try completionTokens(daemon.socketPath) == 6)

      try "generation:\n  max_tokens: 3\n".write(toFile: config, atomically: true, encoding: .utf8)
      var seen = daemon.notifications.messages.count
      daemon.signal(SIGHUP)
      let reloading = try daemon.notifications.wait(for: "RELOADING=1", after: seen)
      #expect(reloading.contains("MONOTONIC_USEC="))
      try daemon.notifications.wait(for: "READY=1", after: seen)
      #expect(try completionTokens(daemon.socketPath) == 3)

      try "generation:\n  max_tokens: [\n".write(toFile: config, atomically: true, encoding: .utf8)
      seen = daemon.notifications.messages.count
      daemon.signal(SIGHUP)
      let ready = try daemon.notifications.wait(for: "READY=1", after: seen)
      #expect(ready.contains("reload failed"))
      #expect(try completionTokens(daemon.socketPath) == 3)
      #expect(daemon.log.contains("reload refused"))
    }

    /// limits.max_request_bytes used to stay at its start value after SIGHUP although the docs
    /// say limits change live; what cannot change live is named in the reload's log line.
    @Test func sighupAppliesRequestLimitsAndNamesWhatNeedsARestart() throws {
      let directory = try makeTemporaryDirectory()
      defer { try? FileManager.default.removeItem(atPath: directory) }
      let config = directory + "/droplorad.yaml"
      try "limits:\n  max_request_bytes: 1048576\n".write(toFile: config, atomically: true, encoding: .utf8)
      let daemon = try DaemonProcess(arguments: ["--config", config], directory: directory)
      defer { daemon.stop() }
      // Over 4096 bytes, but a short prompt: JSON whitespace pads it.
      let long = #"{"messages": [{"role": "user", "content": "hi"}],\#(String(repeating: " ", count: 6000))"max_tokens": 1}"#
      #expect(try curl(daemon.socketPath, "POST", "/v1/chat/completions", json: long).status == 200)

      try "limits:\n  max_request_bytes: 4096\nmodel:\n  kv_cache_type: f16\n".write(
        toFile: config, atomically: true, encoding: .utf8)
      let seen = daemon.notifications.messages.count
      daemon.signal(SIGHUP)
      let ready = try daemon.notifications.wait(for: "READY=1", after: seen)
      #expect(ready.contains("model.kv_cache_type need a restart"), "\(ready)")
      let refused = try curl(daemon.socketPath, "POST", "/v1/chat/completions", json: long)
      #expect(refused.status == 413, "\(refused.body)")
      #expect(daemon.log.contains("configuration reloaded; changes to model.kv_cache_type need a restart"), "\(daemon.log)")
    }

    @Test func watchdogPingsComeFromTheServingLoop() throws {
      // WATCHDOG_USEC as systemd sets it for WatchdogSec=1 (no WATCHDOG_PID: any pid may ping).
      let daemon = try DaemonProcess(environment: ["WATCHDOG_USEC": "1000000"])
      defer { daemon.stop() }
      let seen = daemon.notifications.messages.count
      try daemon.notifications.wait(for: "WATCHDOG=1", after: seen, timeout: 5)
      let first = daemon.notifications.messages.count
      try daemon.notifications.wait(for: "WATCHDOG=1", after: first, timeout: 5)
    }

    @Test func sigtermDrainsRunningGenerationsAndExitsCleanly() throws {
      let daemon = try DaemonProcess()
      let outputPath = daemon.directory + "/stream"
      let running = try Child(
        [
          "curl", "-sN", "--unix-socket", daemon.socketPath, "http://localhost/v1/chat/completions", "-d",
          #"{"messages": [{"role": "user", "content": "Tell me about whales."}], "max_tokens": 60, "temperature": 0, "stream": true}"#,
        ], stdout: outputPath)
      try waitForMetric(daemon, "droplorad_running_generations 1.0")
      let seen = daemon.notifications.messages.count
      daemon.signal(SIGTERM)
      try daemon.notifications.wait(for: "STOPPING=1", after: seen)
      #expect(running.wait() == 0)
      let body = (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? ""
      #expect(body.hasSuffix("data: [DONE]\n\n"), "the running generation was cut off: \(body.suffix(200))")
      #expect(daemon.waitForExit() == 0, "\(daemon.log)")
      #expect(!FileManager.default.fileExists(atPath: daemon.socketPath))
    }

    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/systemd-socket-activate")))
    func servesTheSocketSystemdPasses() throws {
      let directory = try makeTemporaryDirectory()
      defer { try? FileManager.default.removeItem(atPath: directory) }
      let socket = directory + "/activated.sock"
      let daemon = try DaemonProcess(
        directory: directory, waitForReady: false,
        launcher: [
          "/usr/bin/systemd-socket-activate", "-l", socket, "-E", "NOTIFY_SOCKET=\(directory)/notify",
        ])
      defer { daemon.stop() }
      let deadline = Date(timeIntervalSinceNow: 10)
      while !FileManager.default.fileExists(atPath: socket) && Date() < deadline { usleep(10_000) }
      // The first connection starts the daemon; it waits in the backlog until the model is mapped.
      let health = try curl(socket, "GET", "/health")
      #expect(health.status == 200, "\(daemon.log)")
      try daemon.notifications.wait(for: "READY=1")
      #expect(!FileManager.default.fileExists(atPath: daemon.socketPath), "bound its own socket despite activation")
    }

    /// Issue 17: a TCP port systemd passes (`ListenStream=127.0.0.1:PORT`) is served as a
    /// configured listener is (loopback: no key needed), and the daemon still binds its own
    /// Unix socket; a non-loopback port passed without keys stops the start, naming the address.
    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/systemd-socket-activate")))
    func servesATCPPortSystemdPasses() throws {
      let directory = try makeTemporaryDirectory()
      defer { try? FileManager.default.removeItem(atPath: directory) }
      func activated(_ address: String) throws -> DaemonProcess {
        try DaemonProcess(
          directory: directory, waitForReady: false,
          launcher: ["/usr/bin/systemd-socket-activate", "-l", address, "-E", "NOTIFY_SOCKET=\(directory)/notify"])
      }
      func get(_ url: String) throws -> String {
        try runTool(["curl", "-sS", "--max-time", "120", "-o", "/dev/null", "-w", "%{http_code}", url]).stdout
      }
      let exposedPort = try freeTCPPort()
      let exposed = try activated("0.0.0.0:\(exposedPort)")
      usleep(300_000)  // systemd-socket-activate binds the port before the daemon starts
      _ = try? get("http://127.0.0.1:\(exposedPort)/health")  // starts the daemon, which refuses
      #expect(exposed.waitForExit(timeout: 120) != 0, "\(exposed.log)")
      #expect(exposed.log.contains("0.0.0.0:\(exposedPort)"), "\(exposed.log)")

      let port = try freeTCPPort()
      let daemon = try activated("127.0.0.1:\(port)")
      defer { daemon.stop() }
      usleep(300_000)
      // The first connection starts the daemon; it waits in the backlog until the model is mapped.
      #expect(try get("http://127.0.0.1:\(port)/health") == "200", "\(daemon.log)")
      try daemon.notifications.wait(for: "READY=1")
      #expect(try get("http://127.0.0.1:\(port)/v1/models") == "200")
      #expect(try curl(daemon.socketPath, "GET", "/health").status == 200, "\(daemon.log)")
    }

    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv") && getuid() == 0))
    func peersOutsideTheAllowedListAreRefusedAndSighupChangesTheList() throws {
      let directory = try makeTemporaryDirectory()
      defer { try? FileManager.default.removeItem(atPath: directory) }
      let config = directory + "/droplorad.yaml"
      try "server:\n  socket_mode: 0666\n  allowed_uids: [4242]\n".write(toFile: config, atomically: true, encoding: .utf8)
      let daemon = try DaemonProcess(arguments: ["--config", config], directory: directory)
      defer { daemon.stop() }
      let nobody = try curl(daemon.socketPath, "GET", "/health", asUser: 65534)
      #expect(nobody.status == 403, "\(nobody.body)")
      #expect(try curl(daemon.socketPath, "GET", "/health").status == 200)  // root is always allowed
      #expect(try curl(daemon.socketPath, "GET", "/health", asUser: 4242).status == 200)

      try "server:\n  socket_mode: 0666\n  allowed_uids: [65534]\n".write(toFile: config, atomically: true, encoding: .utf8)
      let seen = daemon.notifications.messages.count
      daemon.signal(SIGHUP)
      try daemon.notifications.wait(for: "READY=1", after: seen)
      #expect(try curl(daemon.socketPath, "GET", "/health", asUser: 65534).status == 200)
      #expect(try curl(daemon.socketPath, "GET", "/health", asUser: 4242).status == 403)
    }

    /// --check-config used to call a group that does not exist "valid"; the start then failed.
    @Test func checkConfigResolvesGroups() throws {
      let directory = try makeTemporaryDirectory()
      defer { try? FileManager.default.removeItem(atPath: directory) }
      let cases = [
        ("server:\n  allowed_groups: [root, no-such-group-dld]\n", "server.allowed_groups"),
        ("server:\n  socket_group: no-such-group-dld\n", "server.socket_group"),
      ]
      for (text, key) in cases {
        let file = directory + "/groups.yaml"
        try text.write(toFile: file, atomically: true, encoding: .utf8)
        let refused = try runTool([Paths.daemon, "--config", file, "--check-config"])
        #expect(refused.status == 1, "\(refused)")
        #expect(refused.stderr.contains(key) && refused.stderr.contains("no group 'no-such-group-dld'"), "\(refused.stderr)")
      }
      let good = directory + "/good.yaml"
      try "server:\n  allowed_groups: [root, \"0\"]\n  socket_group: root\n".write(toFile: good, atomically: true, encoding: .utf8)
      let ok = try runTool([Paths.daemon, "--config", good, "--check-config"])
      #expect(ok.status == 0, "\(ok)")
    }

    /// A KV budget below one sequence of the whole context is refused, by --check-config (from
    /// the model file's header) as by the start, naming the key and the least that works.
    @Test(.enabled(if: FileManager.default.fileExists(atPath: Paths.model)))
    func kvBudgetBelowOneSlotIsRefused() throws {
      let directory = try makeTemporaryDirectory()
      defer { try? FileManager.default.removeItem(atPath: directory) }
      let file = directory + "/kv.yaml"
      try "model:\n  context_size: 2048\n".write(toFile: file, atomically: true, encoding: .utf8)
      // SmolLM2-135M, 2048 tokens, f32: 2 × 30 layers × 2048 × 192 × 4 bytes = 90 MiB; f16 45.
      let base = [Paths.daemon, "--config", file, "--model", Paths.model]
      for (type, least) in [("f32", 90), ("f16", 45)] {
        let kv = ["--set", "model.kv_cache_type=\(type)", "--check-config"]
        let refused = try runTool(base + kv + ["--set", "limits.kv_cache_mib=\(least - 1)"])
        #expect(refused.status == 1, "\(refused)")
        #expect(
          refused.stderr.contains("limits.kv_cache_mib") && refused.stderr.contains("at least \(least) MiB"),
          "\(refused.stderr)")
        let ok = try runTool(base + kv + ["--set", "limits.kv_cache_mib=\(least)"])
        #expect(ok.status == 0, "\(ok)")
      }
      // The start refuses it before mapping the model (a start that went on would be killed at 60 s).
      let started = try runTool(
        base + ["--set", "limits.kv_cache_mib=10", "--socket", directory + "/d.sock", "--state-directory", directory],
        timeout: 60)
      #expect(started.status == 1, "\(started)")
      #expect(
        started.stderr.contains("limits.kv_cache_mib") && started.stderr.contains("at least 90 MiB"), "\(started.stderr)")
    }

    @Test func checkConfigValidatesAndExits() throws {
      let directory = try makeTemporaryDirectory()
      defer { try? FileManager.default.removeItem(atPath: directory) }
      let good = directory + "/good.yaml"
      let bad = directory + "/bad.yaml"
      try "limits:\n  queue_limit: 3\n".write(toFile: good, atomically: true, encoding: .utf8)
      try "limits:\n  queue_limit: 3\n  colour: blue\n".write(toFile: bad, atomically: true, encoding: .utf8)
      let ok = try runTool([Paths.daemon, "--config", good, "--check-config"])
      #expect(ok.status == 0, "\(ok)")
      let refused = try runTool([Paths.daemon, "--config", bad, "--check-config"])
      #expect(refused.status == 1)
      #expect(refused.stderr.contains("bad.yaml"))
      #expect(refused.stderr.contains("3:3"), "\(refused.stderr)")
      #expect(refused.stderr.contains("limits.colour"))
      let badFlag = try runTool([Paths.daemon, "--config", good, "--set", "limits.queue_limit=-1", "--check-config"])
      #expect(badFlag.status == 1)
      #expect(badFlag.stderr.contains("limits.queue_limit"))
      let missing = try runTool([Paths.daemon, "--config", directory + "/none.yaml", "--check-config"])
      #expect(missing.status == 1)
      // bf16 training is valid exactly where the CPU has AVX512-BF16.
      let bf16 = try runTool([Paths.daemon, "--config", good, "--set", "training.compute_type=bf16", "--check-config"])
      #expect(bf16.status == (cpuHasAVX512BF16 ? 0 : 1), "\(bf16)")
      if !cpuHasAVX512BF16 { #expect(bf16.stderr.contains("training.compute_type")) }
    }
  }
}
