// Sampler and SeededRandom: greedy is argmax, every cut keeps exactly the tokens its definition
// keeps (checked by drawing many times), frequencies follow the softmax, seeds reproduce, and
// the repetition penalty follows llama.cpp's rule. Expected values come from the definitions
// (softmax computed here in double), never from the sampler's own output.
import Engine
import Foundation
import Testing

func draw(_ sampler: inout Sampler, _ logits: [Float], history: [Int32] = []) -> Int32 {
  logits.withUnsafeBufferPointer { sampler.sample(logits: $0, history: history[...]) }
}

/// Counts of each token over `n` draws.
func histogram(_ parameters: SamplingParameters, _ logits: [Float], n: Int, history: [Int32] = [])
  -> [Int]
{
  var sampler = Sampler(parameters)
  var counts = [Int](repeating: 0, count: logits.count)
  for _ in 0..<n { counts[Int(draw(&sampler, logits, history: history))] += 1 }
  return counts
}

func softmax(_ logits: [Double]) -> [Double] {
  let m = logits.max()!
  let e = logits.map { exp($0 - m) }
  let total = e.reduce(0, +)
  return e.map { $0 / total }
}

/// Every count within 5 binomial standard deviations of n·p (and zero where p is zero).
func expectFrequencies(
  _ counts: [Int], _ p: [Double], sourceLocation: SourceLocation = #_sourceLocation
) {
  let n = Double(counts.reduce(0, +))
  for (i, (count, pi)) in zip(counts, p).enumerated() {
    if pi == 0 {
      #expect(count == 0, "token \(i) must never be drawn", sourceLocation: sourceLocation)
    } else {
      let sigma = (n * pi * (1 - pi)).squareRoot()
      #expect(
        abs(Double(count) - n * pi) <= 5 * sigma + 1,
        "token \(i): \(count) draws, expected \(n * pi) ± \(5 * sigma)", sourceLocation: sourceLocation)
    }
  }
}

/// Only the sampler's own cut under test: top-k, top-p and min-p off.
func plain(temperature: Float = 1, seed: UInt64 = 1) -> SamplingParameters {
  SamplingParameters(temperature: temperature, topK: 0, topP: 1, minP: 0, seed: seed)
}

struct SeededRandomTests {
  @Test("the same seed gives the same stream; different seeds differ")
  func reproducible() {
    var a = SeededRandom(seed: 42), b = SeededRandom(seed: 42), c = SeededRandom(seed: 43)
    let sa = (0..<1000).map { _ in a.next() }
    let sb = (0..<1000).map { _ in b.next() }
    let sc = (0..<1000).map { _ in c.next() }
    #expect(sa == sb)
    #expect(zip(sa, sc).filter { $0 == $1 }.count == 0)
    #expect(Set(sa).count == 1000)
  }

  @Test("xoshiro256** seeded by SplitMix64 matches an independent implementation of both")
  func matchesReferenceAlgorithm() {
    // SplitMix64's published first output for seed 1234567 (Vigna's splitmix64.c) checks the
    // reference seeding written here; xoshiro256** is then written from the paper's code.
    var x: UInt64 = 1_234_567
    func splitMix() -> UInt64 {
      x &+= 0x9E37_79B9_7F4A_7C15
      var z = x
      z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
      z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
      return z ^ (z >> 31)
    }
    #expect(splitMix() == 6_457_827_717_110_365_317)
    for seed: UInt64 in [0, 1, 1_234_567, .max] {
      x = seed
      var s = [splitMix(), splitMix(), splitMix(), splitMix()]
      func rotl(_ v: UInt64, _ k: UInt64) -> UInt64 { (v << k) | (v >> (64 - k)) }
      var ours = SeededRandom(seed: seed)
      for _ in 0..<100 {
        let expected = rotl(s[1] &* 5, 7) &* 9
        let t = s[1] << 17
        s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3]; s[2] ^= t; s[3] = rotl(s[3], 45)
        #expect(ours.next() == expected)
      }
    }
  }

  @Test("nextUnit is in [0, 1) and roughly uniform")
  func unitInterval() {
    var random = SeededRandom(seed: 7)
    var buckets = [Int](repeating: 0, count: 10)
    let n = 100_000
    for _ in 0..<n {
      let u = random.nextUnit()
      #expect(u >= 0 && u < 1)
      buckets[min(9, Int(u * 10))] += 1
    }
    // Each decile: n/10 ± 5σ with σ = sqrt(n · 0.1 · 0.9).
    let sigma = (Double(n) * 0.09).squareRoot()
    #expect(buckets.allSatisfy { abs(Double($0) - Double(n) / 10) <= 5 * sigma }, "\(buckets)")
  }
}

