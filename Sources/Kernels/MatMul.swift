// y = W·x for one or many tokens. Decode (few tokens) quantizes x to the weight's dot type and
// takes integer/float dot products row by row; batches (prefill, training) dequantize tiles of
// W to fp32 and hand them to OpenBLAS sgemm, each thread on its own slice of output rows, so
// the whole model is never held in fp32.
import CKernels

/// Scratch memory for matmuls, sized once for the largest matrix and batch a context will see.
public final class MatMulWorkspace: @unchecked Sendable {
  // unchecked: used by one context at a time; threads write disjoint slices.
  static let tileRows = 64
  /// Below this many tokens, per-token dot products beat dequantize + sgemm.
  public static let batchThreshold = 8

  let maxColumns: Int
  let maxTokens: Int
  let activations: UnsafeMutableRawPointer
  let activationCapacity: Int
  let tiles: UnsafeMutablePointer<Float>
  let threadCount: Int

  public init(maxColumns: Int, maxTokens: Int, threads: Int) {
    self.maxColumns = maxColumns
    self.maxTokens = maxTokens
    // One activation row; F32 (4 bytes an element) is the widest activation type.
    activationCapacity = maxColumns * 4 + 64
    activations = UnsafeMutableRawPointer.allocate(byteCount: activationCapacity, alignment: 64)
    threadCount = max(1, threads)
    tiles = .allocate(capacity: threadCount * MatMulWorkspace.tileRows * maxColumns)
  }

  deinit {
    activations.deallocate()
    tiles.deallocate()
  }
}

public enum MatMul {
  /// out[t * w.rows + r] = sum_c W[r, c] * x[t * w.columns + c] for t in 0..<tokens.
  /// Shapes: out (tokens x rows), x (tokens x columns), both row-major.
  public static func multiply(
    _ out: UnsafeMutablePointer<Float>, _ w: WeightMatrix, _ x: UnsafePointer<Float>,
    tokens: Int, pool: ThreadPool, workspace: MatMulWorkspace
  ) {
    precondition(w.columns <= workspace.maxColumns, "matmul wider than its workspace")
    if tokens < MatMulWorkspace.batchThreshold {
      for t in 0..<tokens {
        multiplyVector(out + t * w.rows, w, x + t * w.columns, pool: pool, workspace: workspace)
      }
    } else {
      multiplyBatch(out, w, x, tokens: tokens, pool: pool, workspace: workspace)
    }
  }

  /// out[r] = W[r, :] · x through quantized dot products.
  public static func multiplyVector(
    _ out: UnsafeMutablePointer<Float>, _ w: WeightMatrix, _ x: UnsafePointer<Float>,
    pool: ThreadPool, workspace: MatMulWorkspace
  ) {
    let xq = workspace.activations
    dq_quantize_row(w.activationType, x, xq, Int64(w.columns))
    dq_pool_matvec(
      pool.pool, w.type, Int64(w.columns), w.base, w.rowStride, xq, out, Int64(w.rows))
  }

  static func multiplyBatch(
    _ out: UnsafeMutablePointer<Float>, _ w: WeightMatrix, _ x: UnsafePointer<Float>,
    tokens: Int, pool: ThreadPool, workspace: MatMulWorkspace
  ) {
    let tileRows = MatMulWorkspace.tileRows
    let columns = w.columns
    precondition(pool.threadCount <= workspace.threadCount, "pool larger than its workspace")
    pool.parallelFor(w.rows, align: tileRows) { rows, thread in
      let tile = workspace.tiles + thread * tileRows * columns
      var start = rows.lowerBound
      while start < rows.upperBound {
        let count = min(tileRows, rows.upperBound - start)
        for r in 0..<count { w.dequantizeRow(start + r, into: tile + r * columns) }
        // out[:, start..<start+count] = x (tokens x columns) · tileᵀ (columns x count)
        Blas.multiply(
          rows: tokens, columns: count, inner: columns, scale: 1, a: x, lda: columns,
          transposeB: true, b: tile, ldb: columns, c: out + start, ldc: w.rows)
        start += count
      }
    }
  }
}
