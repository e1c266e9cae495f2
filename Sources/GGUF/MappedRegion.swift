// MappedRegion: owns the bytes a GGUFFile reads — a read-only private mapping of a file
// (munmap in deinit), or a heap copy for files built in memory. Nothing else touches the fd.
#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

// @unchecked: the region is never written after init (PROT_READ mapping or a private heap
// copy), so sharing the pointer across threads is safe.
final class MappedRegion: @unchecked Sendable {
  private enum Storage { case mapped, heap, empty }

  let base: UnsafeRawPointer?
  let count: Int
  private let storage: Storage

  var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: count) }

  /// Maps `path` read-only. A file that shrinks while mapped can still raise SIGBUS on access;
  /// that is the price of zero-copy weights and is outside what a parser can check.
  init(path: String) throws(GGUFError) {
    // O_NONBLOCK: opening a FIFO (or a device) must not wait for a writer; fstat refuses it below.
    let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
    guard fd >= 0 else { throw .io(path: path, operation: "open", errno: errno) }
    defer { close(fd) }
    var info = stat()
    guard fstat(fd, &info) == 0 else { throw .io(path: path, operation: "fstat", errno: errno) }
    guard (info.st_mode & S_IFMT) == S_IFREG else { throw .notARegularFile(path: path) }
    let size = Int(info.st_size)
    if size == 0 {  // mmap refuses zero lengths; the parser reports the truncation
      base = nil
      count = 0
      storage = .empty
      return
    }
    let address = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0)
    guard let address, address != MAP_FAILED else {
      throw .io(path: path, operation: "mmap", errno: errno)
    }
    base = UnsafeRawPointer(address)
    count = size
    storage = .mapped
  }

  /// A private copy of `bytes`.
  init(copying bytes: [UInt8]) {
    count = bytes.count
    if bytes.isEmpty {
      base = nil
      storage = .empty
      return
    }
    let memory = UnsafeMutableRawPointer.allocate(byteCount: bytes.count, alignment: 64)
    bytes.withUnsafeBytes { memory.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }  // non-empty
    base = UnsafeRawPointer(memory)
    storage = .heap
  }

  /// Hands the whole pages inside [start, start + count) back to the kernel when the bytes are a
  /// file mapping (the next read faults them in again from the page cache or the file); a heap
  /// copy keeps its bytes. The range must lie inside the region.
  func releasePages(_ start: UnsafeRawPointer, count: Int) {
    guard storage == .mapped, let base, start >= base, start + count <= base + self.count else { return }
    #if os(Linux)
      let page = Int(sysconf(Int32(_SC_PAGESIZE)))
      let first = (Int(bitPattern: start) + page - 1) / page * page
      let last = (Int(bitPattern: start) + count) / page * page
      if last > first {
        _ = madvise(UnsafeMutableRawPointer(bitPattern: first), last - first, MADV_DONTNEED)
      }
    #endif
  }

  deinit {
    guard let base else { return }
    switch storage {
    case .mapped: munmap(UnsafeMutableRawPointer(mutating: base), count)
    case .heap: UnsafeMutableRawPointer(mutating: base).deallocate()
    case .empty: break
    }
  }
}
