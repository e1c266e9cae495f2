// LlamaBatch: one step over many sequences gives each sequence the logits it gets alone
// (mixed prompt lengths, sequences joining and leaving mid-run, mixed adapters and weights),
// for several quant types. The multi-row kernels sum in the one-token dots' order except where
// AVX-512 decode dots sum differently, so logits agree to float rounding; greedy tokens must
// be identical wherever the top-2 margin is clear of that rounding.
import Foundation
import CKernels
import GGUF
import Kernels
import Llama
import Testing
import TinyModelSupport

/// A dense low-rank update out += scale · B (A x) per token, written independently of the
/// Adapters module's hook.
final class DenseLowRankHook: LlamaProjectionHook {
  let rank = 3
  let scale: Float = 0.5
  let seed: UInt64
  private var factors: [String: (a: [Float], b: [Float])] = [:]

  init(seed: UInt64) { self.seed = seed }

  private func factors(layer: Int, projection: LlamaProjection, rows: Int, columns: Int) -> (a: [Float], b: [Float]) {
    let key = "\(layer).\(projection.rawValue)"
    if let f = factors[key] { return f }
    var random = SplitMix(seed: seed &+ UInt64(layer * 31 + projection.rawValue.count * 7 + rows))
    let a = (0..<(rank * columns)).map { _ in Float(random.symmetric()) * 0.3 }
    let b = (0..<(rows * rank)).map { _ in Float(random.symmetric()) * 0.3 }
    factors[key] = (a, b)
    return (a, b)
  }

  func apply(
    layer: Int, projection: LlamaProjection, out: UnsafeMutablePointer<Float>, x: UnsafePointer<Float>,
    tokens: Int, rows: Int, columns: Int, pool: ThreadPool
  ) {
    let f = factors(layer: layer, projection: projection, rows: rows, columns: columns)
    for t in 0..<tokens {
      var u = [Float](repeating: 0, count: rank)
      for k in 0..<rank {
        for c in 0..<columns { u[k] += f.a[k * columns + c] * x[t * columns + c] }
      }
      for r in 0..<rows {
        var sum: Float = 0
        for k in 0..<rank { sum += f.b[r * rank + k] * u[k] }
        out[t * rows + r] += scale * sum
      }
    }
  }
}

struct BatchTests {
  struct Variant: CustomTestStringConvertible, Sendable {
    let matrixType: GGMLType
    var testDescription: String { "\(matrixType)" }
  }

  static let variants: [Variant] = [.f16, .q4_0, .q4_1, .q8_0, .q4_K, .q5_K, .q6_K].map(Variant.init)

  /// A sequence's script: its prompt, when it joins (step index) and how many tokens it decodes.
  struct Script {
    let prompt: [Int32]
    let joins: Int
    let decodes: Int
    let hook: Int?  // index into the hooks, nil for none
    let model: Int  // index into the models
  }

  static func scripts(vocabulary: Int) -> [Script] {
    var random = SplitMix(seed: 99)
    let lengths = [1, 7, 3, 12, 5, 2, 9, 4]
    return lengths.enumerated().map { i, length in
      Script(
        prompt: (0..<length).map { _ in Int32(random.next() % UInt64(vocabulary)) },
        joins: [0, 0, 1, 0, 3, 2, 0, 5][i], decodes: [6, 4, 6, 3, 5, 6, 2, 4][i],
        hook: [nil, 0, nil, 1, 0, nil, 1, nil][i], model: [0, 0, 0, 0, 0, 1, 0, 1][i])
    }
  }

  /// Runs a script alone, decoding greedily; the logits after the prompt and after every
  /// decoded token, and the tokens decoded.
  static func alone(
    _ script: Script, models: [LlamaModel], hooks: [DenseLowRankHook], pool: ThreadPool
  ) throws -> (logits: [[Float]], tokens: [Int32]) {
    let context = LlamaContext(model: models[script.model], contextLength: 64, pool: pool, maxBatch: 64)
    context.projectionHook = script.hook.map { hooks[$0] }
    try context.evaluate(script.prompt)
    var steps = [Array(context.lastLogits)]
    var tokens: [Int32] = []
    for _ in 0..<script.decodes {
      tokens.append(argmax(steps.last!))
      try context.evaluate([tokens.last!])
      steps.append(Array(context.lastLogits))
    }
    return (steps, tokens)
  }

