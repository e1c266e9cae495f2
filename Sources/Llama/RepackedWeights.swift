// The model's k-quant matrices repacked once, at load, into the r16 layout (dq_r16_supported:
// 16 rows per group, the layout the AVX-512 VNNI product kernels read fastest). Products read
// the copies; the file's bytes stay the matrices for everything else (dequantizing for training
// and merges, embedding rows, export), and their pages are given back to the kernel after
// packing: a path that reads them again faults them in from the page cache.
import CKernels
import Dispatch
import Kernels

#if canImport(Glibc)
  import Glibc
#endif

final class RepackedWeights: @unchecked Sendable {
  // unchecked: the buffers are written once, before the model is shared, then only read.
  private var buffers: [UnsafeMutableRawPointer] = []
  private(set) var byteCount = 0

  deinit {
    for buffer in buffers { free(buffer) }
  }

  /// Whether loads repack by default: yes, unless the environment sets DROPLORA_REPACK=0 (for
  /// A/B measurements and tests).
  static var enabledByDefault: Bool {
    guard let value = getenv("DROPLORA_REPACK") else { return true }
    return String(cString: value) != "0"
  }

  /// `matrix` with its products reading an r16 copy; unchanged where the layout does not apply
  /// (type, CPU, width) or the memory cannot be had.
  func repack(_ matrix: WeightMatrix) -> WeightMatrix {
    guard !matrix.isRepacked, dq_r16_supported(matrix.type), matrix.columns % 256 == 0 else { return matrix }
    let columns = Int64(matrix.columns)
    let groupBytes = dq_r16_group_bytes(matrix.type, columns)
    let groups = (matrix.rows + 15) / 16
    guard groupBytes > 0, let buffer = Self.allocate(groups * groupBytes) else { return matrix }
    buffers.append(buffer)
    byteCount += groups * groupBytes
    let workers = max(1, min(groups, System.activeProcessors))
    let packed = UncheckedPointer(buffer)
    DispatchQueue.concurrentPerform(iterations: workers) { worker in
      for group in stride(from: worker, to: groups, by: workers) {
        let first = group * 16
        dq_r16_pack_group(
          matrix.type, columns, matrix.base + first * matrix.rowStride, matrix.rowStride,
          Int64(min(16, matrix.rows - first)), packed.pointer + group * groupBytes)
      }
    }
    releasePages(matrix.base, byteCount: matrix.byteCount)
    return matrix.repacked(into: buffer, groupBytes: groupBytes)
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

  /// Drops the whole pages of the mapped range from this process (MADV_DONTNEED on a read-only
  /// file mapping: nothing is lost, a later read faults the page in again).
  private func releasePages(_ base: UnsafeRawPointer, byteCount: Int) {
    let page = Int(sysconf(Int32(_SC_PAGESIZE)))
    let start = (Int(bitPattern: base) + page - 1) / page * page
    let end = (Int(bitPattern: base) + byteCount) / page * page
    guard end > start, let address = UnsafeMutableRawPointer(bitPattern: start) else { return }
    _ = madvise(address, end - start, Int32(MADV_DONTNEED))
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
