// `enable_thinking` reaches the chat template through the engine: with the Qwen 3 template, a
// request's prompt is the tokens of the render that equals the golden one (jinja2 on Qwen 3's
// own template, Tests/TokenizationTests/Fixtures/golden.json) with the same switch; a template
// without a thinking mode accepts `false` (it answers directly already) and refuses `true`.
import Adapters
import Foundation
import Testing
import Tokenization

import Engine

@Suite(.enabled(if: defaultModelIsPresent, "needs models/SmolLM2-135M-Instruct.Q4_1.gguf (scripts/fetch-model.sh)"))
struct ThinkingSwitchTests {
  struct Golden: Decodable {
    struct Render: Decodable {
      var conversation: String
      var addGenerationPrompt: Bool
      var expected: String
    }
    struct Entry: Decodable {
      var name: String
      var enableThinking: Bool?
      var renders: [Render]
    }
    var conversations: [String: [ChatMessage]]
    var chat: [Entry]
  }

  static func golden() throws -> Golden {
    let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
      .appendingPathComponent("TokenizationTests/Fixtures/golden.json")
    return try JSONDecoder().decode(Golden.self, from: Data(contentsOf: url))
  }

  static func engine(template: String?) throws -> ServingEngine {
    let loaded = Loaded.shared
    return try ServingEngine(
      registry: AdapterRegistry(base: loaded.model), tokenizer: loaded.tokenizer,
      configuration: ServingConfiguration(contextSize: 512, chatTemplate: template))
  }

  @Test func qwen3PromptsFollowTheGoldenRenderOfEachSwitch() throws {
    let golden = try Self.golden()
    let engine = try Self.engine(template: "qwen3")
    let tokenizer = Loaded.shared.tokenizer
    var checked = 0
    // "qwen3" renders with enable_thinking undefined, "qwen3-nothink" with it false.
    for (name, setting) in [("qwen3", nil), ("qwen3-nothink", false), ("qwen3", true)] as [(String, Bool?)] {
      let entry = try #require(golden.chat.first { $0.name == name })
      #expect(entry.enableThinking == (setting == true ? nil : setting))
      for render in entry.renders where render.addGenerationPrompt {
        let messages = try #require(golden.conversations[render.conversation])
        // The engine's template with that switch renders the golden text, and the engine's
        // prompt is exactly that render's tokens.
        var template = try #require(engine.chatTemplate)
        template.enableThinking = setting
        let segments = template.render(messages, addGenerationPrompt: true)
        #expect(segments.renderedText == render.expected, "\(name) \(render.conversation)")
        #expect(try engine.tokenize(.chat(messages), enableThinking: setting) == tokenizer.encode(segments, addSpecial: true))
        checked += 1
      }
    }
    #expect(checked == 21)
    // The switch changes the prompt: false pre-fills an empty think block.
    let user = [ChatMessage(role: "user", content: "Hi")]
    #expect(try engine.tokenize(.chat(user), enableThinking: false) != (try engine.tokenize(.chat(user))))
  }

  @Test func templatesWithoutAThinkingModeAcceptOnlyFalse() throws {
    let engine = try Self.engine(template: nil)  // SmolLM2's ChatML
    let user = [ChatMessage(role: "user", content: "Hi")]
    #expect(try engine.tokenize(.chat(user), enableThinking: false) == (try engine.tokenize(.chat(user))))
    #expect(throws: ServingError.noThinkingMode) { try engine.tokenize(.chat(user), enableThinking: true) }
    let request = ServingRequest(
      adapter: nil, prompt: .chat(user), options: GenerationOptions(maxTokens: 1), enableThinking: true)
    #expect(throws: ServingError.noThinkingMode) { try engine.submit(request) }
  }
}
