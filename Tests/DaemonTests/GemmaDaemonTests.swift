// Gemma 3 270M end to end through the daemon: its file has no chat template (the architecture
// picks Gemma's turns), chat equals the offline CLI on the same prompt ids (up to a near tie), pushed samples
// train a step and publish a version that is then served, and the PEFT export names its
// tensors as PEFT does for Gemma3ForCausalLM (base_model.model.model.layers.N.self_attn.q_proj…).
import Foundation
import Testing

#if canImport(Glibc)
  import Glibc
#endif

extension DaemonTests {
  @Suite(.enabled(if: FileManager.default.fileExists(atPath: Paths.gemma3), "needs scripts/fetch-gemma3.sh"))
  struct Gemma {
    static let arguments = [
      "--set", "training.batch_size=2", "--set", "training.publish_every=1", "--set", "training.max_sequence_length=64",
      "--set", "training.held_out_every=4",
    ]

    func chat(_ socket: String, _ content: String, model: String? = nil, maxTokens: Int) throws -> (
      text: String, finish: String, promptTokens: Int, logprobs: [[String: Any]]
    ) {
      var object: [String: Any] = [
        "messages": [["role": "user", "content": content]], "max_tokens": maxTokens, "temperature": 0, "logprobs": true,
        "top_logprobs": 5,
      ]
      if let model { object["model"] = model }
      let reply = try curl(
        socket, "POST", "/v1/chat/completions",
        json: String(decoding: try JSONSerialization.data(withJSONObject: object), as: UTF8.self))
      #expect(reply.status == 200, "\(reply.body)")
      let choice = try #require((try reply.json()["choices"] as? [[String: Any]])?.first)
      let text = try #require((choice["message"] as? [String: Any])?["content"] as? String)
      let usage = try reply.json()["usage"] as? [String: Any]
      let logprobs = (choice["logprobs"] as? [String: Any])?["content"] as? [[String: Any]] ?? []
      return (text, choice["finish_reason"] as? String ?? "", usage?["prompt_tokens"] as? Int ?? -1, logprobs)
    }

    /// The daemon's greedy tokens (its batched serving step) against the CLI's text (one
    /// sequence alone): equal token by token until they part, and they may part only at a near
    /// tie, where the CLI's token is among the daemon's alternatives within `nearTie` nats of the
    /// daemon's pick. The two paths round differently (tiles vs matrix-vector kernels, chunked
    /// prefill), and this base model's continuation has ties of a few hundredths of a nat.
    func expectSameGreedyText(daemon tokens: [[String: Any]], offline text: String, nearTie: Double = 0.25) {
      let expected = Array(text.utf8)
      var offset = 0
      for (index, token) in tokens.enumerated() {
        let bytes = (token["bytes"] as? [Int] ?? []).map(UInt8.init)
        if expected[offset...].starts(with: bytes) {
          offset += bytes.count
          continue
        }
        let chosen = token["logprob"] as? Double ?? 0
        let alternatives = token["top_logprobs"] as? [[String: Any]] ?? []
        let offline = alternatives.first { alternative in
          let bytes = (alternative["bytes"] as? [Int] ?? []).map(UInt8.init)
          return !bytes.isEmpty && expected[offset...].starts(with: bytes)
        }
        let margin = chosen - (offline?["logprob"] as? Double ?? -.infinity)
        #expect(
          margin <= nearTie,
          "token \(index): the daemon chose \(token["token"] ?? "?") where the CLI's text goes on \(String(decoding: expected[offset...].prefix(16), as: UTF8.self)) (margin \(margin) nats)")
        return
      }
      #expect(offset == expected.count, "the daemon's text is a prefix of the CLI's")
    }

