// One sequence's run state: the KV cache and the scratch activations of the forward pass,
// allocated once and carved into named views. Evaluates tokens in batches (prefill) or one
// at a time (decode). Not thread-safe: one owner drives it; compute fans out to its pool.
//
// Per layer (PyTorch-style, x is [T, d]):
//   h = rmsnorm(x) * w_attn_norm
//   q, k, v = h Wqᵀ (+bq), h Wkᵀ (+bk), h Wvᵀ (+bv)
//   (q/k-norm families: q, k = rmsnorm per head * w_q_norm, w_k_norm);  q, k = rope(q), rope(k)
//   x = x + softmax(q kᵀ / sqrt(hd) + causal) v Woᵀ      (grouped-query: kv head = h / group)
//   h = rmsnorm(x) * w_ffn_norm
//   x = x + (silu(h Wgateᵀ) * (h Wupᵀ)) Wdownᵀ
// logits = rmsnorm(x) * w_out_norm  Woutᵀ
// Family options (ModelFamily): x starts as embedding * √d; the attention and feed-forward
// outputs are RMS-normed (post-norms) before their residual add; GeGLU (tanh GELU) instead of
// SwiGLU; sliding layers attend to the last `slidingWindow` positions with their own RoPE.
//
// KV cache of a sliding layer: only `slidingSlots` = window - 1 + maxBatch positions (the keys a
// chunk of up to maxBatch new tokens can see), not the whole context. Its slot 0 holds position
// `slidingBase`; when a chunk would not fit, the last window - 1 positions move to the front
// (one memmove per layer every ~maxBatch tokens), so attention still reads contiguous keys.
import CKernels
import Kernels

/// Element type of the KV cache: fp32, or fp16 (half the memory and the bytes attention reads,
/// at fp16's rounding of keys and values).
public enum KVCacheElement: String, Sendable, CaseIterable {
  case f32, f16

  var byteCount: Int { self == .f32 ? 4 : 2 }
}

public final class LlamaContext {
  /// The weights evaluated; `use(model:)` swaps in another set of the same shapes.
  public private(set) var model: LlamaModel
  /// Positions the KV cache holds.
  public let capacity: Int
  /// Tokens evaluated so far (the next token's position).
  public private(set) var position = 0
  /// Largest number of tokens evaluated in one forward pass; longer inputs run in chunks.
  public let maxBatch: Int
  public let pool: ThreadPool
  /// Called after every layer projection (an unmerged adapter); nil runs the weights as they are.
  public var projectionHook: (any LlamaProjectionHook)?

  let workspace: MatMulWorkspace
  public let cacheElement: KVCacheElement
  let keyCache: UnsafeMutableRawPointer  // [layer][slot][kvDimension] of cacheElement
  let valueCache: UnsafeMutableRawPointer
  /// Where each layer's slots start in the caches (elements): full layers hold `capacity`
  /// positions, sliding ones `slidingSlots`.
  let layerOffsets: [Int]
  /// Positions a sliding layer's cache holds (`capacity` when no layer slides or it is no larger).
  public let slidingSlots: Int
  /// The position in slot 0 of every sliding layer; positions before it are gone.
  private var slidingBase = 0
  private let cacheElementCount: Int
  let scratch: Scratch
  let logits: UnsafeMutablePointer<Float>  // [vocabulary], the last token's

  public convenience init(
    model: LlamaModel, contextLength: Int, threads: Int, maxBatch: Int = 512, cacheElement: KVCacheElement = .f32
  ) {
    self.init(
      model: model, contextLength: contextLength, pool: ThreadPool(threads: threads), maxBatch: maxBatch,
      cacheElement: cacheElement)
  }

  /// A context computing on a pool it may share with other contexts that run on the same
  /// thread (one sequence at a time), so idle sequences keep no spinning workers of their own.
  public init(
    model: LlamaModel, contextLength: Int, pool: ThreadPool, maxBatch: Int = 512, cacheElement: KVCacheElement = .f32
  ) {
    self.cacheElement = cacheElement
    self.model = model
    capacity = max(1, contextLength)
    self.maxBatch = max(1, min(maxBatch, capacity))
    self.pool = pool
    let hyper = model.hyper
    workspace = MatMulWorkspace(
      maxColumns: model.widestMatrixInput, maxTokens: self.maxBatch, threads: pool.threadCount)
    // Large allocations come straight from mmap: pages cost memory only once written.
    slidingSlots = hyper.slidingWindow > 0 ? min(capacity, hyper.slidingWindow - 1 + self.maxBatch) : capacity
    var offsets: [Int] = []
    var cacheCount = 0
    for layer in 0..<hyper.layerCount {
      offsets.append(cacheCount)
      cacheCount += (hyper.isSliding(layer) ? slidingSlots : capacity) * hyper.kvDimension
    }
    layerOffsets = offsets
    cacheElementCount = cacheCount
    keyCache = .allocate(byteCount: cacheCount * cacheElement.byteCount, alignment: 64)
    valueCache = .allocate(byteCount: cacheCount * cacheElement.byteCount, alignment: 64)
    scratch = Scratch(hyper: hyper, tokens: self.maxBatch, threads: pool.threadCount, capacity: capacity)
    logits = .allocate(capacity: model.vocabularySize)
  }

