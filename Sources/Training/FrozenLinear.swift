// The frozen (quantized, mmapped) projections in training: y = x·Wᵀ forward and dx = dy·W
// backward. Both dequantize W a tile of rows at a time into per-thread scratch and hand the
// tile to sgemm, so the model is never held in fp32. Unlike the inference path, activations
// are not quantized to 8 bits: the gradients must belong to the function the forward computes.
// With ComputeType.bf16 the tiles and the activations are rounded to bf16 instead and the
// products run in CKernels' dq_gemm_bf16 (fp32 sums); it takes k in pairs, so a matrix with an
// odd reduction width (none in the Llama family) keeps the fp32 path. With ComputeType.int8 the
// forward of a quantized matrix is inference's own product (MatMul: x rounded to the weight's
// dot type, integer dot products); the backward stays fp32.
import CKernels
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
  let computeType: ComputeType
  let tiles: UnsafeMutablePointer<Float>
  /// bf16 only: the tiles rounded and laid out for dq_gemm_bf16 (per thread) ...
  let bf16Tiles: UnsafeMutablePointer<UInt16>?
  /// ... and the activations packed as its A operand: the forward's x (shared by the threads)
  /// or, in the backward, each thread's slice of dy for the tile in hand.
  let packed: UnsafeMutablePointer<UInt32>?
  let packedPerThread: Int
  /// int8 only: inference's matmul scratch (the quantized activations).
  let matMul: MatMulWorkspace?

  public init(maxColumns: Int, maxTokens: Int, threads: Int, computeType: ComputeType = .f32) {
    precondition(computeType.isSupported, "compute type \(computeType) is not supported here")
    self.maxColumns = maxColumns
    self.maxTokens = maxTokens
    self.threads = max(1, threads)
    self.computeType = computeType
    tiles = .allocate(capacity: self.threads * Self.tileRows * maxColumns)
    let paddedTokens = Int(dq_bf16_padded_rows(Int64(maxTokens)))
    packedPerThread = Self.tileRows / 2 * paddedTokens
    if computeType == .bf16 {
      bf16Tiles = .allocate(capacity: self.threads * Self.tileRows * maxColumns)
      let forward = (maxColumns + 1) / 2 * paddedTokens
      packed = .allocate(capacity: max(forward, self.threads * packedPerThread))
    } else {
      bf16Tiles = nil
      packed = nil
    }
    matMul = computeType == .int8
      ? MatMulWorkspace(maxColumns: maxColumns, maxTokens: maxTokens, threads: self.threads) : nil
  }

  deinit {
    tiles.deallocate()
    bf16Tiles?.deallocate()
    packed?.deallocate()
  }
}

