// The training forward pass over one run (one sequence, or several packed with attention kept
// within each) with an activation tape, and the backward pass that turns its masked
// cross-entropy into gradients of every LoRA A and B (nothing else is trained). Same layer
// math as LlamaContext (see the comment at its top), except that matmuls run on dequantized
// fp32 tiles and every projection may carry a LoRA branch.
//
// Kept per layer: the residual input, q/k (after RoPE; also before the per-head norm for
// families that have one), v, the attention output, the residual after attention, gate and up
// (pre-activation), and each LoRA branch's u, token mask and dropout seed. The norm outputs, the SwiGLU product and the dropout factors are recomputed in
// the backward (cheap, and most of the tape otherwise); attention probabilities are recomputed
// per head (see AttentionOp). With `recompute`, only each layer's input is kept and the rest
// is rebuilt layer by layer during the backward.
import Adapters
import CKernels
import Kernels
import Llama

/// Loss of one sequence: the summed cross-entropy over its loss tokens, and how many there were.
public struct SequenceLoss: Sendable, Equatable {
  public var lossSum: Double
  public var lossTokens: Int
}

/// What a layer's backward needs besides its input: per layer, or one shared by all layers
/// when activations are recomputed.
final class LayerTape {
  let q, k, v, attention, xMid, gate, up: FloatBuffer
  /// q and k before the per-head RMSNorm (empty for families without one).
  let qRaw, kRaw: FloatBuffer
  /// The attention and feed-forward outputs before their post-norms (empty without them).
  let attentionOut, feedForwardOut: FloatBuffer

  init(tokens T: Int, hyper: LlamaHyperParameters) {
    let d = hyper.embeddingLength
    let normed = hyper.family.hasQueryKeyNorm
    qRaw = FloatBuffer(normed ? T * hyper.queryDimension : 0)
    kRaw = FloatBuffer(normed ? T * hyper.kvDimension : 0)
    attentionOut = FloatBuffer(hyper.family.hasPostNorms ? T * d : 0)
    feedForwardOut = FloatBuffer(hyper.family.hasPostNorms ? T * d : 0)
    q = FloatBuffer(T * hyper.queryDimension)
    k = FloatBuffer(T * hyper.kvDimension)
    v = FloatBuffer(T * hyper.kvDimension)
    attention = FloatBuffer(T * hyper.queryDimension)
    xMid = FloatBuffer(T * d)
    gate = FloatBuffer(T * hyper.feedForwardLength)
    up = FloatBuffer(T * hyper.feedForwardLength)
  }
}

public final class TrainingGraph {
  public let model: LlamaModel
  public let parameters: LoRAParameters
  public let pool: ThreadPool
  /// Most tokens one run holds (all packed sequences together).
  public let maxTokens: Int
  /// Longest single sequence (attention scratch is sized for it).
  public let maxSequence: Int
  /// The noise the last forward drew, by module index (for tests and the backward).
  public private(set) var noise: [LoRANoise]

  let hyper: LlamaHyperParameters
  let shape: AttentionShape
  /// The sliding-window layers' attention shape (the same as `shape` when none slides).
  let slidingShape: AttentionShape
  /// The residual stream entering each layer (always kept).
  let inputs: [FloatBuffer]
  /// One tape per layer, or a single one reused when `recompute` is on.
  let tapes: [LayerTape]
  /// Recompute each layer's activations in the backward from its input instead of keeping
  /// them: the tape shrinks from ~0.7 MB to ~0.07 MB per token for one more forward pass.
  public let recompute: Bool
  let xFinal: FloatBuffer
  let angles: FloatBuffer
  /// RoPE angles of the sliding-window layers (empty when none slides).
  let slidingAngles: FloatBuffer
  let branchU: [FloatBuffer]
  // Scratch of the backward (and of the forward where noted).
  let h, hidden, projected, dx, dh, dq, dk, dv, dAttention, dHidden, dGate, dUp: FloatBuffer
  /// Gradients of q and k before the per-head norm (empty for families without one).
  let dqRaw, dkRaw: FloatBuffer
  /// Gradient of a block's output before its post-norm (empty without post-norms).
  let dPostNorm: FloatBuffer
  let frozenWorkspace: FrozenLinearWorkspace
  let loraWorkspace: LoRAWorkspace
  let attentionWorkspace: AttentionWorkspace
  /// Rows with a label: their final residual, normed input and logits.
  var lossRows: [Int] = []
  var labels: [Int32] = []
  var logits = FloatBuffer(0)
  /// ∂loss/∂(normed final rows), loss rows x d.
  let dLossRows: UnsafeMutablePointer<Float>
  var tokens = 0
  /// The packed sequences' token ranges; attention never crosses them.
  var segments: [Range<Int>] = []

