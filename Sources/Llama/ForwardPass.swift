// The layers of one forward pass over rows of tokens that may belong to several sequences
// (LlamaContext runs one sequence; LlamaBatch runs many). Every projection and the feed-forward
// network take all rows in one multi-row product, so the weights are read once per pass; each
// sequence's rows are contiguous, store their keys and values in that sequence's own cache and
// attend over it alone. Rows whose sequences carry an unmerged adapter get its update in the
// shared base product's pool job, all adapters of the pass grouped (one run of rows each).
import CKernels
import Kernels

/// One sequence's rows in a pass: slab rows `rows`, at positions `start ..< start + rows.count`.
struct ForwardSegment {
  let context: LlamaContext
  let rows: Range<Int>
  let start: Int
}

struct ForwardPass {
  let model: LlamaModel
  let pool: ThreadPool
  let workspace: MatMulWorkspace
  let scratch: Scratch
  let segments: [ForwardSegment]
  let rowCount: Int
  /// Runs of consecutive rows on one adapter (rows without one are absent).
  let hookRuns: [(hook: any LlamaProjectionHook, rows: Range<Int>)]
  /// Attention tasks before the head split: (segment, first row of a block of query rows).
  let attentionBlocks: [(segment: Int, t0: Int)]

  init(model: LlamaModel, pool: ThreadPool, workspace: MatMulWorkspace, scratch: Scratch, segments: [ForwardSegment]) {
    self.model = model
    self.pool = pool
    self.workspace = workspace
    self.scratch = scratch
    self.segments = segments
    rowCount = segments.last.map(\.rows.upperBound) ?? 0
    var runs: [(hook: any LlamaProjectionHook, rows: Range<Int>)] = []
    for segment in segments {
      guard let hook = segment.context.projectionHook else { continue }
      if let last = runs.last, last.hook === hook, last.rows.upperBound == segment.rows.lowerBound {
        runs[runs.count - 1].rows = last.rows.lowerBound..<segment.rows.upperBound
      } else {
        runs.append((hook, segment.rows))
      }
    }
    hookRuns = runs
    var blocks: [(segment: Int, t0: Int)] = []
    for (index, segment) in segments.enumerated() {
      for t0 in stride(from: 0, to: segment.rows.count, by: Scratch.attentionBlockRows) {
        blocks.append((index, t0))
      }
    }
    attentionBlocks = blocks
  }

  /// Embeds `tokens` (one per row) and runs every layer; the residual stream ends in scratch.x.
  /// The caller advances the contexts' positions afterwards.
  func run(tokens: [Int32]) {
    let hyper = model.hyper
    let weights = model.weights
    let d = hyper.embeddingLength
    let s = scratch
    let model = model
    // Position of each row.
    var positions = [Int](repeating: 0, count: rowCount)
    for segment in segments {
      for (i, row) in segment.rows.enumerated() { positions[row] = segment.start + i }
    }
    // llama.cpp scales by sqrtf(n_embd) in float.
    let embeddingScale: Float? = hyper.family.scalesEmbedding ? Float(d).squareRoot() : nil
    positions.withUnsafeBufferPointer { positions in
      pool.parallelFor(rowCount) { range, _ in
        for t in range {
          weights.tokenEmbedding.dequantizeRow(Int(tokens[t]), into: s.x + t * d)
          if let embeddingScale {
            for i in 0..<d { s.x[t * d + i] *= embeddingScale }
          }
          model.rope.angles(s.ropeAngles + t * hyper.ropeDimension, position: positions[t])
          model.slidingRope?.angles(s.slidingRopeAngles + t * hyper.ropeDimension, position: positions[t])
        }
      }
    }
    model.releaseEmbeddingPages()
    for layer in 0..<hyper.layerCount {
      attentionBlock(layer: layer)
      feedForwardBlock(layer: layer)
    }
  }

