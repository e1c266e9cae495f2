// Causal grouped-query attention over one sequence (positions 0..<T), forward and backward,
// one query head per task with sgemm for the T x T products. P is recomputed in the backward
// instead of kept (T² per head per layer would dominate the tape):
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

  public init(heads: Int, kvHeads: Int, headDim: Int) {
    self.heads = heads
    self.kvHeads = kvHeads
    self.headDim = headDim
  }

  public var qDim: Int { heads * headDim }
  public var kvDim: Int { kvHeads * headDim }
  public var group: Int { heads / kvHeads }
  public var scale: Float { 1 / Float(headDim).squareRoot() }
}

/// Per-thread T x T scratch and per-head key/value gradients.
public final class AttentionWorkspace: @unchecked Sendable {
  // unchecked: thread i touches only its own scratch; head h only its own gradient rows.
  let maxTokens: Int
  let scores: UnsafeMutablePointer<Float>  // threads x 2 x T x T
  let headKeyGrads: FloatBuffer  // heads x T x headDim
  let headValueGrads: FloatBuffer

  public init(shape: AttentionShape, maxTokens: Int, threads: Int) {
    self.maxTokens = maxTokens
    scores = .allocate(capacity: max(1, threads) * 2 * maxTokens * maxTokens)
    headKeyGrads = FloatBuffer(shape.heads * maxTokens * shape.headDim)
    headValueGrads = FloatBuffer(shape.heads * maxTokens * shape.headDim)
  }

  deinit { scores.deallocate() }
}

public enum AttentionOp {
  /// out (T x qDim) from q (T x qDim), k, v (T x kvDim), RoPE already applied.
  public static func forward(
    out: UnsafeMutablePointer<Float>, q: UnsafePointer<Float>, k: UnsafePointer<Float>,
    v: UnsafePointer<Float>, shape: AttentionShape, tokens T: Int, pool: ThreadPool,
    workspace: AttentionWorkspace
  ) {
    let hd = shape.headDim
    pool.parallelFor(shape.heads) { heads, thread in
      let p = workspace.scores + thread * 2 * workspace.maxTokens * workspace.maxTokens
      for h in heads {
        let g = h / shape.group
        probabilities(p, q: q + h * hd, k: k + g * hd, shape: shape, tokens: T)
        Gemm.multiply(
          m: T, n: hd, k: T, a: p, lda: T, b: v + g * hd, ldb: shape.kvDim, c: out + h * hd,
          ldc: shape.qDim)
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
      let p = workspace.scores + thread * 2 * workspace.maxTokens * workspace.maxTokens
      let dp = p + workspace.maxTokens * workspace.maxTokens
      for h in heads {
        let g = h / shape.group
        let qh = q + h * hd
        let kg = k + g * hd
        let dOh = dOut + h * hd
        probabilities(p, q: qh, k: kg, shape: shape, tokens: T)
        Gemm.multiply(
          transposeB: true, m: T, n: T, k: hd, a: dOh, lda: shape.qDim, b: v + g * hd,
          ldb: shape.kvDim, c: dp, ldc: T)
        for i in 0..<T {
          let pr = p + i * T
          let dpr = dp + i * T
          var d: Float = 0
          for j in 0...i { d += pr[j] * dpr[j] }
          for j in 0...i { dpr[j] = pr[j] * (dpr[j] - d) }
          for j in (i + 1)..<max(i + 1, T) { dpr[j] = 0 }
        }
        Gemm.multiply(
          m: T, n: hd, k: T, alpha: scale, a: dp, lda: T, b: kg, ldb: shape.kvDim, c: dq + h * hd,
          ldc: shape.qDim)
        Gemm.multiply(
          transposeA: true, m: T, n: hd, k: T, alpha: scale, a: dp, lda: T, b: qh,
          ldb: shape.qDim, c: dKh + h * T * hd, ldc: hd)
        Gemm.multiply(
          transposeA: true, m: T, n: hd, k: T, a: p, lda: T, b: dOh, ldb: shape.qDim,
          c: dVh + h * T * hd, ldc: hd)
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

  /// p (T x T) = causal softmax(scale · q kᵀ) for one head; entries above the diagonal are 0.
  private static func probabilities(
    _ p: UnsafeMutablePointer<Float>, q: UnsafePointer<Float>, k: UnsafePointer<Float>,
    shape: AttentionShape, tokens T: Int
  ) {
    Gemm.multiply(
      transposeB: true, m: T, n: T, k: shape.headDim, alpha: shape.scale, a: q, lda: shape.qDim,
      b: k, ldb: shape.kvDim, c: p, ldc: T)
    for i in 0..<T {
      let row = p + i * T
      dq_softmax(row, Int64(i + 1))
      for j in (i + 1)..<max(i + 1, T) { row[j] = 0 }
    }
  }
}