  /// `maxTokens`: capacity of one (packed) run; `maxSequence`: longest sequence in it
  /// (default: the whole capacity).
  public init(
    model: LlamaModel, parameters: LoRAParameters, maxTokens: Int, maxSequence: Int? = nil,
    recompute: Bool = false, computeType: ComputeType = .f32, pool: ThreadPool
  ) {
    self.recompute = recompute
    self.model = model
    self.parameters = parameters
    self.pool = pool
    self.maxTokens = max(2, maxTokens)
    self.maxSequence = min(self.maxTokens, max(2, maxSequence ?? maxTokens))
    let T = self.maxTokens
    hyper = model.hyper
    shape = AttentionShape(
      heads: hyper.headCount, kvHeads: hyper.kvHeadCount, headDim: hyper.headDimension)
    slidingShape = AttentionShape(
      heads: hyper.headCount, kvHeads: hyper.kvHeadCount, headDim: hyper.headDimension,
      window: hyper.slidingWindow > 0 ? hyper.slidingWindow : .max)
    inputs = (0..<hyper.layerCount).map { _ in FloatBuffer(T * model.hyper.embeddingLength) }
    tapes = (0..<(recompute ? min(1, hyper.layerCount) : hyper.layerCount)).map { _ in
      LayerTape(tokens: T, hyper: model.hyper)
    }
    let d = hyper.embeddingLength
    let f = hyper.feedForwardLength
    let qDim = hyper.queryDimension
    let kvDim = hyper.kvDimension
    xFinal = FloatBuffer(T * d)
    angles = FloatBuffer(T * hyper.ropeDimension)
    slidingAngles = FloatBuffer(model.slidingRope == nil ? 0 : T * hyper.ropeDimension)
    branchU = parameters.modules.map { FloatBuffer(T * $0.rank) }
    h = FloatBuffer(T * d)
    hidden = FloatBuffer(T * f)
    projected = FloatBuffer(T * d)
    dx = FloatBuffer(T * d)
    dh = FloatBuffer(T * d)
    dq = FloatBuffer(T * qDim)
    dk = FloatBuffer(T * kvDim)
    dv = FloatBuffer(T * kvDim)
    dAttention = FloatBuffer(T * qDim)
    dHidden = FloatBuffer(T * f)
    dGate = FloatBuffer(T * f)
    dUp = FloatBuffer(T * f)
    let normed = hyper.family.hasQueryKeyNorm
    dqRaw = FloatBuffer(normed ? T * qDim : 0)
    dkRaw = FloatBuffer(normed ? T * kvDim : 0)
    dPostNorm = FloatBuffer(hyper.family.hasPostNorms ? T * d : 0)
    let widest = max(d, qDim, f)
    frozenWorkspace = FrozenLinearWorkspace(
      maxColumns: widest, maxTokens: T, threads: pool.threadCount, computeType: computeType)
    loraWorkspace = LoRAWorkspace(maxTokens: T, maxColumns: widest, rank: parameters.config.rank)
    attentionWorkspace = AttentionWorkspace(
      shape: shape, maxTokens: self.maxSequence, threads: pool.threadCount)
    noise = parameters.modules.map { _ in LoRANoise() }
    dLossRows = .allocate(capacity: T * d)
  }

  deinit { dLossRows.deallocate() }

  /// Runs the forward pass over `tokens`; position t is scored on predicting token t+1 when
  /// `lossMask[t+1]`. With `gradientWeight`, also runs the backward and adds weight · ∂loss/∂θ
  /// to every module's gradA/gradB. `noise` is asked once per module, in forward order.
  public func run(
    tokens: [Int32], lossMask: [Bool], gradientWeight: Float?,
    noise draw: (LoRAModule, Int) -> LoRANoise
  ) throws(TrainingError) -> SequenceLoss {
    try run([EncodedSample(tokens: tokens, lossMask: lossMask)], gradientWeight: gradientWeight, noise: draw)
  }

