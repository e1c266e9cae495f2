// Merging an adapter into the serving weights: W' = dequant(W) + s·B·A for every targeted
// matrix, stored as Q8_0 (default), F16 or F32. Row tiles are dequantized to fp32, get s·B·A
// added by OpenBLAS's sgemm while still in cache, and are quantized back; threads claim tiles
// one at a time. The merged matrices live in one buffer owned by `MergedWeights` (taken from
// and given back to a `MergeBufferPool` when one is passed); the merged `LlamaModel` keeps it
// alive, and every untargeted matrix stays a view into the base's mapping (no copy).
import CKernels
import Foundation
import Kernels
import Llama

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

public enum MergeType: String, Sendable, CaseIterable {
  case q8_0, f16, f32
  /// Serve unmerged: the base weights stay as they are and the adapter is applied at each
  /// projection (`LoRAHook`); nothing is merged, so `Merge.merge` refuses it.
  case none

  /// The GGML type of the merged matrices; nil for `none`.
  public var ggmlType: UInt32? {
    switch self {
    case .q8_0: return UInt32(DQ_TYPE_Q8_0)
    case .f16: return UInt32(DQ_TYPE_F16)
    case .f32: return UInt32(DQ_TYPE_F32)
    case .none: return nil
    }
  }

  public init(parsing name: String) throws(AdapterError) {
    guard let type = MergeType(rawValue: name.lowercased()) else { throw .unsupportedMergeType(name) }
    self = type
  }
}

/// The memory of one merged weight set (every targeted matrix, back to back).
public final class MergedWeights: @unchecked Sendable {
  // unchecked: written once while merging, read-only afterwards.
  public let byteCount: Int
  public let type: MergeType
  /// Offset of each merged matrix in `buffer`.
  public let matrices: [LoRATarget: WeightMatrix]
  let buffer: UnsafeMutableRawPointer

  let mappedCount: Int
  /// Where the buffer goes when the set is dropped; weak, so a pool's kept buffers live no
  /// longer than its owner (nil: back to the kernel).
  weak var recycler: MergeBufferPool?

  init(
    byteCount: Int, type: MergeType, matrices: [LoRATarget: WeightMatrix],
    buffer: UnsafeMutableRawPointer, mappedCount: Int, recycler: MergeBufferPool?
  ) {
    self.byteCount = byteCount
    self.type = type
    self.matrices = matrices
    self.buffer = buffer
    self.mappedCount = mappedCount
    self.recycler = recycler
  }

  deinit {
    if recycler?.keep(buffer, mappedCount: mappedCount) != true { munmap(buffer, mappedCount) }
  }

  /// Anonymous memory for `count` bytes, in 2 MiB pages where the kernel allows (a merged set
  /// is ~100 MiB: 4 KiB pages would cost ~27k page faults on first write).
  static func allocate(_ count: Int) throws(AdapterError) -> (UnsafeMutableRawPointer, Int) {
    let size = mappedSize(count)
    guard let address = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
      address != MAP_FAILED
    else {
      throw .io(path: "<merged weights>", reason: "cannot allocate \(size) bytes (errno \(errno))")
    }
    #if os(Linux)
      _ = madvise(address, size, 14)  // MADV_HUGEPAGE; advisory, so failure changes nothing
    #endif
    return (address, size)
  }

  static func mappedSize(_ count: Int) -> Int {
    let huge = 2 << 20
    return max(huge, (count + huge - 1) / huge * huge)
  }
}

/// Buffers of dropped merged sets, kept for the next merge of the same size. A fresh mapping
/// costs the kernel a zeroed page for every page on first write (the largest single cost of a
/// merge after the arithmetic, ~100 MiB of pages); a kept buffer is already mapped and faulted in.
/// Holds at most `capacity` buffers; more are returned to the kernel.
public final class MergeBufferPool: @unchecked Sendable {
  // unchecked: `free` is guarded by `lock`.
  public let capacity: Int
  private let lock = NSLock()
  private var free: [(address: UnsafeMutableRawPointer, mappedCount: Int)] = []