  deinit {
    keyCache.deallocate()
    valueCache.deallocate()
    logits.deallocate()
  }

  /// Bytes of the key and value caches together.
  public var cacheByteCount: Int { 2 * cacheElementCount * cacheElement.byteCount }

  /// Forgets every position at or after `newPosition` (e.g. to reuse a common prompt prefix).
  /// When a sliding layer has already dropped keys that position needs, the whole sequence is
  /// forgotten: `position` says where evaluation continues.
  public func truncate(to newPosition: Int) {
    position = max(0, min(position, newPosition))
    if slidingBase > max(0, position - model.hyper.slidingWindow + 1) { position = 0 }
    if position == 0 { slidingBase = 0 }
  }

  public func reset() {
    position = 0
    slidingBase = 0
  }

  /// Evaluates with `newModel` from now on (an adapter merged into the same base) and forgets
  /// the sequence: cached keys and values of other weights are meaningless. The scratch and
  /// cache sizes depend only on the hyper-parameters, so they must match.
  public func use(model newModel: LlamaModel) {
    precondition(
      newModel.hyper == model.hyper && newModel.rope == model.rope && newModel.slidingRope == model.slidingRope,
      "use(model:) needs weights of the same shapes")
    model = newModel
    reset()
  }

  /// Logits of the last evaluated token; valid until the next call to `evaluate`.
  public var lastLogits: UnsafeBufferPointer<Float> {
    UnsafeBufferPointer(start: logits, count: model.vocabularySize)
  }

  /// Appends `tokens` to the sequence and computes the last token's logits.
  public func evaluate(_ tokens: [Int32]) throws {
    try evaluate(tokens, allLogits: nil)
  }

  /// Appends `tokens` and returns the logits of every one of them ([tokens][vocabulary]).
  public func evaluateAll(_ tokens: [Int32]) throws -> [Float] {
    var all = [Float](repeating: 0, count: tokens.count * model.vocabularySize)
    try all.withUnsafeMutableBufferPointer { try evaluate(tokens, allLogits: $0.baseAddress!) }
    return all
  }

  func evaluate(_ tokens: [Int32], allLogits: UnsafeMutablePointer<Float>?) throws {
    guard !tokens.isEmpty else { throw LlamaError.emptyInput }
    let vocabulary = model.vocabularySize
    for token in tokens where token < 0 || Int(token) >= vocabulary {
      throw LlamaError.tokenOutOfRange(token: token, vocabularySize: vocabulary)
    }
    guard position + tokens.count <= capacity else {
      throw LlamaError.contextFull(needed: position + tokens.count, capacity: capacity)
    }
    var start = 0
    while start < tokens.count {
      let count = min(maxBatch, tokens.count - start)
      let chunk = tokens[start..<(start + count)]
      let isLast = start + count == tokens.count
      forward(Array(chunk), allLogits: allLogits.map { $0 + start * vocabulary }, wantLast: isLast)
      start += count
    }
  }

  // MARK: - forward pass

  private func forward(_ tokens: [Int32], allLogits: UnsafeMutablePointer<Float>?, wantLast: Bool) {
    let hyper = model.hyper
    let weights = model.weights
    let n = tokens.count
    let d = hyper.embeddingLength
    let s = scratch

    let start = position
    let model = model
    makeRoomInSlidingLayers(for: n)
    // llama.cpp scales by sqrtf(n_embd) in float.
    let embeddingScale: Float? = hyper.family.scalesEmbedding ? Float(d).squareRoot() : nil
    pool.parallelFor(n) { range, _ in
      for t in range {
        weights.tokenEmbedding.dequantizeRow(Int(tokens[t]), into: s.x + t * d)
        if let embeddingScale {
          for i in 0..<d { s.x[t * d + i] *= embeddingScale }
        }
        model.rope.angles(s.ropeAngles + t * hyper.ropeDimension, position: start + t)
        model.slidingRope?.angles(s.slidingRopeAngles + t * hyper.ropeDimension, position: start + t)
      }
    }
    for layer in 0..<hyper.layerCount {
      attentionBlock(layer: layer, tokens: n)
      feedForwardBlock(layer: layer, tokens: n)
    }
    position += n

    // Only the rows whose logits are wanted go through the (large) output matrix.
    let first = allLogits == nil ? n - 1 : 0
    rmsnorm(s.normed, s.x, weights.outputNorm, rows: first..<n)
    if let allLogits {
      multiply(allLogits, weights.output, s.normed, tokens: n)
      if wantLast {
        logits.update(from: allLogits + (n - 1) * model.vocabularySize, count: model.vocabularySize)
      }
    } else if wantLast {
      multiply(logits, weights.output, s.normed + (n - 1) * d, tokens: 1)
    }
  }

