// One sequence's run state: the KV cache and the scratch activations of the forward pass,
// allocated once and carved into named views. Evaluates tokens in batches (prefill) or one
// at a time (decode). Not thread-safe: one owner drives it; compute fans out to its pool.
//
// Per layer (PyTorch-style, x is [T, d]):
//   h = rmsnorm(x) * w_attn_norm
//   q, k, v = h Wqᵀ (+bq), h Wkᵀ (+bk), h Wvᵀ (+bv);  q, k = rope(q), rope(k)
//   x = x + softmax(q kᵀ / sqrt(hd) + causal) v Woᵀ      (grouped-query: kv head = h / group)
//   h = rmsnorm(x) * w_ffn_norm
//   x = x + (silu(h Wgateᵀ) * (h Wupᵀ)) Wdownᵀ
// logits = rmsnorm(x) * w_out_norm  Woutᵀ
import CKernels
import Kernels

public final class LlamaContext {
  public let model: LlamaModel
  /// Positions the KV cache holds.
  public let capacity: Int
  /// Tokens evaluated so far (the next token's position).
  public private(set) var position = 0
  /// Largest number of tokens evaluated in one forward pass; longer inputs run in chunks.
  public let maxBatch: Int
  public let pool: ThreadPool

  let workspace: MatMulWorkspace
  let keyCache: UnsafeMutablePointer<Float>  // [layer][position][kvDimension]
  let valueCache: UnsafeMutablePointer<Float>
  let scratch: Scratch
  let logits: UnsafeMutablePointer<Float>  // [vocabulary], the last token's

  public init(model: LlamaModel, contextLength: Int, threads: Int, maxBatch: Int = 512) {
    self.model = model
    capacity = max(1, contextLength)
    self.maxBatch = max(1, min(maxBatch, capacity))
    pool = ThreadPool(threads: threads)
    let hyper = model.hyper
    workspace = MatMulWorkspace(
      maxColumns: model.widestMatrixInput, maxTokens: self.maxBatch, threads: pool.threadCount)
    // Large allocations come straight from mmap: pages cost memory only once written.
    let cacheCount = hyper.layerCount * capacity * hyper.kvDimension
    keyCache = .allocate(capacity: cacheCount)
    valueCache = .allocate(capacity: cacheCount)
    scratch = Scratch(hyper: hyper, tokens: self.maxBatch, threads: pool.threadCount, capacity: capacity)
    logits = .allocate(capacity: model.vocabularySize)
  }

  deinit {
    keyCache.deallocate()
    valueCache.deallocate()
    logits.deallocate()
  }

  /// Forgets every position at or after `newPosition` (e.g. to reuse a common prompt prefix).
  public func truncate(to newPosition: Int) {
    position = max(0, min(position, newPosition))
  }

  public func reset() { position = 0 }

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

    for (t, token) in tokens.enumerated() {
      weights.tokenEmbedding.dequantizeRow(Int(token), into: s.x + t * d)
    }
    for layer in 0..<hyper.layerCount {
      attentionBlock(layer: layer, tokens: n)
      feedForwardBlock(layer: layer, tokens: n)
    }
    position += n

