// Streamed training through the socket: a push is validated line by line and acknowledged
// durably (a retried push stores nothing twice), the background trainer publishes versions
// whose held-out loss improves while chats keep being answered, a SIGKILL in the middle of
// training loses no acknowledged sample and training resumes, and a rollback serves an older
// version.
import Foundation
import Testing

#if canImport(Glibc)
  import Glibc
#endif

extension DaemonTests {
  @Suite struct StreamedTraining {
    static let arguments = [
      "--set", "training.batch_size=4", "--set", "training.publish_every=3", "--set", "training.max_sequence_length=96",
      "--set", "training.held_out_every=4", "--set", "training.learning_rate=0.002",
    ]

    /// A toy task the base model cannot know: made-up codes for made-up words.
    static func samples(_ range: Range<Int>) -> String {
      range.map { i in
        let object: [String: Any] = [
          "id": "sample-\(i)",
          "messages": [
            ["role": "user", "content": "What is the code for zorblat \(i)?"],
            ["role": "assistant", "content": "The code for zorblat \(i) is QX-\(i * 7 % 100)."],
          ],
        ]
        return String(decoding: try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self)
      }.joined(separator: "\n") + "\n"
    }

    func status(_ socket: String, adapter: String = "task") throws -> [String: Any] {
      let reply = try curl(socket, "GET", "/v1/adapters/\(adapter)/training")
      #expect(reply.status == 200, "\(reply.body)")
      return try reply.json()
    }

    func waitFor(
      _ socket: String, adapter: String = "task", timeout: TimeInterval = 120, _ condition: ([String: Any]) -> Bool
    ) throws -> [String: Any] {
      let deadline = Date(timeIntervalSinceNow: timeout)
      var last: [String: Any] = [:]
      while Date() < deadline {
        last = try status(socket, adapter: adapter)
        if condition(last) { return last }
        usleep(200_000)
      }
      throw TestFailure("training status never got there: \(last)")
    }

