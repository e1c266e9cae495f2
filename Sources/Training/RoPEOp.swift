// Rotary position embedding of q and k rows in place, and its backward: the rotation is
// orthogonal, so the gradient rotates back by −θ (same pairs, sine negated).
import CKernels
import Kernels

public enum RoPEOp {
  /// Rotates the first rotDim dims of each head of every row t by the angles of position t
  /// (angles: tokens x rotDim, cos/sin interleaved as dq_rope_angles writes them).
  public static func forward(
    _ x: UnsafeMutablePointer<Float>, rowWidth: Int, heads: Int, headDim: Int, rotDim: Int,
    angles: UnsafePointer<Float>, neox: Bool, tokens: Int, pool: ThreadPool
  ) {
    pool.parallelFor(tokens) { range, _ in
      for t in range {
        dq_rope_apply(
          x + t * rowWidth, Int32(heads), Int32(headDim), Int32(rotDim), angles + t * rotDim,
          neox ? 1 : 0)
      }
    }
  }

  /// dx = R(−θ) dy, in place on dy.
  public static func backward(
    _ dy: UnsafeMutablePointer<Float>, rowWidth: Int, heads: Int, headDim: Int, rotDim: Int,
    angles: UnsafePointer<Float>, neox: Bool, tokens: Int, pool: ThreadPool
  ) {
    let half = rotDim / 2
    pool.parallelFor(tokens) { range, _ in
      for t in range {
        let cs = angles + t * rotDim
        for h in 0..<heads {
          let v = dy + t * rowWidth + h * headDim
          for i in 0..<half {
            let c = cs[2 * i]
            let s = cs[2 * i + 1]
            let a = neox ? i : 2 * i
            let b = neox ? i + half : 2 * i + 1
            let y0 = v[a]
            let y1 = v[b]
            v[a] = y0 * c + y1 * s
            v[b] = -y0 * s + y1 * c
          }
        }
      }
    }
  }
}