  public init(capacity: Int = 1) { self.capacity = max(0, capacity) }

  deinit { for buffer in free { munmap(buffer.address, buffer.mappedCount) } }

  /// Bytes held by kept buffers.
  public var keptBytes: Int { lock.withLock { free.reduce(0) { $0 + $1.mappedCount } } }

  /// A kept buffer of exactly `mappedCount` bytes, if any (the caller now owns it).
  func take(mappedCount: Int) -> UnsafeMutableRawPointer? {
    lock.withLock {
      guard let index = free.firstIndex(where: { $0.mappedCount == mappedCount }) else { return nil }
      return free.remove(at: index).address
    }
  }

  /// Keeps `address` if there is room; false means the caller must unmap it.
  func keep(_ address: UnsafeMutableRawPointer, mappedCount: Int) -> Bool {
    lock.withLock {
      guard free.count < capacity else { return false }
      free.append((address, mappedCount))
      return true
    }
  }
}

public enum Merge {
  /// Rows one sgemm updates.
  static let tileRows = 64

  /// `base` with `adapter` merged into every matrix it targets. The adapter must have been
  /// validated against `base.hyper` (the readers do that). With `buffers`, the merged set takes
  /// a kept buffer of its size when there is one, and returns its own there when dropped.
  public static func merge(
    _ adapter: LoRAAdapter, into base: LlamaModel, type: MergeType = .q8_0, pool: ThreadPool,
    buffers: MergeBufferPool? = nil
  ) throws(AdapterError) -> LlamaModel {
    try adapter.validate(against: base.hyper)
    guard let ggmlType = type.ggmlType else {
      throw .unsupportedOption(key: "merge type", value: "none (nothing to merge: apply a LoRAHook instead)")
    }
    let targets = adapter.targets
    var offsets: [LoRATarget: Int] = [:]
    var total = 0
    for target in targets {
      let f = adapter.factors[target]!  // from targets
      let rowSize = Int(dq_row_size(ggmlType, Int64(f.columns)))
      guard rowSize > 0 else {
        throw .unsupportedOption(
          key: "merge type", value: "\(type.rawValue) for \(target) (\(f.columns) columns are not whole blocks)")
      }
      offsets[target] = total
      total += (f.rows * rowSize + 63) / 64 * 64
    }
    let mappedCount = MergedWeights.mappedSize(total)
    let buffer: UnsafeMutableRawPointer
    if let kept = buffers?.take(mappedCount: mappedCount) {
      buffer = kept
    } else {
      buffer = try MergedWeights.allocate(total).0
    }
    let widest = targets.map { adapter.factors[$0]!.columns }.max() ?? 1
    let tiles = UnsafeMutablePointer<Float>.allocate(capacity: pool.threadCount * tileRows * widest)
    defer { tiles.deallocate() }
    var matrices: [LoRATarget: WeightMatrix] = [:]
    var replacements: [Int: [LlamaProjection: WeightMatrix]] = [:]
    // One pool job over every row tile of every target (not one job per matrix): the threads
    // stay busy across the small k/v matrices instead of waiting at 210 barriers.
    let jobs = targets.map { target in
      MatrixJob(
        w: base.weights.layers[target.layer].matrix(target.projection),
        factors: adapter.factors[target]!,  // from targets
        out: buffer + offsets[target]!)
    }
    var tilesOfJobs: [(job: Int, start: Int)] = []
    for (index, job) in jobs.enumerated() {
      for start in stride(from: 0, to: job.factors.rows, by: tileRows) { tilesOfJobs.append((index, start)) }
    }
    let scale = adapter.scale
    let tileStride = tileRows * widest
    // Threads claim tiles as they go: on a busy machine a descheduled thread's share is taken
    // by the other instead of being waited for.
    pool.parallelForEach(tilesOfJobs.count) { item, thread in
      let (index, start) = tilesOfJobs[item]
      mergeTile(jobs[index], start: start, type: ggmlType, scale: scale, tile: tiles + thread * tileStride)
    }
    for (target, job) in zip(targets, jobs) {
      let f = job.factors
      // The type is supported and columns are whole blocks (checked above).
      let merged = WeightMatrix(type: ggmlType, rows: f.rows, columns: f.columns, base: job.out)!
      matrices[target] = merged
      replacements[target.layer, default: [:]][target.projection] = merged
    }
    let owner = MergedWeights(
      byteCount: total, type: type, matrices: matrices, buffer: buffer, mappedCount: mappedCount,
      recycler: buffers)
    return LlamaModel(base: base, replacing: replacements, owner: owner)
  }

