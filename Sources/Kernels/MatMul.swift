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
    // A batch of activation rows; F32 (4 bytes an element) is the widest activation type.
    activationCapacity = maxTokens * maxColumns * 4 + 64
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
    precondition(tokens <= workspace.maxTokens, "batch larger than its workspace")
    if tokens == 1 {
      multiplyVector(out, w, x, pool: pool, workspace: workspace)
    } else if w.isQuantized || tokens < MatMulWorkspace.batchThreshold {
      multiplyQuantizedBatch(out, w, x, tokens: tokens, pool: pool, workspace: workspace)
    } else {
      multiplyBatch(out, w, x, tokens: tokens, pool: pool, workspace: workspace)
    }
  }

  /// Quantizes every activation row once, then takes integer dot products row block by row
  /// block (dq_pool_matmul), so each weight block is read once per batch.
  static func multiplyQuantizedBatch(
    _ out: UnsafeMutablePointer<Float>, _ w: WeightMatrix, _ x: UnsafePointer<Float>,
    tokens: Int, pool: ThreadPool, workspace: MatMulWorkspace
  ) {
    let xq = workspace.activations
    let stride = w.activationRowSize
    let columns = w.columns
    pool.parallelFor(tokens) { rows, _ in
      for t in rows {
        dq_quantize_row(w.activationType, x + t * columns, xq + t * stride, Int64(columns))
      }
    }
    dq_pool_matmul(
      pool.pool, w.productType, Int64(columns), w.productBase, w.productRowStride, xq, stride, Int64(tokens), out,
      Int64(w.rows), Int64(w.rows))
  }

  /// out[r] = W[r, :] · x through quantized dot products.
  public static func multiplyVector(
    _ out: UnsafeMutablePointer<Float>, _ w: WeightMatrix, _ x: UnsafePointer<Float>,
    pool: ThreadPool, workspace: MatMulWorkspace
  ) {
    let xq = workspace.activations
    dq_quantize_row(w.activationType, x, xq, Int64(w.columns))
    dq_pool_matvec(
      pool.pool, w.productType, Int64(w.columns), w.productBase, w.productRowStride, xq, out, Int64(w.rows))
  }

  /// outs[k][r] = Ws[k][r, :] · x for matrices that share x's width and dot type (q/k/v,
  /// gate/up): x quantized once, one pool job for all. Returns false, doing nothing, when the
  /// matrices do not share a dot type (the caller multiplies them one by one).
  public static func multiplyVectors(
    _ targets: [(out: UnsafeMutablePointer<Float>, w: WeightMatrix)], _ x: UnsafePointer<Float>,
    pool: ThreadPool, workspace: MatMulWorkspace
  ) -> Bool {
    guard let first = targets.first,
      targets.allSatisfy({ $0.w.activationType == first.w.activationType && $0.w.columns == first.w.columns })
    else { return false }
    precondition(first.w.columns <= workspace.maxColumns, "matmul wider than its workspace")
    let xq = workspace.activations
    dq_quantize_row(first.w.activationType, x, xq, Int64(first.w.columns))
    let parts = targets.map {
      dq_matvec_target(type: $0.w.productType, w: $0.w.productBase, row_stride: $0.w.productRowStride, y: $0.out, rows: Int64($0.w.rows))
    }
    parts.withUnsafeBufferPointer {
      dq_pool_matvec_many(pool.pool, Int64(first.w.columns), xq, $0.baseAddress!, Int32($0.count))
    }
    return true
  }

  /// out[r] = W[r, :] · x + (scale · B (A x))[r]: `multiplyVector` with an unmerged low-rank
  /// update added in the same parallel pass (one pool job; each thread adds its own rows).
  public static func multiplyVector(
    _ out: UnsafeMutablePointer<Float>, _ w: WeightMatrix, _ x: UnsafePointer<Float>,
    adding update: LowRankF16, pool: ThreadPool, workspace: MatMulWorkspace
  ) {
    precondition(update.rows == w.rows && update.columns == w.columns, "low-rank update does not match the weights")
    let xq = workspace.activations
    dq_quantize_row(w.activationType, x, xq, Int64(w.columns))
    var lora = dq_lora_f16(a: update.a, bt: update.bt, rank: Int64(update.rank), scale: update.scale)
    withUnsafeTemporaryAllocation(of: Float.self, capacity: update.rank) { u in
      dq_pool_matvec_lora(
        pool.pool, w.productType, Int64(w.columns), w.productBase, w.productRowStride, xq, x, out, Int64(w.rows), &lora,
        u.baseAddress!)
    }
  }

  /// `multiply` plus unmerged low-rank updates, each added to its own token rows
  /// (out[t] += scale · B (A x[t]) for t in `rows`): the adapters' rows of a mixed batch. On the
  /// quantized path the base product and every update run in one pool job
  /// (dq_pool_matmul_lora); otherwise the base product runs as usual, then the updates in one job.
  public static func multiply(
    _ out: UnsafeMutablePointer<Float>, _ w: WeightMatrix, _ x: UnsafePointer<Float>, tokens: Int,
    adding updates: [(update: LowRankF16, rows: Range<Int>)], pool: ThreadPool, workspace: MatMulWorkspace
  ) {
    precondition(w.columns <= workspace.maxColumns, "matmul wider than its workspace")
    precondition(tokens <= workspace.maxTokens, "batch larger than its workspace")
    guard !updates.isEmpty, tokens > 1, w.isQuantized || tokens < MatMulWorkspace.batchThreshold else {
      multiply(out, w, x, tokens: tokens, pool: pool, workspace: workspace)
      addLowRank(out, x, tokens: tokens, rows: w.rows, columns: w.columns, updates, pool: pool)
      return
    }
    let xq = workspace.activations
    let stride = w.activationRowSize
    let columns = w.columns
    pool.parallelFor(tokens) { rows, _ in
      for t in rows {
        dq_quantize_row(w.activationType, x + t * columns, xq + t * stride, Int64(columns))
      }
    }
    lowRankJob(out, x, tokens: tokens, rows: w.rows, columns: columns, updates, pool: pool) { groups, count, u, ldu in
      dq_pool_matmul_lora(
        pool.pool, w.productType, Int64(columns), w.productBase, w.productRowStride, xq, stride, x, Int64(tokens), out,
        Int64(w.rows), Int64(w.rows), groups, count, u, ldu)
    }
  }

  /// out[t] += scale · B (A x[t]) for the token rows t of each update (out: tokens x rows,
  /// x: tokens x columns): the grouped job without a base product.
  public static func addLowRank(
    _ out: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, tokens: Int, rows: Int, columns: Int,
    _ updates: [(update: LowRankF16, rows: Range<Int>)], pool: ThreadPool
  ) {
    if updates.isEmpty { return }
    lowRankJob(out, x, tokens: tokens, rows: rows, columns: columns, updates, pool: pool) { groups, count, u, ldu in
      dq_pool_matmul_lora(
        pool.pool, 0, Int64(columns), nil, 0, nil, 0, x, Int64(tokens), out, Int64(rows), Int64(rows), groups, count,
        u, ldu)
    }
  }

  /// Checks the updates, lays them out for dq_pool_matmul_lora and lends `run` its scratch.
  private static func lowRankJob(
    _ out: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, tokens: Int, rows: Int, columns: Int,
    _ updates: [(update: LowRankF16, rows: Range<Int>)], pool: ThreadPool,
    _ run: (UnsafePointer<dq_lora_rows>, Int32, UnsafeMutablePointer<Float>, Int64) -> Void
  ) {
    let groups = updates.map { entry in
      precondition(entry.update.rows == rows && entry.update.columns == columns, "low-rank update does not match the weights")
      precondition(entry.rows.upperBound <= tokens, "update rows outside the batch")
      return dq_lora_rows(
        lora: dq_lora_f16(a: entry.update.a, bt: entry.update.bt, rank: Int64(entry.update.rank), scale: entry.update.scale),
        first: Int64(entry.rows.lowerBound), count: Int64(entry.rows.count))
    }
    let ldu = max(1, updates.map(\.update.rank).max()!)
    withUnsafeTemporaryAllocation(of: Float.self, capacity: tokens * ldu) { u in
      groups.withUnsafeBufferPointer { groups in
        run(groups.baseAddress!, Int32(groups.count), u.baseAddress!, Int64(ldu))
      }
    }
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

/// An unmerged low-rank update y += scale · B (A x) with F16 factors, A (rank x columns) and
/// Bᵀ (rank x rows), both row-major. Pointers into memory the caller keeps alive.
public struct LowRankF16 {
  public let a: UnsafePointer<UInt16>
  public let bt: UnsafePointer<UInt16>
  public let rank: Int
  public let rows: Int
  public let columns: Int
  public let scale: Float

  public init(
    a: UnsafePointer<UInt16>, bt: UnsafePointer<UInt16>, rank: Int, rows: Int, columns: Int, scale: Float
  ) {
    self.a = a
    self.bt = bt
    self.rank = rank
    self.rows = rows
    self.columns = columns
    self.scale = scale
  }
}
