// The low-rank branch of one adapted projection, forward and backward:
//   xd = x ⊙ dropout,  u = m ⊙ (xd·Aᵀ),  y += s·u·Bᵀ        (rows are tokens)
//   dB += s·dyᵀ·u,  g = m ⊙ (s·dy·B),  dA += gᵀ·xd,  dx += (g·A) ⊙ dropout
// m is the DropLoRA rank mask (per token and rank element, or one r-vector for the step) with
// kept entries already scaled by 1/(1-p); dropout holds inverted-dropout factors likewise.
// PiSSA/MiLoRA's frozen initial product (y −= s·B0·A0·x) has no gradient and no noise.
import Kernels

/// The noise one run's forward drew for one module, kept for its backward.
public struct LoRANoise {
  /// Input dropout: the factors (0 or 1/(1-rate)) are a function of this seed and regenerated
  /// in the backward instead of kept (they would be the tape's largest part); nil without.
  public var dropoutSeed: UInt64?
  public var dropoutRate: Float = 0
  /// tokens x rank mask factors (`token` granularity), nil otherwise.
  public var tokenMask: FloatBuffer?
  /// rank factors shared by all tokens (`step` granularity), nil otherwise.
  public var stepMask: FloatBuffer?

  public init(
    dropoutSeed: UInt64? = nil, dropoutRate: Float = 0, tokenMask: FloatBuffer? = nil,
    stepMask: FloatBuffer? = nil
  ) {
    self.dropoutSeed = dropoutSeed
    self.dropoutRate = dropoutRate
    self.tokenMask = tokenMask
    self.stepMask = stepMask
  }

  /// Writes the dropout factors of rows `tokens` (each `columns` wide) to out[0...]: row t
  /// draws from its own stream, so rows can be generated in parallel and in any order.
  public func fillDropout(_ out: UnsafeMutablePointer<Float>, tokens: Range<Int>, columns: Int) {
    guard let seed = dropoutSeed else { return }
    for (i, t) in tokens.enumerated() {
      var random = TrainingRandom(seed: seed ^ (UInt64(t + 1) &* 0x9E37_79B9_7F4A_7C15))
      random.fillKeepMask(out + i * columns, count: columns, dropProbability: dropoutRate)
    }
  }

  /// The dropout factors of a run of `tokens` rows (for tests and references).
  public func dropoutFactors(tokens: Int, columns: Int) -> [Float]? {
    guard dropoutSeed != nil else { return nil }
    var out = [Float](repeating: 0, count: tokens * columns)
    out.withUnsafeMutableBufferPointer { fillDropout($0.baseAddress!, tokens: 0..<tokens, columns: columns) }
    return out
  }
}

/// Scratch the branch needs besides what it saves: dropped-out inputs and rank-sized rows.
final class LoRAWorkspace: @unchecked Sendable {
  // unchecked: used by one graph at a time; threads write disjoint token ranges.
  let dropped: FloatBuffer  // tokens x widest input
  let factors: FloatBuffer  // tokens x widest input: the regenerated dropout factors
  let rankRows: FloatBuffer  // tokens x rank
  let wide: FloatBuffer  // tokens x widest input, for (g·A) before the dropout factors

  init(maxTokens: Int, maxColumns: Int, rank: Int) {
    dropped = FloatBuffer(maxTokens * maxColumns)
    factors = FloatBuffer(maxTokens * maxColumns)
    rankRows = FloatBuffer(maxTokens * rank)
    wide = FloatBuffer(maxTokens * maxColumns)
  }
}

enum LoRABranch {
  /// y (tokens x rows) += the branch at input x (tokens x columns); writes u (tokens x rank).
  static func forward(
    _ module: LoRAModule, scale s: Float, x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>,
    u: UnsafeMutablePointer<Float>, noise: LoRANoise, tokens: Int, pool: ThreadPool,
    workspace: LoRAWorkspace
  ) {
    let r = module.rank
    let n = module.columns
    let rows = module.rows
    let xd = input(x, noise: noise, tokens: tokens, columns: n, pool: pool, workspace: workspace)
    pool.parallelFor(tokens) { range, _ in
      let t0 = range.lowerBound
      let count = range.count
      Gemm.multiply(
        transposeB: true, m: count, n: r, k: n, a: xd + t0 * n, lda: n, b: module.a.pointer,
        ldb: n, c: u + t0 * r, ldc: r)
      applyMask(u + t0 * r, noise: noise, tokens: range, rank: r)
      Gemm.multiply(
        transposeB: true, m: count, n: rows, k: r, alpha: s, a: u + t0 * r, lda: r,
        b: module.b.pointer, ldb: r, beta: 1, c: y + t0 * rows, ldc: rows)
      if let fa = module.frozenA, let fb = module.frozenB {
        // The frozen product sees the clean input: it stands in for a change of the base.
        let tmp = workspace.rankRows.pointer + t0 * r
        Gemm.multiply(
          transposeB: true, m: count, n: r, k: n, a: x + t0 * n, lda: n, b: fa.pointer, ldb: n,
          c: tmp, ldc: r)
        Gemm.multiply(
          transposeB: true, m: count, n: rows, k: r, alpha: -s, a: tmp, lda: r, b: fb.pointer,
          ldb: r, beta: 1, c: y + t0 * rows, ldc: rows)
      }
    }
  }

