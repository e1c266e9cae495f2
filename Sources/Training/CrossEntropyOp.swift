// Masked cross-entropy over the rows that have a label, from their logits, and its gradient
//   loss_i = logsumexp(z_i) − z_i[y_i],   dz_i = weight · (softmax(z_i) − onehot(y_i)).
// Sums are in double so a long sequence's loss does not depend on the split across threads.
import Foundation
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
            let z = logits + i * V
            var maxZ = -Float.infinity
            for j in 0..<V where z[j] > maxZ { maxZ = z[j] }
            var total = 0.0
            for j in 0..<V { total += Double(expf(z[j] - maxZ)) }
            let lse = Double(maxZ) + log(total)
            let label = Int(labels[i])
            sum += lse - Double(z[label])
            if let weight {
              let shift = Float(lse)
              for j in 0..<V { z[j] = weight * expf(z[j] - shift) }
              z[label] -= weight
            }
          }
          partial[thread] += sum
        }
      }
    }
    return partial.reduce(0, +)
  }
}