struct SamplerTests {
  @Test("temperature 0 is argmax, ties going to the lowest id")
  func greedyIsArgmax() {
    var rng = SeededRandom(seed: 3)
    for _ in 0..<200 {
      let logits = (0..<50).map { _ in Float(rng.nextUnit() * 20 - 10) }
      var sampler = Sampler(.greedy)
      let expected = logits.indices.max { logits[$0] < logits[$1] || (logits[$0] == logits[$1] && $0 > $1) }!
      #expect(draw(&sampler, logits) == Int32(expected))
    }
    var sampler = Sampler(.greedy)
    #expect(draw(&sampler, [1, 3, 0, 3, 3]) == 1)
    #expect(draw(&sampler, [-5, -2, -2]) == 1)
    #expect(draw(&sampler, [-.infinity, 0]) == 1)
  }

  @Test("top_k 1 is argmax at any temperature", arguments: [0.1, 1, 5, 1000] as [Float])
  func topKOne(temperature: Float) {
    var rng = SeededRandom(seed: 4)
    var sampler = Sampler(SamplingParameters(temperature: temperature, topK: 1, topP: 1, minP: 0, seed: 9))
    for _ in 0..<200 {
      let logits = (0..<40).map { _ in Float(rng.nextUnit() * 4) }
      let expected = logits.indices.max { logits[$0] < logits[$1] || (logits[$0] == logits[$1] && $0 > $1) }!
      #expect(draw(&sampler, logits) == Int32(expected))
    }
    #expect(draw(&sampler, [1, 3, 0, 3]) == 1, "ties to the lowest id")
  }

  @Test("the same seed draws the same sequence; another seed draws another")
  func seeds() {
    func sequence(_ seed: UInt64?) -> [Int32] {
      var sampler = Sampler(SamplingParameters(temperature: 1.2, topK: 0, topP: 1, minP: 0, seed: seed))
      var rng = SeededRandom(seed: 100)  // the same logits for every sequence
      return (0..<500).map { _ in draw(&sampler, (0..<30).map { _ in Float(rng.nextUnit() * 3) }) }
    }
    #expect(sequence(1) == sequence(1))
    #expect(sequence(1) != sequence(2))
    // With 500 draws over ~30 likely tokens, two sequences agree in about 1/20 of places.
    #expect(zip(sequence(1), sequence(2)).filter { $0 == $1 }.count < 100)
    #expect(sequence(nil) != sequence(nil), "no seed: a fresh one each time")
  }

  static let logits: [Float] = [1.0, 2.0, 0.5, -1.0, 1.5, 0.0]

  @Test("frequencies follow the softmax at the temperature", arguments: [1, 0.5, 2] as [Float])
  func softmaxFrequencies(temperature: Float) {
    let counts = histogram(plain(temperature: temperature, seed: 11), Self.logits, n: 40_000)
    expectFrequencies(counts, softmax(Self.logits.map { Double($0) / Double(temperature) }))
  }

  @Test("top_k keeps the k largest logits, in softmax proportion")
  func topK() {
    var parameters = plain(seed: 12)
    parameters.topK = 3
    let counts = histogram(parameters, Self.logits, n: 30_000)
    // Tokens 1, 4, 0 are the three largest.
    let kept = softmax([1.0, 2.0, 1.5].map { $0 })
    expectFrequencies(counts, [kept[0], kept[1], 0, 0, kept[2], 0])
  }

  @Test("top_k breaks ties toward the lowest ids; k beyond the vocabulary keeps everything")
  func topKTiesAndLargeK() {
    var parameters = plain(seed: 19)
    parameters.topK = 2
    expectFrequencies(histogram(parameters, [0.5, 1, 1, 1, 0.5], n: 10_000), [0, 0.5, 0.5, 0, 0])
    parameters.topK = 100
    expectFrequencies(histogram(parameters, Self.logits, n: 30_000), softmax(Self.logits.map { Double($0) }))
  }

  /// Probabilities 0.5, 0.25, 0.15, 0.07, 0.03 in scrambled order.
  static let nucleus: [Float] = [0.07, 0.5, 0.03, 0.15, 0.25].map { Float(log($0)) }

  @Test(
    "top_p keeps exactly the smallest most-likely prefix whose mass reaches p",
    arguments: [(0.45, 1), (0.6, 2), (0.85, 3), (0.93, 4), (0.99, 5)] as [(Float, Int)])
  func topP(p: Float, kept: Int) {
    var parameters = plain(seed: 13)
    parameters.topP = p
    let counts = histogram(parameters, Self.nucleus, n: 20_000)
    let byProbability = [1, 4, 3, 0, 2]  // ids from most to least likely
    var expected = [Double](repeating: 0, count: 5)
    let mass = byProbability.prefix(kept).reduce(0.0) { $0 + exp(Double(Self.nucleus[$1])) }
    for id in byProbability.prefix(kept) { expected[id] = exp(Double(Self.nucleus[id])) / mass }
    expectFrequencies(counts, expected)
  }

