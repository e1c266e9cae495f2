// Parity with llama.cpp on small random-weight models of the shapes no real file here has
// (qwen3, Llama 3.1 `rope_freqs` scaling). scripts/make_family_fixtures.py wrote the same
// weights (TinyModel's SplitMix stream) with a real tokenizer, ran llama.cpp on them and
// recorded logits of a prompt and 32 greedy tokens; this test rebuilds the identical GGUF with
// GGUFWriter and compares.
import Foundation
import GGUF
import Llama
import Testing
import TinyModelSupport

struct FamilyFixture: Decodable {
  struct Spec: Decodable {
    let architecture: String
    let layers, embedding, heads, kvHeads, feedForward, vocabulary: Int
    let ropeBase, epsilon: Float
    let tiedOutput, queryKeyNorm, ropeFrequencyFactors: Bool
    let matrixType, embeddingType: String
    let seed: UInt64
  }
  struct Position: Decodable {
    let ids: [Int]
    let logits: [Double]
  }
  let spec: Spec
  let prompt_tokens: [Int32]
  let positions: [Position]
  let greedy: [Int32]
  let greedy_margins: [Double]
}

struct FamilyParityTests {
  static let fixtures = ["qwen3-f32", "qwen3-f16", "llama3-rope-freqs-f32", "llama3-rope-freqs-f16"]

  static func type(_ name: String) -> GGMLType { name == "f16" ? .f16 : .f32 }

  @Test("logits within 1e-3 relative and 32 greedy tokens as llama.cpp's", arguments: fixtures)
  func matchesLlamaCpp(_ name: String) throws {
    let fixture = try JSONDecoder().decode(FamilyFixture.self, from: fixtureData("families/\(name).json"))
    let s = fixture.spec
    let spec = TinyModelSpec(
      architecture: s.architecture, layers: s.layers, embedding: s.embedding, heads: s.heads,
      kvHeads: s.kvHeads, feedForward: s.feedForward, vocabulary: s.vocabulary, ropeBase: s.ropeBase,
      epsilon: s.epsilon, tiedOutput: s.tiedOutput, queryKeyNorm: s.queryKeyNorm,
      ropeFrequencyFactors: s.ropeFrequencyFactors, matrixType: Self.type(s.matrixType),
      embeddingType: Self.type(s.embeddingType), seed: s.seed)
    let tiny = try TinyModel(spec)
    defer { try? FileManager.default.removeItem(atPath: tiny.path) }
    let model = try LlamaModel(path: tiny.path)
    let context = LlamaContext(model: model, contextLength: 128, threads: 2)
    let logits = try context.evaluateAll(fixture.prompt_tokens)
    let vocabulary = model.vocabularySize
    #expect(vocabulary == s.vocabulary)

    let scale = fixture.positions.flatMap(\.logits).map(abs).max()!
    var worst = 0.0
    for (t, position) in fixture.positions.enumerated() {
      for (id, reference) in zip(position.ids, position.logits) {
        worst = max(worst, abs(Double(logits[t * vocabulary + id]) - reference) / scale)
      }
    }
    #expect(worst < 1e-3, "largest logit difference \(worst) of the largest logit")

    var greedy: [Int32] = []
    for _ in 0..<fixture.greedy.count {
      let last = context.lastLogits
      let next = Int32(last.indices.max { last[$0] < last[$1] }!)
      greedy.append(next)
      try context.evaluate([next])
    }
    #expect(greedy == fixture.greedy, "smallest llama.cpp margin \(fixture.greedy_margins.min()!)")
  }
}