  /// Accumulates dA and dB from dy (tokens x rows); with `dx`, adds the branch's input
  /// gradient (tokens x columns) to it.
  static func backward(
    _ module: LoRAModule, scale s: Float, x: UnsafePointer<Float>, u: UnsafePointer<Float>,
    dy: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>?, noise: LoRANoise, tokens: Int,
    pool: ThreadPool, workspace: LoRAWorkspace
  ) {
    let r = module.rank
    let n = module.columns
    let rows = module.rows
    let g = workspace.rankRows.pointer
    // dB (rows x r) += s · dyᵀ · u, split over B's rows.
    pool.parallelFor(rows) { range, _ in
      Gemm.multiply(
        transposeA: true, m: range.count, n: r, k: tokens, alpha: s, a: dy + range.lowerBound,
        lda: rows, b: u, ldb: r, beta: 1, c: module.gradB.pointer + range.lowerBound * r, ldc: r)
    }
    // g = m ⊙ (s · dy · B), split over tokens.
    pool.parallelFor(tokens) { range, _ in
      let t0 = range.lowerBound
      Gemm.multiply(
        m: range.count, n: r, k: rows, alpha: s, a: dy + t0 * rows, lda: rows,
        b: module.b.pointer, ldb: r, c: g + t0 * r, ldc: r)
      applyMask(g + t0 * r, noise: noise, tokens: range, rank: r)
    }
    let xd = input(x, noise: noise, tokens: tokens, columns: n, pool: pool, workspace: workspace)
    // dA (r x columns) += gᵀ · xd, split over A's columns.
    pool.parallelFor(n, align: 16) { range, _ in
      Gemm.multiply(
        transposeA: true, m: r, n: range.count, k: tokens, a: g, lda: r, b: xd + range.lowerBound,
        ldb: n, beta: 1, c: module.gradA.pointer + range.lowerBound, ldc: n)
    }
    guard let dx else { return }
    pool.parallelFor(tokens) { range, _ in
      let t0 = range.lowerBound
      if noise.dropoutSeed != nil {
        let wide = workspace.wide.pointer + t0 * n
        Gemm.multiply(
          m: range.count, n: n, k: r, a: g + t0 * r, lda: r, b: module.a.pointer, ldb: n, c: wide,
          ldc: n)
        let factors = workspace.factors.pointer + t0 * n
        let out = dx + t0 * n
        for i in 0..<(range.count * n) { out[i] += wide[i] * factors[i] }
      } else {
        Gemm.multiply(
          m: range.count, n: n, k: r, a: g + t0 * r, lda: r, b: module.a.pointer, ldb: n, beta: 1,
          c: dx + t0 * n, ldc: n)
      }
    }
    if let fa = module.frozenA, let fb = module.frozenB {
      // dx −= s · (dy · B0) · A0 (the frozen product's input gradient).
      pool.parallelFor(tokens) { range, _ in
        let t0 = range.lowerBound
        let tmp = g + t0 * r
        Gemm.multiply(
          m: range.count, n: r, k: rows, alpha: -s, a: dy + t0 * rows, lda: rows, b: fb.pointer,
          ldb: r, c: tmp, ldc: r)
        Gemm.multiply(
          m: range.count, n: n, k: r, a: tmp, lda: r, b: fa.pointer, ldb: n, beta: 1,
          c: dx + t0 * n, ldc: n)
      }
    }
  }

  /// x itself, or x ⊙ dropout written to the workspace (the factors regenerated into
  /// workspace.factors, which the backward's dx then uses).
  private static func input(
    _ x: UnsafePointer<Float>, noise: LoRANoise, tokens: Int, columns n: Int, pool: ThreadPool,
    workspace: LoRAWorkspace
  ) -> UnsafePointer<Float> {
    guard noise.dropoutSeed != nil else { return x }
    let xd = workspace.dropped.pointer
    let factors = workspace.factors.pointer
    pool.parallelFor(tokens) { range, _ in
      let offset = range.lowerBound * n
      noise.fillDropout(factors + offset, tokens: range, columns: n)
      for i in offset..<(range.upperBound * n) { xd[i] = x[i] * factors[i] }
    }
    return UnsafePointer(xd)
  }

  private static func applyMask(
    _ rows: UnsafeMutablePointer<Float>, noise: LoRANoise, tokens: Range<Int>, rank r: Int
  ) {
    if let mask = noise.tokenMask {
      let m = mask.pointer + tokens.lowerBound * r
      for i in 0..<(tokens.count * r) { rows[i] *= m[i] }
    } else if let mask = noise.stepMask {
      for t in 0..<tokens.count {
        for k in 0..<r { rows[t * r + k] *= mask[k] }
      }
    }
  }
}