  @Test(
    "min_p drops tokens below min_p times the top probability",
    arguments: [(0.2, 3), (0.45, 2), (0.1, 4), (0.9, 1)] as [(Float, Int)])
  func minP(minP: Float, kept: Int) {
    // Probabilities 0.5, 0.25, 0.15, 0.07, 0.03: min_p 0.2 keeps p >= 0.1 (three tokens),
    // 0.45 keeps p >= 0.225 (two), 0.1 keeps p >= 0.05 (four), 0.9 keeps only the top one.
    var parameters = plain(seed: 14)
    parameters.minP = minP
    let counts = histogram(parameters, Self.nucleus, n: 20_000)
    let byProbability = [1, 4, 3, 0, 2]
    var expected = [Double](repeating: 0, count: 5)
    let mass = byProbability.prefix(kept).reduce(0.0) { $0 + exp(Double(Self.nucleus[$1])) }
    for id in byProbability.prefix(kept) { expected[id] = exp(Double(Self.nucleus[id])) / mass }
    expectFrequencies(counts, expected)
  }

  @Test("top_p and min_p cut on the probabilities before temperature (llama.cpp's order)")
  func cutsBeforeTemperature() {
    // At temperature 3 the distribution flattens: top token 0.5 -> ~0.34. The nucleus of
    // p = 0.6 is still {0.5, 0.25} (two tokens), min_p 0.2 still keeps three; the draw among
    // the kept tokens is at the temperature.
    let byProbability = [1, 4, 3, 0, 2]
    func expected(_ kept: Int) -> [Double] {
      let ids = Array(byProbability.prefix(kept))
      let p = softmax(ids.map { Double(Self.nucleus[$0]) / 3 })
      var out = [Double](repeating: 0, count: 5)
      for (id, pi) in zip(ids, p) { out[id] = pi }
      return out
    }
    var parameters = plain(temperature: 3, seed: 15)
    parameters.topP = 0.6
    expectFrequencies(histogram(parameters, Self.nucleus, n: 20_000), expected(2))
    parameters = plain(temperature: 3, seed: 16)
    parameters.minP = 0.2
    expectFrequencies(histogram(parameters, Self.nucleus, n: 20_000), expected(3))
    // And at a low temperature nothing more is cut than at 1.
    parameters = plain(temperature: 0.3, seed: 17)
    parameters.topP = 0.93
    let counts = histogram(parameters, Self.nucleus, n: 20_000)
    #expect(counts[0] > 0 && counts[2] == 0)
  }

  @Test("repeat penalty divides positive and multiplies negative logits of recent tokens")
  func repeatPenalty() {
    func greedy(_ logits: [Float], history: [Int32], penalty: Float = 1.5, lastN: Int = 64) -> Int32 {
      var sampler = Sampler(SamplingParameters(temperature: 0, repeatPenalty: penalty, repeatLastN: lastN))
      return draw(&sampler, logits, history: history)
    }
    // Positive: 2.0 / 1.5 = 1.33 < 1.8.
    #expect(greedy([2.0, 1.8, 0], history: []) == 0)
    #expect(greedy([2.0, 1.8, 0], history: [0]) == 1)
    // Negative: -1.0 · 1.5 = -1.5 < -1.2 (dividing would have raised it to -0.67).
    #expect(greedy([-1.0, -1.2, -3], history: [0]) == 1)
    // A penalised positive logit stays positive; a tiny one is not pushed below a negative.
    #expect(greedy([0.1, -0.05], history: [0]) == 0)
    // Applied once however often a token occurs: 2.0 / 1.5 = 1.33 > 1.3 (three times: 0.59).
    #expect(greedy([2.0, 1.3], history: [0, 0, 0]) == 0)
    // Only the last repeatLastN tokens count.
    #expect(greedy([2.0, 1.8], history: [0, 5, 5, 5], lastN: 3) == 0)
    #expect(greedy([2.0, 1.8], history: [5, 0, 5, 5], lastN: 3) == 1)
    #expect(greedy([2.0, 1.8], history: [0], lastN: 0) == 0, "repeat_last_n 0 is off")
    #expect(greedy([2.0, 1.8], history: [0], penalty: 1) == 0, "penalty 1 is off")

    // Also when sampling: the penalised token's share follows the penalised logit.
    let counts = histogram(
      SamplingParameters(temperature: 1, topK: 0, topP: 1, minP: 0, repeatPenalty: 2, seed: 18),
      [2.0, 1.0, -1.0], n: 30_000, history: [0, 2])
    expectFrequencies(counts, softmax([1.0, 1.0, -2.0]))
  }