  /// As above for several sequences packed into one run (one forward over their concatenation,
  /// each attending only to itself): the weight tiles are dequantized once for all of them.
  public func run(
    _ sequences: [EncodedSample], gradientWeight: Float?, noise draw: (LoRAModule, Int) -> LoRANoise
  ) throws(TrainingError) -> SequenceLoss {
    let total = sequences.reduce(0) { $0 + $1.tokens.count }
    guard total >= 1, total <= maxTokens else {
      throw .invalidConfig("\(total) tokens do not fit a run of \(maxTokens)")
    }
    var tokens: [Int32] = []
    segments = []
    lossRows = []
    for sequence in sequences {
      guard sequence.tokens.count >= 1, sequence.tokens.count <= maxSequence,
        sequence.lossMask.count == sequence.tokens.count
      else {
        throw .invalidConfig(
          "sequence of \(sequence.tokens.count) tokens (mask \(sequence.lossMask.count)) does not fit \(maxSequence)")
      }
      for token in sequence.tokens where token < 0 || Int(token) >= model.vocabularySize {
        throw .invalidConfig("token id \(token) is outside the vocabulary")
      }
      let start = tokens.count
      segments.append(start..<(start + sequence.tokens.count))
      lossRows += (0..<(sequence.tokens.count - 1)).filter { sequence.lossMask[$0 + 1] }.map { start + $0 }
      tokens += sequence.tokens
    }
    self.tokens = tokens.count
    labels = lossRows.map { tokens[$0 + 1] }
    forward(tokens, draw: draw)
    guard !lossRows.isEmpty else { return SequenceLoss(lossSum: 0, lossTokens: 0) }
    let loss = outputLoss(gradientWeight: gradientWeight)
    if gradientWeight != nil { backward() }
    return SequenceLoss(lossSum: loss, lossTokens: lossRows.count)
  }

  // MARK: forward

  private func forward(_ tokens: [Int32], draw: (LoRAModule, Int) -> LoRANoise) {
    let T = tokens.count
    let d = hyper.embeddingLength
    let weights = model.weights
    let x0 = inputs.isEmpty ? xFinal.pointer : inputs[0].pointer
    // As LlamaContext: sqrtf(d) in float.
    let embeddingScale: Float = hyper.family.scalesEmbedding ? Float(d).squareRoot() : 1
    for segment in segments {
      for t in segment {
        weights.tokenEmbedding.dequantizeRow(Int(tokens[t]), into: x0 + t * d)
        if embeddingScale != 1 {
          for i in 0..<d { x0[t * d + i] *= embeddingScale }
        }
        let position = t - segment.lowerBound
        model.rope.angles(angles.pointer + t * hyper.ropeDimension, position: position)
        model.slidingRope?.angles(slidingAngles.pointer + t * hyper.ropeDimension, position: position)
      }
    }
    for l in 0..<inputs.count { forwardLayer(l, tokens: T, draw: draw) }
  }

  private func tape(_ layer: Int) -> LayerTape { recompute ? tapes[0] : tapes[layer] }

