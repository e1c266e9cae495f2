// Loading of the golden fixture (Fixtures/golden.json, made by Fixtures/make_golden.py from
// llama.cpp and jinja2) and of the vocabularies it was made from. Vocabularies live under
// models/ (git-ignored; scripts/fetch-model.sh and scripts/fetch-test-vocabs.sh fetch them);
// tests that need a missing one are disabled with a message saying which script to run.

import Foundation
import GGUF
import Testing
import Tokenization

struct Golden: Decodable {
  struct Case: Decodable {
    var text: String
    var addSpecial: Bool
    var parseSpecial: Bool
    var ids: [Int32]
    var decoded: String?
    var decodedSpecial: String?
  }
  struct VocabSection: Decodable {
    var file: String
    var vocabularySize: Int
    var bos: Int32
    var eos: Int32
    var eog: [Int32]
    var cases: [Case]
    var overrides: [String: String]?
  }
  struct Render: Decodable {
    var conversation: String
    var addGenerationPrompt: Bool
    var expected: String
  }
  struct ChatEntry: Decodable {
    var name: String
    var family: String
    var template: String
    var bos: String
    var eos: String
    var renders: [Render]
    /// The template's `enable_thinking` variable (Qwen 3), when the render set it.
    var enableThinking: Bool?

    func chatTemplate() throws -> ChatTemplate {
      var template = try ChatTemplate(jinja: self.template, bosToken: bos, eosToken: eos)
      template.enableThinking = enableThinking
      return template
    }
  }
  struct ChatIDs: Decodable {
    var vocab: String
    var template: String
    var conversation: String
    var addGenerationPrompt: Bool
    var ids: [Int32]
  }
  var vocabs: [String: VocabSection]
  var conversations: [String: [ChatMessage]]
  var chat: [ChatEntry]
  var chatIDs: [ChatIDs]
}

enum Fixtures {
  static let packageRoot: URL = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

  static let golden: Golden = {
    guard let url = Bundle.module.url(forResource: "golden", withExtension: "json", subdirectory: "Fixtures"),
      let data = try? Data(contentsOf: url)
    else { fatalError("Fixtures/golden.json missing from the test bundle") }
    do { return try JSONDecoder().decode(Golden.self, from: data) } catch {
      fatalError("Fixtures/golden.json does not decode: \(error)")
    }
  }()

  static let vocabFiles: [String: String] = [
    "smollm": "models/SmolLM2-135M-Instruct.Q4_1.gguf",
    "gpt-2": "models/vocab/ggml-vocab-gpt-2.gguf",
    "llama-bpe": "models/vocab/ggml-vocab-llama-bpe.gguf",
    "qwen2": "models/vocab/ggml-vocab-qwen2.gguf",
    "llama-spm": "models/vocab/ggml-vocab-llama-spm.gguf",
    "phi-3": "models/vocab/ggml-vocab-phi-3.gguf",
    "gemma3": "models/gemma-3-270m-q4_k_m.gguf",
    "gpt-2-default": "models/vocab/ggml-vocab-gpt-2.gguf",
  ]
  /// String keys replaced when loading (the fixture made the same change with llama.cpp's
  /// kv_overrides), so one vocabulary also checks llama.cpp's "default" pre-tokenizer.
  static let overrides: [String: [String: String]] = ["gpt-2-default": [TokenizerKey.pre: "default"]]

  static func path(_ name: String) -> String {
    packageRoot.appendingPathComponent(vocabFiles[name]!).path
  }

  static func has(_ name: String) -> Bool { FileManager.default.fileExists(atPath: path(name)) }

  static func missingMessage(_ name: String) -> Comment {
    switch name {
    case "smollm": "\(vocabFiles[name]!) is missing: run scripts/fetch-model.sh"
    case "gemma3": "\(vocabFiles[name]!) is missing: run scripts/fetch-gemma3.sh"
    default: "\(vocabFiles[name]!) is missing: run scripts/fetch-test-vocabs.sh"
    }
  }

  /// Skips (cancels) the running test when a vocabulary file is absent, saying how to get it.
  static func skipUnlessPresent(_ name: String) throws {
    if !has(name) { try Test.cancel(missingMessage(name)) }
  }

  private static let cache = Cache()
  private final class Cache: @unchecked Sendable {
    let lock = NSLock()
    var tokenizers: [String: Tokenizer] = [:]
  }

  /// The tokenizer of a fixture vocabulary, loaded once per test run.
  static func tokenizer(_ name: String) throws -> Tokenizer {
    cache.lock.lock()
    defer { cache.lock.unlock() }
    if let t = cache.tokenizers[name] { return t }
    let file = try GGUFFile(path: path(name))
    let t = try Tokenizer(metadata: OverridingMetadata(base: file, strings: overrides[name] ?? [:]))
    cache.tokenizers[name] = t
    return t
  }
}

/// Metadata with some string values replaced.
struct OverridingMetadata<Base: TokenizerMetadata>: TokenizerMetadata {
  var base: Base
  var strings: [String: String]
  func string(_ key: String) throws -> String? { try strings[key] ?? base.string(key) }
  func int(_ key: String) throws -> Int? { try base.int(key) }
  func bool(_ key: String) throws -> Bool? { try base.bool(key) }
  func stringArray(_ key: String) throws -> [String]? { try base.stringArray(key) }
  func intArray(_ key: String) throws -> [Int]? { try base.intArray(key) }
  func floatArray(_ key: String) throws -> [Double]? { try base.floatArray(key) }
}
