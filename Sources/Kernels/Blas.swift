// The one place that calls OpenBLAS, so callers pass shapes by name and never see CBLAS enums.
import COpenBLAS

public enum Blas {
  private static let setup: Void = { openblas_set_num_threads(1) }()

  /// c (rows x columns) = scale · a (rows x inner) · b, with b (inner x columns) or, when
  /// `transposeB`, bᵀ for b stored as (columns x inner). Row-major with leading dimensions.
  /// With `accumulate` the product is added to c instead (c += scale · a · b).
  /// Single-threaded: callers parallelise over independent blocks with their own pool.
  public static func multiply(
    rows: Int, columns: Int, inner: Int, scale: Float,
    a: UnsafePointer<Float>, lda: Int, transposeB: Bool,
    b: UnsafePointer<Float>, ldb: Int, c: UnsafeMutablePointer<Float>, ldc: Int,
    accumulate: Bool = false
  ) {
    _ = setup
    cblas_sgemm(
      CblasRowMajor, CblasNoTrans, transposeB ? CblasTrans : CblasNoTrans,
      Int32(rows), Int32(columns), Int32(inner), scale, a, Int32(lda), b, Int32(ldb),
      accumulate ? 1 : 0, c, Int32(ldc))
  }
}