  /// out[t] = rmsnorm(x[t]) * weight for the rows in `rows`, split across the pool.
  func rmsnorm(
    _ out: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ weight: VectorView, rows: Range<Int>
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

  func multiply(_ out: UnsafeMutablePointer<Float>, _ w: WeightMatrix, _ x: UnsafePointer<Float>, tokens: Int) {
    MatMul.multiply(out, w, x, tokens: tokens, pool: pool, workspace: workspace)
  }

  /// x[t] += delta[t] for every row (the residual stream).
  private func addResidual(_ x: UnsafeMutablePointer<Float>, _ delta: UnsafePointer<Float>) {
    let d = model.hyper.embeddingLength
    pool.parallelFor(rowCount) { range, _ in
      dq_add(x + range.lowerBound * d, delta + range.lowerBound * d, Int64(range.count * d))
    }
  }

  /// out = x W(layer, projection)ᵀ for the pass's rows `rows` (all by default; out and x point at
  /// the first of them), plus each adapter's update on its own rows.
  private func project(
    _ out: UnsafeMutablePointer<Float>, _ projection: LlamaProjection, layer: Int, _ x: UnsafePointer<Float>,
    rows: Range<Int>? = nil
  ) {
    let rows = rows ?? 0..<rowCount
    let w = model.weights.layers[layer].matrix(projection)
    if rowCount == 1, let run = hookRuns.first, let update = run.hook.lowRank(layer: layer, projection: projection) {
      // Decode: the update rides in the projection's own parallel pass.
      MatMul.multiplyVector(out, w, x, adding: update, pool: pool, workspace: workspace)
      return
    }
    // Updates a hook hands out as factors join the base product's pool job (all adapters of the
    // step in one grouped pass); other hooks add theirs afterwards.
    var updates: [(update: LowRankF16, rows: Range<Int>)] = []
    var others: [(hook: any LlamaProjectionHook, rows: Range<Int>)] = []
    for run in hookRuns {
      let clipped = run.rows.clamped(to: rows)
      guard !clipped.isEmpty else { continue }
      let local = (clipped.lowerBound - rows.lowerBound)..<(clipped.upperBound - rows.lowerBound)
      if let update = run.hook.lowRank(layer: layer, projection: projection) {
        updates.append((update, local))
      } else {
        others.append((run.hook, local))
      }
    }
    MatMul.multiply(out, w, x, tokens: rows.count, adding: updates, pool: pool, workspace: workspace)
    for run in others {
      run.hook.apply(
        layer: layer, projection: projection, out: out + run.rows.lowerBound * w.rows,
        x: x + run.rows.lowerBound * w.columns, tokens: run.rows.count, rows: w.rows, columns: w.columns, pool: pool)
    }
  }

  /// Projections of the same input: at decode without an adapter, one fused pool job.
  private func project(
    _ targets: [(out: UnsafeMutablePointer<Float>, projection: LlamaProjection)], layer: Int, _ x: UnsafePointer<Float>,
    rows: Range<Int>? = nil
  ) {
    if rowCount == 1 && hookRuns.isEmpty {
      let layerWeights = model.weights.layers[layer]
      let fused = targets.map { (out: $0.out, w: layerWeights.matrix($0.projection)) }
      if MatMul.multiplyVectors(fused, x, pool: pool, workspace: workspace) { return }
    }
    for target in targets { project(target.out, target.projection, layer: layer, x, rows: rows) }
  }

  private func attentionBlock(layer: Int) {
    let hyper = model.hyper
    let w = model.weights.layers[layer]
    let s = scratch
    let qDim = hyper.queryDimension
    let kvDim = hyper.kvDimension
    let n = rowCount

    rmsnorm(s.normed, s.x, w.attentionNorm, rows: 0..<n)
    project([(s.q, .q), (s.k, .k), (s.v, .v)], layer: layer, s.normed)
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
    for segment in segments {
      segment.context.storeInCache(
        layer: layer, at: segment.start, keys: s.k + segment.rows.lowerBound * kvDim,
        values: s.v + segment.rows.lowerBound * kvDim, tokens: segment.rows.count)
    }

    attention(layer: layer)
    project(s.projected, .o, layer: layer, s.attention)
    if let post = w.postAttentionNorm { rmsnorm(s.projected, s.projected, post, rows: 0..<n) }
    addResidual(s.x, s.projected)
  }

  /// Causal grouped-query attention of each sequence's new rows over its own cache; query head
  /// h reads kv head h / group. A block of several query rows is split by head (one task per
  /// block and head: the rows share each key they load). A one-row block (a decode step) has
  /// its scores split by keys instead, one task per chunk of its keys over all heads, so that
  /// each task reads whole key rows in order; a second job then takes the softmax and the
  /// values of each row, all its heads in one task (whole value rows in order). Both ways give
  /// a row the same bits.
  private func attention(layer: Int) {
    let hyper = model.hyper
    let s = scratch
    let hd = hyper.headDimension
    let qDim = hyper.queryDimension
    let kvDim = hyper.kvDimension
    let headCount = hyper.headCount
    let group = hyper.headCount / hyper.kvHeadCount
    let scale = 1 / Float(hd).squareRoot()
    let blockRows = Scratch.attentionBlockRows
    let window = hyper.isSliding(layer) ? hyper.slidingWindow : Int.max
    let segments = segments
    let blocks = attentionBlocks
    let splitsByKeys = dq_attention_decode_available(Int64(hd))

    // Tasks of the first job: (block, head) of a block of several rows, (decode row, key chunk)
    // of a one-row block. Each decode row's scores: headCount rows of its visible keys.
    var tasks: [(block: Int, item: Int, decodeRow: Int?)] = []
    // slabRow: the row's place in q and attention; scores: its offset in decodeScores.
    var decodeRows: [(context: LlamaContext, slabRow: Int, keys: Range<Int>, scores: Int)] = []
    var scoreCount = 0
    for (index, block) in blocks.enumerated() {
      let segment = segments[block.segment]
      if splitsByKeys && segment.rows.count - block.t0 == 1 {
        let keys = Self.visibleKeys(position: segment.start + block.t0, window: window)
        for chunk in 0..<Int(dq_attention_decode_chunks(Int64(keys.count))) {
          tasks.append((index, chunk, decodeRows.count))
        }
        decodeRows.append((segment.context, segment.rows.lowerBound + block.t0, keys, scoreCount))
        scoreCount += headCount * keys.count
      } else {
        for head in 0..<headCount { tasks.append((index, head, nil)) }
      }
    }
    let decodeScores = s.decodeScores(count: scoreCount)
    // The cache bytes of a decode row's first visible key, kv head 0.
    func decodeCache(_ cache: KeyPath<LlamaContext, UnsafeMutableRawPointer>, _ row: Int) -> UnsafeRawPointer {
      let context = decodeRows[row].context
      let offset = context.cacheOffset(layer: layer, position: decodeRows[row].keys.lowerBound)
      return UnsafeRawPointer(context[keyPath: cache] + offset * context.cacheElement.byteCount)
    }

    pool.parallelForEach(tasks.count) { index, thread in
      let task = tasks[index]
      if let row = task.decodeRow {
        let decode = decodeRows[row]
        let done = dq_attention_decode_scores(
          decodeScores + decode.scores, s.q + decode.slabRow * qDim, decodeCache(\.keyCache, row),
          decode.context.cacheElement == .f16, Int64(kvDim), Int64(headCount), Int64(group), Int64(hd),
          Int64(decode.keys.count), Int64(task.item), scale)
        assert(done, "dq_attention_decode_available said yes")
        return
      }
      let (segmentIndex, blockStart) = blocks[task.block]
      let segment = segments[segmentIndex]
      let context = segment.context
      let t0 = segment.rows.lowerBound + blockStart
      let firstPosition = segment.start + blockStart
      let rows = min(blockRows, segment.rows.count - blockStart)
      let head = task.item
      let kvHead = head / group
      let scores = s.scores + thread * s.scoresPerThread
      let out = s.attention + t0 * qDim + head * hd
      let query = s.q + t0 * qDim + head * hd
      // Query at position p sees keys [first, p], first = max(0, p - window + 1). While no
      // row of the block has lost a key to the window, one causal call serves them all;
      // past that, each row runs alone over its own window.
      let lastPosition = firstPosition + rows - 1
      let runs: [(row: Int, count: Int, firstKey: Int)] =
        lastPosition - window + 1 <= 0
        ? [(0, rows, 0)] : (0..<rows).map { ($0, 1, Self.visibleKeys(position: firstPosition + $0, window: window).lowerBound) }
      for run in runs {
        let visible = Int64(firstPosition + run.row + 1 - run.firstKey)
        let keyOffset = context.cacheOffset(layer: layer, position: run.firstKey) + kvHead * hd
        switch context.cacheElement {
        case .f32:
          dq_attention_head(
            out + run.row * qDim, Int64(qDim), query + run.row * qDim, Int64(qDim),
            context.keyCache.assumingMemoryBound(to: Float.self) + keyOffset,
            context.valueCache.assumingMemoryBound(to: Float.self) + keyOffset, Int64(kvDim), Int64(run.count),
            Int64(hd), visible, scale, scores)
        case .f16:
          dq_attention_head_f16(
            out + run.row * qDim, Int64(qDim), query + run.row * qDim, Int64(qDim),
            context.keyCache.assumingMemoryBound(to: UInt16.self) + keyOffset,
            context.valueCache.assumingMemoryBound(to: UInt16.self) + keyOffset, Int64(kvDim), Int64(run.count),
            Int64(hd), visible, scale, scores)
        }
      }
    }

    if decodeRows.isEmpty { return }
    pool.parallelForEach(decodeRows.count) { index, _ in
      let decode = decodeRows[index]
      let done = dq_attention_decode_values(
        s.attention + decode.slabRow * qDim, decodeScores + decode.scores, decodeCache(\.valueCache, index),
        decode.context.cacheElement == .f16, Int64(kvDim), Int64(headCount), Int64(group), Int64(hd),
        Int64(decode.keys.count))
      assert(done, "dq_attention_decode_available said yes")
    }
  }

  /// The cache positions a query at `position` attends to: all before it, or the last `window`.
  private static func visibleKeys(position: Int, window: Int) -> Range<Int> {
    max(0, position - window + 1)..<(position + 1)
  }

  private func feedForwardBlock(layer: Int) {
    let hyper = model.hyper
    let w = model.weights.layers[layer]
    let s = scratch
    let f = hyper.feedForwardLength
    let d = hyper.embeddingLength
    let n = rowCount
    rmsnorm(s.normed, s.x, w.feedForwardNorm, rows: 0..<n)
    let activation = hyper.family.activation
    // A long pass runs in chunks of rows, so gate and up hold one chunk (each chunk's down
    // projection writes its rows of `projected`, which are `normed` rows it has read).
    for first in stride(from: 0, to: n, by: s.feedForwardRows) {
      let chunk = first..<min(n, first + s.feedForwardRows)
      project([(s.gate, .gate), (s.up, .up)], layer: layer, s.normed + first * d, rows: chunk)
      pool.parallelFor(chunk.count) { range, _ in
        let offset = range.lowerBound * f
        switch activation {
        case .silu: dq_swiglu(s.gate + offset, s.gate + offset, s.up + offset, Int64(range.count * f))
        case .geluTanh: GeGLU.forward(s.gate + offset, gate: s.gate + offset, up: s.up + offset, count: range.count * f)
        }
      }
      project(s.projected + first * d, .down, layer: layer, s.gate, rows: chunk)
    }
    if let post = w.postFeedForwardNorm { rmsnorm(s.projected, s.projected, post, rows: 0..<n) }
    addResidual(s.x, s.projected)
  }
}

/// The activations of one forward pass over up to `tokens` rows, one slab carved into views.
/// Views whose lives do not overlap share bytes (a 256-token prefill at 1.7B touches 12 MiB, not 30):
/// `projected` is `normed` (the norm's output is dead once its projections have run, and each
/// block's output projection writes `projected` from another view), and the attention block's
/// q, k, v and attention share one region with the feed-forward block's gate and up, which hold
/// `feedForwardRows` rows at a time (the rows the attention region has room for, at least
/// `feedForwardMinimumRows`: fewer would read the weights once more per chunk for nothing).
final class Scratch {
  /// Query rows per batched-attention task.
  static let attentionBlockRows = 32

