// Generator on the real default model: greedy output is LlamaContext's argmax chain, limits
// and stop strings end generation with the right reason, seeds reproduce, cancellation works,
// streamed text adds up to the result, and an end-of-turn token ends a chat reply.
import Foundation
import GGUF
import Llama
import Testing
import Tokenization

import Engine

/// The package root, found from this file's path (Tests/EngineTests/GeneratorTests.swift).
let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
  .deletingLastPathComponent().deletingLastPathComponent()
let defaultModelPath = packageRoot.appendingPathComponent("models/SmolLM2-135M-Instruct.Q4_1.gguf").path
let defaultModelIsPresent = FileManager.default.fileExists(atPath: defaultModelPath)

/// Loaded once for the suite.
struct Loaded: @unchecked Sendable {
  // unchecked: model and tokenizer are immutable; each test makes its own Generator.
  let model: LlamaModel
  let tokenizer: Tokenizer
  static let shared: Loaded = {
    let file = try! GGUFFile(path: defaultModelPath)
    return Loaded(model: try! LlamaModel(file: file), tokenizer: try! Tokenizer(gguf: file))
  }()
}

@Suite(
  .enabled(if: defaultModelIsPresent, "needs models/SmolLM2-135M-Instruct.Q4_1.gguf (scripts/fetch-model.sh)"),
  .serialized)
struct GeneratorTests {
  let model = Loaded.shared.model
  let tokenizer = Loaded.shared.tokenizer

  func generator(contextLength: Int = 256) -> Generator {
    Generator(model: model, tokenizer: tokenizer, contextLength: contextLength, threads: 2)
  }

  func chatPrompt(_ text: String) throws -> [Int32] {
    let template = try tokenizer.chatTemplate()
    return tokenizer.encode(
      template.render([ChatMessage(role: "user", content: text)], addGenerationPrompt: true))
  }

  var storyPrompt: [Int32] { tokenizer.encode("Once upon a time, in a small village by the sea,") }

  /// Runs a generation, collecting what onText received.
  func generate(_ g: Generator, _ prompt: [Int32], _ options: GenerationOptions) throws
    -> (result: GenerationResult, streamed: [String])
  {
    var streamed: [String] = []
    let result = try g.generate(promptTokens: prompt, options: options) {
      streamed.append($0)
      return true
    }
    return (result, streamed)
  }

  /// The greedy chain computed directly: evaluate, take the argmax (lowest id on ties), repeat.
  func argmaxChain(_ prompt: [Int32], count: Int) throws -> [Int32] {
    let context = LlamaContext(model: model, contextLength: prompt.count + count + 1, threads: 2)
    try context.evaluate(prompt)
    var tokens: [Int32] = []
    for _ in 0..<count {
      let logits = context.lastLogits
      var best = 0
      for i in 1..<logits.count where logits[i] > logits[best] { best = i }
      tokens.append(Int32(best))
      if tokenizer.isEndOfGeneration(Int32(best)) { break }
      try context.evaluate([Int32(best)])
    }
    return tokens
  }

  @Test("greedy generation is deterministic and is LlamaContext's argmax chain")
  func greedyIsArgmaxChain() throws {
    let g = generator()
    let options = GenerationOptions(maxTokens: 24, sampling: .greedy)
    let first = try generate(g, storyPrompt, options)
    let second = try generate(g, storyPrompt, options)
    #expect(first.result.tokens == second.result.tokens)
    #expect(first.result.text == second.result.text)
    let chain = try argmaxChain(storyPrompt, count: 24)
    let expected = Array(chain.prefix { !tokenizer.isEndOfGeneration($0) })
    #expect(first.result.tokens == expected)
    #expect(first.result.promptTokens == storyPrompt)
    #expect(first.result.text == tokenizer.decode(first.result.tokens))
    #expect(first.streamed.joined() == first.result.text)
  }

  @Test("maxTokens is respected and ends with finish reason length", arguments: [0, 1, 5, 17])
  func maxTokens(limit: Int) throws {
    let (result, streamed) = try generate(
      generator(), storyPrompt, GenerationOptions(maxTokens: limit, sampling: .greedy))
    #expect(result.tokens.count == limit)
    #expect(result.finishReason == .length)
    #expect(streamed.joined() == result.text)
  }