  /// Runs all scripts in one batch: a sequence joins at its step with its whole prompt, then
  /// takes the tokens it decoded alone one per step (so a near-tie flipped by rounding cannot
  /// send it down another path), and leaves when done. The batch takes at most
  /// `maxRows` rows a pass, so long steps are split.
  static func batched(
    _ scripts: [Script], tokens: [[Int32]], models: [LlamaModel], hooks: [DenseLowRankHook], pool: ThreadPool,
    maxRows: Int
  ) throws -> [[[Float]]] {
    let batch = LlamaBatch(model: models[0], maxRows: maxRows, maxContextLength: 64, pool: pool)
    let contexts = scripts.map { script in
      let context = LlamaContext(model: models[script.model], contextLength: 64, pool: pool, maxBatch: 1)
      context.projectionHook = script.hook.map { hooks[$0] }
      return context
    }
    var results = [[[Float]]](repeating: [], count: scripts.count)
    var step = 0
    while zip(scripts, results).contains(where: { $0.1.count < $0.0.decodes + 1 }) {
      var entries: [(context: LlamaContext, tokens: [Int32])] = []
      for (i, script) in scripts.enumerated() where step >= script.joins && results[i].count < script.decodes + 1 {
        entries.append((contexts[i], results[i].isEmpty ? script.prompt : [tokens[i][results[i].count - 1]]))
      }
      if !entries.isEmpty {
        try batch.evaluate(entries)
        for (i, context) in contexts.enumerated() where entries.contains(where: { $0.context === context }) {
          results[i].append(Array(context.lastLogits))
        }
      }
      step += 1
    }
    return results
  }

  static func argmax(_ logits: [Float]) -> Int32 {
    Int32(logits.indices.max { logits[$0] < logits[$1] }!)
  }

  /// Largest |batched - alone| relative to the largest |alone|, and whether every greedy token
  /// with a clear margin (top-2 gap over `clear` × scale) is identical.
  static func compare(_ alone: [[Float]], _ batched: [[Float]], clear: Float) -> (error: Float, tokensAgree: Bool) {
    var error: Float = 0
    var agree = true
    for (a, b) in zip(alone, batched) {
      let scale = max(1e-6, a.map(abs).max()!)
      error = max(error, zip(a, b).map { abs($0 - $1) }.max()! / scale)
      let sorted = a.sorted(by: >)
      if sorted[0] - sorted[1] > clear * scale && argmax(a) != argmax(b) { agree = false }
    }
    return (error, agree)
  }

  @Test("a batch of 8 sequences equals each alone", arguments: variants)
  func batchEqualsAlone(_ v: Variant) throws {
    // 256 columns: the k-quants' block length.
    var spec = TinyModelSpec(embedding: 256, heads: 4, kvHeads: 2, feedForward: 256, vocabulary: 67)
    spec.matrixType = v.matrixType
    spec.embeddingType = .q8_0
    let first = try TinyModel(spec)
    spec.seed = 11
    let second = try TinyModel(spec)  // another set of weights of the same shape (a merged adapter)
    defer {
      try? FileManager.default.removeItem(atPath: first.path)
      try? FileManager.default.removeItem(atPath: second.path)
    }
    let models = [try LlamaModel(path: first.path), try LlamaModel(path: second.path)]
    let hooks = [DenseLowRankHook(seed: 1), DenseLowRankHook(seed: 2)]
    let scripts = Self.scripts(vocabulary: spec.vocabulary)
    // Exact: one thread on the AVX2 dots and tiles, which give a row the same bits in a batch
    // as alone (F16 weights: 8+ rows go through sgemm, so rounding differs). Fast: the kernels
    // the daemon runs, where AVX-512 decode dots sum in another order than the tiles; an
    // activation quantized to 8 bits can then round one step apart (measured worst 1.7e-2 on
    // these 256-wide random models, 0 or ~1e-7 for most sequences).
    for exact in [true, false] {
      dq_force_avx2_dots(exact)
      dq_force_avx2_tiles(exact)
      defer {
        dq_force_avx2_dots(false)
        dq_force_avx2_tiles(false)
      }
      let pool = ThreadPool(threads: exact ? 1 : 2)
      let tolerance: Float = exact ? (v.matrixType == .f16 ? 1e-5 : 1e-6) : 3e-2
      let alone = try scripts.map { try Self.alone($0, models: models, hooks: hooks, pool: pool) }
      for maxRows in [64, 8] {
        let batched = try Self.batched(
          scripts, tokens: alone.map(\.tokens), models: models, hooks: hooks, pool: pool, maxRows: maxRows)
        for (i, (a, b)) in zip(alone.map(\.logits), batched).enumerated() {
          #expect(a.count == b.count)
          let (error, agree) = Self.compare(a, b, clear: exact ? 1e-5 : 3e-2)
          #expect(error < tolerance, "exact \(exact), sequence \(i), maxRows \(maxRows): relative logit error \(error)")
          #expect(agree, "exact \(exact), sequence \(i), maxRows \(maxRows): greedy tokens differ")
        }
      }
    }
  }

