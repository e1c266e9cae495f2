// RMSNorm, y = x · r · w with r = 1/sqrt(mean(x²) + ε), and its input gradient
//   dx = r·(w ⊙ dy) − x · r³/n · Σ(w ⊙ dy ⊙ x).
// The weight is frozen (no gradient). Rows are tokens.
import CKernels
import Kernels

public enum RMSNormOp {
  /// out[t] = rmsnorm(x[t]) ⊙ weight for t in `rows`; out may alias x.
  public static func forward(
    _ out: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, weight: UnsafePointer<Float>,
    width n: Int, rows: Range<Int>, epsilon: Float, pool: ThreadPool
  ) {
    pool.parallelFor(rows.count) { range, _ in
      for i in range {
        let t = rows.lowerBound + i
        dq_rmsnorm(out + t * n, x + t * n, weight, Int64(n), epsilon)
      }
    }
  }

  /// dx[t] += the input gradient of row t given dy[t], for t in 0..<tokens.
  public static func backward(
    dx: UnsafeMutablePointer<Float>, dy: UnsafePointer<Float>, x: UnsafePointer<Float>,
    weight: UnsafePointer<Float>, width n: Int, tokens: Int, epsilon: Float, pool: ThreadPool
  ) {
    pool.parallelFor(tokens) { range, _ in
      for t in range {
        let xr = x + t * n
        let dyr = dy + t * n
        let dxr = dx + t * n
        var squares = 0.0
        var dot = 0.0
        for i in 0..<n {
          squares += Double(xr[i]) * Double(xr[i])
          dot += Double(weight[i]) * Double(dyr[i]) * Double(xr[i])
        }
        let r = 1 / (squares / Double(n) + Double(epsilon)).squareRoot()
        let c = Float(dot * r * r * r / Double(n))
        let rf = Float(r)
        for i in 0..<n { dxr[i] += rf * weight[i] * dyr[i] - xr[i] * c }
      }
    }
  }
}