  /// Before `n` tokens at `position`: if a sliding layer's slots cannot take them, moves its
  /// last window - 1 positions (all a new token can see besides the new ones) to the front.
  private func makeRoomInSlidingLayers(for n: Int) {
    let hyper = model.hyper
    guard hyper.slidingWindow > 0, position - slidingBase + n > slidingSlots else { return }
    let keep = min(position - slidingBase, hyper.slidingWindow - 1)
    let newBase = position - keep
    let rowBytes = hyper.kvDimension * cacheElement.byteCount
    for layer in 0..<hyper.layerCount where hyper.isSliding(layer) {
      let layerStart = layerOffsets[layer] * cacheElement.byteCount
      let from = layerStart + (newBase - slidingBase) * rowBytes
      for cache in [keyCache, valueCache] {
        (cache + layerStart).copyMemory(from: cache + from, byteCount: keep * rowBytes)
      }
    }
    slidingBase = newBase
  }

  /// Slot of `position` in `layer`'s cache.
  private func slot(_ position: Int, layer: Int) -> Int {
    model.hyper.isSliding(layer) ? position - slidingBase : position
  }

  /// out[t] = rmsnorm(x[t]) * weight for the rows in `rows`, split across the pool.
  private func rmsnorm(
    _ out: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ weight: VectorView,
    rows: Range<Int>
  ) {
    let d = model.hyper.embeddingLength
    let epsilon = model.hyper.rmsEpsilon
    pool.parallelFor(rows.count) { range, _ in
      for t in range {
        let row = rows.lowerBound + t
        dq_rmsnorm(out + row * d, x + row * d, weight.base, Int64(d), epsilon)
      }
    }
  }

  /// x[t] += delta[t] for the first `tokens` rows (the residual stream).
  private func addResidual(_ x: UnsafeMutablePointer<Float>, _ delta: UnsafePointer<Float>, tokens: Int) {
    let d = model.hyper.embeddingLength
    pool.parallelFor(tokens) { range, _ in
      dq_add(x + range.lowerBound * d, delta + range.lowerBound * d, Int64(range.count * d))
    }
  }

  private func multiply(
    _ out: UnsafeMutablePointer<Float>, _ w: WeightMatrix, _ x: UnsafePointer<Float>, tokens: Int
  ) {
    MatMul.multiply(out, w, x, tokens: tokens, pool: pool, workspace: workspace)
  }

  /// out = x W(layer, projection)ᵀ, plus the hook's update when one is set.
  private func project(
    _ out: UnsafeMutablePointer<Float>, _ projection: LlamaProjection, layer: Int,
    _ x: UnsafePointer<Float>, tokens: Int
  ) {
    let w = model.weights.layers[layer].matrix(projection)
    if tokens == 1, let update = projectionHook?.lowRank(layer: layer, projection: projection) {
      // Decode: the update rides in the projection's own parallel pass.
      MatMul.multiplyVector(out, w, x, adding: update, pool: pool, workspace: workspace)
      return
    }
    multiply(out, w, x, tokens: tokens)
    projectionHook?.apply(
      layer: layer, projection: projection, out: out, x: x, tokens: tokens, rows: w.rows,
      columns: w.columns, pool: pool)
  }

  /// Projections of the same input: at decode without a hook, one fused pool job.
  private func project(
    _ targets: [(out: UnsafeMutablePointer<Float>, projection: LlamaProjection)], layer: Int,
    _ x: UnsafePointer<Float>, tokens: Int
  ) {
    if tokens == 1 && projectionHook == nil {
      let layerWeights = model.weights.layers[layer]
      let fused = targets.map { (out: $0.out, w: layerWeights.matrix($0.projection)) }
      if MatMul.multiplyVectors(fused, x, pool: pool, workspace: workspace) { return }
    }
    for target in targets { project(target.out, target.projection, layer: layer, x, tokens: tokens) }
  }

