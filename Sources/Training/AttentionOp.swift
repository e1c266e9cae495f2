// Causal grouped-query attention over one sequence (positions 0..<T), forward and backward,
// one query head per task with sgemm for the products, a block of query rows at a time against
// only the keys they can see. P is recomputed in the backward instead of kept (T² per head per
// layer would dominate the tape):
//   S = scale·Q_h K_gᵀ (causal), P = softmax(S), O_h = P V_g
//   dP = dO_h V_gᵀ, dS = P ⊙ (dP − rowsum(P ⊙ dP)), dQ_h = scale·dS K_g,
//   dK_g += scale·dSᵀ Q_h, dV_g += Pᵀ dO_h        (g = h / group)
import CKernels
import Foundation
import Kernels

public struct AttentionShape: Sendable {
  public let heads: Int
  public let kvHeads: Int
  public let headDim: Int
  /// Query t sees keys [t - window + 1, t] (sliding-window layers); Int.max: all earlier keys.
  public let window: Int

  public init(heads: Int, kvHeads: Int, headDim: Int, window: Int = .max) {
    self.heads = heads
    self.kvHeads = kvHeads
    self.headDim = headDim
    self.window = window
  }

  public var qDim: Int { heads * headDim }
  public var kvDim: Int { kvHeads * headDim }
  public var group: Int { heads / kvHeads }
  public var scale: Float { 1 / Float(headDim).squareRoot() }
}

/// Per-thread scratch for a block of rows of P and dP, and per-head key/value gradients.
public final class AttentionWorkspace: @unchecked Sendable {
  // unchecked: thread i touches only its own scratch; head h only its own gradient rows.
  let maxTokens: Int
  let scores: UnsafeMutablePointer<Float>  // threads x 2 x blockRows x T
  let headKeyGrads: FloatBuffer  // heads x T x headDim
  let headValueGrads: FloatBuffer

  public init(shape: AttentionShape, maxTokens: Int, threads: Int) {
    self.maxTokens = maxTokens
    scores = .allocate(capacity: max(1, threads) * 2 * AttentionOp.blockRows * maxTokens)
    headKeyGrads = FloatBuffer(shape.heads * maxTokens * shape.headDim)
    headValueGrads = FloatBuffer(shape.heads * maxTokens * shape.headDim)
  }

  deinit { scores.deallocate() }
}

public enum AttentionOp {
  /// Query rows per block. Block i0..<i1 only needs keys 0..<i1 (causality), so the products
  /// run over a staircase instead of the full T x T square: 56 % of it at T = 512 with 64.
  static let blockRows = 64

  /// out (T x qDim) from q (T x qDim), k, v (T x kvDim), RoPE already applied.
  public static func forward(
    out: UnsafeMutablePointer<Float>, q: UnsafePointer<Float>, k: UnsafePointer<Float>,
    v: UnsafePointer<Float>, shape: AttentionShape, tokens T: Int, pool: ThreadPool,
    workspace: AttentionWorkspace
  ) {
    let hd = shape.headDim
    pool.parallelFor(shape.heads) { heads, thread in
      let p = workspace.scores + thread * 2 * blockRows * workspace.maxTokens
      for h in heads {
        let g = h / shape.group
        for i0 in stride(from: 0, to: T, by: blockRows) {
          let rows = min(blockRows, T - i0)
          let width = i0 + rows
          probabilities(p, q: q + h * hd, k: k + g * hd, shape: shape, rows: i0..<width)
          Gemm.multiply(
            m: rows, n: hd, k: width, a: p, lda: width, b: v + g * hd, ldb: shape.kvDim,
            c: out + i0 * shape.qDim + h * hd, ldc: shape.qDim)
        }
      }
    }
  }

