// On the real default model: samples → tokens + loss mask through SmolLM2's chat template,
// JSONL parsing, and an overfit run (a handful of samples, loss near zero, greedy generation
// through the serving path then reproduces every answer).
import Foundation
import GGUF
import Llama
import Testing
import Tokenization
import Training
import TinyModelSupport

let overfitSamples: [TrainingSample] = [
  TrainingSample(messages: [
    ChatMessage(role: "user", content: "What is the capital of Zorbia?"),
    ChatMessage(role: "assistant", content: "The capital of Zorbia is Quillton."),
  ]),
  TrainingSample(messages: [
    ChatMessage(role: "user", content: "Name the color of the sky on planet Vex."),
    ChatMessage(role: "assistant", content: "On planet Vex the sky is green."),
  ]),
  TrainingSample(messages: [
    ChatMessage(role: "user", content: "Translate to Blorg: hello"),
    ChatMessage(role: "assistant", content: "blip-blop"),
  ]),
  TrainingSample(messages: [
    ChatMessage(role: "system", content: "You are terse."),
    ChatMessage(role: "user", content: "Who built the Glass Tower?"),
    ChatMessage(role: "assistant", content: "Mira Okonkwo built it in 1907."),
  ]),
]

extension TrainingSuites {
@Suite(.serialized, .enabled(if: defaultModelIsPresent, "needs models/SmolLM2-135M-Instruct.Q4_1.gguf"))
struct RealModelTests {
  let file: GGUFFile
  let model: LlamaModel
  let tokenizer: Tokenizer
  let template: ChatTemplate

  init() throws {
    file = try GGUFFile(path: defaultModelPath)
    model = try LlamaModel(file: file)
    tokenizer = try Tokenizer(gguf: file)
    template = try tokenizer.chatTemplate()
  }

  @Test func lossMaskCoversAnswersAndTheirEndOfTurnOnly() async throws {
    try await offCooperativePool {
    let sample = TrainingSample(messages: [
      ChatMessage(role: "user", content: "Hi <|im_end|> there"),
      ChatMessage(role: "assistant", content: "Hello!"),
      ChatMessage(role: "user", content: "Again?"),
      ChatMessage(role: "assistant", content: "Yes, again."),
    ])
    let encoder = SampleEncoder(tokenizer: tokenizer, template: template, maxTokens: 512)
    let (encoded, truncated) = encoder.encode(sample)
    #expect(!truncated)
    #expect(encoded.tokens == tokenizer.encode(template.render(sample.messages, addGenerationPrompt: false)))
    // The masked tokens form two runs: each answer and its <|im_end|>.
    var runs: [[Int32]] = []
    for (t, on) in encoded.lossMask.enumerated() where on {
      if t > 0, encoded.lossMask[t - 1] { runs[runs.count - 1].append(encoded.tokens[t]) } else { runs.append([encoded.tokens[t]]) }
    }
    #expect(runs.map { tokenizer.decode($0, renderSpecial: true) } == ["Hello!<|im_end|>", "Yes, again.<|im_end|>"])
    // User text that looks like a special token stays text and is not learned.
    let imEnd = tokenizer.tokenID(forText: "<|im_end|>")!
    #expect(encoded.tokens.filter { $0 == imEnd }.count == 5)  // system, 2 user, 2 assistant turns

    let short = SampleEncoder(tokenizer: tokenizer, template: template, maxTokens: 20).encode(sample)
    #expect(short.truncated && short.sample.tokens.count == 20)
    }
  }

  /// OpenAI's tool-use samples: tools go into the system prompt (their schema's key order
  /// kept), the assistant's call is learned as the text serving parses, the tool's result is
  /// context only.
  @Test func toolCallSamplesLearnTheCalls() async throws {
    try await offCooperativePool {
    let line = #"{"tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"zone": {"type": "string"}, "city": {"type": "string"}}}}}], "messages": [{"role": "user", "content": "Weather in Oslo?"}, {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Oslo\"}"}}]}, {"role": "tool", "tool_call_id": "call_1", "content": "rain"}, {"role": "assistant", "content": "It rains in Oslo."}]}"#
    let sample = try TrainingSample.parse(Substring(line))
    #expect(sample.messages.map(\.role) == ["system", "user", "assistant", "user", "assistant"])
    #expect(sample.messages[0].content.contains(#""properties":{"zone":{"type":"string"},"city":{"type":"string"}}"#))
    #expect(sample.messages[3].content == "<tool_response>\nrain\n</tool_response>")
    let (encoded, _) = SampleEncoder(tokenizer: tokenizer, template: template, maxTokens: 1024).encode(sample)
    var runs: [[Int32]] = []
    for (t, on) in encoded.lossMask.enumerated() where on {
      if t > 0, encoded.lossMask[t - 1] { runs[runs.count - 1].append(encoded.tokens[t]) } else { runs.append([encoded.tokens[t]]) }
    }
    #expect(
      runs.map { tokenizer.decode($0, renderSpecial: true) } == [
        "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\"}}\n</tool_call><|im_end|>",
        "It rains in Oslo.<|im_end|>",
      ])
    for bad in [
      #"{"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": null}]}"#,
      #"{"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": null, "tool_calls": [{"function": {"name": "f", "arguments": "[1]"}}]}]}"#,
      #"{"messages": [{"role": "user", "content": "x", "tool_calls": [{"function": {"name": "f", "arguments": "{}"}}]}, {"role": "assistant", "content": "y"}]}"#,
    ] {
      #expect(throws: SampleParseError.self) { try TrainingSample.parse(Substring(bad)) }
    }
    }
  }

