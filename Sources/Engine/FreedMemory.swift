// Memory that Swift has freed is not always memory the system gets back: glibc keeps freed
// heap pages (its mmap threshold grows with every large free) and per-thread arenas. After a
// deleted adapter or an idle trainer lets go of hundreds of megabytes, `malloc_trim` returns
// the free pages. Looked up at run time: it is glibc's, absent from musl and Swift's Glibc map.
#if canImport(Glibc)
  import Glibc
#endif

public enum FreedMemory {
  private typealias Trim = @convention(c) (Int) -> Int32

  private static let trim: Trim? = {
    #if canImport(Glibc)
      guard let symbol = dlsym(nil, "malloc_trim") else { return nil }
      return unsafeBitCast(symbol, to: Trim.self)
    #else
      return nil
    #endif
  }()

  /// Gives the pages the allocator holds free back to the system; a no-op without glibc.
  public static func returnToSystem() {
    _ = trim?(0)
  }
}