  /// One layer's forward from inputs[layer] into the next layer's input (or xFinal).
  private func forwardLayer(_ l: Int, tokens T: Int, draw: (LoRAModule, Int) -> LoRANoise) {
    let d = hyper.embeddingLength
    let tape = tape(l)
    let input = inputs[l]
    let w = model.weights.layers[l]
    let next = l + 1 < inputs.count ? inputs[l + 1].pointer : xFinal.pointer
    RMSNormOp.forward(
      h.pointer, input.pointer, weight: w.attentionNorm.base, width: d, rows: 0..<T,
      epsilon: hyper.rmsEpsilon, pool: pool)
    project(tape.q.pointer, .q, layer: l, x: h.pointer, tokens: T, draw: draw)
    project(tape.k.pointer, .k, layer: l, x: h.pointer, tokens: T, draw: draw)
    project(tape.v.pointer, .v, layer: l, x: h.pointer, tokens: T, draw: draw)
    addBias(w.queryBias, to: tape.q.pointer, tokens: T)
    addBias(w.keyBias, to: tape.k.pointer, tokens: T)
    addBias(w.valueBias, to: tape.v.pointer, tokens: T)
    if let qn = w.queryNorm, let kn = w.keyNorm {
      let hd = hyper.headDimension
      tape.qRaw.pointer.update(from: tape.q.pointer, count: T * hyper.queryDimension)
      tape.kRaw.pointer.update(from: tape.k.pointer, count: T * hyper.kvDimension)
      RMSNormOp.forward(
        tape.q.pointer, tape.qRaw.pointer, weight: qn.base, width: hd, rows: 0..<(T * hyper.headCount),
        epsilon: hyper.rmsEpsilon, pool: pool)
      RMSNormOp.forward(
        tape.k.pointer, tape.kRaw.pointer, weight: kn.base, width: hd, rows: 0..<(T * hyper.kvHeadCount),
        epsilon: hyper.rmsEpsilon, pool: pool)
    }
    rope(tape.q.pointer, heads: hyper.headCount, layer: l, tokens: T, backward: false)
    rope(tape.k.pointer, heads: hyper.kvHeadCount, layer: l, tokens: T, backward: false)
    let qDim = hyper.queryDimension
    let kvDim = hyper.kvDimension
    let layerShape = hyper.isSliding(l) ? slidingShape : shape
    for s in segments {
      let (t0, n) = (s.lowerBound, s.count)
      AttentionOp.forward(
        out: tape.attention.pointer + t0 * qDim, q: tape.q.pointer + t0 * qDim,
        k: tape.k.pointer + t0 * kvDim, v: tape.v.pointer + t0 * kvDim, shape: layerShape, tokens: n,
        pool: pool, workspace: attentionWorkspace)
    }
    project(projected.pointer, .o, layer: l, x: tape.attention.pointer, tokens: T, draw: draw)
    postNorm(w.postAttentionNorm, keep: tape.attentionOut, tokens: T)
    add(tape.xMid.pointer, input.pointer, projected.pointer, count: T * d)

    RMSNormOp.forward(
      h.pointer, tape.xMid.pointer, weight: w.feedForwardNorm.base, width: d, rows: 0..<T,
      epsilon: hyper.rmsEpsilon, pool: pool)
    project(tape.gate.pointer, .gate, layer: l, x: h.pointer, tokens: T, draw: draw)
    project(tape.up.pointer, .up, layer: l, x: h.pointer, tokens: T, draw: draw)
    activate(tape, tokens: T)
    project(projected.pointer, .down, layer: l, x: hidden.pointer, tokens: T, draw: draw)
    postNorm(w.postFeedForwardNorm, keep: tape.feedForwardOut, tokens: T)
    add(next, tape.xMid.pointer, projected.pointer, count: T * d)
  }

  /// out = x·Wᵀ (+ the LoRA branch of this projection, when it is a target).
  private func project(
    _ out: UnsafeMutablePointer<Float>, _ projection: LlamaProjection, layer: Int,
    x: UnsafePointer<Float>, tokens T: Int, draw: (LoRAModule, Int) -> LoRANoise
  ) {
    let w = model.weights.layers[layer].matrix(projection)
    FrozenLinear.forward(out, w, x, tokens: T, pool: pool, workspace: frozenWorkspace)
    guard let index = parameters.index[LoRATarget(layer: layer, projection: projection)] else {
      return
    }
    let module = parameters.modules[index]
    noise[index] = draw(module, T)
    LoRABranch.forward(
      module, scale: parameters.config.scale, x: x, y: out, u: branchU[index].pointer,
      noise: noise[index], tokens: T, pool: pool, workspace: loraWorkspace)
  }

  /// Loss rows per pass through the output matrix: bounds the logits buffer (rows x vocabulary)
  /// while keeping the matrix's dequantization rare (each pass dequantizes it twice: forward and
  /// backward). At most 256 rows and 64 Mi logits (256 MiB): all 256 rows for Gemma 3's
  /// 262 144-token vocabulary too, where 64-row passes made a 256-token sequence dequantize its
  /// 168 M-weight output matrix eight times; never the whole [tokens x vocabulary].
  static func logitRows(vocabulary: Int) -> Int { max(8, min(256, (1 << 26) / max(1, vocabulary))) }

