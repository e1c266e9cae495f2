// sgemm with both transposes (the backward pass needs Aᵀ·B for LoRA weight gradients, which
// Kernels' Blas wrapper does not offer). Single-threaded: callers split work over their pool.
import COpenBLAS

enum Gemm {
  private static let setup: Void = { openblas_set_num_threads(1) }()

  /// c (m x n) = alpha · op(a) · op(b) + beta · c, row-major; op(a) is m x k, op(b) is k x n.
  static func multiply(
    transposeA: Bool = false, transposeB: Bool = false, m: Int, n: Int, k: Int, alpha: Float = 1,
    a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int, beta: Float = 0,
    c: UnsafeMutablePointer<Float>, ldc: Int
  ) {
    _ = setup
    guard m > 0, n > 0 else { return }
    if k == 0 {
      // Nothing to add; sgemm would still scale c by beta.
      if beta != 1 { for i in 0..<m { for j in 0..<n { c[i * ldc + j] *= beta } } }
      return
    }
    cblas_sgemm(
      CblasRowMajor, transposeA ? CblasTrans : CblasNoTrans, transposeB ? CblasTrans : CblasNoTrans,
      Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
  }
}
