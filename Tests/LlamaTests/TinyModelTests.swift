// The forward pass on tiny random models against the plain double-precision reference, and
// the invariants serving relies on (batched prefill == one token at a time; chunked prompts).
import Foundation
import GGUF
import Llama
import Testing
import TinyModelSupport

/// Largest |ours - reference| over all logits, relative to the largest reference magnitude.
func relativeError(_ ours: [Float], _ reference: [[Double]]) -> Double {
  let flat = reference.flatMap { $0 }
  let scale = max(1e-9, flat.map(abs).max()!)
  return zip(ours, flat).map { abs(Double($0) - $1) }.max()! / scale
}

let tinyTokens: [Int32] = [3, 17, 42, 5, 60, 0, 33, 33, 12, 8, 59, 21]

struct TinyModelTests {
  struct Variant: CustomTestStringConvertible, Sendable {
    let name: String
    let architecture: String
    let matrixType: GGMLType
    let embeddingType: GGMLType
    let tied: Bool
    let biases: Bool
    /// Bound on the relative logit error. F32/F16 weights see Q8-free float dots, so only
    /// rounding remains; quantized weights take Q8-quantized activations in decode (about
    /// 0.4% relative error per dot product, compounding over two layers).
    let tolerance: Double
    var queryKeyNorm = false
    var ropeFrequencyFactors = false
    var testDescription: String { name }
  }

  static let variants: [Variant] = [
    .init(name: "llama f32", architecture: "llama", matrixType: .f32, embeddingType: .f32, tied: false, biases: false, tolerance: 1e-4),
    .init(name: "llama f16 tied", architecture: "llama", matrixType: .f16, embeddingType: .f16, tied: true, biases: false, tolerance: 1e-4),
    .init(name: "qwen2 f32 biases neox", architecture: "qwen2", matrixType: .f32, embeddingType: .f32, tied: false, biases: true, tolerance: 1e-4),
    .init(
      name: "qwen3 f32 q/k norm neox", architecture: "qwen3", matrixType: .f32, embeddingType: .f32, tied: true,
      biases: false, tolerance: 1e-4, queryKeyNorm: true),
    .init(
      name: "llama f16 rope_freqs (Llama 3.1 scaling)", architecture: "llama", matrixType: .f16, embeddingType: .f16,
      tied: false, biases: false, tolerance: 1e-4, ropeFrequencyFactors: true),
    .init(
      name: "gemma3 f32 (post-norms, GeGLU, sliding window 4)", architecture: "gemma3", matrixType: .f32,
      embeddingType: .f32, tied: true, biases: false, tolerance: 1e-4),
    .init(name: "llama q8_0", architecture: "llama", matrixType: .q8_0, embeddingType: .q8_0, tied: true, biases: false, tolerance: 3e-2),
    .init(name: "llama q4_1", architecture: "llama", matrixType: .q4_1, embeddingType: .q8_0, tied: false, biases: false, tolerance: 3e-2),
    .init(name: "llama q5_0 bf16", architecture: "llama", matrixType: .q5_0, embeddingType: .bf16, tied: false, biases: false, tolerance: 3e-2),
  ]

  func makeModel(_ v: Variant) throws -> (TinyModel, LlamaModel) {
    var spec = v.architecture == "gemma3" ? TinyModelSpec.gemma3() : TinyModelSpec()
    spec.architecture = v.architecture
    spec.matrixType = v.matrixType
    spec.embeddingType = v.embeddingType
    spec.tiedOutput = v.tied
    spec.biases = v.biases
    spec.queryKeyNorm = v.queryKeyNorm || v.architecture == "gemma3"
    spec.ropeFrequencyFactors = v.ropeFrequencyFactors
    let tiny = try TinyModel(spec)
    return (tiny, try LlamaModel(path: tiny.path))
  }

  @Test("batched prefill matches the reference", arguments: variants)
  func batchedMatchesReference(_ v: Variant) throws {
    let (tiny, model) = try makeModel(v)
    defer { try? FileManager.default.removeItem(atPath: tiny.path) }
    let context = LlamaContext(model: model, contextLength: 64, threads: 2)
    let logits = try context.evaluateAll(tinyTokens)
    let error = relativeError(logits, tiny.referenceLogits(tinyTokens))
    #expect(error < v.tolerance, "relative error \(error)")
  }