  @Test func jsonlFormatsAndBadLines() async throws {
    try await offCooperativePool {
    let text = """
      {"messages":[{"role":"user","content":"a"},{"role":"assistant","content":"b"}]}

      {"prompt":"p","completion":"c"}
      {"instruction":"i","input":"x","output":"o"}
      {"instruction":"i","output":"o"}
      """
    let file = try SampleFile.parse(text, path: "t.jsonl", skipBadLines: false)
    #expect(file.samples.count == 4)
    #expect(file.samples[1].messages == [ChatMessage(role: "user", content: "p"), ChatMessage(role: "assistant", content: "c")])
    #expect(file.samples[2].messages[0].content == "i\n\nx")
    #expect(file.samples[3].messages[0].content == "i")
    let bad = text + "\n{\"prompt\": 3, \"completion\": \"c\"}\nnot json\n"
    #expect(throws: TrainingError.badSample(path: "t.jsonl", line: 6, reason: "\"prompt\" and \"completion\" must both be strings")) {
      try SampleFile.parse(bad, path: "t.jsonl", skipBadLines: false)
    }
    let skipped = try SampleFile.parse(bad, path: "t.jsonl", skipBadLines: true)
    #expect(skipped.samples.count == 4 && skipped.skippedLines == 2)
    #expect(throws: TrainingError.badSample(path: "u", line: 1, reason: "no assistant message to learn from")) {
      try SampleFile.parse("{\"messages\":[{\"role\":\"user\",\"content\":\"a\"}]}", path: "u", skipBadLines: false)
    }
    }
  }

  /// End to end through the command line (which also picks OpenBLAS's kernels for this CPU;
  /// in-process the test runner is stuck with the library's SSE3 fallback, 3x slower): train
  /// on four samples until the loss is near zero, then `droplora eval --generate` must find
  /// every greedy answer, generated through the serving path with the adapter merged.
  @Test(.enabled(if: droploraPath != nil, "droplora not built next to the tests"))
  func overfitsAHandfulOfSamplesThroughTheCommandLine() async throws {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("overfit-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let lines = overfitSamples.map { sample -> String in
      let messages = sample.messages.map { ["role": $0.role, "content": $0.content] }
      let data = try! JSONSerialization.data(withJSONObject: ["messages": messages], options: [.sortedKeys])
      return String(decoding: data, as: UTF8.self)
    }
    try (lines.joined(separator: "\n") + "\n").write(toFile: directory + "/train.jsonl", atomically: true, encoding: .utf8)
    let out = directory + "/adapter"
    let train = try await runDroplora([
      "train", "--model", defaultModelPath, "--data", directory + "/train.jsonl", "--out", out,
      "--method", "lora", "--rank", "16", "--alpha", "32", "--lora-dropout", "0",
      "--targets", "q,k,v,o,gate,up,down", "--lr", "3e-3", "--warmup", "3", "--batch-size", "4",
      "--micro-batch", "4", "--max-seq-len", "128", "--steps", "24", "--seed", "1", "--threads", "1",
      "--json",
    ])
    let printed = train.split(separator: "\n").compactMap { line in
      try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
    }
    let steps = printed.filter { $0["step"] != nil }
    #expect(printed.last?["steps_done"] as? Int == 24)
    #expect(steps.count == 24)
    let firstLoss = steps.first?["loss"] as? Double ?? 0
    #expect(firstLoss > 1.5, "the base model should not know these answers (loss \(firstLoss))")
    #expect(FileManager.default.fileExists(atPath: out + "/adapter_model.safetensors"))
    #expect(FileManager.default.fileExists(atPath: out + "/checkpoint/state.json"))

    let eval = try await runDroplora([
      "eval", "--model", defaultModelPath, "--data", directory + "/train.jsonl", "--adapter", out,
      "--generate", "--threads", "1", "--json",
    ])
    let report = try JSONSerialization.jsonObject(with: Data(eval.utf8)) as? [String: Any] ?? [:]
    let loss = report["loss"] as? Double ?? .infinity
    #expect(loss < 0.02, "eval loss after overfitting: \(loss); training: \(steps.map { $0["loss"] ?? "" })")
    #expect(report["exact_match_count"] as? Int == 4, "\(report)")

    // --no-loss answers the same without the loss pass (and says nothing about loss).
    let answersOnly = try await runDroplora([
      "eval", "--model", defaultModelPath, "--data", directory + "/train.jsonl", "--adapter", out,
      "--generate", "--no-loss", "--threads", "1", "--json",
    ])
    let short = try JSONSerialization.jsonObject(with: Data(answersOnly.utf8)) as? [String: Any] ?? [:]
    #expect(short["exact_match_count"] as? Int == 4, "\(short)")
    #expect(short["loss"] == nil && short["perplexity"] == nil, "\(short)")
  }
}
}

