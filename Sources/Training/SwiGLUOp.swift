// SwiGLU, h = silu(g) ⊙ u, and its backward with σ = sigmoid(g):
//   dg = dh ⊙ u ⊙ σ·(1 + g·(1 − σ)),   du = dh ⊙ g·σ.
import CKernels
import Kernels

public enum SwiGLUOp {
  public static func forward(
    _ out: UnsafeMutablePointer<Float>, gate: UnsafePointer<Float>, up: UnsafePointer<Float>,
    count: Int, pool: ThreadPool
  ) {
    pool.parallelFor(count, align: 64) { range, _ in
      let o = range.lowerBound
      dq_swiglu(out + o, gate + o, up + o, Int64(range.count))
    }
  }

  /// Writes dGate and dUp (count elements each) from dh.
  public static func backward(
    dGate: UnsafeMutablePointer<Float>, dUp: UnsafeMutablePointer<Float>,
    dh: UnsafePointer<Float>, gate: UnsafePointer<Float>, up: UnsafePointer<Float>, count: Int,
    pool: ThreadPool
  ) {
    pool.parallelFor(count, align: 64) { range, _ in
      let o = range.lowerBound
      dq_swiglu_backward(dGate + o, dUp + o, dh + o, gate + o, up + o, Int64(range.count))
    }
  }
}