    // Only the rows whose logits are wanted go through the (large) output matrix.
    let first = allLogits == nil ? n - 1 : 0
    for t in first..<n {
      dq_rmsnorm(s.normed + t * d, s.x + t * d, weights.outputNorm.base, Int64(d), hyper.rmsEpsilon)
    }
    if let allLogits {
      multiply(allLogits, weights.output, s.normed, tokens: n)
      if wantLast {
        logits.update(from: allLogits + (n - 1) * model.vocabularySize, count: model.vocabularySize)
      }
    } else if wantLast {
      multiply(logits, weights.output, s.normed + (n - 1) * d, tokens: 1)
    }
  }

  private func multiply(
    _ out: UnsafeMutablePointer<Float>, _ w: WeightMatrix, _ x: UnsafePointer<Float>, tokens: Int
  ) {
    MatMul.multiply(out, w, x, tokens: tokens, pool: pool, workspace: workspace)
  }

  private func attentionBlock(layer: Int, tokens n: Int) {
    let hyper = model.hyper
    let w = model.weights.layers[layer]
    let s = scratch
    let d = hyper.embeddingLength
    let qDim = hyper.queryDimension
    let kvDim = hyper.kvDimension

    for t in 0..<n {
      dq_rmsnorm(s.normed + t * d, s.x + t * d, w.attentionNorm.base, Int64(d), hyper.rmsEpsilon)
    }
    multiply(s.q, w.matrix(.q), s.normed, tokens: n)
    multiply(s.k, w.matrix(.k), s.normed, tokens: n)
    multiply(s.v, w.matrix(.v), s.normed, tokens: n)
    for t in 0..<n {
      if let b = w.queryBias { dq_add(s.q + t * qDim, b.base, Int64(qDim)) }
      if let b = w.keyBias { dq_add(s.k + t * kvDim, b.base, Int64(kvDim)) }
      if let b = w.valueBias { dq_add(s.v + t * kvDim, b.base, Int64(kvDim)) }
      let pos = Int64(position + t)
      let neox: Int32 = hyper.ropeIsNeox ? 1 : 0
      dq_rope(
        s.q + t * qDim, Int32(hyper.headCount), Int32(hyper.headDimension),
        Int32(hyper.ropeDimension), pos, hyper.ropeBase, hyper.ropeFrequencyScale, neox)
      dq_rope(
        s.k + t * kvDim, Int32(hyper.kvHeadCount), Int32(hyper.headDimension),
        Int32(hyper.ropeDimension), pos, hyper.ropeBase, hyper.ropeFrequencyScale, neox)
    }
    let layerCache = layer * capacity * kvDim
    (keyCache + layerCache + position * kvDim).update(from: s.k, count: n * kvDim)
    (valueCache + layerCache + position * kvDim).update(from: s.v, count: n * kvDim)

    attention(layer: layer, tokens: n)
    multiply(s.projected, w.matrix(.o), s.attention, tokens: n)
    dq_add(s.x, s.projected, Int64(n * d))
  }

  /// Causal grouped-query attention of the n new tokens over the cache.
  private func attention(layer: Int, tokens n: Int) {
    if n >= MatMulWorkspace.batchThreshold {
      batchedAttention(layer: layer, tokens: n)
    } else {
      decodeAttention(layer: layer, tokens: n)
    }
  }

  /// Few tokens: one (token, head) pair per task, dot products against the cached keys.
  private func decodeAttention(layer: Int, tokens n: Int) {
    let hyper = model.hyper
    let s = scratch
    let hd = hyper.headDimension
    let qDim = hyper.queryDimension
    let kvDim = hyper.kvDimension
    let group = hyper.headCount / hyper.kvHeadCount
    let scale = 1 / Float(hd).squareRoot()
    let keys = keyCache + layer * capacity * kvDim
    let values = valueCache + layer * capacity * kvDim
    let start = position

    pool.parallelFor(n * hyper.headCount) { tasks, thread in
      let scores = s.scores + thread * s.scoresPerThread
      for task in tasks {
        let t = task / hyper.headCount
        let head = task % hyper.headCount
        let kvHead = head / group
        let q = s.q + t * qDim + head * hd
        let out = s.attention + t * qDim + head * hd
        let visible = start + t + 1
        for j in 0..<visible {
          scores[j] = dq_dot_f32(q, keys + j * kvDim + kvHead * hd, Int64(hd)) * scale
        }
        dq_softmax(scores, Int64(visible))
        out.initialize(repeating: 0, count: hd)
        for j in 0..<visible {
          dq_axpy(out, scores[j], values + j * kvDim + kvHead * hd, Int64(hd))
        }
      }
    }
  }

  /// Many tokens: per (head, block of query rows), S = Q Kᵀ and O = softmax(S) V through sgemm.
  private func batchedAttention(layer: Int, tokens n: Int) {
    let hyper = model.hyper
    let s = scratch
    let hd = hyper.headDimension
    let qDim = hyper.queryDimension
    let kvDim = hyper.kvDimension
    let group = hyper.headCount / hyper.kvHeadCount
    let scale = 1 / Float(hd).squareRoot()
    let keys = keyCache + layer * capacity * kvDim
    let values = valueCache + layer * capacity * kvDim
    let start = position
    let blockRows = Scratch.attentionBlockRows
    let blocks = (n + blockRows - 1) / blockRows

    pool.parallelFor(blocks * hyper.headCount) { tasks, thread in
      let scores = s.scores + thread * s.scoresPerThread
      for task in tasks {
        let head = task % hyper.headCount
        let kvHead = head / group
        let t0 = (task / hyper.headCount) * blockRows
        let rows = min(blockRows, n - t0)
        let visible = start + t0 + rows  // keys the block's last row sees
        // scores (rows x visible) = q[t0..<t0+rows, head] · keys[0..<visible, kvHead]ᵀ
        Blas.multiply(
          rows: rows, columns: visible, inner: hd, scale: scale,
          a: s.q + t0 * qDim + head * hd, lda: qDim, transposeB: true,
          b: keys + kvHead * hd, ldb: kvDim, c: scores, ldc: visible)
        for r in 0..<rows {
          let row = scores + r * visible
          let seen = start + t0 + r + 1
          dq_softmax(row, Int64(seen))
          (row + seen).update(repeating: 0, count: visible - seen)  // causal mask
        }
        // out (rows x hd) = scores · values[0..<visible, kvHead]
        Blas.multiply(
          rows: rows, columns: hd, inner: visible, scale: 1,
          a: scores, lda: visible, transposeB: false,
          b: values + kvHead * hd, ldb: kvDim, c: s.attention + t0 * qDim + head * hd, ldc: qDim)
      }
    }
  }

  private func feedForwardBlock(layer: Int, tokens n: Int) {
    let hyper = model.hyper
    let w = model.weights.layers[layer]
    let s = scratch
    let d = hyper.embeddingLength
    let f = hyper.feedForwardLength
    for t in 0..<n {
      dq_rmsnorm(s.normed + t * d, s.x + t * d, w.feedForwardNorm.base, Int64(d), hyper.rmsEpsilon)
    }
    multiply(s.gate, w.matrix(.gate), s.normed, tokens: n)
    multiply(s.up, w.matrix(.up), s.normed, tokens: n)
    dq_swiglu(s.gate, s.gate, s.up, Int64(n * f))
    multiply(s.projected, w.matrix(.down), s.gate, tokens: n)
    dq_add(s.x, s.projected, Int64(n * d))
  }
}

/// The activations of one forward pass over up to `tokens` tokens, one slab carved into views.
final class Scratch {
  /// Query rows per batched-attention task.
  static let attentionBlockRows = 32

  let slab: UnsafeMutablePointer<Float>
  let x, normed, q, k, v, attention, projected, gate, up, scores: UnsafeMutablePointer<Float>
  /// Attention scores of one thread: a block of query rows over every cached position.
  let scoresPerThread: Int

  init(hyper: LlamaHyperParameters, tokens: Int, threads: Int, capacity: Int) {
    let d = hyper.embeddingLength
    scoresPerThread = Scratch.attentionBlockRows * capacity
    let sizes = [
      tokens * d, tokens * d, tokens * hyper.queryDimension, tokens * hyper.kvDimension,
      tokens * hyper.kvDimension, tokens * hyper.queryDimension, tokens * d,
      tokens * hyper.feedForwardLength, tokens * hyper.feedForwardLength,
      threads * scoresPerThread,
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
  }

  deinit { slab.deallocate() }
}