    @Test func pushTrainPublishSurviveSIGKILLAndRollBack() throws {
      let directory = try makeTemporaryDirectory()
      defer { try? FileManager.default.removeItem(atPath: directory) }
      // umask 000: pushed data and what is trained from it must stay private all the same.
      var daemon: DaemonProcess? = try DaemonProcess(
        arguments: Self.arguments, directory: directory, launcher: ["sh", "-c", #"umask 000; exec "$0" "$@""#])
      let socket = daemon!.socketPath
      #expect(try curl(socket, "POST", "/v1/adapters", json: #"{"name": "task", "rank": 8, "pruning_rate": 0.3}"#).status == 201)

      // Validation with line numbers; good lines stored, bad ones reported.
      let body = Self.samples(0..<24) + "{\"messages\": []}\nnot json\n"
      let pushed = try curl(socket, "POST", "/v1/adapters/task/samples", data: Data(body.utf8)).json()
      #expect(pushed["accepted"] as? Int == 24)
      let rejected = pushed["rejected"] as? [[String: Any]] ?? []
      #expect(rejected.compactMap { $0["line"] as? Int } == [25, 26])
      let again = try curl(socket, "POST", "/v1/adapters/task/samples", data: Data(Self.samples(0..<24).utf8)).json()
      #expect(again["accepted"] as? Int == 0)
      #expect(again["duplicates"] as? Int == 24)
      #expect(try curl(socket, "POST", "/v1/adapters/nope/samples", data: Data(Self.samples(0..<1).utf8)).status == 404)

      // Chats are answered while training runs.
      let chat = try curl(
        socket, "POST", "/v1/chat/completions",
        json: #"{"model": "task", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4}"#)
      #expect(chat.status == 200)

      let published = try waitFor(socket) { ($0["serving_version"] as? Int ?? 0) >= 1 }
      #expect((published["last_decision"] as? String)?.hasPrefix("published version") == true)
      #expect(published["samples_received"] as? Int == 24)
      #expect(published["samples_held_out"] as? Int == 6)
      let state = directory + "/state"
      for (path, mode) in [
        (state, 0o700), (state + "/journal.sqlite", 0o600), (state + "/training", 0o700), (state + "/training/task", 0o700),
      ] as [(String, mode_t)] {
        var info = stat()
        #expect(stat(path, &info) == 0 && info.st_mode & 0o777 == mode, "\(path): \(String(info.st_mode & 0o777, radix: 8))")
      }

      // Everything trained: the newest version's held-out loss is below the first's.
      let drained = try waitFor(socket) { $0["samples_pending"] as? Int == 0 && $0["state"] as? String == "idle" }
      #expect(drained["samples_trained"] as? Int == 18)
      #expect(drained["replay_epoch"] is Int)
      let versions = (try curl(socket, "GET", "/v1/adapters/task/versions").json()["data"] as? [[String: Any]]) ?? []
      #expect(versions.count >= 2, "\(versions)")
      let losses = versions.compactMap { $0["eval_loss"] as? Double }
      #expect(losses.count == versions.count)
      if let first = losses.first, let last = losses.last { #expect(last < first, "\(losses)") }

      // More data, then SIGKILL while it trains: nothing acknowledged is lost, training resumes.
      let more = try curl(socket, "POST", "/v1/adapters/task/samples", data: Data(Self.samples(24..<48).utf8)).json()
      #expect(more["accepted"] as? Int == 24)
      _ = try waitFor(socket) { ($0["samples_trained"] as? Int ?? 0) > 18 }
      daemon!.signal(SIGKILL)
      _ = daemon!.waitForExit()
      daemon = nil
      let restarted = try DaemonProcess(arguments: Self.arguments, directory: directory)
      defer { restarted.stop() }
      let resumed = try status(restarted.socketPath)
      #expect(resumed["samples_received"] as? Int == 48)
      let done = try waitFor(restarted.socketPath) { $0["samples_pending"] as? Int == 0 && $0["state"] as? String == "idle" }
      #expect(done["samples_trained"] as? Int == 36)
      #expect(restarted.log.contains("training 'task' resumed at step"), "\(restarted.log)")

      // Hyper-parameters change live: a new learning rate rebuilds the trainer and carries on.
      let changed = try curl(
        restarted.socketPath, "POST", "/v1/adapters/task/training", json: #"{"learning_rate": 0.001, "batch_size": 2}"#)
      #expect(changed.status == 200, "\(changed.body)")
      #expect(try curl(restarted.socketPath, "POST", "/v1/adapters/task/training", json: #"{"learning_rate": 7}"#).status == 400)
      let before = try status(restarted.socketPath)["step"] as? Int ?? 0
      #expect(try curl(restarted.socketPath, "POST", "/v1/adapters/task/samples", data: Data(Self.samples(48..<52).utf8)).status == 200)
      let after = try waitFor(restarted.socketPath) {
        ($0["step"] as? Int ?? 0) > before && $0["samples_pending"] as? Int == 0 && $0["state"] as? String == "idle"
      }
      #expect(after["state"] as? String == "idle")
      #expect(abs((after["learning_rate"] as? Double ?? 0) - 0.001) < 2e-4, "\(after)")

      // Roll back to the first version.
      let rolled = try curl(restarted.socketPath, "POST", "/v1/adapters/task/rollback", json: #"{"version": 1}"#)
      #expect(rolled.status == 200, "\(rolled.body)")
      #expect(try rolled.json()["serving_version"] as? Int == 1)
      #expect(try curl(restarted.socketPath, "POST", "/v1/adapters/task/rollback", json: #"{"version": 99}"#).status == 400)
    }

    /// The end-to-end promise: push a small task's data to a fresh adapter, training runs in
    /// the background, a version is published, and the task's held-out accuracy (exact match
    /// of greedy answers on the samples the journal held out) rises from the base model's.
    /// Under both a merged (Q8_0) and an unmerged (`none`) serving of the adapter; the base
    /// model's answers come first, so a KV cache wrongly shared between the base and the
    /// adapter would show here.
    /// Served merged and unmerged; trained with fp32 products, and with bf16 ones where the CPU
    /// has AVX512-BF16.
    static let accuracyCases: [(mergeType: String, computeType: String)] =
      [("q8_0", "f32"), ("none", "f32")] + (cpuHasAVX512BF16 ? [("q8_0", "bf16")] : [])

    @Test(arguments: accuracyCases)
    func heldOutAccuracyRisesAfterAPush(mergeType: String, computeType: String) throws {
      let daemon = try DaemonProcess(
        arguments: Self.arguments + [
          "--set", "training.held_out_every=5", "--set", "adapters.merge_type=\(mergeType)",
          "--set", "training.compute_type=\(computeType)",
        ])
      defer { daemon.stop() }
      let socket = daemon.socketPath
      #expect(try curl(socket, "POST", "/v1/adapters", json: #"{"name": "tagger", "rank": 8, "pruning_rate": 0.3}"#).status == 201)
      let words = [
        "apple", "river", "stone", "cloud", "tiger", "piano", "candle", "forest", "window", "garden", "rocket",
        "bridge", "mirror", "ocean", "violin", "desert", "engine", "castle", "lemon", "planet", "jacket", "pencil",
        "island", "dragon", "anchor", "bottle", "camera", "helmet", "ladder", "magnet", "needle", "orange",
        "parrot", "saddle", "tunnel", "velvet", "wallet", "yogurt", "zipper", "basket",
      ]
      // A made-up convention the base model cannot guess: the answer is the word in << >>.
      let lines = words.map { word in
        #"{"id": "\#(word)", "messages": [{"role": "user", "content": "Tag the word: \#(word)"}, {"role": "assistant", "content": "<<\#(word)>>"}]}"#
      }
      let pushed = try curl(socket, "POST", "/v1/adapters/tagger/samples", data: Data(lines.joined(separator: "\n").utf8))
      #expect(try pushed.json()["accepted"] as? Int == 40)
      // Every fifth sample is held out: the words the adapter never trains on.
      let heldOut = words.enumerated().filter { ($0.offset + 1) % 5 == 0 }.map(\.element)
      func accuracy(_ model: String) throws -> Int {
        try heldOut.filter { word in
          let reply = try curl(
            socket, "POST", "/v1/chat/completions",
            json: #"{"model": "\#(model)", "messages": [{"role": "user", "content": "Tag the word: \#(word)"}], "max_tokens": 12, "temperature": 0}"#)
          let choices = try reply.json()["choices"] as? [[String: Any]]
          let text = (choices?.first?["message"] as? [String: Any])?["content"] as? String ?? ""
          return text.trimmingCharacters(in: .whitespacesAndNewlines) == "<<\(word)>>"
        }.count
      }
      let base = try accuracy("SmolLM2-135M-Instruct.Q4_1")
      let done = try waitFor(socket, adapter: "tagger", timeout: 300) {
        $0["samples_pending"] as? Int == 0 && $0["state"] as? String == "idle" && ($0["serving_version"] as? Int ?? 0) >= 1
      }
      #expect(done["samples_held_out"] as? Int == heldOut.count)
      let adapted = try accuracy("tagger")
      #expect(adapted >= 6 && adapted > base, "held-out exact match: base \(base)/8, adapter \(adapted)/8")
    }

    /// Pushes, adapter swaps and chats at the same time, from separate clients: every request
    /// gets a proper answer and the daemon is healthy afterwards.
    /// An idle trainer whose state is checkpointed lets its buffers go, and the daemon gives the
    /// pages back to the system (malloc_trim): the resident size falls from its training peak.
    @Test func anIdleTrainerGivesItsMemoryBack() throws {
      let daemon = try DaemonProcess(arguments: Self.arguments)
      defer { daemon.stop() }
      let socket = daemon.socketPath
      #expect(try curl(socket, "POST", "/v1/adapters", json: #"{"name": "task", "rank": 16}"#).status == 201)
      let chat = #"{"model": "task", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2}"#
      #expect(try curl(socket, "POST", "/v1/chat/completions", json: chat).status == 200)
      let before = AdapterCatalog.residentBytes(daemon.child.pid)
      let pushed = try curl(socket, "POST", "/v1/adapters/task/samples", data: Data(Self.samples(0..<12).utf8)).json()
      #expect(pushed["accepted"] as? Int == 12)
      var peak = before
      let deadline = Date(timeIntervalSinceNow: 180)
      var done = false
      while Date() < deadline && !done {
        peak = max(peak, AdapterCatalog.residentBytes(daemon.child.pid))
        let s = try status(socket)
        done = s["samples_pending"] as? Int == 0 && s["state"] as? String == "idle" && (s["step"] as? Int ?? 0) > 0
        usleep(50_000)
      }
      #expect(done, "training never finished")
      usleep(1_000_000)  // the release happens after the step's checkpoint; the trim just after
      let after = AdapterCatalog.residentBytes(daemon.child.pid)
      #expect(peak - before > 50_000_000, "training grew \(before) -> \(peak)")
      #expect(peak - after > (peak - before) / 2, "\(before) -> peak \(peak) -> idle \(after)")
      // The next push rebuilds the trainer from its checkpoint and trains on.
      let step = try status(socket)["step"] as? Int ?? 0
      #expect(try curl(socket, "POST", "/v1/adapters/task/samples", data: Data(Self.samples(12..<16).utf8)).status == 200)
      _ = try waitFor(socket) { ($0["step"] as? Int ?? 0) > step && $0["samples_pending"] as? Int == 0 }
    }

    /// Issue 18 item 10: under chat load that never lets up (three clients on two generation
    /// slots, so a request always waits), the status says the trainer waits for serving and how
    /// many samples are pending, and `training.min_compute_share` still gets steps taken.
    @Test func trainingProgressesUnderSustainedChatLoad() throws {
      let daemon = try DaemonProcess(
        arguments: Self.arguments + [
          "--set", "training.min_compute_share=0.3", "--set", "limits.max_concurrent_generations=2",
        ])
      defer { daemon.stop() }
      let socket = daemon.socketPath
      #expect(try curl(socket, "POST", "/v1/adapters", json: #"{"name": "task", "rank": 4}"#).status == 201)
      let done = FailureLog()  // an entry once the test no longer needs the load
      let failures = FailureLog()
      let group = DispatchGroup()
      for client in 0..<3 {
        group.enter()
        Thread {
          while done.entries.isEmpty {
            let body = #"{"messages": [{"role": "user", "content": "Tell a story \#(client)."}], "max_tokens": 48, "ignore_eos": true}"#
            do {
              let status = try curl(socket, "POST", "/v1/chat/completions", json: body).status
              if status != 200 { failures.add("chat: status \(status)") }
            } catch {
              failures.add("chat: \(error)")
            }
          }
          group.leave()
        }.start()
      }
      defer {
        done.add("done")
        _ = group.wait(timeout: .now() + 120)
      }
      try waitForMetric(daemon, "droplorad_running_generations 2.0")
      #expect(try curl(socket, "POST", "/v1/adapters/task/samples", data: Data(Self.samples(0..<16).utf8)).status == 200)
      var sawWaiting = false
      let trained = try waitFor(socket, timeout: 240) { status in
        if let reason = status["reason"] as? String, status["state"] as? String == "waiting",
          reason.hasPrefix("waiting for serving: "), status["samples_pending"] as? Int ?? 0 > 0
        {
          sawWaiting = true
        }
        return status["step"] as? Int ?? 0 >= 2
      }
      #expect(sawWaiting, "the status never said it was waiting for serving: \(trained)")
      #expect(failures.entries.isEmpty, "\(failures.entries)")
    }

    @Test func pushesSwapsAndChatsConcurrently() throws {
      let daemon = try DaemonProcess(arguments: Self.arguments)
      defer { daemon.stop() }
      let socket = daemon.socketPath
      #expect(try curl(socket, "POST", "/v1/adapters", json: #"{"name": "task", "rank": 4}"#).status == 201)
      #expect(try curl(socket, "POST", "/v1/adapters", json: #"{"name": "other", "rank": 4}"#).status == 201)
      let failures = FailureLog()
      let group = DispatchGroup()
      func worker(_ body: @escaping @Sendable (Int) throws -> Int) {
        group.enter()
        Thread {
          for i in 0..<8 {
            do {
              let status = try body(i)
              if !(200..<300).contains(status) { failures.add("request \(i): status \(status)") }
            } catch {
              failures.add("request \(i): \(error)")
            }
          }
          group.leave()
        }.start()
      }
      worker { i in
        try curl(socket, "POST", "/v1/adapters/task/samples", data: Data(Self.samples((i * 4)..<(i * 4 + 4)).utf8)).status
      }
      worker { i in
        let model = ["task", "other", "SmolLM2-135M-Instruct.Q4_1"][i % 3]
        return try curl(
          socket, "POST", "/v1/chat/completions",
          json: #"{"model": "\#(model)", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 6}"#
        ).status
      }
      worker { i in
        i % 2 == 0
          ? try curl(socket, "POST", "/v1/adapters/\(i % 4 == 0 ? "task" : "other")/default").status
          : try curl(socket, "POST", "/v1/chat/completions", json: #"{"messages": [{"role": "user", "content": "Yo"}], "max_tokens": 4}"#).status
      }
      #expect(group.wait(timeout: .now() + 300) == .success)
      #expect(failures.entries.isEmpty, "\(failures.entries)")
      let done = try waitFor(socket) { $0["samples_pending"] as? Int == 0 && $0["state"] as? String == "idle" }
      #expect(done["samples_received"] as? Int == 32)
      #expect(try curl(socket, "GET", "/health").status == 200)
    }

    /// SIGKILL at random moments during pushes and training, 20 times: after every restart each
    /// acknowledged sample is in the journal, the published version serves, and training resumes.
    @Test func twentySIGKILLsLoseNothingAcknowledged() throws {
      let directory = try makeTemporaryDirectory()
      defer { try? FileManager.default.removeItem(atPath: directory) }
      var generator = SystemRandomNumberGenerator()
      var acknowledged = 0
      var next = 0
      var created = false
      for round in 0..<20 {
        let daemon = try DaemonProcess(arguments: Self.arguments, directory: directory)
        let socket = daemon.socketPath
        if !created {
          #expect(try curl(socket, "POST", "/v1/adapters", json: #"{"name": "task", "rank": 4}"#).status == 201)
          created = true
        }
        let state = try status(socket)
        #expect(state["samples_received"] as? Int ?? -1 >= acknowledged, "round \(round): lost samples: \(state)")
        let serving = state["serving_version"] as? Int ?? 0
        if serving > 0 {
          let versions = (try curl(socket, "GET", "/v1/adapters/task/versions").json()["data"] as? [[String: Any]]) ?? []
          #expect(versions.contains { $0["version"] as? Int == serving && $0["serving"] as? Bool == true })
          let chat = try curl(
            socket, "POST", "/v1/chat/completions",
            json: #"{"model": "task", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2}"#)
          #expect(chat.status == 200)
        }
        // A push in flight, then the kill at a random moment (during the push or the training).
        let file = directory + "/push-\(round).jsonl"
        try Self.samples(next..<(next + 4)).write(toFile: file, atomically: true, encoding: .utf8)
        let answer = directory + "/answer-\(round)"
        let push = try Child(
          ["curl", "-s", "--unix-socket", socket, "-o", answer, "-w", "%{http_code}", "--data-binary", "@" + file,
           "http://localhost/v1/adapters/task/samples"], stdout: answer + ".status")
        usleep(UInt32.random(in: 0...1_500_000, using: &generator))
        daemon.signal(SIGKILL)
        _ = daemon.waitForExit()
        _ = push.wait()
        let code = (try? String(contentsOfFile: answer + ".status", encoding: .utf8)) ?? ""
        if code == "200", let body = FileManager.default.contents(atPath: answer),
          let object = try? JSONSerialization.jsonObject(with: body) as? [String: Any]
        {
          acknowledged += (object["accepted"] as? Int ?? 0) + (object["duplicates"] as? Int ?? 0)
        }
        next += 4
      }
      // A last run drains everything that was stored.
      let daemon = try DaemonProcess(arguments: Self.arguments, directory: directory)
      defer { daemon.stop() }
      let done = try waitFor(daemon.socketPath, timeout: 600) { $0["samples_pending"] as? Int == 0 && $0["state"] as? String == "idle" }
      let received = done["samples_received"] as? Int ?? -1
      #expect(received >= acknowledged)
      #expect(done["samples_trained"] as? Int == received - (done["samples_held_out"] as? Int ?? 0))
    }
  }
}

/// Failures collected from worker threads.
final class FailureLog: @unchecked Sendable {
  // unchecked: `list` is guarded by `lock`.
  private let lock = NSLock()
  private var list: [String] = []
  func add(_ entry: String) { lock.withLock { list.append(entry) } }
  var entries: [String] { lock.withLock { list } }
}