  @Test("decode one token at a time matches the reference", arguments: variants)
  func decodeMatchesReference(_ v: Variant) throws {
    let (tiny, model) = try makeModel(v)
    defer { try? FileManager.default.removeItem(atPath: tiny.path) }
    let context = LlamaContext(model: model, contextLength: 64, threads: 2)
    var logits: [Float] = []
    for token in tinyTokens { logits += try context.evaluateAll([token]) }
    let error = relativeError(logits, tiny.referenceLogits(tinyTokens))
    #expect(error < v.tolerance, "relative error \(error)")
    #expect(context.position == tinyTokens.count)
  }

  @Test("an fp16 KV cache stays close to the reference, batched and one token at a time", arguments: variants)
  func halfCache(_ v: Variant) throws {
    let (tiny, model) = try makeModel(v)
    defer { try? FileManager.default.removeItem(atPath: tiny.path) }
    let reference = tiny.referenceLogits(tinyTokens)
    let batched = LlamaContext(model: model, contextLength: 64, threads: 2, cacheElement: .f16)
    let all = try batched.evaluateAll(tinyTokens)
    let single = LlamaContext(model: model, contextLength: 64, threads: 2, cacheElement: .f16)
    var stepped: [Float] = []
    for token in tinyTokens { stepped += try single.evaluateAll([token]) }
    // fp16 keeps 11 significant bits of each key and value: about 5e-4 relative per entry,
    // on top of the weights' own error.
    let tolerance = max(v.tolerance, 3e-3)
    #expect(relativeError(all, reference) < tolerance, "batched \(relativeError(all, reference))")
    #expect(relativeError(stepped, reference) < tolerance, "stepped \(relativeError(stepped, reference))")
  }

  @Test("a prompt longer than the batch runs in chunks with the same result")
  func chunkedPrompt() throws {
    let (tiny, model) = try makeModel(Self.variants[0])
    defer { try? FileManager.default.removeItem(atPath: tiny.path) }
    let whole = LlamaContext(model: model, contextLength: 64, threads: 1)
    let chunked = LlamaContext(model: model, contextLength: 64, threads: 2, maxBatch: 5)
    let a = try whole.evaluateAll(tinyTokens)
    let b = try chunked.evaluateAll(tinyTokens)
    #expect(zip(a, b).allSatisfy { abs($0 - $1) < 1e-4 })
    try whole.evaluate([1])
    try chunked.evaluate([1])
    #expect(zip(whole.lastLogits, chunked.lastLogits).allSatisfy { abs($0 - $1) < 1e-4 })
  }

  @Test(
    "a pass longer than the scratch's feed-forward rows runs that block in chunks and matches the reference",
    arguments: [false, true])
  func chunkedFeedForward(gemma: Bool) throws {
    // A feed-forward block wider than q, k and v together: gate and up get 64 of the 150 rows
    // at a time.
    var spec = gemma ? TinyModelSpec.gemma3() : TinyModelSpec()
    spec.feedForward = 256
    let tiny = try TinyModel(spec)
    defer { try? FileManager.default.removeItem(atPath: tiny.path) }
    let model = try LlamaModel(path: tiny.path)
    var random = SplitMix(seed: 5)
    let tokens = (0..<150).map { _ in Int32(random.next() % UInt64(spec.vocabulary)) }
    let context = LlamaContext(model: model, contextLength: 160, threads: 2, maxBatch: 150)
    let logits = try context.evaluateAll(tokens)
    let error = relativeError(logits, tiny.referenceLogits(tokens))
    #expect(error < 1e-4, "relative error \(error)")
  }

  @Test("truncating the cache and re-evaluating gives the same logits")
  func truncateAndReplay() throws {
    let (tiny, model) = try makeModel(Self.variants.first { $0.name == "llama q8_0" }!)
    defer { try? FileManager.default.removeItem(atPath: tiny.path) }
    let context = LlamaContext(model: model, contextLength: 64, threads: 2)
    try context.evaluate(tinyTokens)
    let first = Array(context.lastLogits)
    context.truncate(to: 4)
    try context.evaluate(Array(tinyTokens[4...]))
    #expect(Array(context.lastLogits) == first)
  }