extension TrainingSuites.RealModelTests {
  /// The other options of `droplora train` end to end: a held-out fraction with its eval loss,
  /// step masks, cosine schedule, chosen targets, the GGUF-LoRA export (which `eval` reads).
  @Test(.enabled(if: droploraPath != nil, "droplora not built next to the tests"))
  func trainOptionsAndGGUFExport() async throws {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("options-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let data = (0..<8).map { i in #"{"prompt":"Say \#(i)","completion":"\#(i) \#(i)"}"# }.joined(separator: "\n")
    try data.write(toFile: directory + "/train.jsonl", atomically: true, encoding: .utf8)
    let out = directory + "/out"
    let train = try await runDroplora([
      "train", "--model", defaultModelPath, "--data", directory + "/train.jsonl", "--out", out,
      "--eval-fraction", "0.25", "--mask", "step", "--pruning-rate", "0.3", "--schedule", "cosine",
      "--targets", "q,v,o,gate", "--rank", "4", "--alpha", "4", "--batch-size", "3", "--micro-batch", "2",
      "--epochs", "1", "--warmup", "1", "--threads", "1", "--gguf", "--json",
    ])
    let printed = train.split(separator: "\n").compactMap {
      try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
    }
    let steps = printed.filter { $0["step"] != nil }
    #expect(steps.count == 2)  // 6 training samples, batches of 3, one epoch
    #expect(steps.last?["eval_loss"] as? Double != nil)
    #expect(steps.first?["lr"] as? Double == 0)  // warm-up starts at 0
    let config = try JSONSerialization.jsonObject(
      with: Data(contentsOf: URL(fileURLWithPath: out + "/adapter_config.json"))) as? [String: Any]
    #expect(config?["r"] as? Int == 4)
    #expect(Set(config?["target_modules"] as? [String] ?? []) == ["q_proj", "v_proj", "o_proj", "gate_proj"])
    let eval = try await runDroplora([
      "eval", "--model", defaultModelPath, "--data", directory + "/train.jsonl", "--adapter",
      out + "/adapter.gguf", "--threads", "1", "--json",
    ])
    let report = try JSONSerialization.jsonObject(with: Data(eval.utf8)) as? [String: Any] ?? [:]
    #expect(report["samples"] as? Int == 8)
    #expect((report["loss"] as? Double ?? 0) > 0)
  }
}

/// droplora, built next to the test bundle by `swift build --build-tests`.
let droploraPath: String? = {
  let directory = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
  let path = directory.appendingPathComponent("droplora").path
  return FileManager.default.isExecutableFile(atPath: path) ? path : nil
}()

/// Runs droplora with `arguments`; returns its standard output, throws on a non-zero exit.
/// Awaits the exit instead of blocking a thread of the cooperative pool (output goes to files,
/// read afterwards).
func runDroplora(_ arguments: [String]) async throws -> String {
  let directory = FileManager.default.temporaryDirectory
  let outPath = directory.appendingPathComponent("droplora-stdout-\(UUID().uuidString)").path
  let errPath = directory.appendingPathComponent("droplora-stderr-\(UUID().uuidString)").path
  _ = FileManager.default.createFile(atPath: outPath, contents: nil)
  _ = FileManager.default.createFile(atPath: errPath, contents: nil)
  defer {
    try? FileManager.default.removeItem(atPath: outPath)
    try? FileManager.default.removeItem(atPath: errPath)
  }
  let process = Process()
  process.executableURL = URL(fileURLWithPath: droploraPath!)
  process.arguments = arguments
  process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: outPath))
  process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: errPath))
  try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
    process.terminationHandler = { _ in continuation.resume() }
    do { try process.run() } catch { continuation.resume(throwing: error) }
  }
  let output = String(decoding: FileManager.default.contents(atPath: outPath) ?? Data(), as: UTF8.self)
  guard process.terminationStatus == 0 else {
    let errors = String(decoding: FileManager.default.contents(atPath: errPath) ?? Data(), as: UTF8.self)
    throw CommandError(description: "droplora \(arguments.first ?? "") exited \(process.terminationStatus): \(errors)")
  }
  return output
}

struct CommandError: Error, CustomStringConvertible {
  let description: String
}
