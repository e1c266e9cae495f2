// How the engine tokenizes a request's prompt: a raw completion prompt's special-token text is
// those tokens (a client writing its own template gets what llama-server and `generate --raw`
// give), while chat message content stays text (a user cannot forge a turn).
import Adapters
import Foundation
import Testing
import Tokenization

import Engine

@Suite(.enabled(if: defaultModelIsPresent, "needs models/SmolLM2-135M-Instruct.Q4_1.gguf (scripts/fetch-model.sh)"))
struct PromptTokenizationTests {
  static func engine() throws -> ServingEngine {
    let loaded = Loaded.shared
    return try ServingEngine(
      registry: AdapterRegistry(base: loaded.model), tokenizer: loaded.tokenizer,
      configuration: ServingConfiguration(contextSize: 512))
  }

  @Test func aCompletionPromptsSpecialTokenTextIsThoseTokens() throws {
    let engine = try Self.engine()
    let tokenizer = Loaded.shared.tokenizer
    let start = try #require(tokenizer.tokenID(forText: "<|im_start|>"))
    let end = try #require(tokenizer.tokenID(forText: "<|im_end|>"))
    let raw = "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    let tokens = try engine.tokenize(.text(raw))
    #expect(tokens.filter { $0 == start }.count == 2 && tokens.filter { $0 == end }.count == 1, "\(tokens)")
    // The same text as a chat message is content: no special token comes from it.
    let chat = try engine.tokenize(.chat([ChatMessage(role: "user", content: raw)]))
    let rendered = try engine.tokenize(.chat([ChatMessage(role: "user", content: "x")]))
    #expect(chat.filter { $0 == start }.count == rendered.filter { $0 == start }.count, "\(chat)")
  }

  @Test func aTokenIDPromptIsEvaluatedAsGiven() throws {
    let engine = try Self.engine()
    let text = try engine.tokenize(.text("Once upon a time"))
    #expect(try engine.tokenize(.tokens(text.map(Int.init))) == text)
    // No BOS is added to ids, and no id is dropped or merged.
    #expect(try engine.tokenize(.tokens([3, 3, 3])) == [3, 3, 3])
    let vocabulary = Loaded.shared.model.vocabularySize
    #expect(throws: ServingError.tokenOutOfRange(index: 1, id: vocabulary, vocabularySize: vocabulary)) {
      try engine.tokenize(.tokens([1, vocabulary, 2]))
    }
    #expect(throws: ServingError.tokenOutOfRange(index: 0, id: -1, vocabularySize: vocabulary)) {
      try engine.tokenize(.tokens([-1]))
    }
  }
}