  @Test("out-of-range parameters are named; usable ones pass")
  func validation() {
    let bad: [SamplingParameters] = [
      .init(temperature: -0.1), .init(temperature: .nan), .init(temperature: .infinity),
      .init(topK: -1), .init(topP: 0), .init(topP: 1.01), .init(topP: -0.5), .init(topP: .nan),
      .init(minP: -0.01), .init(minP: 1.5), .init(minP: .nan),
      .init(repeatPenalty: 0), .init(repeatPenalty: -1), .init(repeatPenalty: .infinity),
      .init(repeatPenalty: .nan), .init(repeatLastN: -1),
    ]
    for parameters in bad { #expect(parameters.validationError != nil, "\(parameters)") }
    let good: [SamplingParameters] = [
      .init(), .greedy, .init(temperature: 0, topK: 0, topP: 1, minP: 0),
      .init(temperature: 5, topK: 1, topP: 0.01, minP: 1, repeatPenalty: 0.5, repeatLastN: 0),
    ]
    for parameters in good { #expect(parameters.validationError == nil, "\(parameters)") }
    #expect(SamplingParameters(topK: -1).validationError?.contains("top_k") == true)
    #expect(SamplingParameters(topP: 0).validationError?.contains("top_p") == true)
    #expect(SamplingParameters(minP: 2).validationError?.contains("min_p") == true)
  }
}

/// OpenAI's logit bias and presence/frequency penalties, from their definitions:
/// logit − frequency·count − presence·(count > 0), counts over the tokens drawn so far.
@Suite struct BiasAndPenaltyTests {
  @Test func greedyFollowsTheFrequencyAndPresencePenaltiesStepByStep() {
    // Logits 3, 2, 0. Frequency 1.5: token 0 drawn once → 1.5 < 2, so token 1 next; then
    // 0: 1.5 vs 1: 0.5 → token 0; then 0: 0 vs 1: 0.5 → token 1.
    var p = SamplingParameters.greedy
    p.frequencyPenalty = 1.5
    var sampler = Sampler(p)
    let logits: [Float] = [3, 2, 0]
    #expect((0..<4).map { _ in draw(&sampler, logits) } == [0, 1, 0, 1])
    // Presence 2 alone: one draw takes 2 off whatever the count; 3 − 2 = 1 < 2 → token 1,
    // then 2 − 2 = 0 < 1 → token 0 again, and from then on both are down by 2: 1 vs 0 → 0.
    var q = SamplingParameters.greedy
    q.presencePenalty = 2
    var s2 = Sampler(q)
    #expect((0..<4).map { _ in draw(&s2, logits) } == [0, 1, 0, 0])
  }

  @Test func penaltiesCountOnlyDrawnTokensNotThePrompt() {
    var p = SamplingParameters.greedy
    p.frequencyPenalty = 2
    var sampler = Sampler(p)
    // Token 0 fills the history (the prompt) but was never drawn: no penalty yet.
    #expect(draw(&sampler, [3, 2, 0], history: [0, 0, 0, 0]) == 0)
  }

  @Test func logitBiasShiftsAndBans() {
    var p = SamplingParameters.greedy
    p.logitBias = [2: 3.5]
    var sampler = Sampler(p)
    #expect(draw(&sampler, [3, 2, 0]) == 2)
    // A ban holds at any temperature.
    let banned = SamplingParameters(temperature: 1, topK: 0, topP: 1, minP: 0, seed: 3).banning([0])
    #expect(histogram(banned, [3, 2, 0], n: 2000)[0] == 0)
    // A bias at temperature 1 is a factor e^bias on the probability.
    var b = plain()
    b.logitBias = [1: Float(log(2.0))]
    expectFrequencies(histogram(b, [0, 0, 0], n: 20_000), [0.25, 0.5, 0.25])
  }

  @Test func biasThenRepeatPenaltyThenPresencePenaltyOnOneToken() {
    // Token 1 (logit 1) takes all three: (1 + 3) / 2 = 2 after the bias and the repeat penalty
    // (it is in the history), then − 0.5 presence once drawn. Token 0 (logit 2.5) has none.
    var p = SamplingParameters.greedy
    p.logitBias = [1: 3]
    p.repeatPenalty = 2
    p.presencePenalty = 0.5
    var sampler = Sampler(p)
    let logits: [Float] = [1.9, 1, -4, 1.8]
    // 2 > 1.9: token 1, which now also carries the presence penalty: 1.5 < 1.9 → token 0.
    #expect(draw(&sampler, logits, history: [1]) == 1)
    #expect(draw(&sampler, logits, history: [1, 1]) == 0)
    // Out-of-range bias keys change nothing; the rest of the logits pass through unchanged.
    var q = SamplingParameters.greedy
    q.logitBias = [7: 100, -1: 100]
    var s2 = Sampler(q)
    #expect(draw(&s2, logits) == 0)
  }
}