  /// The final norm and output projection at the loss rows only, a chunk of rows at a time;
  /// returns the summed loss and, with a weight, leaves the gradient of the normed rows in
  /// `dLossRows` (the output matrix's backward runs here, while the chunk's logits exist).
  private func outputLoss(gradientWeight: Float?) -> Double {
    let d = hyper.embeddingLength
    let R = lossRows.count
    let V = model.vocabularySize
    // Rows gathered into dh (scratch until the backward starts).
    for (i, t) in lossRows.enumerated() {
      (dh.pointer + i * d).update(from: xFinal.pointer + t * d, count: d)
    }
    RMSNormOp.forward(
      h.pointer, dh.pointer, weight: model.weights.outputNorm.base, width: d, rows: 0..<R,
      epsilon: hyper.rmsEpsilon, pool: pool)
    let chunk = min(R, Self.logitRows(vocabulary: V))
    if logits.count < chunk * V { logits = FloatBuffer(chunk * V) }
    var loss = 0.0
    if gradientWeight != nil { dLossRows.update(repeating: 0, count: R * d) }
    var first = 0
    while first < R {
      let rows = min(chunk, R - first)
      FrozenLinear.forward(
        logits.pointer, model.weights.output, h.pointer + first * d, tokens: rows, pool: pool,
        workspace: frozenWorkspace)
      loss += CrossEntropyOp.lossAndGradient(
        logits: logits.pointer, labels: Array(labels[first..<(first + rows)]), vocabulary: V,
        weight: gradientWeight, pool: pool)
      if gradientWeight != nil {
        FrozenLinear.backward(
          dLossRows + first * d, model.weights.output, logits.pointer, tokens: rows, pool: pool,
          workspace: frozenWorkspace)
      }
      first += rows
    }
    return loss
  }

  // MARK: backward