  private func attentionBlock(layer: Int, tokens n: Int) {
    let hyper = model.hyper
    let w = model.weights.layers[layer]
    let s = scratch
    let qDim = hyper.queryDimension
    let kvDim = hyper.kvDimension

    rmsnorm(s.normed, s.x, w.attentionNorm, rows: 0..<n)
    project([(s.q, .q), (s.k, .k), (s.v, .v)], layer: layer, s.normed, tokens: n)
    let neox: Int32 = hyper.ropeIsNeox ? 1 : 0
    let ropeAngles = hyper.isSliding(layer) ? s.slidingRopeAngles : s.ropeAngles
    pool.parallelFor(n) { range, _ in
      for t in range {
        if let b = w.queryBias { dq_add(s.q + t * qDim, b.base, Int64(qDim)) }
        if let b = w.keyBias { dq_add(s.k + t * kvDim, b.base, Int64(kvDim)) }
        if let b = w.valueBias { dq_add(s.v + t * kvDim, b.base, Int64(kvDim)) }
        if let qn = w.queryNorm, let kn = w.keyNorm {
          let hd = hyper.headDimension
          for head in 0..<hyper.headCount {
            let row = s.q + t * qDim + head * hd
            dq_rmsnorm(row, row, qn.base, Int64(hd), hyper.rmsEpsilon)
          }
          for head in 0..<hyper.kvHeadCount {
            let row = s.k + t * kvDim + head * hd
            dq_rmsnorm(row, row, kn.base, Int64(hd), hyper.rmsEpsilon)
          }
        }
        let angles = ropeAngles + t * hyper.ropeDimension
        dq_rope_apply(
          s.q + t * qDim, Int32(hyper.headCount), Int32(hyper.headDimension),
          Int32(hyper.ropeDimension), angles, neox)
        dq_rope_apply(
          s.k + t * kvDim, Int32(hyper.kvHeadCount), Int32(hyper.headDimension),
          Int32(hyper.ropeDimension), angles, neox)
      }
    }
    storeInCache(layer: layer, keys: s.k, values: s.v, tokens: n)

    attention(layer: layer, tokens: n)
    project(s.projected, .o, layer: layer, s.attention, tokens: n)
    if let post = w.postAttentionNorm { rmsnorm(s.projected, s.projected, post, rows: 0..<n) }
    addResidual(s.x, s.projected, tokens: n)
  }

  /// Appends the new tokens' keys and values at `position`, converted to the cache's type.
  private func storeInCache(layer: Int, keys: UnsafePointer<Float>, values: UnsafePointer<Float>, tokens n: Int) {
    let kvDim = model.hyper.kvDimension
    let first = layerOffsets[layer] + slot(position, layer: layer) * kvDim
    switch cacheElement {
    case .f32:
      (keyCache.assumingMemoryBound(to: Float.self) + first).update(from: keys, count: n * kvDim)
      (valueCache.assumingMemoryBound(to: Float.self) + first).update(from: values, count: n * kvDim)
    case .f16:
      dq_fp32_to_fp16_row(keyCache.assumingMemoryBound(to: UInt16.self) + first, keys, Int64(n * kvDim))
      dq_fp32_to_fp16_row(valueCache.assumingMemoryBound(to: UInt16.self) + first, values, Int64(n * kvDim))
    }
  }

