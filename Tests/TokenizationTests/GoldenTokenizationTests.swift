// Token ids, decoded text and end-of-generation sets against llama.cpp itself
// (Fixtures/golden.json, made by Fixtures/make_golden.py with llama-cpp-python 0.3.36).

import Foundation
import Testing
import Tokenization

@Suite struct GoldenTokenizationTests {
  static let names = ["smollm", "gpt-2", "gpt-2-default", "llama-bpe", "qwen2", "llama-spm", "phi-3", "gemma3"]

  static func section(_ name: String) -> Golden.VocabSection? { Fixtures.golden.vocabs[name] }

  @Test(arguments: names)
  func tokenIDsMatchLlamaCpp(_ name: String) throws {
    try Fixtures.skipUnlessPresent(name)
    let section = try #require(Self.section(name), "golden.json has no section for \(name)")
    let tok = try Fixtures.tokenizer(name)
    #expect(tok.vocabularySize == section.vocabularySize)
    #expect(section.cases.count >= 100)
    var failures = 0
    for c in section.cases {
      let ids = tok.encode(c.text, parseSpecial: c.parseSpecial, addSpecial: c.addSpecial)
      if ids != c.ids {
        failures += 1
        if failures <= 5 {
          Issue.record(
            "\(name): encode(\(c.text.debugDescription), parseSpecial: \(c.parseSpecial), addSpecial: \(c.addSpecial)) = \(ids), llama.cpp \(c.ids)"
          )
        }
      }
    }
    #expect(failures == 0, "\(failures) of \(section.cases.count) cases differ for \(name)")
  }

  @Test(arguments: names)
  func decodeMatchesLlamaCpp(_ name: String) throws {
    try Fixtures.skipUnlessPresent(name)
    let section = try #require(Self.section(name))
    let tok = try Fixtures.tokenizer(name)
    for c in section.cases {
      if let expected = c.decoded {
        #expect(tok.decode(c.ids) == expected, "\(name): decode of \(c.text.debugDescription)")
      }
      if let expected = c.decodedSpecial {
        #expect(tok.decode(c.ids, renderSpecial: true) == expected, "\(name): decode(renderSpecial) of \(c.text.debugDescription)")
      }
    }
  }

  @Test(arguments: names)
  func specialIDsAndEndOfGeneration(_ name: String) throws {
    try Fixtures.skipUnlessPresent(name)
    let section = try #require(Self.section(name))
    let tok = try Fixtures.tokenizer(name)
    #expect(tok.bos == section.bos)
    #expect(tok.eos == section.eos)
    #expect(tok.endOfGeneration == Set(section.eog))
    for id in section.eog { #expect(tok.isEndOfGeneration(id)) }
  }

  @Test(.enabled(if: Fixtures.has("smollm"), Fixtures.missingMessage("smollm")))
  func byteLevelRoundTrip() throws {
    let tok = try Fixtures.tokenizer("smollm")
    // Every fixture text that llama.cpp itself round-trips (SmolLM2's vocabulary lacks a few
    // control bytes, e.g. 0x1D, which both drop).
    let cases = (Self.section("smollm")?.cases ?? []).filter { $0.decoded == $0.text }
    #expect(cases.count > 40)
    for text in Set(cases.map(\.text)) {
      #expect(tok.decode(tok.encode(text, parseSpecial: false, addSpecial: false)) == text, "\(text.debugDescription)")
    }
  }
}