public enum FrozenLinear {
  /// out (tokens x w.rows) = x (tokens x w.columns) · Wᵀ; each thread owns a range of W's rows.
  public static func forward(
    _ out: UnsafeMutablePointer<Float>, _ w: WeightMatrix, _ x: UnsafePointer<Float>,
    tokens: Int, pool: ThreadPool, workspace: FrozenLinearWorkspace
  ) {
    precondition(w.columns <= workspace.maxColumns && pool.threadCount <= workspace.threads)
    if workspace.computeType == .bf16 && w.columns.isMultiple(of: 2) {
      return forwardBF16(out, w, x, tokens: tokens, pool: pool, workspace: workspace)
    }
    if let matMul = workspace.matMul, w.isQuantized {
      return MatMul.multiply(out, w, x, tokens: tokens, pool: pool, workspace: matMul)
    }
    let columns = w.columns
    forEachRowTile(w, pool: pool, workspace: workspace) { _, start, count, tile in
      Blas.multiply(
        rows: tokens, columns: count, inner: columns, scale: 1, a: x, lda: columns,
        transposeB: true, b: tile, ldb: columns, c: out + start, ldc: w.rows)
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
    if workspace.computeType == .bf16 && w.rows.isMultiple(of: 2) {
      return backwardBF16(dx, w, dy, tokens: tokens, pool: pool, workspace: workspace)
    }
    forEachColumnTile(w, pool: pool, workspace: workspace) { _, first, width, start, count, tile in
      Blas.multiply(
        rows: tokens, columns: width, inner: count, scale: 1, a: dy + start, lda: w.rows,
        transposeB: false, b: tile, ldb: width, c: dx + first, ldc: w.columns, accumulate: true)
    }
  }

  // MARK: tiles (shared by the fp32 and bf16 products)

  /// Splits W's rows over the threads (in multiples of rowAlign); each thread gets its rows a
  /// tile at a time, dequantized into its scratch: body(thread, first row, rows, tile), the
  /// tile rows x w.columns.
  static func forEachRowTile(
    _ w: WeightMatrix, pool: ThreadPool, workspace: FrozenLinearWorkspace,
    _ body: (Int, Int, Int, UnsafeMutablePointer<Float>) -> Void
  ) {
    let tileRows = FrozenLinearWorkspace.tileRows
    let columns = w.columns
    pool.parallelFor(w.rows, align: FrozenLinearWorkspace.rowAlign) { rows, thread in
      let tile = workspace.tiles + thread * tileRows * columns
      var start = rows.lowerBound
      while start < rows.upperBound {
        let count = min(tileRows, rows.upperBound - start)
        for r in 0..<count { w.dequantizeRow(start + r, into: tile + r * columns) }
        body(thread, start, count, tile)
        start += count
      }
    }
  }

  /// Splits W's columns over the threads (whole quantization blocks); each thread gets its
  /// columns of every row, a tile of rows at a time, dequantized into its scratch:
  /// body(thread, first column, columns, first row, rows, tile), the tile rows x columns.
  static func forEachColumnTile(
    _ w: WeightMatrix, pool: ThreadPool, workspace: FrozenLinearWorkspace,
    _ body: (Int, Int, Int, Int, Int, UnsafeMutablePointer<Float>) -> Void
  ) {
    let tileRows = FrozenLinearWorkspace.tileRows
    let block = w.blockSize
    pool.parallelFor(w.columns / block) { blocks, thread in
      let first = blocks.lowerBound * block
      let width = blocks.count * block
      let tile = workspace.tiles + thread * tileRows * workspace.maxColumns
      var start = 0
      while start < w.rows {
        let count = min(tileRows, w.rows - start)
        for r in 0..<count {
          w.dequantizeRow(start + r, columns: first..<(first + width), into: tile + r * width)
        }
        body(thread, first, width, start, count, tile)
        start += count
      }
    }
  }

  // MARK: bf16

  /// x is packed once (in panels, over the threads), then every thread rounds its tiles of W
  /// and multiplies them into its rows of out.
  static func forwardBF16(
    _ out: UnsafeMutablePointer<Float>, _ w: WeightMatrix, _ x: UnsafePointer<Float>,
    tokens: Int, pool: ThreadPool, workspace: FrozenLinearWorkspace
  ) {
    precondition(tokens <= workspace.maxTokens)
    guard let packed = workspace.packed, let bf16Tiles = workspace.bf16Tiles else {
      preconditionFailure("an f32 workspace has no bf16 buffers")
    }
    let columns = w.columns
    let pairs = columns / 2
    let panelRows = Int(DQ_GEMM_BF16_ROWS)
    let panels = (tokens + panelRows - 1) / panelRows
    pool.parallelFor(panels) { range, _ in
      let first = range.lowerBound * panelRows
      dq_bf16_pack_a(
        packed + first * pairs, x + first * columns, Int64(columns),
        Int64(min(tokens - first, range.count * panelRows)), Int64(pairs))
    }
    forEachRowTile(w, pool: pool, workspace: workspace) { thread, start, count, tile in
      let rounded = bf16Tiles + thread * FrozenLinearWorkspace.tileRows * columns
      dq_bf16_convert(rounded, tile, Int64(count * columns))
      // Row r of the rounded tile holds pair p of column r at r·pairs + p.
      rounded.withMemoryRebound(to: UInt32.self, capacity: count * pairs) { b in
        dq_gemm_bf16(
          out + start, Int64(w.rows), packed, Int64(tokens), b, 1, Int64(pairs), Int64(count),
          Int64(pairs), false)
      }
    }
  }

  /// Per thread and tile: interleave the tile's row pairs in bf16, pack the matching columns of
  /// dy, and add the product into the thread's columns of dx.
  static func backwardBF16(
    _ dx: UnsafeMutablePointer<Float>, _ w: WeightMatrix, _ dy: UnsafePointer<Float>,
    tokens: Int, pool: ThreadPool, workspace: FrozenLinearWorkspace
  ) {
    guard let packed = workspace.packed, let bf16Tiles = workspace.bf16Tiles else {
      preconditionFailure("an f32 workspace has no bf16 buffers")
    }
    forEachColumnTile(w, pool: pool, workspace: workspace) { thread, first, width, start, count, tile in
      let rounded = bf16Tiles + thread * FrozenLinearWorkspace.tileRows * workspace.maxColumns
      let packedDy = packed + thread * workspace.packedPerThread
      for p in 0..<(count / 2) {
        dq_bf16_interleave_rows(
          rounded + 2 * p * width, tile + 2 * p * width, tile + (2 * p + 1) * width, Int64(width))
      }
      dq_bf16_pack_a(packedDy, dy + start, Int64(w.rows), Int64(tokens), Int64(count / 2))
      // Pair p of column j (rows 2p and 2p+1 of the tile) sits at p·width + j.
      rounded.withMemoryRebound(to: UInt32.self, capacity: count / 2 * width) { b in
        dq_gemm_bf16(
          dx + first, Int64(w.columns), packedDy, Int64(tokens), b, Int64(width), 1, Int64(width),
          Int64(count / 2), true)
      }
    }
  }
}