  /// Causal grouped-query attention of the n new tokens over the cache: one task per
  /// (head, block of query rows); query head h reads kv head h / group.
  private func attention(layer: Int, tokens n: Int) {
    let hyper = model.hyper
    let s = scratch
    let hd = hyper.headDimension
    let qDim = hyper.queryDimension
    let kvDim = hyper.kvDimension
    let group = hyper.headCount / hyper.kvHeadCount
    let scale = 1 / Float(hd).squareRoot()
    let layerOffset = layerOffsets[layer]
    let base = hyper.isSliding(layer) ? slidingBase : 0
    let element = cacheElement
    let keys32 = keyCache.assumingMemoryBound(to: Float.self) + layerOffset
    let values32 = valueCache.assumingMemoryBound(to: Float.self) + layerOffset
    let keys16 = keyCache.assumingMemoryBound(to: UInt16.self) + layerOffset
    let values16 = valueCache.assumingMemoryBound(to: UInt16.self) + layerOffset
    let start = position
    let blockRows = Scratch.attentionBlockRows
    let blocks = (n + blockRows - 1) / blockRows
    let window = hyper.isSliding(layer) ? hyper.slidingWindow : Int.max

    pool.parallelFor(blocks * hyper.headCount) { tasks, thread in
      let scores = s.scores + thread * s.scoresPerThread
      for task in tasks {
        let head = task % hyper.headCount
        let kvHead = head / group
        let t0 = (task / hyper.headCount) * blockRows
        let out = s.attention + t0 * qDim + head * hd
        let query = s.q + t0 * qDim + head * hd
        let rows = min(blockRows, n - t0)
        // Query at position p sees keys [first, p], first = max(0, p - window + 1). While no
        // row of the block has lost a key to the window, one causal call serves them all;
        // past that, each row runs alone over its own window.
        let lastPosition = start + t0 + rows - 1
        let runs: [(row: Int, count: Int, firstKey: Int)] =
          lastPosition - window + 1 <= 0
          ? [(0, rows, 0)] : (0..<rows).map { ($0, 1, max(0, start + t0 + $0 - window + 1)) }
        for run in runs {
          let visible = Int64(start + t0 + run.row + 1 - run.firstKey)
          let keyOffset = (run.firstKey - base) * kvDim + kvHead * hd
          switch element {
          case .f32:
            dq_attention_head(
              out + run.row * qDim, Int64(qDim), query + run.row * qDim, Int64(qDim), keys32 + keyOffset,
              values32 + keyOffset, Int64(kvDim), Int64(run.count), Int64(hd), visible, scale, scores)
          case .f16:
            dq_attention_head_f16(
              out + run.row * qDim, Int64(qDim), query + run.row * qDim, Int64(qDim), keys16 + keyOffset,
              values16 + keyOffset, Int64(kvDim), Int64(run.count), Int64(hd), visible, scale, scores)
          }
        }
      }
    }
  }

  private func feedForwardBlock(layer: Int, tokens n: Int) {
    let hyper = model.hyper
    let w = model.weights.layers[layer]
    let s = scratch
    let f = hyper.feedForwardLength
    rmsnorm(s.normed, s.x, w.feedForwardNorm, rows: 0..<n)
    project([(s.gate, .gate), (s.up, .up)], layer: layer, s.normed, tokens: n)
    let activation = hyper.family.activation
    pool.parallelFor(n) { range, _ in
      let offset = range.lowerBound * f
      switch activation {
      case .silu: dq_swiglu(s.gate + offset, s.gate + offset, s.up + offset, Int64(range.count * f))
      case .geluTanh: GeGLU.forward(s.gate + offset, gate: s.gate + offset, up: s.up + offset, count: range.count * f)
      }
    }
    project(s.projected, .down, layer: layer, s.gate, tokens: n)
    if let post = w.postFeedForwardNorm { rmsnorm(s.projected, s.projected, post, rows: 0..<n) }
    addResidual(s.x, s.projected, tokens: n)
  }
}

/// The activations of one forward pass over up to `tokens` tokens, one slab carved into views.
final class Scratch {
  /// Query rows per batched-attention task.
  static let attentionBlockRows = 32

  let slab: UnsafeMutablePointer<Float>
  let x, normed, q, k, v, attention, projected, gate, up, scores: UnsafeMutablePointer<Float>
  /// RoPE cos/sin of each token's position, computed once per forward pass for all layers.
  let ropeAngles: UnsafeMutablePointer<Float>
  /// The same for the sliding-window layers' RoPE (unused when no layer slides).
  let slidingRopeAngles: UnsafeMutablePointer<Float>
  /// Attention scores of one thread: a block of query rows over every cached position.
  let scoresPerThread: Int

  init(hyper: LlamaHyperParameters, tokens: Int, threads: Int, capacity: Int) {
    let d = hyper.embeddingLength
    scoresPerThread = 4 * capacity  // dq_attention_head's scratch for any block
    let sizes = [
      tokens * d, tokens * d, tokens * hyper.queryDimension, tokens * hyper.kvDimension,
      tokens * hyper.kvDimension, tokens * hyper.queryDimension, tokens * d,
      tokens * hyper.feedForwardLength, tokens * hyper.feedForwardLength,
      threads * scoresPerThread, tokens * hyper.ropeDimension, tokens * hyper.ropeDimension,
    ]
    slab = .allocate(capacity: sizes.reduce(0, +))
    var offset = 0
    var views: [UnsafeMutablePointer<Float>] = []
    for size in sizes {
      views.append(slab + offset)
      offset += size
    }
    (x, normed, q, k, v, attention) = (views[0], views[1], views[2], views[3], views[4], views[5])
    (projected, gate, up, scores) = (views[6], views[7], views[8], views[9])
    ropeAngles = views[10]
    slidingRopeAngles = views[11]
  }

  deinit { slab.deallocate() }
}
