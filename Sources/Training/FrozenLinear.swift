// The frozen (quantized, mmapped) projections in training: y = x·Wᵀ forward and dx = dy·W
// backward. Both dequantize W a tile of rows at a time into per-thread scratch and hand the
// tile to sgemm, so the model is never held in fp32. Unlike the inference path, activations
// are not quantized to 8 bits: the gradients must belong to the function the forward computes.
import Kernels

/// Per-thread scratch for tiles and for the partial sums of the backward product.
public final class FrozenLinearWorkspace: @unchecked Sendable {
  // unchecked: each pool thread touches only its own slice.
  /// Rows per dequantized tile: larger tiles mean fewer sgemm calls, each repacking x and
  /// (backward) re-reading dx; 512 measured ~5% faster than 128 (3 MiB a thread at width 1536).
  static let tileRows = 512
  /// Threads split W's rows in multiples of this (not of tileRows: 192 rows over 2 threads
  /// must split 96/96, not 128/64).
  static let rowAlign = 16
  let maxColumns: Int
  let maxTokens: Int
  let threads: Int
  let tiles: UnsafeMutablePointer<Float>
  let partials: UnsafeMutablePointer<Float>

  public init(maxColumns: Int, maxTokens: Int, threads: Int) {
    self.maxColumns = maxColumns
    self.maxTokens = maxTokens
    self.threads = max(1, threads)
    tiles = .allocate(capacity: self.threads * Self.tileRows * maxColumns)
    // Thread 0 accumulates straight into dx; the others need their own.
    partials = .allocate(capacity: max(1, (self.threads - 1) * maxTokens * maxColumns))
  }

  deinit {
    tiles.deallocate()
    partials.deallocate()
  }
}

public enum FrozenLinear {
  /// out (tokens x w.rows) = x (tokens x w.columns) · Wᵀ; each thread owns a range of W's rows.
  public static func forward(
    _ out: UnsafeMutablePointer<Float>, _ w: WeightMatrix, _ x: UnsafePointer<Float>,
    tokens: Int, pool: ThreadPool, workspace: FrozenLinearWorkspace
  ) {
    precondition(w.columns <= workspace.maxColumns && pool.threadCount <= workspace.threads)
    let tileRows = FrozenLinearWorkspace.tileRows
    let columns = w.columns
    pool.parallelFor(w.rows, align: FrozenLinearWorkspace.rowAlign) { rows, thread in
      let tile = workspace.tiles + thread * tileRows * columns
      var start = rows.lowerBound
      while start < rows.upperBound {
        let count = min(tileRows, rows.upperBound - start)
        for r in 0..<count { w.dequantizeRow(start + r, into: tile + r * columns) }
        Blas.multiply(
          rows: tokens, columns: count, inner: columns, scale: 1, a: x, lda: columns,
          transposeB: true, b: tile, ldb: columns, c: out + start, ldc: w.rows)
        start += count
      }
    }
  }

  /// dx (tokens x w.columns) += dy (tokens x w.rows) · W. Threads take ranges of W's rows (each
  /// tile dequantized once) and sum into private partials, added together at the end.
  public static func backward(
    _ dx: UnsafeMutablePointer<Float>, _ w: WeightMatrix, _ dy: UnsafePointer<Float>,
    tokens: Int, pool: ThreadPool, workspace: FrozenLinearWorkspace
  ) {
    precondition(w.columns <= workspace.maxColumns && tokens <= workspace.maxTokens)
    precondition(pool.threadCount <= workspace.threads)
    let tileRows = FrozenLinearWorkspace.tileRows
    let columns = w.columns
    let size = tokens * columns
    var used = 1
    pool.parallelFor(w.rows, align: FrozenLinearWorkspace.rowAlign) { rows, thread in
      let tile = workspace.tiles + thread * tileRows * columns
      let target = thread == 0 ? dx : workspace.partials + (thread - 1) * size
      if thread > 0 { target.update(repeating: 0, count: size) }
      var start = rows.lowerBound
      while start < rows.upperBound {
        let count = min(tileRows, rows.upperBound - start)
        for r in 0..<count { w.dequantizeRow(start + r, into: tile + r * columns) }
        Blas.multiply(
          rows: tokens, columns: columns, inner: count, scale: 1, a: dy + start, lda: w.rows,
          transposeB: false, b: tile, ldb: columns, c: target, ldc: columns, accumulate: true)
        start += count
      }
    }
    // Which threads got rows: parallelFor gives thread i the i-th chunk of an even split.
    let threads = pool.threadCount
    let align = FrozenLinearWorkspace.rowAlign
    if threads > 1 && w.rows > align {
      let perThread = ((w.rows + threads - 1) / threads + align - 1) / align * align
      used = min(threads, (w.rows + perThread - 1) / perThread)
    }
    if used > 1 {
      pool.parallelFor(size) { range, _ in
        for t in 1..<used {
          let partial = workspace.partials + (t - 1) * size
          for i in range { dx[i] += partial[i] }
        }
      }
    }
  }
}