  let slab: UnsafeMutablePointer<Float>
  let x, normed, q, k, v, attention, projected, gate, up, scores: UnsafeMutablePointer<Float>
  /// RoPE cos/sin of each row's position, computed once per forward pass for all layers.
  let ropeAngles: UnsafeMutablePointer<Float>
  /// The same for the sliding-window layers' RoPE (unused when no layer slides).
  let slidingRopeAngles: UnsafeMutablePointer<Float>
  /// Attention scores of one thread: a block of query rows over every cached position.
  let scoresPerThread: Int
  /// Longest sequence (cached positions) the attention scratch serves.
  let capacity: Int
  /// Rows of one chunk of the feed-forward block.
  let feedForwardRows: Int
  static let feedForwardMinimumRows = 64

  init(hyper: LlamaHyperParameters, tokens: Int, threads: Int, capacity: Int) {
    let d = hyper.embeddingLength
    let qDim = hyper.queryDimension
    let kvDim = hyper.kvDimension
    let f = hyper.feedForwardLength
    self.capacity = capacity
    scoresPerThread = 4 * capacity  // dq_attention_head's scratch for any block
    let attentionRegion = tokens * (2 * qDim + 2 * kvDim)
    let sharedCount = max(attentionRegion, min(tokens, Self.feedForwardMinimumRows) * 2 * f)
    feedForwardRows = min(tokens, sharedCount / (2 * f))
    let sizes = [
      tokens * d, tokens * d, sharedCount,
      threads * scoresPerThread, tokens * hyper.ropeDimension, tokens * hyper.ropeDimension,
    ]
    slab = .allocate(capacity: sizes.reduce(0, +))
    var offset = 0
    var views: [UnsafeMutablePointer<Float>] = []
    for size in sizes {
      views.append(slab + offset)
      offset += size
    }
    (x, normed, projected) = (views[0], views[1], views[1])
    let shared = views[2]
    (q, k, v, attention) = (shared, shared + tokens * qDim, shared + tokens * (qDim + kvDim), shared + tokens * (qDim + 2 * kvDim))
    (gate, up) = (shared, shared + feedForwardRows * f)
    scores = views[3]
    ropeAngles = views[4]
    slidingRopeAngles = views[5]
  }

  /// The scores of the pass's decode rows (see ForwardPass.attention), every head over every
  /// visible key; grown, never shrunk: their size follows the sequences' lengths, not the rows.
  private var decodeScoreRows: UnsafeMutablePointer<Float>?
  private var decodeScoreCapacity = 0

  func decodeScores(count: Int) -> UnsafeMutablePointer<Float> {
    if count > decodeScoreCapacity || decodeScoreRows == nil {
      decodeScoreRows?.deallocate()
      decodeScoreCapacity = max(count, 1)
      decodeScoreRows = .allocate(capacity: decodeScoreCapacity)
    }
    return decodeScoreRows!
  }

  deinit {
    slab.deallocate()
    decodeScoreRows?.deallocate()
  }
}
