// Every suite of this target is nested in this one and runs one test at a time: the tests are
// synchronous and CPU-bound, and running several at once on this 2-core machine occupied every
// thread of Swift's cooperative pool, so the async, deadline-bound HTTP tests of other modules
// running beside them timed out.
import Dispatch
import Testing

@Suite(.serialized) enum TrainingSuites {}

/// A serial queue of its own as the task executor of the tests' synchronous bodies, so the
/// CPU-bound work blocks this thread rather than one of the cooperative pool's two.
final class TrainingTestExecutor: TaskExecutor, @unchecked Sendable {
  // unchecked: the queue serialises everything it runs.
  static let shared = TrainingTestExecutor()
  private let queue = DispatchQueue(label: "droplora.training-tests")

  func enqueue(_ job: consuming ExecutorJob) {
    let unowned = UnownedJob(job)
    queue.async { unowned.runSynchronously(on: self.asUnownedTaskExecutor()) }
  }
}

/// Runs `body` on TrainingTestExecutor (the same task: expectations are recorded as usual).
func offCooperativePool(_ body: () throws -> Void) async throws {
  try await withTaskExecutorPreference(TrainingTestExecutor.shared) { try body() }
}