  @Test("a sliding layer's cache holds window - 1 + batch positions and still matches the reference", arguments: [1, 3, 5])
  func slidingCacheIsWindowSized(maxBatch: Int) throws {
    let (tiny, model) = try makeModel(Self.variants.first { $0.architecture == "gemma3" }!)
    defer { try? FileManager.default.removeItem(atPath: tiny.path) }
    let reference = tiny.referenceLogits(tinyTokens)
    let full = LlamaContext(model: model, contextLength: 64, threads: 2)
    let context = LlamaContext(model: model, contextLength: 64, threads: 2, maxBatch: maxBatch)
    // Window 4: three earlier positions plus the batch; the 12 tokens shift the slots often.
    #expect(context.slidingSlots == 3 + maxBatch)
    #expect(context.cacheByteCount < full.cacheByteCount)
    let logits = try context.evaluateAll(tinyTokens)
    #expect(relativeError(logits, reference) < 1e-4, "relative error \(relativeError(logits, reference))")
    // Keys a truncated position needs are either kept (evaluation continues there) or gone
    // (the context starts over); both give the reference's logits.
    for keep in [11, 9, 2] {
      let replay = LlamaContext(model: model, contextLength: 64, threads: 2, maxBatch: maxBatch)
      try replay.evaluate(tinyTokens)
      replay.truncate(to: keep)
      let start = replay.position
      #expect(start == keep || start == 0)
      let tail = try replay.evaluateAll(Array(tinyTokens[start...]))
      let expected = Array(reference[start...])
      #expect(relativeError(tail, expected) < 1e-4, "truncate to \(keep) (continued at \(start))")
    }
    let replay = LlamaContext(model: model, contextLength: 64, threads: 2, maxBatch: maxBatch)
    try replay.evaluate(tinyTokens)
    replay.truncate(to: 2)
    #expect(replay.position == 0, "position 2's window was dropped long ago")
    replay.truncate(to: 0)
    try replay.evaluate(tinyTokens)
    replay.truncate(to: 11)
    #expect(replay.position == 11, "the last window is always kept")
  }

  @Test(
    "a copied sequence continues exactly like the original (sliding layers keep their window)",
    arguments: ["gemma3 f32 (post-norms, GeGLU, sliding window 4)", "llama q8_0"], [KVCacheElement.f32, .f16])
  func copiedSequenceContinues(_ name: String, _ cache: KVCacheElement) throws {
    let (tiny, model) = try makeModel(Self.variants.first { $0.name == name }!)
    defer { try? FileManager.default.removeItem(atPath: tiny.path) }
    // The source prefills in chunks of 5 (its sliding slots shift); the copies are smaller
    // contexts with other batch sizes, as the serving engine's slots are.
    let source = LlamaContext(model: model, contextLength: 64, threads: 2, maxBatch: 5, cacheElement: cache)
    try source.evaluate(tinyTokens)
    let copies = [
      LlamaContext(model: model, contextLength: 16, threads: 2, maxBatch: 1, cacheElement: cache),
      LlamaContext(model: model, contextLength: 32, threads: 2, maxBatch: 3, cacheElement: cache),
    ]
    let alone = LlamaContext(model: model, contextLength: 64, threads: 2, maxBatch: 5, cacheElement: cache)
    try alone.evaluate(tinyTokens)
    for copy in copies {
      try copy.evaluate([9, 9, 9])  // stale contents the copy must replace
      copy.copySequence(from: source)
      #expect(copy.position == tinyTokens.count)
      #expect(Array(copy.lastLogits) == Array(source.lastLogits))
    }
    for token: Int32 in [1, 44, 7] {
      try alone.evaluate([token])
      for copy in copies {
        try copy.evaluate([token])
        #expect(Array(copy.lastLogits) == Array(alone.lastLogits), "after token \(token)")
      }
    }
    // The source is untouched and continues on its own.
    try source.evaluate([1])
    #expect(source.position == tinyTokens.count + 1)
  }

