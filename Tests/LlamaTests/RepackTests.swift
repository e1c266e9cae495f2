// Repacked weights (RepackedWeights): where the CPU has the kernels, a model's k-quant matrices
// (r16) and Q4_0 matrices (X16 rows) are repacked at load, compactly, and the products that read
// them give the file's logits to fp32 summation order; with r16 a batched step gives every
// sequence exactly the bits it gets alone, since an r16 product's bits do not depend on how many
// tokens it takes.
import CKernels
import Foundation
import GGUF
import Kernels
import Llama
import Testing
import TinyModelSupport

struct RepackTests {
  static let types: [GGMLType] = [.q4_K, .q5_K, .q6_K]

  /// Whether loads repack `type` on this CPU (r16 for the k-quants, X16 rows for Q4_0).
  static func repacks(_ type: GGMLType) -> Bool {
    dq_r16_supported(type.rawValue) || (type == .q4_0 && dq_q4_0_x16_available())
  }

  /// A 256-wide random model (the k-quants' block length) whose layer matrices are `type`.
  static func tinyModel(_ type: GGMLType, feedForward: Int) throws -> TinyModel {
    var spec = TinyModelSpec(embedding: 256, heads: 4, kvHeads: 2, feedForward: feedForward, vocabulary: 67)
    spec.matrixType = type
    spec.embeddingType = .q8_0
    return try TinyModel(spec)
  }

  /// Decodes `prompt` for `steps` tokens on `model`, greedily or taking `forced` (teacher
  /// forcing, so two runs compare logits at the same positions even past a near tie): the
  /// logits after the prompt and after each token, and the tokens fed.
  static func logits(
    _ model: LlamaModel, prompt: [Int32], steps: Int, forced: [Int32]? = nil
  ) throws -> (logits: [[Float]], tokens: [Int32]) {
    let context = LlamaContext(model: model, contextLength: 64, pool: ThreadPool(threads: 2), maxBatch: 64)
    try context.evaluate(prompt)
    var out = [Array(context.lastLogits)]
    var tokens: [Int32] = []
    for step in 0..<steps {
      tokens.append(forced?[step] ?? BatchTests.argmax(out.last!))
      try context.evaluate([tokens.last!])
      out.append(Array(context.lastLogits))
    }
    return (out, tokens)
  }

  @Test("k-quant and Q4_0 models are repacked at load and give the file's logits", arguments: types + [.q4_0])
  func repackedModelGivesTheFilesLogits(type: GGMLType) throws {
    let tiny = try Self.tinyModel(type, feedForward: 512)
    defer { try? FileManager.default.removeItem(atPath: tiny.path) }
    let repacked = try LlamaModel(path: tiny.path, repackWeights: true)
    let plain = try LlamaModel(path: tiny.path, repackWeights: false)
    #expect(plain.repackedByteCount == 0)
    guard Self.repacks(type) else {
      #expect(repacked.repackedByteCount == 0)
      return
    }
    #expect(repacked.repackedByteCount > 0)
    #expect(repacked.weights.layers[0].matrix(.gate).isRepacked && !plain.weights.layers[0].matrix(.gate).isRepacked)
    var random = SplitMix(seed: 21)
    let prompt = (0..<13).map { _ in Int32(random.next() % 67) }
    let a = try Self.logits(plain, prompt: prompt, steps: 6)
    let b = try Self.logits(repacked, prompt: prompt, steps: 6, forced: a.tokens)
    // Another fp32 summation order: an activation quantized to 8 bits downstream can round a
    // step apart (as in BatchTests, measured up to 1.7e-2 on these 256-wide random models).
    let (error, agree) = BatchTests.compare(a.logits, b.logits, clear: 3e-2)
    #expect(error < 3e-2, "relative logit error \(error)")
    #expect(agree, "greedy tokens differ")
  }