    @Test func chatTrainServeAndExportPEFT() throws {
      let directory = try makeTemporaryDirectory()
      defer { try? FileManager.default.removeItem(atPath: directory) }
      let daemon = try DaemonProcess(arguments: Self.arguments, directory: directory, model: Paths.gemma3)
      defer { daemon.stop() }
      let socket = daemon.socketPath

      // Chat: Gemma's turns (the 270M base model then rambles on, as llama.cpp's greedy run
      // does; <end_of_turn> ending a reply is checked in TokenizerBehaviourTests and
      // GeneratorTests), and the offline CLI's greedy text up to a near tie.
      let question = "What is the capital of France?"
      let base = try chat(socket, question, maxTokens: 24)
      #expect(base.finish == "length" || base.finish == "stop")
      #expect(!base.text.isEmpty && !base.text.contains("<end_of_turn>") && !base.text.contains("<start_of_turn>"))
      let offline = try runTool([
        Paths.cli, "generate", "--model", Paths.gemma3, "--temperature", "0", "--max-tokens", "24", "--json", question,
      ])
      #expect(offline.status == 0, "\(offline)")
      let generated = try #require(try JSONSerialization.jsonObject(with: Data(offline.stdout.utf8)) as? [String: Any])
      expectSameGreedyText(daemon: base.logprobs, offline: try #require(generated["text"] as? String))
      // <bos><start_of_turn>user\n … <end_of_turn>\n<start_of_turn>model\n (llama.cpp's ids for
      // the rendered Gemma 3 template; the whole list is checked in TokenizerBehaviourTests).
      let promptTokens = try #require(generated["prompt_tokens"] as? [Int])
      #expect(promptTokens.prefix(4) == [2, 105, 2364, 107] && promptTokens.suffix(5) == [106, 107, 105, 4368, 107], "\(promptTokens)")
      #expect(base.promptTokens == promptTokens.count)

      // Push, train, publish, serve the adapter.
      #expect(try curl(socket, "POST", "/v1/adapters", json: #"{"name": "task", "rank": 4, "pruning_rate": 0.3}"#).status == 201)
      let lines = (0..<8).map { i in
        #"{"id": "s\#(i)", "messages": [{"role": "user", "content": "Code for zorblat \#(i)?"}, {"role": "assistant", "content": "QX-\#(i * 7)"}]}"#
      }
      let pushed = try curl(socket, "POST", "/v1/adapters/task/samples", data: Data(lines.joined(separator: "\n").utf8))
      #expect(try pushed.json()["accepted"] as? Int == 8)
      let deadline = Date(timeIntervalSinceNow: 600)
      var status: [String: Any] = [:]
      while Date() < deadline {
        status = try curl(socket, "GET", "/v1/adapters/task/training").json()
        if (status["serving_version"] as? Int ?? 0) >= 1 { break }
        usleep(500_000)
      }
      #expect((status["serving_version"] as? Int ?? 0) >= 1, "\(status)")
      #expect((status["step"] as? Int ?? 0) >= 1)
      let served = try chat(socket, "Code for zorblat 3?", model: "task", maxTokens: 8)
      #expect(!served.text.isEmpty)

      // PEFT export: Gemma3ForCausalLM's module path and projection names.
      let out = directory + "/export"
      let export = try runTool([
        Paths.cli, "training", "export", "--adapter", "task", "--state-directory", directory + "/state", "--out", out,
        "--model", Paths.gemma3, "--base-model", "google/gemma-3-270m-it",
      ])
      #expect(export.status == 0, "\(export)")
      let version = try #require(
        try FileManager.default.contentsOfDirectory(atPath: out + "/versions").filter { Int($0) != nil }.sorted().last)
      let names = try safetensorsNames(out + "/versions/\(version)/adapter_model.safetensors")
      #expect(names.contains("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"), "\(names.sorted().prefix(8))")
      #expect(names.contains("base_model.model.model.layers.17.self_attn.v_proj.lora_B.weight"))
      #expect(names.allSatisfy { $0.hasPrefix("base_model.model.model.layers.") })
    }

    /// Tensor names in a safetensors header (8-byte little-endian length, then JSON).
    func safetensorsNames(_ path: String) throws -> Set<String> {
      let data = try Data(contentsOf: URL(fileURLWithPath: path))
      let length = data.prefix(8).enumerated().reduce(0) { $0 | (Int($1.element) << (8 * $1.offset)) }
      let header = try #require(try JSONSerialization.jsonObject(with: data.subdata(in: 8..<(8 + length))) as? [String: Any])
      return Set(header.keys.filter { $0 != "__metadata__" })
    }
  }
}