  @Test(
    "a copied prompt prefix continues like the original (or is refused where the window moved on)",
    arguments: ["gemma3 f32 (post-norms, GeGLU, sliding window 4)", "llama q8_0"])
  func copiedPrefixContinues(_ name: String) throws {
    let (tiny, model) = try makeModel(Self.variants.first { $0.name == name }!)
    defer { try? FileManager.default.removeItem(atPath: tiny.path) }
    // The whole sequence evaluated in one context, as the copies' reference.
    let full = try LlamaContext(model: model, contextLength: 64, threads: 2, maxBatch: 5).evaluateAll(tinyTokens)
    func continues(from source: LlamaContext, count: Int) throws {
      let copy = LlamaContext(model: model, contextLength: 32, threads: 2, maxBatch: 3)
      try copy.evaluate([9, 9])  // stale contents the copy must replace
      #expect(copy.copyPrefix(from: source, count: count), "count \(count)")
      #expect(copy.position == count)
      let tail = try copy.evaluateAll(Array(tinyTokens[count...]))
      let expected = full[(count * model.vocabularySize)...]
      let scale = expected.map(abs).max()!
      let error = zip(tail, expected).map { abs($0 - $1) }.max()! / scale
      #expect(error < 1e-4, "count \(count): relative error \(error)")
    }
    // A source whose sliding slots never moved (one chunk) holds every prefix.
    let whole = LlamaContext(model: model, contextLength: 64, threads: 2, maxBatch: 16)
    try whole.evaluate(tinyTokens)
    for count in [1, 2, 6, tinyTokens.count - 1] { try continues(from: whole, count: count) }
    // One that evaluated a token at a time keeps only the last window of a sliding layer: a
    // prefix ending at its last positions copies, a short one is refused and changes nothing.
    let stepped = LlamaContext(model: model, contextLength: 64, threads: 2, maxBatch: 1)
    for token in tinyTokens { try stepped.evaluate([token]) }
    try continues(from: stepped, count: tinyTokens.count - 1)
    let refused = LlamaContext(model: model, contextLength: 32, threads: 2, maxBatch: 3)
    try refused.evaluate([9, 9])
    #expect(refused.copyPrefix(from: stepped, count: 2) == (model.hyper.slidingWindow == 0))
    if model.hyper.slidingWindow > 0 { #expect(refused.position == 2) }
  }

  @Test("bad input is an error, not a crash")
  func errors() throws {
    let (tiny, model) = try makeModel(Self.variants[0])
    defer { try? FileManager.default.removeItem(atPath: tiny.path) }
    let context = LlamaContext(model: model, contextLength: 8, threads: 2)
    #expect(throws: LlamaError.tokenOutOfRange(token: 61, vocabularySize: 61)) {
      try context.evaluate([61])
    }
    #expect(throws: LlamaError.tokenOutOfRange(token: -1, vocabularySize: 61)) {
      try context.evaluate([-1])
    }
    #expect(throws: LlamaError.emptyInput) { try context.evaluate([]) }
    #expect(throws: LlamaError.contextFull(needed: 9, capacity: 8)) {
      try context.evaluate(Array(repeating: 1, count: 9))
    }
    #expect(context.position == 0)
  }

  @Test("a model with a missing or misshapen tensor is refused with its name")
  func malformedModels() throws {
    var writer = GGUFWriter()
    writer.set("general.architecture", .string("llama"))
    writer.set("llama.block_count", .uint32(1))
    writer.set("llama.embedding_length", .uint32(32))
    writer.set("llama.feed_forward_length", .uint32(32))
    writer.set("llama.attention.head_count", .uint32(2))
    try writer.addTensor(name: "token_embd.weight", type: .f32, dimensions: [32, 4], data: [UInt8](repeating: 0, count: 512))
    try writer.addTensor(name: "output_norm.weight", type: .f32, dimensions: [16], data: [UInt8](repeating: 0, count: 64))
    let file = try GGUFFile(bytes: try writer.serialized())
    #expect(throws: LlamaError.wrongShape(name: "output_norm.weight", expected: [32], found: [16])) {
      try LlamaModel(file: file)
    }

    var unknown = GGUFWriter()
    unknown.set("general.architecture", .string("mamba"))
    #expect(throws: LlamaError.unsupportedArchitecture("mamba")) {
      try LlamaModel(file: try GGUFFile(bytes: try unknown.serialized()))
    }
  }
}