  @Test("the file's bytes stay readable after repacking, mapped or in memory", arguments: types + [.q4_0])
  func originalBytesSurvive(type: GGMLType) throws {
    let tiny = try Self.tinyModel(type, feedForward: 512)
    defer { try? FileManager.default.removeItem(atPath: tiny.path) }
    let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: tiny.path)))
    let plain = try LlamaModel(path: tiny.path, repackWeights: false)
    for file in [try GGUFFile(path: tiny.path), try GGUFFile(bytes: bytes)] {
      let repacked = try LlamaModel(file: file, repackWeights: true)
      for projection in LlamaProjection.allCases {
        let a = plain.weights.layers[1].matrix(projection)
        let b = repacked.weights.layers[1].matrix(projection)
        var x = [Float](repeating: 0, count: a.columns)
        var y = [Float](repeating: 0, count: b.columns)
        for row in [0, a.rows - 1] {
          a.dequantizeRow(row, into: &x)
          b.dequantizeRow(row, into: &y)
          #expect(x == y, "\(type) \(projection) row \(row) (\(file.path))")
        }
      }
    }
  }

  @Test("a repacked model's batch gives each sequence its bits alone", arguments: types)
  func repackedBatchIsExact(type: GGMLType) throws {
    guard dq_r16_supported(type.rawValue) else { return }
    let tiny = try Self.tinyModel(type, feedForward: 256)
    defer { try? FileManager.default.removeItem(atPath: tiny.path) }
    let model = try LlamaModel(path: tiny.path, repackWeights: true)
    let pool = ThreadPool(threads: 2)
    let scripts = BatchTests.scripts(vocabulary: 67).map {
      BatchTests.Script(prompt: $0.prompt, joins: $0.joins, decodes: $0.decodes, hook: nil, model: 0)
    }
    let alone = try scripts.map { try BatchTests.alone($0, models: [model], hooks: [], pool: pool) }
    for maxRows in [64, 8] {
      let batched = try BatchTests.batched(
        scripts, tokens: alone.map(\.tokens), models: [model], hooks: [], pool: pool, maxRows: maxRows)
      for (i, (a, b)) in zip(alone.map(\.logits), batched).enumerated() {
        let (error, _) = BatchTests.compare(a, b, clear: 0)
        #expect(error == 0, "sequence \(i), maxRows \(maxRows): relative logit error \(error)")
      }
    }
  }

  @Test("Gemma 3 270M: repacked about the file's size, logits of the file", .enabled(if: gemma3IsPresent))
  func gemma() throws {
    let repacked = try LlamaModel(path: gemma3Path, repackWeights: true)
    guard dq_r16_supported(GGMLType.q4_K.rawValue) else { return }
    // The bytes of the matrices that were repacked, as the file stores them.
    var original = 0
    let matrices = repacked.weights.layers.flatMap { $0.projections.values } + [repacked.weights.output]
    for m in matrices where m.isRepacked { original += m.byteCount }
    #expect(original > 0)
    let ratio = Double(repacked.repackedByteCount) / Double(original)
    #expect(ratio > 0.99 && ratio < 1.08, "repacked copies are \(ratio) x the file's bytes")
    let plain = try LlamaModel(path: gemma3Path, repackWeights: false)
    let prompt: [Int32] = [2, 105, 2364, 107, 3689, 563, 506, 5279, 529, 7001, 236881, 106, 107, 105, 4368, 107]
    let a = try Self.logits(plain, prompt: prompt, steps: 8)
    let b = try Self.logits(repacked, prompt: prompt, steps: 8, forced: a.tokens)
    let (error, agree) = BatchTests.compare(a.logits, b.logits, clear: 1e-2)
    // The file's own walks differ among themselves by fp32 summation order too: the prompt token
    // by token (the one-token kernels) against in one pass (the packed prefill kernels).
    let stepwise = LlamaContext(model: plain, contextLength: 64, pool: ThreadPool(threads: 2), maxBatch: 1)
    var walked: [[Float]] = []
    for token in prompt + a.tokens.dropLast() {
      try stepwise.evaluate([token])
      walked.append(Array(stepwise.lastLogits))
    }
    let (noise, _) = BatchTests.compare(Array(a.logits.dropLast()), Array(walked.suffix(a.logits.count - 1)), clear: 1e-2)
    #expect(error <= max(1e-2, 1.5 * noise), "relative logit error \(error), the file's walks among themselves \(noise)")
    #expect(agree, "greedy tokens differ")
  }
}
