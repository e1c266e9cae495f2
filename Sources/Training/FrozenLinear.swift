// The frozen (quantized, mmapped) projections in training: y = x·Wᵀ forward and dx = dy·W
// backward. Both dequantize W a tile of rows at a time into per-thread scratch and hand the
// tile to sgemm, so the model is never held in fp32. Unlike the inference path, activations
// are not quantized to 8 bits: the gradients must belong to the function the forward computes.
import Kernels

/// Per-thread scratch for the dequantized tiles.
public final class FrozenLinearWorkspace: @unchecked Sendable {
  // unchecked: each pool thread touches only its own slice.
  /// Rows per dequantized tile: larger tiles mean fewer sgemm calls, each repacking x and
  /// (backward) re-reading dx; 512 measured ~5% faster than 128 (3 MiB a thread at width 1536).
  static let tileRows = 512
  /// The forward splits W's rows over threads in multiples of this (not of tileRows: 192 rows
  /// over 2 threads must split 96/96, not 128/64).
  static let rowAlign = 16
  let maxColumns: Int
  let maxTokens: Int
  let threads: Int
  let tiles: UnsafeMutablePointer<Float>

  public init(maxColumns: Int, maxTokens: Int, threads: Int) {
    self.maxColumns = maxColumns
    self.maxTokens = maxTokens
    self.threads = max(1, threads)
    tiles = .allocate(capacity: self.threads * Self.tileRows * maxColumns)
  }

  deinit {
    tiles.deallocate()
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

  /// dx (tokens x w.columns) += dy (tokens x w.rows) · W. Threads take ranges of W's columns
  /// (whole quantization blocks): each dequantizes its part of every row and adds straight into
  /// its own columns of dx, so no partial sums need zeroing and adding up afterwards.
  public static func backward(
    _ dx: UnsafeMutablePointer<Float>, _ w: WeightMatrix, _ dy: UnsafePointer<Float>,
    tokens: Int, pool: ThreadPool, workspace: FrozenLinearWorkspace
  ) {
    precondition(w.columns <= workspace.maxColumns && tokens <= workspace.maxTokens)
    precondition(pool.threadCount <= workspace.threads)
    let tileRows = FrozenLinearWorkspace.tileRows
    let columns = w.columns
    let block = w.blockSize
    pool.parallelFor(columns / block) { blocks, thread in
      let first = blocks.lowerBound * block
      let width = blocks.count * block
      let tile = workspace.tiles + thread * tileRows * workspace.maxColumns
      var start = 0
      while start < w.rows {
        let count = min(tileRows, w.rows - start)
        for r in 0..<count {
          w.dequantizeRow(start + r, columns: first..<(first + width), into: tile + r * width)
        }
        Blas.multiply(
          rows: tokens, columns: width, inner: count, scale: 1, a: dy + start, lda: w.rows,
          transposeB: false, b: tile, ldb: width, c: dx + first, ldc: columns, accumulate: true)
        start += count
      }
    }
  }
}
