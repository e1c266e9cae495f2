// Choosing the next token from logits. The chain follows llama.cpp's default order:
// logit bias → repetition penalty → presence/frequency penalties → top-k → top-p → min-p →
// temperature → draw. Temperature 0 is greedy (argmax after the bias and penalties). Every
// stage is a small function over a candidate list.
import Foundation

public struct SamplingParameters: Sendable, Equatable, Codable {
  public var temperature: Float
  public var topK: Int  // 0 = off
  public var topP: Float  // 1 = off
  public var minP: Float  // 0 = off
  public var repeatPenalty: Float  // 1 = off
  public var repeatLastN: Int  // how many recent tokens the penalty looks at
  public var seed: UInt64?  // nil = a fresh random seed
  /// OpenAI's penalties: each logit minus `frequency·c + presence·(c > 0)`, where c counts the
  /// token among those this sampler has drawn (the completion so far, not the prompt). 0 = off.
  public var presencePenalty: Float = 0
  public var frequencyPenalty: Float = 0
  /// Added to a token's logit before everything else; −infinity bans the token.
  public var logitBias: [Int32: Float] = [:]

  public init(
    temperature: Float = 0.8, topK: Int = 40, topP: Float = 0.95, minP: Float = 0.05,
    repeatPenalty: Float = 1.0, repeatLastN: Int = 64, seed: UInt64? = nil
  ) {
    self.temperature = temperature
    self.topK = topK
    self.topP = topP
    self.minP = minP
    self.repeatPenalty = repeatPenalty
    self.repeatLastN = repeatLastN
    self.seed = seed
  }

  public static let greedy = SamplingParameters(temperature: 0)

  /// These parameters with `tokens` never drawn (a bias of −infinity).
  public func banning(_ tokens: Set<Int32>) -> SamplingParameters {
    var out = self
    for t in tokens { out.logitBias[t] = -.infinity }
    return out
  }

  /// Describes the first out-of-range value, or nil when all are usable.
  public var validationError: String? {
    if !(temperature >= 0 && temperature.isFinite) { return "temperature must be >= 0" }
    if topK < 0 { return "top_k must be >= 0" }
    if !(topP > 0 && topP <= 1) { return "top_p must be in (0, 1]" }
    if !(minP >= 0 && minP <= 1) { return "min_p must be in [0, 1]" }
    if !(repeatPenalty > 0 && repeatPenalty.isFinite) { return "repeat_penalty must be > 0" }
    if repeatLastN < 0 { return "repeat_last_n must be >= 0" }
    if !presencePenalty.isFinite { return "presence_penalty must be finite" }
    if !frequencyPenalty.isFinite { return "frequency_penalty must be finite" }
    if logitBias.values.contains(where: { $0.isNaN || $0 == .infinity }) { return "logit_bias must be finite or -infinity" }
    return nil
  }
}

public struct Sampler: Sendable {
  public let parameters: SamplingParameters
  private var random: SeededRandom
  private var candidates: [(id: Int32, logit: Float)] = []
  /// The adjusted logits of the last draw (reused so a draw allocates nothing).
  private var adjusted: [Float] = []
  /// How often each token was drawn so far, for the presence and frequency penalties.
  private var drawn: [Int32: Int] = [:]

  public init(_ parameters: SamplingParameters) {
    self.parameters = parameters
    random = SeededRandom(seed: parameters.seed ?? UInt64.random(in: .min ... .max))
  }

  /// Picks the next token. `history` is the sequence so far (prompt and generated).
  public mutating func sample(logits: UnsafeBufferPointer<Float>, history: ArraySlice<Int32>)
    -> Int32
  {
    let token = choose(logits: logits, history: history)
    drawn[token, default: 0] += 1
    return token
  }

  /// What the presence and frequency penalties take off each drawn token's logit.
  private func drawnPenalties() -> [Int32: Float] {
    guard parameters.presencePenalty != 0 || parameters.frequencyPenalty != 0 else { return [:] }
    return drawn.mapValues { parameters.frequencyPenalty * Float($0) + parameters.presencePenalty }
  }

  private mutating func choose(logits: UnsafeBufferPointer<Float>, history: ArraySlice<Int32>) -> Int32 {
    let adjusted = adjustedLogits(logits, history: history)
    if parameters.temperature == 0 {
      return adjusted.withUnsafeBufferPointer { adjusted in
        var best = 0
        var bestLogit = -Float.infinity
        for i in 0..<adjusted.count where adjusted[i] > bestLogit {
          best = i
          bestLogit = adjusted[i]
        }
        return Int32(best)
      }
    }

    candidates.removeAll(keepingCapacity: true)
    for i in 0..<adjusted.count { candidates.append((Int32(i), adjusted[i])) }
    keepTopK()
    let probabilities = keepTopPAndMinP()
    return draw(probabilities)
  }

