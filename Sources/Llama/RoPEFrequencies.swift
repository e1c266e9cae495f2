// The rotation frequency of each RoPE pair, fixed per model: base^(-2i/d) times the linear
// scale, divided by the Llama 3.1 frequency factor of pair i when the file has `rope_freqs`
// (as llama.cpp's rope does: theta = pos · freq_scale · base^(-2i/d) / factor[i]).
import Foundation

public struct RoPEFrequencies: Sendable, Equatable {
  /// Radians per position of each rotated pair (ropeDimension / 2 of them).
  public let radiansPerPosition: [Double]

  public init(dimension d: Int, base: Float, scale: Float, factors: VectorView?) {
    radiansPerPosition = (0..<(d / 2)).map { i in
      let factor = factors.map { Double($0.base[i]) } ?? 1
      return Double(scale) * pow(Double(base), -2.0 * Double(i) / Double(d)) / factor
    }
  }

  /// The full-attention layers' frequencies.
  public init(hyper: LlamaHyperParameters, factors: VectorView?) {
    self.init(dimension: hyper.ropeDimension, base: hyper.ropeBase, scale: hyper.ropeFrequencyScale, factors: factors)
  }

  /// The sliding-window layers' frequencies (their own base, scale 1, as llama.cpp), or nil
  /// when no layer slides.
  public static func sliding(_ hyper: LlamaHyperParameters) -> RoPEFrequencies? {
    hyper.slidingWindow > 0
      ? RoPEFrequencies(dimension: hyper.ropeDimension, base: hyper.slidingRopeBase, scale: 1, factors: nil) : nil
  }

  /// Writes (cos, sin) of every pair's angle at `position` into `cosSin` (ropeDimension floats).
  public func angles(_ cosSin: UnsafeMutablePointer<Float>, position: Int) {
    // Double: positions up to 1e5 times a frequency must keep their fractional part.
    for (i, frequency) in radiansPerPosition.enumerated() {
      let theta = Double(position) * frequency
      cosSin[2 * i] = Float(cos(theta))
      cosSin[2 * i + 1] = Float(sin(theta))
    }
  }
}
