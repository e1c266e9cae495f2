// ThreadPool: parallelFor hands out every index exactly once, in aligned chunks, with valid
// thread indices; parallelForEach every item exactly once; run calls its body once on every thread; thousands of tiny consecutive
// jobs (the decode loop's pattern) finish without a lost wake-up.
import Foundation
import Kernels
import Synchronization
import Testing

/// Calls recorded from several threads at once.
final class CallLog<Element: Sendable>: Sendable {
  private let calls = Mutex<[Element]>([])
  func append(_ element: Element) { calls.withLock { $0.append(element) } }
  var all: [Element] { calls.withLock { $0 } }
}

final class Counter: Sendable {
  private let count = Mutex(0)
  func add(_ n: Int) { count.withLock { $0 += n } }
  var value: Int { count.withLock { $0 } }
}

struct ThreadPoolTests {
  @Test(
    "parallelForEach hands out every item exactly once with valid thread indices",
    arguments: [0, 1, 7, 1000], [1, 2, 3])
  func claimsEveryItemOnce(count: Int, threads: Int) {
    let pool = ThreadPool(threads: threads)
    let log = CallLog<(Int, Int)>()
    pool.parallelForEach(count) { item, thread in log.append((item, thread)) }
    var hits = [Int](repeating: 0, count: count)
    for (item, thread) in log.all {
      #expect((0..<threads).contains(thread), "thread index \(thread) of \(threads)")
      #expect((0..<count).contains(item), "item \(item) outside 0..<\(count)")
      if (0..<count).contains(item) { hits[item] += 1 }
    }
    #expect(hits.allSatisfy { $0 == 1 })
  }

  @Test(
    "parallelFor covers every index exactly once with valid thread indices",
    arguments: [0, 1, 7, 1000], [1, 2, 3])
  func coversEveryIndexOnce(count: Int, threads: Int) {
    let pool = ThreadPool(threads: threads)
    #expect(pool.threadCount == threads)
    let log = CallLog<(Range<Int>, Int)>()
    pool.parallelFor(count) { chunk, thread in log.append((chunk, thread)) }

    var hits = [Int](repeating: 0, count: count)
    for (chunk, thread) in log.all {
      #expect(!chunk.isEmpty, "empty chunks are not handed out")
      #expect((0..<threads).contains(thread), "thread index \(thread) of \(threads)")
      for i in chunk {
        #expect((0..<count).contains(i), "index \(i) outside 0..<\(count)")
        if (0..<count).contains(i) { hits[i] += 1 }
      }
    }
    #expect(hits.allSatisfy { $0 == 1 }, "indices hit other than once: \(hits.enumerated().filter { $0.element != 1 }.prefix(5))")
    // One chunk per thread at most, and no two chunks on the same thread.
    let threadsUsed = log.all.map(\.1)
    #expect(Set(threadsUsed).count == threadsUsed.count)
  }

  @Test(
    "parallelFor chunks start on multiples of align and are whole multiples except the last",
    arguments: [(1000, 64), (130, 64), (67, 16), (7, 4), (64, 64), (65, 64), (3, 8)], [1, 2, 3])
  func chunksRespectAlign(shape: (count: Int, align: Int), threads: Int) {
    let (count, align) = shape
    let pool = ThreadPool(threads: threads)
    let log = CallLog<Range<Int>>()
    pool.parallelFor(count, align: align) { chunk, _ in log.append(chunk) }
    let chunks = log.all.sorted { $0.lowerBound < $1.lowerBound }
    #expect(chunks.reduce(0) { $0 + $1.count } == count)
    for chunk in chunks {
      #expect(chunk.lowerBound % align == 0, "chunk \(chunk) with align \(align)")
      if chunk.upperBound != count {
        #expect(chunk.count % align == 0, "chunk \(chunk) with align \(align)")
      }
    }
    // Contiguous, non-overlapping cover of 0..<count.
    var next = 0
    for chunk in chunks {
      #expect(chunk.lowerBound == next)
      next = chunk.upperBound
    }
    #expect(next == count)
  }

  @Test("run calls its body once on every thread, on distinct OS threads", arguments: [1, 2, 3, 4])
  func runReachesEveryThread(threads: Int) {
    let pool = ThreadPool(threads: threads)
    let log = CallLog<(ith: Int, nth: Int, os: UInt)>()
    pool.run { ith, nth in log.append((ith, nth, UInt(bitPattern: Int(bitPattern: pthread_self())))) }
    let calls = log.all
    #expect(calls.count == threads)
    #expect(Set(calls.map(\.ith)) == Set(0..<threads))
    #expect(calls.allSatisfy { $0.nth == threads })
    #expect(Set(calls.map(\.os)).count == threads, "each index runs on its own thread")
    // The caller takes part as thread 0.
    let me = UInt(bitPattern: Int(bitPattern: pthread_self()))
    #expect(calls.first { $0.ith == 0 }?.os == me)
  }

  @Test("run returns only after every thread finished its part")
  func runWaitsForAllThreads() {
    let pool = ThreadPool(threads: 3)
    let done = Mutex<[Bool]>([false, false, false])
    for _ in 0..<50 {
      done.withLock { $0 = [false, false, false] }
      pool.run { ith, _ in
        // Thread 0 (the caller) finishes at once; the others take a little while.
        if ith != 0 { usleep(200) }
        done.withLock { $0[ith] = true }
      }
      #expect(done.withLock { $0 } == [true, true, true])
    }
  }

  @Test("10,000 tiny consecutive jobs all complete (no lost wake-up)", arguments: [2, 3])
  func manyTinyJobs(threads: Int) {
    let jobs = 10_000
    // Runs on its own thread so that a hang is reported as a failure instead of stalling
    // the test run. The limit is generous: well under a second is normal even with more
    // threads than cores and other work on the machine.
    let finished = DispatchSemaphore(value: 0)
    let total = Counter()
    let worker = Thread {
      let pool = ThreadPool(threads: threads)
      for _ in 0..<jobs {
        pool.run { _, _ in total.add(1) }
      }
      // Also the sleeping path: let the workers give up spinning, then wake them again.
      for _ in 0..<3 {
        usleep(100_000)
        pool.parallelFor(threads * 10) { chunk, _ in total.add(chunk.count) }
      }
      finished.signal()
    }
    worker.start()
    let result = finished.wait(timeout: .now() + 60)
    #expect(result == .success, "jobs still running after 60 s: the pool lost a wake-up or spins without yielding")
    if result == .success {
      #expect(total.value == jobs * threads + 3 * threads * 10)
    }
  }

  @Test("parallelFor with a non-positive count never calls its body")
  func emptyRange() {
    let pool = ThreadPool(threads: 2)
    let log = CallLog<Range<Int>>()
    pool.parallelFor(0) { chunk, _ in log.append(chunk) }
    pool.parallelFor(-5) { chunk, _ in log.append(chunk) }
    #expect(log.all.isEmpty)
  }

  @Test("a non-positive thread count gives a one-thread pool")
  func clampsThreadCount() {
    #expect(ThreadPool(threads: 0).threadCount == 1)
    #expect(ThreadPool(threads: -3).threadCount == 1)
  }
}