  private func backward() {
    let T = tokens
    let d = hyper.embeddingLength
    let R = lossRows.count
    let weights = model.weights
    let eps = hyper.rmsEpsilon
    let scale = parameters.config.scale

    // The final norm at the loss rows (the output matrix's part ran in outputLoss); scattered
    // into dx.
    projected.zero()
    RMSNormOp.backward(
      dx: projected.pointer, dy: dLossRows, x: dh.pointer, weight: weights.outputNorm.base,
      width: d, tokens: R, epsilon: eps, pool: pool)
    dx.zero()
    for (i, t) in lossRows.enumerated() {
      (dx.pointer + t * d).update(from: projected.pointer + i * d, count: d)
    }

    for l in stride(from: inputs.count - 1, through: 0, by: -1) {
      if recompute {
        // The same noise as the first pass: dropout is seeded, masks are kept per module.
        forwardLayer(l, tokens: T) { module, _ in noise[parameters.index[module.target]!] }
      }
      let tape = tape(l)
      let input = inputs[l]
      let w = weights.layers[l]

      // Feed-forward block: x_out = x_mid + down(silu(gate) ⊙ up), gate/up of rmsnorm(x_mid).
      RMSNormOp.forward(
        h.pointer, tape.xMid.pointer, weight: w.feedForwardNorm.base, width: d, rows: 0..<T,
        epsilon: eps, pool: pool)
      activate(tape, tokens: T)
      dHidden.zero()
      let dDown = postNormBackward(w.postFeedForwardNorm, kept: tape.feedForwardOut, dy: dx.pointer, tokens: T)
      projectBackward(.down, layer: l, x: hidden.pointer, dy: dDown, dx: dHidden.pointer, tokens: T, scale: scale)
      activateBackward(tape, tokens: T)
      dh.zero()
      projectBackward(.gate, layer: l, x: h.pointer, dy: dGate.pointer, dx: dh.pointer, tokens: T, scale: scale)
      projectBackward(.up, layer: l, x: h.pointer, dy: dUp.pointer, dx: dh.pointer, tokens: T, scale: scale)
      RMSNormOp.backward(
        dx: dx.pointer, dy: dh.pointer, x: tape.xMid.pointer, weight: w.feedForwardNorm.base,
        width: d, tokens: T, epsilon: eps, pool: pool)

      // Attention block: x_mid = x_in + o(attention(rope(q), rope(k), v)).
      dAttention.zero()
      let dOut = postNormBackward(w.postAttentionNorm, kept: tape.attentionOut, dy: dx.pointer, tokens: T)
      projectBackward(.o, layer: l, x: tape.attention.pointer, dy: dOut, dx: dAttention.pointer, tokens: T, scale: scale)
      let qDim = hyper.queryDimension
      let kvDim = hyper.kvDimension
      let layerShape = hyper.isSliding(l) ? slidingShape : shape
      for s in segments {
        let (t0, n) = (s.lowerBound, s.count)
        AttentionOp.backward(
          dq: dq.pointer + t0 * qDim, dk: dk.pointer + t0 * kvDim, dv: dv.pointer + t0 * kvDim,
          dOut: dAttention.pointer + t0 * qDim, q: tape.q.pointer + t0 * qDim,
          k: tape.k.pointer + t0 * kvDim, v: tape.v.pointer + t0 * kvDim, shape: layerShape, tokens: n,
          pool: pool, workspace: attentionWorkspace)
      }
      rope(dq.pointer, heads: hyper.headCount, layer: l, tokens: T, backward: true)
      rope(dk.pointer, heads: hyper.kvHeadCount, layer: l, tokens: T, backward: true)
      // Through the per-head q/k norms, when the family has them.
      var (dqIn, dkIn) = (dq.pointer, dk.pointer)
      if let qn = w.queryNorm, let kn = w.keyNorm {
        let hd = hyper.headDimension
        dqRaw.zero()
        dkRaw.zero()
        RMSNormOp.backward(
          dx: dqRaw.pointer, dy: dq.pointer, x: tape.qRaw.pointer, weight: qn.base, width: hd,
          tokens: T * hyper.headCount, epsilon: eps, pool: pool)
        RMSNormOp.backward(
          dx: dkRaw.pointer, dy: dk.pointer, x: tape.kRaw.pointer, weight: kn.base, width: hd,
          tokens: T * hyper.kvHeadCount, epsilon: eps, pool: pool)
        (dqIn, dkIn) = (dqRaw.pointer, dkRaw.pointer)
      }
      RMSNormOp.forward(
        h.pointer, input.pointer, weight: w.attentionNorm.base, width: d, rows: 0..<T,
        epsilon: eps, pool: pool)
      // Layer 0's input is the embedding, which has no gradient: skip dx there.
      let wantInput = l > 0
      dh.zero()
      let dhOut: UnsafeMutablePointer<Float>? = wantInput ? dh.pointer : nil
      projectBackward(.q, layer: l, x: h.pointer, dy: dqIn, dx: dhOut, tokens: T, scale: scale)
      projectBackward(.k, layer: l, x: h.pointer, dy: dkIn, dx: dhOut, tokens: T, scale: scale)
      projectBackward(.v, layer: l, x: h.pointer, dy: dv.pointer, dx: dhOut, tokens: T, scale: scale)
      if wantInput {
        RMSNormOp.backward(
          dx: dx.pointer, dy: dh.pointer, x: input.pointer, weight: w.attentionNorm.base,
          width: d, tokens: T, epsilon: eps, pool: pool)
      }
    }
  }

  /// dx += dy·W (when dx is wanted) plus the LoRA branch's part; accumulates dA, dB.
  private func projectBackward(
    _ projection: LlamaProjection, layer: Int, x: UnsafePointer<Float>, dy: UnsafePointer<Float>,
    dx: UnsafeMutablePointer<Float>?, tokens T: Int, scale: Float
  ) {
    if let dx {
      FrozenLinear.backward(
        dx, model.weights.layers[layer].matrix(projection), dy, tokens: T, pool: pool,
        workspace: frozenWorkspace)
    }
    guard let index = parameters.index[LoRATarget(layer: layer, projection: projection)] else {
      return
    }
    LoRABranch.backward(
      parameters.modules[index], scale: scale, x: x, u: branchU[index].pointer, dy: dy, dx: dx,
      noise: noise[index], tokens: T, pool: pool, workspace: loraWorkspace)
  }

