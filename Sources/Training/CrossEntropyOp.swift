// Masked cross-entropy over the rows that have a label, from their logits, and its gradient
//   loss_i = logsumexp(z_i) − z_i[y_i],   dz_i = weight · (softmax(z_i) − onehot(y_i)).
// Each row runs in CKernels (vectorized exp); sums are in double so a long sequence's loss
// does not depend on the split across threads.
import CKernels
import Kernels

public enum CrossEntropyOp {
  /// Returns Σ_i loss_i over `rows` rows of logits (rows x vocabulary) and, when `weight` is
  /// given, overwrites the logits with weight · dz.
  public static func lossAndGradient(
    logits: UnsafeMutablePointer<Float>, labels: [Int32], vocabulary V: Int, weight: Float?,
    pool: ThreadPool
  ) -> Double {
    let rows = labels.count
    var partial = [Double](repeating: 0, count: max(1, pool.threadCount))
    labels.withUnsafeBufferPointer { labels in
      partial.withUnsafeMutableBufferPointer { partial in
        pool.parallelFor(rows) { range, thread in
          var sum = 0.0
          for i in range {
            sum += dq_cross_entropy(logits + i * V, Int64(V), labels[i], weight ?? 0, weight != nil)
          }
          partial[thread] += sum
        }
      }
    }
    return partial.reduce(0, +)
  }
}
