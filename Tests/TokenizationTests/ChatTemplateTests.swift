// Chat renderings against jinja2 rendering the real template strings (golden.json "chat").

import Testing
import Tokenization

@Suite struct ChatTemplateTests {
  static let entries = Fixtures.golden.chat.map(\.name)

  @Test(arguments: entries)
  func rendersLikeJinja(_ name: String) throws {
    let entry = try #require(Fixtures.golden.chat.first { $0.name == name })
    let template = try entry.chatTemplate()
    #expect(template.family.rawValue == entry.family)
    #expect(!entry.renders.isEmpty)
    for r in entry.renders {
      let messages = try #require(Fixtures.golden.conversations[r.conversation])
      let segments = template.render(messages, addGenerationPrompt: r.addGenerationPrompt)
      #expect(segments.renderedText == r.expected, "\(name) / \(r.conversation) / agp=\(r.addGenerationPrompt)")
      // Message content never lands in a markup segment.
      for m in messages where m.content.contains("<|im_start|>") || m.content.contains("[INST]") {
        for case .markup(let s) in segments { #expect(!s.contains("tokens.") && !s.contains("Bye")) }
      }
    }
  }
}
