// Every suite of this target is nested in this one and runs one test at a time: the tests are
// synchronous and CPU-bound, and running several at once on this 2-core machine occupied every
// thread of Swift's cooperative pool, so the async, deadline-bound HTTP tests of other modules
// running beside them timed out.
import Testing

@Suite(.serialized) enum TrainingSuites {}