  // MARK: helpers

  /// hidden = act(gate) ⊙ up with the family's activation.
  private func activate(_ tape: LayerTape, tokens T: Int) {
    let count = T * hyper.feedForwardLength
    switch hyper.family.activation {
    case .silu:
      SwiGLUOp.forward(hidden.pointer, gate: tape.gate.pointer, up: tape.up.pointer, count: count, pool: pool)
    case .geluTanh:
      let (out, gate, up) = (hidden.pointer, tape.gate.pointer, tape.up.pointer)
      pool.parallelFor(count, align: 64) { range, _ in
        let i = range.lowerBound
        GeGLU.forward(out + i, gate: gate + i, up: up + i, count: range.count)
      }
    }
  }

  /// dGate, dUp from dHidden through the family's activation.
  private func activateBackward(_ tape: LayerTape, tokens T: Int) {
    let count = T * hyper.feedForwardLength
    switch hyper.family.activation {
    case .silu:
      SwiGLUOp.backward(
        dGate: dGate.pointer, dUp: dUp.pointer, dh: dHidden.pointer, gate: tape.gate.pointer,
        up: tape.up.pointer, count: count, pool: pool)
    case .geluTanh:
      let (dg, du, dh, gate, up) = (dGate.pointer, dUp.pointer, dHidden.pointer, tape.gate.pointer, tape.up.pointer)
      pool.parallelFor(count, align: 64) { range, _ in
        let i = range.lowerBound
        GeGLU.backward(dGate: dg + i, dUp: du + i, dh: dh + i, gate: gate + i, up: up + i, count: range.count)
      }
    }
  }

  /// projected = rmsnorm(projected) ⊙ weight, keeping the input in `keep`; nothing without one.
  private func postNorm(_ weight: VectorView?, keep: FloatBuffer, tokens T: Int) {
    guard let weight else { return }
    let d = hyper.embeddingLength
    keep.pointer.update(from: projected.pointer, count: T * d)
    RMSNormOp.forward(
      projected.pointer, keep.pointer, weight: weight.base, width: d, rows: 0..<T, epsilon: hyper.rmsEpsilon,
      pool: pool)
  }

  /// The gradient of a block's output before its post-norm given `dy` after it (dy itself
  /// when the family has no post-norms).
  private func postNormBackward(
    _ weight: VectorView?, kept: FloatBuffer, dy: UnsafeMutablePointer<Float>, tokens T: Int
  ) -> UnsafeMutablePointer<Float> {
    guard let weight else { return dy }
    let d = hyper.embeddingLength
    dPostNorm.zero()
    RMSNormOp.backward(
      dx: dPostNorm.pointer, dy: dy, x: kept.pointer, weight: weight.base, width: d, tokens: T,
      epsilon: hyper.rmsEpsilon, pool: pool)
    return dPostNorm.pointer
  }

  private func rope(_ x: UnsafeMutablePointer<Float>, heads: Int, layer: Int, tokens T: Int, backward: Bool) {
    let width = heads * hyper.headDimension
    let angles = hyper.isSliding(layer) ? slidingAngles : self.angles
    if backward {
      RoPEOp.backward(
        x, rowWidth: width, heads: heads, headDim: hyper.headDimension,
        rotDim: hyper.ropeDimension, angles: angles.pointer, neox: hyper.ropeIsNeox, tokens: T,
        pool: pool)
    } else {
      RoPEOp.forward(
        x, rowWidth: width, heads: heads, headDim: hyper.headDimension,
        rotDim: hyper.ropeDimension, angles: angles.pointer, neox: hyper.ropeIsNeox, tokens: T,
        pool: pool)
    }
  }

  private func addBias(_ bias: VectorView?, to x: UnsafeMutablePointer<Float>, tokens T: Int) {
    guard let bias else { return }
    for t in 0..<T { dq_add(x + t * bias.count, bias.base, Int64(bias.count)) }
  }

  private func add(
    _ out: UnsafeMutablePointer<Float>, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>,
    count: Int
  ) {
    pool.parallelFor(count, align: 64) { range, _ in
      for i in range { out[i] = a[i] + b[i] }
    }
  }
}
