// The trainer's one source of randomness (data order, dropout and DropLoRA masks, inits):
// xoshiro256** seeded through SplitMix64. Its four words are the whole state, so a checkpoint
// stores them and a resumed run draws exactly what the uninterrupted one would have.

import CKernels
import Foundation

public struct TrainingRandom: RandomNumberGenerator, Sendable, Codable, Equatable {
  // Four scalars rather than an array: next() runs once per two mask entries (millions per
  // step) and must not pay for bounds or uniqueness checks.
  private var s0: UInt64
  private var s1: UInt64
  private var s2: UInt64
  private var s3: UInt64

  /// The four state words (what a checkpoint stores).
  public var state: [UInt64] { [s0, s1, s2, s3] }

  public init(seed: UInt64) {
    var x = seed
    func splitMix() -> UInt64 {
      x &+= 0x9E37_79B9_7F4A_7C15
      var z = x
      z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
      z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
      return z ^ (z >> 31)
    }
    (s0, s1, s2, s3) = (splitMix(), splitMix(), splitMix(), splitMix())
  }

  // Stored as {"state": [four words]}, the layout checkpoints already on disk use.
  private enum CodingKeys: String, CodingKey { case state }

  public init(from decoder: Decoder) throws {
    let words = try decoder.container(keyedBy: CodingKeys.self).decode([UInt64].self, forKey: .state)
    guard words.count == 4, words.contains(where: { $0 != 0 }) else {
      throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "need four words, not all zero"))
    }
    (s0, s1, s2, s3) = (words[0], words[1], words[2], words[3])
  }

  public func encode(to encoder: Encoder) throws {
    var container = encoder.container(keyedBy: CodingKeys.self)
    try container.encode(state, forKey: .state)
  }

  @inline(__always)
  public mutating func next() -> UInt64 {
    let result = rotl(s1 &* 5, 7) &* 9
    let t = s1 << 17
    s2 ^= s0
    s3 ^= s1
    s1 ^= s2
    s0 ^= s3
    s2 ^= t
    s3 = rotl(s3, 45)
    return result
  }

  /// Uniform in [0, 1) from the top 24 bits (exactly representable as a Float).
  public mutating func unitFloat() -> Float { Float(next() >> 40) * 0x1.0p-24 }

  /// Uniform in [0, 1) from the top 53 bits.
  public mutating func unitDouble() -> Double { Double(next() >> 11) * 0x1.0p-53 }

  /// A standard normal draw (Box–Muller; one of the pair is discarded to keep the state simple).
  public mutating func normal() -> Double {
    let u1 = max(unitDouble(), 0x1.0p-53)
    let u2 = unitDouble()
    return (-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2)
  }

  /// Fills `out[0..<count]` with inverted-dropout factors: 0 with probability `p`, else 1/(1-p).
  /// Four draws per 64-bit output, 16 bits each: p is resolved to 2⁻¹⁶ (rates are given to
  /// two or three decimals), and the mask fill is a visible share of a training step.
  public mutating func fillKeepMask(_ out: UnsafeMutablePointer<Float>, count: Int, dropProbability p: Float) {
    var words = (s0, s1, s2, s3)
    withUnsafeMutableBytes(of: &words) { raw in
      dq_xoshiro_keep_mask(
        raw.baseAddress!.assumingMemoryBound(to: UInt64.self), out, Int64(count),
        UInt32((Double(p) * 65536).rounded()), 1 / (1 - p))
    }
    (s0, s1, s2, s3) = words
  }

  private func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }
}