  struct MatrixJob {
    let w: WeightMatrix
    let factors: LoRAFactors
    let out: UnsafeMutableRawPointer
  }

  /// Rows start..<start+tileRows of out (in `type`) = dequant(W) + scale · B · A.
  static func mergeTile(
    _ job: MatrixJob, start: Int, type: UInt32, scale: Float, tile: UnsafeMutablePointer<Float>
  ) {
    let f = job.factors
    let columns = f.columns
    let rank = f.rank
    let count = min(tileRows, f.rows - start)
    let outStride = Int(dq_row_size(type, Int64(columns)))
    for r in 0..<count { job.w.dequantizeRow(start + r, into: tile + r * columns) }
    f.a.withUnsafeBufferPointer { a in
      f.b.withUnsafeBufferPointer { b in
        // tile (count x columns) += scale · B[start..<start+count, :] (count x r) · A (r x columns).
        // OpenBLAS's sgemm with its AVX-512 kernels (the CLI and daemon set OPENBLAS_CORETYPE)
        // beats the register-blocked dq_add_low_rank; the tile is still in cache from dequantizing.
        Blas.multiply(
          rows: count, columns: columns, inner: rank, scale: scale, a: b.baseAddress! + start * rank,
          lda: rank, transposeB: false, b: a.baseAddress!, ldb: columns, c: tile, ldc: columns,
          accumulate: true)
      }
    }
    for r in 0..<count {
      dq_quantize_row(type, tile + r * columns, job.out + (start + r) * outStride, Int64(columns))
    }
  }
}

/// The unmerged adapter at each projection: out += s · B · (A x) in fp32 on the calling thread.
/// The reference the merged weights and `LoRAHook` (the fast F16 serving path) are tested against.
public final class LoRAProjectionHook: LlamaProjectionHook {
  let adapter: LoRAAdapter
  private var scratch: [Float] = []

  public init(adapter: LoRAAdapter) { self.adapter = adapter }

  public func apply(
    layer: Int, projection: LlamaProjection, out: UnsafeMutablePointer<Float>,
    x: UnsafePointer<Float>, tokens: Int, rows: Int, columns: Int, pool: ThreadPool
  ) {
    guard let f = adapter.factors[LoRATarget(layer: layer, projection: projection)] else { return }
    if scratch.count < tokens * f.rank { scratch = [Float](repeating: 0, count: tokens * f.rank) }
    let scale = adapter.scale
    scratch.withUnsafeMutableBufferPointer { u in
      f.a.withUnsafeBufferPointer { a in
        f.b.withUnsafeBufferPointer { b in
          // u (tokens x r) = x (tokens x columns) · Aᵀ
          Blas.multiply(
            rows: tokens, columns: f.rank, inner: columns, scale: 1, a: x, lda: columns,
            transposeB: true, b: a.baseAddress!, ldb: columns, c: u.baseAddress!, ldc: f.rank)
          // out (tokens x rows) += s · u · Bᵀ
          Blas.multiply(
            rows: tokens, columns: rows, inner: f.rank, scale: scale, a: u.baseAddress!,
            lda: f.rank, transposeB: true, b: b.baseAddress!, ldb: f.rank, c: out, ldc: rows,
            accumulate: true)
        }
      }
    }
  }
}
