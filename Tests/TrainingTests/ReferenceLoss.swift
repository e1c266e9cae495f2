// The training tests' independent reference: the tiny model's summed cross-entropy with LoRA
// branches and given noise, computed naively in double (for finite differences).
import Foundation
import TinyModelSupport

extension TinyModel {
  /// Summed cross-entropy of predicting tokens[t+1] at every t with lossMask[t+1], with LoRA
  /// branches y += s·B·(m ⊙ (A·(x ⊙ dropout))) on the projections named in `lora`.
  func referenceLoss(
    _ tokens: [Int32], lossMask: [Bool], lora: [String: ReferenceLoRA], scale: Double
  ) -> Double {
    let logits = referenceLogits(tokens) { name, x, rows, t in
      var y = matvec(name, x, rows: rows)
      guard let branch = lora[name] else { return y }
      let n = x.count
      let r = branch.rank
      let xd = (0..<n).map { x[$0] * (branch.dropout?[t * n + $0] ?? 1) }
      var u = [Double](repeating: 0, count: r)
      for k in 0..<r {
        var sum = 0.0
        for c in 0..<n { sum += branch.a[k * n + c] * xd[c] }
        u[k] = sum * (branch.mask?[t * r + k] ?? branch.stepMask?[k] ?? 1)
      }
      for row in 0..<rows {
        var sum = 0.0
        for k in 0..<r { sum += branch.b[row * r + k] * u[k] }
        y[row] += scale * sum
      }
      return y
    }
    var loss = 0.0
    for t in 0..<(tokens.count - 1) where lossMask[t + 1] {
      let m = logits[t].max()!
      let lse = m + log(logits[t].map { exp($0 - m) }.reduce(0, +))
      loss += lse - logits[t][Int(tokens[t + 1])]
    }
    return loss
  }
}

/// One LoRA branch as the reference sees it (GGUF tensor name → factors and noise).
struct ReferenceLoRA {
  var rank: Int
  var a: [Double]
  var b: [Double]
  /// tokens x columns dropout factors.
  var dropout: [Double]?
  /// tokens x rank mask factors (`token` granularity).
  var mask: [Double]?
  /// rank mask factors shared by all tokens (`step` granularity).
  var stepMask: [Double]?
}
