// The compute threads: a thin owner of CKernels' spinning pool. One job at a time; the owner
// of the pool (a model context) serialises calls. Not for the cooperative async pool.
import CKernels

public final class ThreadPool: @unchecked Sendable {
  // unchecked: the C pool is only driven from one thread at a time (see `run`).
  let pool: OpaquePointer
  public let threadCount: Int

  public init(threads: Int) {
    let count = max(1, threads)
    guard let pool = dq_pool_create(Int32(count)) else {
      // Thread creation only fails when the process is out of resources; run single-threaded.
      self.pool = dq_pool_create(1)!
      self.threadCount = 1
      return
    }
    self.pool = pool
    self.threadCount = count
  }

  deinit { dq_pool_destroy(pool) }

  /// Runs `body(thread, threadCount)` once on every thread and returns when all are done.
  public func run(_ body: (Int, Int) -> Void) {
    withoutActuallyEscaping(body) { escaping in
      let box = Unmanaged.passRetained(ClosureBox(escaping))
      defer { box.release() }
      dq_pool_run(pool, { ctx, ith, nth in
        Unmanaged<ClosureBox>.fromOpaque(ctx!).takeUnretainedValue().body(Int(ith), Int(nth))
      }, box.toOpaque())
    }
  }

  /// Splits `0..<count` into one contiguous chunk per thread (chunk sizes are multiples of
  /// `align`) and calls `body(chunk, thread)` for each non-empty chunk.
  public func parallelFor(_ count: Int, align: Int = 1, _ body: (Range<Int>, Int) -> Void) {
    if count <= 0 { return }
    if threadCount == 1 || count <= align {
      body(0..<count, 0)
      return
    }
    run { ith, nth in
      let perThread = ((count + nth - 1) / nth + align - 1) / align * align
      let begin = min(count, ith * perThread)
      let end = min(count, begin + perThread)
      if begin < end { body(begin..<end, ith) }
    }
  }
}

extension ThreadPool {
  /// Calls `body(item, thread)` for every item of `0..<count`, threads claiming items one at a
  /// time as they go: for items of uneven cost, or a machine where a thread may be descheduled
  /// (the others take its share instead of waiting for it).
  public func parallelForEach(_ count: Int, _ body: (Int, Int) -> Void) {
    if count <= 0 { return }
    if threadCount == 1 {
      for item in 0..<count { body(item, 0) }
      return
    }
    let next = UnsafeMutablePointer<Int64>.allocate(capacity: 1)
    defer { next.deallocate() }
    next.initialize(to: 0)
    run { ith, _ in
      while true {
        let item = Int(dq_pool_claim(next, 1))
        if item >= count { break }
        body(item, ith)
      }
    }
  }
}

private final class ClosureBox {
  let body: (Int, Int) -> Void
  init(_ body: @escaping (Int, Int) -> Void) { self.body = body }
}
