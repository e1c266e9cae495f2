// Building a vocabulary from metadata: llama.cpp's defaults, and clear errors for metadata
// that is missing, short or names something unsupported.

import Testing
import Tokenization

@Suite struct VocabularyTests {
  struct Meta: TokenizerMetadata {
    var strings: [String: String] = [:]
    var ints: [String: Int] = [:]
    var bools: [String: Bool] = [:]
    var stringArrays: [String: [String]] = [:]
    var intArrays: [String: [Int]] = [:]
    var floatArrays: [String: [Double]] = [:]
    func string(_ key: String) throws -> String? { strings[key] }
    func int(_ key: String) throws -> Int? { ints[key] }
    func bool(_ key: String) throws -> Bool? { bools[key] }
    func stringArray(_ key: String) throws -> [String]? { stringArrays[key] }
    func intArray(_ key: String) throws -> [Int]? { intArrays[key] }
    func floatArray(_ key: String) throws -> [Double]? { floatArrays[key] }
  }

  @Test func missingAndUnsupportedKeysAreNamed() {
    #expect(throws: TokenizationError.missingKey(TokenizerKey.model)) { try Vocabulary(metadata: Meta()) }
    var m = Meta(strings: [TokenizerKey.model: "gpt2"])
    #expect(throws: TokenizationError.missingKey(TokenizerKey.tokens)) { try Vocabulary(metadata: m) }
    m.stringArrays[TokenizerKey.tokens] = ["a", "b"]
    #expect(throws: TokenizationError.missingKey(TokenizerKey.merges)) { try Vocabulary(metadata: m) }
    m.stringArrays[TokenizerKey.merges] = []
    m.strings[TokenizerKey.pre] = "no-such-pre"
    #expect(throws: TokenizationError.unsupportedPreTokenizer("no-such-pre")) { try Vocabulary(metadata: m) }
    m.strings[TokenizerKey.model] = "t5"
    #expect(throws: TokenizationError.unsupportedModel("t5")) { try Vocabulary(metadata: m) }
    m.strings[TokenizerKey.model] = "llama"
    m.floatArrays[TokenizerKey.scores] = [0]
    #expect(throws: TokenizationError.arrayTooShort(key: TokenizerKey.scores, count: 1, expected: 2)) {
      try Vocabulary(metadata: m)
    }
    #expect(throws: TokenizationError.emptyVocabulary) { try Vocabulary(model: "llama", tokens: []) }
  }

  @Test func llamaCppDefaults() throws {
    let tokens = ["<unk>", "<s>", "</s>", "a"]
    let spm = try Vocabulary(model: "llama", tokens: tokens)
    #expect(spm.addBOS && !spm.addEOS && spm.addSpacePrefix)
    #expect(spm.bos == 1 && spm.eos == 2 && spm.unknown == 0)
    #expect(spm.endOfGeneration == [2])  // eos, and "</s>" by name
    let bpe = try Vocabulary(model: "gpt2", pre: "smollm", tokens: tokens)
    #expect(!bpe.addBOS && !bpe.addSpacePrefix && !bpe.cleanSpaces)
    #expect(bpe.bos == nil && bpe.eos == nil)  // llama.cpp's default 11 is outside this vocabulary
    let llama3 = try Vocabulary(model: "gpt2", pre: "llama-bpe", tokens: tokens, bos: 1, eos: 2)
    #expect(llama3.addBOS && llama3.ignoreMerges && llama3.cleanSpaces)
    // An out-of-range id in the metadata falls back to the default instead of trapping later.
    let bad = try Vocabulary(model: "llama", tokens: tokens, bos: 99, eot: -5)
    #expect(bad.bos == 1 && bad.eot == nil)
  }
}