  /// The logits after the bias and penalties, in the sampler's own buffer. Only the few tokens
  /// those name change, so the rest is a copy: looking each of a vocabulary's ~50k ids up in the
  /// bias and penalty tables cost ~1.5 ms a token (`ignore_eos` alone is a bias).
  private mutating func adjustedLogits(_ logits: UnsafeBufferPointer<Float>, history: ArraySlice<Int32>)
    -> [Float]
  {
    let penalized = penalizedTokens(history)
    let bias = parameters.logitBias
    let penalties = drawnPenalties()
    if adjusted.count != logits.count {
      adjusted = Array(logits)
    } else {
      adjusted.withUnsafeMutableBufferPointer { _ = $0.update(fromContentsOf: logits) }
    }
    for token in Set(bias.keys).union(penalized).union(penalties.keys) where token >= 0 && Int(token) < logits.count {
      let i = Int(token)
      var logit = logits[i]
      if let b = bias[token] { logit += b }
      if penalized.contains(token) {
        // llama.cpp's rule: shrink positive logits, push negative ones further down.
        logit = logit > 0 ? logit / parameters.repeatPenalty : logit * parameters.repeatPenalty
      }
      if let p = penalties[token] { logit -= p }
      adjusted[i] = logit
    }
    return adjusted
  }

  private func penalizedTokens(_ history: ArraySlice<Int32>) -> Set<Int32> {
    guard parameters.repeatPenalty != 1, parameters.repeatLastN > 0 else { return [] }
    return Set(history.suffix(parameters.repeatLastN))
  }

  /// Sorts candidates by logit (descending, ties by id) and keeps the best k.
  private mutating func keepTopK() {
    let k = parameters.topK > 0 ? min(parameters.topK, candidates.count) : candidates.count
    guard k < candidates.count else {
      candidates.sort(by: Sampler.ranksBefore)
      return
    }
    // One pass keeping the best k in order: most candidates lose to the current k-th at once.
    var best: [(id: Int32, logit: Float)] = []
    best.reserveCapacity(k + 1)
    for candidate in candidates {
      if best.count == k, !Sampler.ranksBefore(candidate, best[k - 1]) { continue }
      var low = 0
      var high = best.count
      while low < high {
        let mid = (low + high) / 2
        if Sampler.ranksBefore(best[mid], candidate) { low = mid + 1 } else { high = mid }
      }
      best.insert(candidate, at: low)
      if best.count > k { best.removeLast() }
    }
    candidates = best
  }

  private static func ranksBefore(_ a: (id: Int32, logit: Float), _ b: (id: Int32, logit: Float))
    -> Bool
  {
    a.logit != b.logit ? a.logit > b.logit : a.id < b.id
  }

  /// The nucleus (top-p) and min-p cuts on the softmax of the sorted candidates, before
  /// temperature (as in llama.cpp's chain); returns the kept candidates' unnormalised
  /// probabilities at the sampling temperature.
  private mutating func keepTopPAndMinP() -> [Double] {
    let maxLogit = Double(candidates[0].logit)
    let temperature = Double(parameters.temperature)
    let probabilities = candidates.map { exp(Double($0.logit) - maxLogit) }
    let total = probabilities.reduce(0, +)

    var keep = probabilities.count
    if parameters.topP < 1 {
      var cumulative = 0.0
      for (i, p) in probabilities.enumerated() {
        cumulative += p / total
        if cumulative >= Double(parameters.topP) {
          keep = i + 1
          break
        }
      }
    }
    if parameters.minP > 0 {
      // probabilities[0] is the largest: min-p keeps tokens with p >= minP * p_max.
      let floor = Double(parameters.minP) * probabilities[0]
      var minPKeep = 0
      while minPKeep < keep && probabilities[minPKeep] >= floor { minPKeep += 1 }
      keep = max(1, minPKeep)
    }
    candidates.removeSubrange(keep...)
    return candidates.map { exp((Double($0.logit) - maxLogit) / temperature) }
  }

  private mutating func draw(_ probabilities: [Double]) -> Int32 {
    let total = probabilities.reduce(0, +)
    var target = random.nextUnit() * total
    for (i, p) in probabilities.enumerated() {
      target -= p
      if target < 0 { return candidates[i].id }
    }
    return candidates[candidates.count - 1].id
  }
}
