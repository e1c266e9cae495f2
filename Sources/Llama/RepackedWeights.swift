// The model's k-quant and Q4_0 matrices repacked once, at load, into the layouts the AVX-512 VNNI
// product kernels read fastest (r16, dq_r16_supported: 16 rows per group with a row per lane;
// Q4_0 X16, dq_q4_0_x16_available: each row's blocks 16 at a time with a block per lane). Products read
// the copies; the file's bytes stay the matrices for everything else (dequantizing for training
// and merges, embedding rows, export), and their pages are given back to the kernel after
// packing: a path that reads them again faults them in from the page cache.
import CKernels
import Dispatch
import GGUF
import Kernels

#if canImport(Glibc)
  import Glibc
#endif

final class RepackedWeights: @unchecked Sendable {
  // unchecked: the buffers are written once, before the model is shared, then only read.
  private var buffers: [UnsafeMutableRawPointer] = []
  private(set) var byteCount = 0
  /// The file whose matrices are repacked (its pages are released after packing).
  private let file: GGUFFile

  init(file: GGUFFile) { self.file = file }

  deinit {
    for buffer in buffers { free(buffer) }
  }

  /// Whether loads repack by default: yes, unless the environment sets DROPLORA_REPACK=0 (for
  /// A/B measurements and tests).
  static var enabledByDefault: Bool {
    guard let value = getenv("DROPLORA_REPACK") else { return true }
    return String(cString: value) != "0"
  }

  /// `matrix` with its products reading a repacked copy (r16 for the k-quants, the Q4_0 rows
  /// of DQ_TYPE_Q4_0_X16); unchanged where no layout applies (type, CPU, width) or the memory
  /// cannot be had.
  func repack(_ matrix: WeightMatrix) -> WeightMatrix {
    guard !matrix.isRepacked else { return matrix }
    if dq_r16_supported(matrix.type) && matrix.columns % 256 == 0 {
      return repackGroups(matrix)
    }
    if matrix.type == GGMLType.q4_0.rawValue && dq_q4_0_x16_available() {
      return repackQ4_0Rows(matrix)
    }
    return matrix
  }

  /// Groups of 16 rows (dq_r16_pack_group), packed on every core.
  private func repackGroups(_ matrix: WeightMatrix) -> WeightMatrix {
    let columns = Int64(matrix.columns)
    let groupBytes = dq_r16_group_bytes(matrix.type, columns)
    let groups = (matrix.rows + 15) / 16
    guard groupBytes > 0, let buffer = Self.allocate(groups * groupBytes) else { return matrix }
    keep(buffer, bytes: groups * groupBytes)
    let packed = UncheckedPointer(buffer)
    inChunks(of: matrix, units: groups, rowsPerUnit: 16) { group in
      let first = group * 16
      dq_r16_pack_group(
        matrix.type, columns, matrix.base + first * matrix.rowStride, matrix.rowStride,
        Int64(min(16, matrix.rows - first)), packed.pointer + group * groupBytes)
    }
    return matrix.repacked(as: matrix.type | UInt32(DQ_TYPE_R16), base: buffer, rowStride: groupBytes / 16)
  }

  /// Q4_0 rows in the X16 layout (dq_q4_0_x16_pack_rows: the same size a row), 16 rows per task.
  private func repackQ4_0Rows(_ matrix: WeightMatrix) -> WeightMatrix {
    guard let buffer = Self.allocate(matrix.byteCount) else { return matrix }
    keep(buffer, bytes: matrix.byteCount)
    let packed = UncheckedPointer(buffer)
    inChunks(of: matrix, units: (matrix.rows + 15) / 16, rowsPerUnit: 16) { task in
      let first = task * 16
      dq_q4_0_x16_pack_rows(
        matrix.base + first * matrix.rowStride, packed.pointer + first * matrix.rowStride, Int64(matrix.columns),
        Int64(min(16, matrix.rows - first)))
    }
    return matrix.repacked(as: UInt32(DQ_TYPE_Q4_0_X16), base: buffer, rowStride: matrix.rowStride)
  }

  private func keep(_ buffer: UnsafeMutableRawPointer, bytes: Int) {
    buffers.append(buffer)
    byteCount += bytes
  }

  /// Runs `body` for units 0..<units (each `rowsPerUnit` rows of `matrix`) on every core, a
  /// chunk of units at a time, and gives each chunk's file pages back once it is packed: the
  /// process never holds a whole matrix twice (the 49152-row output matrix of a 1.7B model is
  /// 82 MB), so peak memory stays about one copy of the weights.
  private func inChunks(of matrix: WeightMatrix, units: Int, rowsPerUnit: Int, _ body: @Sendable (Int) -> Void) {
    let chunk = 64
    let workers = max(1, System.activeProcessors)
    for start in stride(from: 0, to: units, by: chunk) {
      let end = min(units, start + chunk)
      DispatchQueue.concurrentPerform(iterations: min(workers, end - start)) { worker in
        for unit in stride(from: start + worker, to: end, by: workers) { body(unit) }
      }
      let firstRow = start * rowsPerUnit
      let lastRow = min(matrix.rows, end * rowsPerUnit)
      file.releasePages(matrix.base + firstRow * matrix.rowStride, count: (lastRow - firstRow) * matrix.rowStride)
    }
    // Each release above keeps the pages its range only partly covers; the matrix is done now.
    file.releasePages(matrix.base, count: matrix.byteCount)
  }

  /// Memory for a repacked matrix: 2 MiB-aligned and marked for transparent huge pages when it
  /// is that large, so filling it takes one fault per 2 MiB instead of per 4 KiB, and a decode
  /// step streaming it misses the TLB less.
  private static func allocate(_ bytes: Int) -> UnsafeMutableRawPointer? {
    let huge = 2 << 20
    var raw: UnsafeMutableRawPointer?
    guard posix_memalign(&raw, bytes >= huge ? huge : 64, bytes) == 0, let buffer = raw else { return nil }
    if bytes >= huge { _ = madvise(buffer, bytes / huge * huge, Int32(MADV_HUGEPAGE)) }
    return buffer
  }
}

/// A pointer the packing workers share (each writes its own groups).
private struct UncheckedPointer: @unchecked Sendable {
  let pointer: UnsafeMutableRawPointer
  init(_ pointer: UnsafeMutableRawPointer) { self.pointer = pointer }
}

private enum System {
  static var activeProcessors: Int { Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))) }
}