  @Test("a full context ends generation with finish reason length")
  func contextFull() throws {
    let prompt = storyPrompt
    let g = generator(contextLength: prompt.count + 4)
    let (result, _) = try generate(g, prompt, GenerationOptions(maxTokens: 100, sampling: .greedy))
    #expect(result.finishReason == .length)
    // Every generated token but the last needs a cache slot.
    #expect(result.tokens.count <= 5)
    #expect(result.tokens.count >= 4)
    #expect(result.tokens == Array(try argmaxChain(prompt, count: result.tokens.count)))
  }

  @Test("a stop string ends generation before it, with finish reason stop")
  func stopString() throws {
    let g = generator()
    let free = try generate(g, storyPrompt, GenerationOptions(maxTokens: 40, sampling: .greedy)).result
    // A stop string from the middle of the free continuation: the second word onwards.
    let words = free.text.split(separator: " ")
    try #require(words.count >= 4, "continuation too short: \(free.text)")
    let stop = " " + words[2]
    let expectedText = String(free.text[..<free.text.range(of: stop)!.lowerBound])

    let (result, streamed) = try generate(
      g, storyPrompt, GenerationOptions(maxTokens: 40, sampling: .greedy, stop: [stop]))
    #expect(result.finishReason == .stop)
    #expect(result.text == expectedText)
    #expect(!result.text.contains(stop))
    #expect(streamed.joined() == result.text)
    #expect(result.tokens.count < free.tokens.count)
    #expect(Array(free.tokens.prefix(result.tokens.count)) == result.tokens)
  }

  @Test("the same seed gives the same sampled output; another seed differs")
  func seeds() throws {
    let g = generator()
    func run(_ seed: UInt64) throws -> GenerationResult {
      let sampling = SamplingParameters(temperature: 0.8, seed: seed)
      return try generate(g, storyPrompt, GenerationOptions(maxTokens: 32, sampling: sampling)).result
    }
    let a = try run(1234), b = try run(1234), c = try run(98765)
    #expect(a.tokens == b.tokens)
    #expect(a.text == b.text)
    #expect(a.tokens != c.tokens)
  }

  @Test("onText returning false cancels at once", arguments: [1, 3])
  func cancel(after calls: Int) throws {
    var received: [String] = []
    let result = try generator().generate(
      promptTokens: storyPrompt, options: GenerationOptions(maxTokens: 50, sampling: .greedy)
    ) {
      received.append($0)
      return received.count < calls
    }
    #expect(result.finishReason == .cancelled)
    #expect(received.count == calls)
    #expect(received.allSatisfy { !$0.isEmpty })
    #expect(received.joined() == result.text)
    #expect(result.tokens.count < 50)
  }

  @Test("streamed text adds up to the result for sampled output with a stop string")
  func streamedEqualsResult() throws {
    let sampling = SamplingParameters(temperature: 1.0, seed: 7)
    let (result, streamed) = try generate(
      generator(), try chatPrompt("Write a short poem about rain."),
      GenerationOptions(maxTokens: 60, sampling: sampling, stop: ["\n\n"]))
    #expect(streamed.joined() == result.text)
    #expect(!result.text.contains("\n\n"))
    #expect(!streamed.contains(""))
  }

  @Test("an end-of-turn token ends a chat reply with finish reason stop")
  func endOfTurn() throws {
    let imEnd = try #require(tokenizer.tokenID(forText: "<|im_end|>"))
    #expect(tokenizer.isEndOfGeneration(imEnd))
    // A question this small model answers in one sentence and then ends its turn ("Say only
    // OK." makes it ramble past 64 tokens).
    let prompt = try chatPrompt("What is 2+2?")
    let (result, streamed) = try generate(
      generator(), prompt, GenerationOptions(maxTokens: 64, sampling: .greedy))
    #expect(result.finishReason == .stop)
    #expect(result.tokens.count < 64)
    #expect(!result.tokens.contains { tokenizer.isEndOfGeneration($0) })
    #expect(!result.text.contains("<|im_end|>"))
    #expect(streamed.joined() == result.text)
    // The model itself produced the end token right after the reply.
    let chain = try argmaxChain(prompt, count: result.tokens.count + 1)
    #expect(Array(chain.prefix(result.tokens.count)) == result.tokens)
    #expect(chain.last.map { tokenizer.isEndOfGeneration($0) } == true)
  }
}
