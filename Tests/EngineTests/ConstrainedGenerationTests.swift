// Constrained decoding on the real default model: sampled generations (temperature 1 through
// the whole sampler chain) under a JSON Schema end by themselves with text that Python's
// jsonschema accepts, a GBNF grammar is followed exactly, and greedy decoding under a grammar
// picks the best allowed token.
import Foundation
import Grammar
import Testing
import Tokenization

import Engine

@Suite(
  .enabled(if: defaultModelIsPresent, "needs models/SmolLM2-135M-Instruct.Q4_1.gguf (scripts/fetch-model.sh)"),
  .serialized)
struct ConstrainedGenerationTests {
  let model = Loaded.shared.model
  let tokenizer = Loaded.shared.tokenizer

  func prompt(_ text: String) throws -> [Int32] {
    let template = try tokenizer.chatTemplate()
    return tokenizer.encode(template.render([ChatMessage(role: "user", content: text)], addGenerationPrompt: true))
  }

  @Test func sampledOutputsValidateUnderTheSchema() throws {
    let schema = #"""
      {"type":"object","properties":{"city":{"type":"string","maxLength":24},"population":{"type":"integer","minimum":0},
       "founded":{"type":"string","format":"date"},"tags":{"type":"array","items":{"enum":["old","big","coastal"]},"maxItems":3},
       "mayor":{"type":["string","null"],"maxLength":20}},"required":["city","population","tags"],"additionalProperties":false}
      """#
    let grammar = try JSONSchemaCompiler.grammar(schema: schema)
    let generator = Generator(model: model, tokenizer: tokenizer, contextLength: 512, threads: 2)
    var outputs: [String] = []
    for seed in 0..<4 {
      let options = GenerationOptions(
        maxTokens: 160, sampling: SamplingParameters(temperature: 1, seed: UInt64(seed)), grammar: grammar)
      let result = try generator.generate(promptTokens: try prompt("Describe a city as JSON."), options: options)
      #expect(result.finishReason == .stop, "seed \(seed) ran out of tokens: \(result.text)")
      outputs.append(result.text)
    }
    let (ok, report) = try validate(schema: schema, outputs: outputs)
    #expect(ok, "\(report)")
  }

  @Test func greedyPicksTheBestAllowedTokenAndFollowsTheGrammar() throws {
    let grammar = try Grammar(gbnf: #"root ::= "Answer: " ("yes" | "no") "." "#)
    let tokens = try prompt("Is the sky blue?")
    let context = Generator(model: model, tokenizer: tokenizer, contextLength: 256, threads: 2).context
    let sequence = GenerationSequence(
      context: context, tokenizer: tokenizer, promptTokens: tokens,
      options: GenerationOptions(maxTokens: 20, sampling: .greedy, grammar: grammar))
    let reference = GrammarMatcher(grammar: grammar, vocabulary: TokenVocabularies.vocabulary(for: tokenizer))
    while !sequence.isFinished {
      var best: Int32? = nil
      if sequence.isDecoding {
        let mask = reference.allowedTokens()
        let logits = context.lastLogits
        best = mask.allowed.max { logits[Int($0)] != logits[Int($1)] ? logits[Int($0)] < logits[Int($1)] : $0 > $1 }
      }
      let before = sequence.result.tokens.count
      _ = try sequence.step()
      if let best, sequence.result.tokens.count > before {
        #expect(sequence.result.tokens.last == best)
        reference.accept(best)
      }
    }
    #expect(sequence.finishReason == .stop)
    #expect(["Answer: yes.", "Answer: no."].contains(sequence.result.text), "\(sequence.result.text)")
  }

  func validate(schema: String, outputs: [String]) throws -> (Bool, String) {
    let file = FileManager.default.temporaryDirectory.appendingPathComponent("engine-json-\(UUID().uuidString).jsonl")
    defer { try? FileManager.default.removeItem(at: file) }
    let encoded = String(decoding: try JSONSerialization.data(withJSONObject: outputs), as: UTF8.self)
    try "{\"schema\": \(schema.replacingOccurrences(of: "\n", with: " ")), \"outputs\": \(encoded)}\n"
      .write(to: file, atomically: true, encoding: .utf8)
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["python3", packageRoot.appendingPathComponent("scripts/validate_json_outputs.py").path, file.path]
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    try process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus == 0, String(decoding: data, as: UTF8.self))
  }
}
