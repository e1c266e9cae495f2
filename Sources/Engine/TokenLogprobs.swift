// Log probabilities of generated tokens, for the API's `logprobs`: the log-softmax of the
// model's logits at the step that produced the token (before bias, penalties, temperature and
// the truncating cuts, i.e. the model's own distribution), the chosen token's value and the
// `top` most likely tokens'. Computed in Double over the whole vocabulary.
import Foundation

public struct TokenLogprob: Sendable, Equatable {
  public var token: Int32
  public var logprob: Double
  /// The most likely tokens at that step, most likely first (ties by id), `top` of them.
  public var top: [(token: Int32, logprob: Double)]

  public static func == (a: TokenLogprob, b: TokenLogprob) -> Bool {
    a.token == b.token && a.logprob == b.logprob && a.top.map(\.token) == b.top.map(\.token)
      && a.top.map(\.logprob) == b.top.map(\.logprob)
  }

  /// The chosen token's log probability under `logits`, with the `top` most likely tokens.
  public init(logits: UnsafeBufferPointer<Float>, chosen: Int32, top: Int) {
    var maxLogit = -Double.infinity
    for l in logits where Double(l) > maxLogit { maxLogit = Double(l) }
    var sum = 0.0
    for l in logits { sum += exp(Double(l) - maxLogit) }
    let logZ = maxLogit + log(sum)
    token = chosen
    logprob = Double(logits[Int(chosen)]) - logZ
    // The best `top` by a single pass with a small sorted buffer (top ≤ 20).
    var best: [(token: Int32, logit: Float)] = []
    if top > 0 {
      best.reserveCapacity(top + 1)
      for i in 0..<logits.count {
        let l = logits[i]
        if best.count == top, let last = best.last, !(l > last.logit) { continue }
        var at = best.count
        while at > 0 && l > best[at - 1].logit { at -= 1 }
        best.insert((Int32(i), l), at: at)
        if best.count > top { best.removeLast() }
      }
    }
    self.top = best.map { ($0.token, Double($0.logit) - logZ) }
  }
}