  /// Writes dq (T x qDim), dk and dv (T x kvDim) from dOut.
  public static func backward(
    dq: UnsafeMutablePointer<Float>, dk: UnsafeMutablePointer<Float>,
    dv: UnsafeMutablePointer<Float>, dOut: UnsafePointer<Float>, q: UnsafePointer<Float>,
    k: UnsafePointer<Float>, v: UnsafePointer<Float>, shape: AttentionShape, tokens T: Int,
    pool: ThreadPool, workspace: AttentionWorkspace
  ) {
    let hd = shape.headDim
    let scale = shape.scale
    let dKh = workspace.headKeyGrads.pointer
    let dVh = workspace.headValueGrads.pointer
    pool.parallelFor(shape.heads) { heads, thread in
      let p = workspace.scores + thread * 2 * blockRows * workspace.maxTokens
      let dp = p + blockRows * workspace.maxTokens
      for h in heads {
        let g = h / shape.group
        let qh = q + h * hd
        let kg = k + g * hd
        let dOh = dOut + h * hd
        // Row blocks add into the keys and values they see.
        (dKh + h * T * hd).update(repeating: 0, count: T * hd)
        (dVh + h * T * hd).update(repeating: 0, count: T * hd)
        for i0 in stride(from: 0, to: T, by: blockRows) {
          let rows = min(blockRows, T - i0)
          let width = i0 + rows
          probabilities(p, q: qh, k: kg, shape: shape, rows: i0..<width)
          Gemm.multiply(
            transposeB: true, m: rows, n: width, k: hd, a: dOh + i0 * shape.qDim, lda: shape.qDim,
            b: v + g * hd, ldb: shape.kvDim, c: dp, ldc: width)
          for r in 0..<rows {
            let pr = p + r * width
            let dpr = dp + r * width
            let last = i0 + r
            var d: Float = 0
            for j in 0...last { d += pr[j] * dpr[j] }
            for j in 0...last { dpr[j] = pr[j] * (dpr[j] - d) }
            for j in (last + 1)..<max(last + 1, width) { dpr[j] = 0 }
          }
          Gemm.multiply(
            m: rows, n: hd, k: width, alpha: scale, a: dp, lda: width, b: kg, ldb: shape.kvDim,
            c: dq + i0 * shape.qDim + h * hd, ldc: shape.qDim)
          Gemm.multiply(
            transposeA: true, m: width, n: hd, k: rows, alpha: scale, a: dp, lda: width,
            b: qh + i0 * shape.qDim, ldb: shape.qDim, beta: 1, c: dKh + h * T * hd, ldc: hd)
          Gemm.multiply(
            transposeA: true, m: width, n: hd, k: rows, a: p, lda: width, b: dOh + i0 * shape.qDim,
            ldb: shape.qDim, beta: 1, c: dVh + h * T * hd, ldc: hd)
        }
      }
    }
    // Sum the query heads of each group into their kv head.
    pool.parallelFor(T) { range, _ in
      for t in range {
        for g in 0..<shape.kvHeads {
          let dkRow = dk + t * shape.kvDim + g * hd
          let dvRow = dv + t * shape.kvDim + g * hd
          for i in 0..<hd {
            dkRow[i] = 0
            dvRow[i] = 0
          }
          for h in (g * shape.group)..<((g + 1) * shape.group) {
            dq_add(dkRow, dKh + (h * T + t) * hd, Int64(hd))
            dq_add(dvRow, dVh + (h * T + t) * hd, Int64(hd))
          }
        }
      }
    }
  }

  /// p (rows.count x rows.upperBound, row-major) = causal softmax(scale · q kᵀ) of query rows
  /// `rows` against keys 0..<rows.upperBound for one head; entries past the diagonal, and
  /// before the sliding window, are 0 (so the backward needs no mask of its own).
  private static func probabilities(
    _ p: UnsafeMutablePointer<Float>, q: UnsafePointer<Float>, k: UnsafePointer<Float>,
    shape: AttentionShape, rows: Range<Int>
  ) {
    let width = rows.upperBound
    Gemm.multiply(
      transposeB: true, m: rows.count, n: width, k: shape.headDim, alpha: shape.scale,
      a: q + rows.lowerBound * shape.qDim, lda: shape.qDim, b: k, ldb: shape.kvDim, c: p, ldc: width)
    for r in 0..<rows.count {
      let row = p + r * width
      let last = rows.lowerBound + r
      let first = shape.window == .max ? 0 : max(0, last - shape.window + 1)
      dq_softmax(row + first, Int64(last + 1 - first))
      for j in 0..<first { row[j] = 0 }
      for j in (last + 1)..<max(last + 1, width) { row[j] = 0 }
    }
  }
}
