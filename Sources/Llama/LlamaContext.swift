// One sequence's run state: the KV cache and the scratch activations of the forward pass,
// allocated once and carved into named views. Evaluates tokens in batches (prefill) or one
// at a time (decode); the layers themselves are ForwardPass's, which LlamaBatch also runs over
// many sequences at once. Not thread-safe: one owner drives it; compute fans out to its pool.
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
  public internal(set) var position = 0
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
  private(set) var slidingBase = 0
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
    let (offsets, cacheCount) = Self.cacheLayout(hyper: hyper, capacity: capacity, maxBatch: self.maxBatch)
    layerOffsets = offsets
    slidingSlots = Self.slidingSlots(hyper: hyper, capacity: capacity, maxBatch: self.maxBatch)
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

  /// `cacheByteCount` of a context made with these arguments, without making it.
  public static func cacheByteCount(
    hyper: LlamaHyperParameters, contextLength: Int, maxBatch: Int, cacheElement: KVCacheElement
  ) -> Int {
    let capacity = max(1, contextLength)
    return 2 * cacheLayout(hyper: hyper, capacity: capacity, maxBatch: max(1, min(maxBatch, capacity))).count
      * cacheElement.byteCount
  }

  private static func slidingSlots(hyper: LlamaHyperParameters, capacity: Int, maxBatch: Int) -> Int {
    hyper.slidingWindow > 0 ? min(capacity, hyper.slidingWindow - 1 + maxBatch) : capacity
  }

  /// Where each layer's slots start (elements) and the elements of one cache (keys or values).
  private static func cacheLayout(
    hyper: LlamaHyperParameters, capacity: Int, maxBatch: Int
  ) -> (offsets: [Int], count: Int) {
    let sliding = slidingSlots(hyper: hyper, capacity: capacity, maxBatch: maxBatch)
    var offsets: [Int] = []
    var count = 0
    for layer in 0..<hyper.layerCount {
      offsets.append(count)
      count += (hyper.isSliding(layer) ? sliding : capacity) * hyper.kvDimension
    }
    return (offsets, count)
  }

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

  /// Makes this context continue `source`'s sequence: its weights (and projection hook), its
  /// position, the keys and values of every position a next token can see, and its last logits.
  /// A sliding layer takes only the last window - 1 positions (all a next token attends to), so
  /// this context's sliding slots may be fewer than the source's. Choices of one prompt (OpenAI's
  /// `n`) evaluate the prompt once in one context and copy it into the others.
  public func copySequence(from source: LlamaContext) {
    let copied = copyPrefix(from: source, count: source.position)
    precondition(copied, "a sequence's own last positions are always in its cache")
    logits.update(from: source.logits, count: model.vocabularySize)
  }

  /// Makes this context hold the first `count` positions of `source`'s sequence (its weights and
  /// projection hook too), to be continued with tokens of its own: a prompt prefix another
  /// sequence already evaluated. No logits are copied: evaluate at least one token next.
  /// Returns false, changing nothing, when a sliding layer of `source` has already dropped
  /// positions that the continuation would attend to.
  @discardableResult
  public func copyPrefix(from source: LlamaContext, count: Int) -> Bool {
    precondition(
      source !== self && source.cacheElement == cacheElement, "copyPrefix needs another context of the same KV type")
    precondition(count >= 0 && count <= source.position, "copyPrefix of positions the source does not hold")
    precondition(count <= capacity, "copyPrefix into a context too small for the prefix")
    let hyper = source.model.hyper
    // A sliding layer needs the last window - 1 positions before `count`, from slot 0 on.
    let firstKept = hyper.slidingWindow > 0 ? max(0, count - (hyper.slidingWindow - 1)) : 0
    guard firstKept >= source.slidingBase || hyper.slidingWindow == 0 else { return false }
    use(model: source.model)
    projectionHook = source.projectionHook
    let rowBytes = hyper.kvDimension * cacheElement.byteCount
    for layer in 0..<hyper.layerCount {
      let sliding = hyper.isSliding(layer)
      // Full layers: positions 0..<count at slots 0..<count. Sliding: firstKept..<count to slot 0 on.
      let from = sliding ? firstKept : 0
      let sourceSlot = sliding ? from - source.slidingBase : 0
      let sourceRow = source.layerOffsets[layer] * cacheElement.byteCount + sourceSlot * rowBytes
      let row = layerOffsets[layer] * cacheElement.byteCount
      for (target, origin) in [(keyCache, source.keyCache), (valueCache, source.valueCache)] {
        (target + row).copyMemory(from: origin + sourceRow, byteCount: (count - from) * rowBytes)
      }
    }
    position = count
    slidingBase = hyper.slidingWindow > 0 ? firstKept : 0
    return true
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
    let weights = model.weights
    let n = tokens.count
    let d = model.hyper.embeddingLength
    let s = scratch
    makeRoomInSlidingLayers(for: n)
    let pass = ForwardPass(
      model: model, pool: pool, workspace: workspace, scratch: s,
      segments: [ForwardSegment(context: self, rows: 0..<n, start: position)])
    pass.run(tokens: tokens)
    position += n

    // Only the rows whose logits are wanted go through the (large) output matrix.
    let first = allLogits == nil ? n - 1 : 0
    pass.rmsnorm(s.normed, s.x, weights.outputNorm, rows: first..<n)
    if let allLogits {
      pass.multiply(allLogits, weights.output, s.normed, tokens: n)
      if wantLast {
        logits.update(from: allLogits + (n - 1) * model.vocabularySize, count: model.vocabularySize)
      }
    } else if wantLast {
      pass.multiply(logits, weights.output, s.normed + (n - 1) * d, tokens: 1)
    }
  }

  /// Before `n` tokens at `position`: if a sliding layer's slots cannot take them, moves its
  /// last window - 1 positions (all a new token can see besides the new ones) to the front.
  /// Every forward pass over this context (alone or in a LlamaBatch) calls it first.
  func makeRoomInSlidingLayers(for n: Int) {
    let hyper = model.hyper
    guard hyper.slidingWindow > 0, position - slidingBase + n > slidingSlots else { return }
    precondition(n <= maxBatch, "a chunk longer than the context's maxBatch")
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

  /// Element offset of `position`'s row in `layer`'s cache.
  func cacheOffset(layer: Int, position: Int) -> Int {
    let slot = model.hyper.isSliding(layer) ? position - slidingBase : position
    return layerOffsets[layer] + slot * model.hyper.kvDimension
  }

  /// Stores `tokens` rows of keys and values at positions `at ..< at + tokens` of `layer`,
  /// converted to the cache's type.
  func storeInCache(
    layer: Int, at start: Int, keys: UnsafePointer<Float>, values: UnsafePointer<Float>, tokens n: Int
  ) {
    let kvDim = model.hyper.kvDimension
    let first = cacheOffset(layer: layer, position: start)
    switch cacheElement {
    case .f32:
      (keyCache.assumingMemoryBound(to: Float.self) + first).update(from: keys, count: n * kvDim)
      (valueCache.assumingMemoryBound(to: Float.self) + first).update(from: values, count: n * kvDim)
    case .f16:
      dq_fp32_to_fp16_row(keyCache.assumingMemoryBound(to: UInt16.self) + first, keys, Int64(n * kvDim))
      dq_fp32_to_fp16_row(valueCache.assumingMemoryBound(to: UInt16.self) + first, values, Int64(n * kvDim))
    }
  }
}

