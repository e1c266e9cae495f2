// The vectorised softmax and SwiGLU (polynomial exp) against their libm twins and float64.
import CKernels
import Foundation
import Testing

struct OpsKernelTests {
  static func randomValues(_ count: Int, scale: Float, seed: UInt64) -> [Float] {
    var state = seed
    return (0..<count).map { _ in
      state = state &* 6364136223846793005 &+ 1442695040888963407
      return (Float(state >> 40) / Float(1 << 24) * 2 - 1) * scale
    }
  }

  @Test("softmax matches float64 within float rounding", arguments: [1, 7, 8, 9, 64, 641, 4099])
  func softmax(count: Int) {
    for scale: Float in [0.5, 10, 60] {
      let input = Self.randomValues(count, scale: scale, seed: UInt64(count) &* 31 &+ UInt64(scale))
      var fast = input
      var reference = input
      dq_softmax(&fast, Int64(count))
      dq_softmax_ref(&reference, Int64(count))
      let maxValue = Double(input.max()!)
      let exact = input.map { exp(Double($0) - maxValue) }
      let total = exact.reduce(0, +)
      for i in 0..<count {
        let p = exact[i] / total
        // Relative error: a few float ulps for exp, the sum and the division, plus the rounding
        // of x - max in float, an absolute error of |x - max|·2⁻²⁴ in the exponent.
        let bound = p * (4e-7 + (maxValue - Double(input[i])) * 1.2e-7) + 1e-30
        #expect(abs(Double(fast[i]) - p) <= bound, "fast \(i): \(fast[i]) vs \(p)")
        #expect(abs(Double(reference[i]) - p) <= bound, "ref \(i)")
      }
    }
  }

  @Test("SwiGLU matches float64 within float rounding")
  func swiglu() {
    let count = 1543  // not a multiple of 8: the tail takes the scalar path
    let gate = Self.randomValues(count, scale: 30, seed: 1) + [-100, 100, 0, -87.5, 88.9]
    let up = Self.randomValues(gate.count, scale: 3, seed: 2)
    var fast = [Float](repeating: .nan, count: gate.count)
    var reference = fast
    dq_swiglu(&fast, gate, up, Int64(gate.count))
    dq_swiglu_ref(&reference, gate, up, Int64(gate.count))
    for i in 0..<gate.count {
      let g = Double(gate[i])
      let exact = g / (1 + exp(-g)) * Double(up[i])
      #expect(abs(Double(fast[i]) - exact) <= 1e-6 * abs(exact) + 1e-30, "fast \(i): g \(g)")
      #expect(abs(Double(reference[i]) - exact) <= 1e-6 * abs(exact) + 1e-30, "ref \(i)")
    }
  }
}