  @Test("a long pass whose feed-forward chunks cut across sequences and adapters equals each alone")
  func longPassAcrossSequences() throws {
    // Gate and up hold 64 rows at a time here; the pass has 100 + 90 rows, so a chunk spans the
    // boundary between the sequence with an adapter and the one without.
    let spec = TinyModelSpec(feedForward: 256)
    let tiny = try TinyModel(spec)
    defer { try? FileManager.default.removeItem(atPath: tiny.path) }
    let model = try LlamaModel(path: tiny.path)
    let pool = ThreadPool(threads: 2)
    let hook = DenseLowRankHook(seed: 3)
    var random = SplitMix(seed: 9)
    let prompts = [100, 90].map { count in (0..<count).map { _ in Int32(random.next() % UInt64(spec.vocabulary)) } }
    let alone = try prompts.enumerated().map { i, prompt in
      let context = LlamaContext(model: model, contextLength: 128, pool: pool, maxBatch: 64)
      if i == 0 { context.projectionHook = hook }
      try context.evaluate(prompt)
      return Array(context.lastLogits)
    }
    let batch = LlamaBatch(model: model, maxRows: 256, maxContextLength: 128, pool: pool)
    let contexts = prompts.indices.map { _ in LlamaContext(model: model, contextLength: 128, pool: pool, maxBatch: 128) }
    contexts[0].projectionHook = hook
    #expect(try batch.evaluate(Array(zip(contexts, prompts))) == 1, "one pass of 190 rows")
    for (i, context) in contexts.enumerated() {
      let (error, agree) = Self.compare([alone[i]], [Array(context.lastLogits)], clear: 1e-4)
      #expect(error < 1e-4, "sequence \(i): relative logit error \(error)")
      #expect(agree, "sequence \(i): greedy tokens differ")
    }
  }

  @Test("a batch checks every entry before it computes anything")
  func refusesBadEntries() throws {
    let tiny = try TinyModel(TinyModelSpec())
    defer { try? FileManager.default.removeItem(atPath: tiny.path) }
    let model = try LlamaModel(path: tiny.path)
    let pool = ThreadPool(threads: 1)
    let batch = LlamaBatch(model: model, maxRows: 8, maxContextLength: 16, pool: pool)
    let a = LlamaContext(model: model, contextLength: 16, pool: pool)
    let b = LlamaContext(model: model, contextLength: 4, pool: pool)
    #expect(throws: LlamaError.contextFull(needed: 5, capacity: 4)) { try batch.evaluate([(a, [1, 2]), (b, [1, 2, 3, 4, 5])]) }
    #expect(throws: LlamaError.emptyInput) { try batch.evaluate([(a, [1]), (b, [])]) }
    #expect(throws: LlamaError.tokenOutOfRange(token: 99, vocabularySize: 61)) { try batch.evaluate([(a, [99])]) }
    #expect(a.position == 0 && b.position == 0)
  }
}

@Suite(.enabled(if: defaultModelIsPresent, "needs models/SmolLM2-135M-Instruct.Q4_1.gguf (scripts/fetch-model.sh)"))
struct DefaultModelBatchTests {
  @Test("8 sequences of the default model batched equal each alone")
  func defaultModel() throws {
    let model = try LlamaModel(path: defaultModelPath)
    let pool = ThreadPool(threads: 2)
    var random = SplitMix(seed: 5)
    let scripts = [1, 17, 4, 30, 9, 2, 23, 6].enumerated().map { i, length in
      BatchTests.Script(
        prompt: (0..<length).map { _ in Int32(random.next() % 49152) }, joins: [0, 0, 1, 0, 2, 0, 3, 1][i],
        decodes: 8, hook: nil, model: 0)
    }
    let alone = try scripts.map { try BatchTests.alone($0, models: [model], hooks: [], pool: pool) }
    let batched = try BatchTests.batched(
      scripts, tokens: alone.map(\.tokens), models: [model], hooks: [], pool: pool, maxRows: 32)
    for (i, (a, b)) in zip(alone.map(\.logits), batched).enumerated() {
      let (error, agree) = BatchTests.compare(a, b, clear: 3e-2)
      #expect(error < 3e-2, "sequence \(i): relative logit error \(error)")
      #expect(agree, "sequence \(i): greedy tokens differ")
    }
  }
}

@Suite(.enabled(if: defaultModelIsPresent, "needs models/SmolLM2-135M-Instruct.Q4_1.gguf (scripts/fetch-model.sh)"))
struct DecodeRowBitsTests {
  /// A one-row pass (decode, or the last prompt token after a shared prefix) splits attention by
  /// keys; a prefill block splits it by head. The row's logits must not depend on which: a
  /// prompt served from a shared prefix then answers exactly as it does fresh.
  @Test("a row evaluated alone has the bits it has inside a prefill block", arguments: [KVCacheElement.f32, .f16])
  func aloneEqualsInBlock(cache: KVCacheElement) throws {
    let model = try LlamaModel(path: defaultModelPath)
    var random = SplitMix(seed: 11)
    let tokens = (0..<300).map { _ in Int32(random.next() % 49152) }
    // 40 and 300 keys: two and ten key chunks. 37 then three single rows: rows 37-39 alone
    // against rows 32-39 in one 8-row block of the whole prompt.
    for (length, head) in [(40, 39), (40, 37), (300, 299)] {
      let whole = LlamaContext(model: model, contextLength: 320, threads: 2, maxBatch: 320, cacheElement: cache)
      try whole.evaluate(Array(tokens[0..<length]))
      let split = LlamaContext(model: model, contextLength: 320, threads: 2, maxBatch: 320, cacheElement: cache)
      try split.evaluate(Array(tokens[0..<head]))
      for token in tokens[head..<length] { try split.evaluate([token]) }
      #expect(Array(split.lastLogits) == Array(whole.lastLogits), "\(length) tokens, \(head) then one at a time")
    }
  }
}
