// Issue 18, defect 11: one line of a push that is not UTF-8 used to reject the whole push
// ("the body must be UTF-8 JSON lines"); now that line alone is rejected, by its number, and
// the others are stored.
import Foundation
import Testing

extension DaemonTests {
  @Suite struct PushEncoding {
    @Test func aLineThatIsNotUTF8IsRejectedAlone() throws {
      let daemon = try DaemonProcess()
      defer { daemon.stop() }
      let socket = daemon.socketPath
      #expect(try curl(socket, "POST", "/v1/adapters", json: #"{"name": "u", "rank": 2}"#).status == 201)
      #expect(try curl(socket, "POST", "/v1/adapters/u/training", json: #"{"action": "pause"}"#).status == 200)
      let good = StreamedTraining.samples(0..<3).split(separator: "\n").map { Array($0.utf8) }
      // A Latin-1 "é" (0xE9) inside an otherwise valid sample, and a lone continuation byte.
      let latin1 = Array(#"{"messages": [{"role": "user", "content": "caf"#.utf8) + [0xE9]
        + Array(#""}, {"role": "assistant", "content": "x"}]}"#.utf8)
      let lines: [[UInt8]] = [good[0], latin1, good[1], [0x80], good[2]]
      var body: [UInt8] = []
      for line in lines { body += line + Array("\r\n".utf8) }
      let reply = try curl(socket, "POST", "/v1/adapters/u/samples", data: Data(body))
      #expect(reply.status == 200, "\(reply.body)")
      let pushed = try reply.json()
      #expect(pushed["accepted"] as? Int == 3, "\(pushed)")
      let rejected = pushed["rejected"] as? [[String: Any]] ?? []
      #expect(rejected.compactMap { $0["line"] as? Int } == [2, 4], "\(rejected)")
      #expect(rejected.allSatisfy { ($0["reason"] as? String) == "not valid UTF-8" }, "\(rejected)")
    }

    /// The same file through `droplora push`: the client sends the file's bytes unchanged (it
    /// once decoded them, turning the bad byte into U+FFFD, which the daemon then accepted), so
    /// the daemon rejects exactly lines 2 and 4 and the client names them by file and line.
    @Test func droploraPushSendsTheFilesBytes() throws {
      let daemon = try DaemonProcess()
      defer { daemon.stop() }
      let socket = daemon.socketPath
      #expect(try curl(socket, "POST", "/v1/adapters", json: #"{"name": "u", "rank": 2}"#).status == 201)
      #expect(try curl(socket, "POST", "/v1/adapters/u/training", json: #"{"action": "pause"}"#).status == 200)
      let good = StreamedTraining.samples(0..<3).split(separator: "\n").map { Array($0.utf8) }
      let latin1 = Array(#"{"messages": [{"role": "user", "content": "caf"#.utf8) + [0xE9]
        + Array(#""}, {"role": "assistant", "content": "x"}]}"#.utf8)
      var body: [UInt8] = []
      for line in [good[0], latin1, good[1], [0x80], good[2]] { body += line + [0x0A] }
      let file = daemon.directory + "/mixed.jsonl"
      try Data(body).write(to: URL(fileURLWithPath: file))
      let run = try runTool([Paths.cli, "push", "--socket", socket, "--adapter", "u", file])
      #expect(run.status == 1, "\(run)")
      #expect(run.stdout == "3 accepted, 0 already in the journal, 2 rejected\n", "\(run)")
      #expect(run.stderr.contains("mixed.jsonl:2: not valid UTF-8"), "\(run)")
      #expect(run.stderr.contains("mixed.jsonl:4: not valid UTF-8"), "\(run)")
    }
  }
}
