// The vectorised softmax, cross-entropy and SwiGLU (polynomial exp) against their libm twins and float64.
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

  @Test("cross-entropy and its gradient match float64", arguments: [9, 4099, 49152])
  func crossEntropy(count: Int) {
    for scale: Float in [0.5, 10, 60] {
      let input = Self.randomValues(count, scale: scale, seed: UInt64(count) &+ UInt64(scale))
      let label = Int32(count / 3)
      let weight: Float = 0.25
      let maxValue = Double(input.max()!)
      let exact = input.map { exp(Double($0) - maxValue) }
      let total = exact.reduce(0, +)
      let exactLoss = maxValue + log(total) - Double(input[Int(label)])
      for gradient in [false, true] {
        var fast = input
        var reference = input
        let fastLoss = dq_cross_entropy(&fast, Int64(count), label, weight, gradient)
        let referenceLoss = dq_cross_entropy_ref(&reference, Int64(count), label, weight, gradient)
        // The loss is a difference of O(max) terms rounded through float logits: absolute error.
        let lossBound = 1e-6 * (abs(maxValue) + 1)
        #expect(abs(fastLoss - exactLoss) <= lossBound, "fast loss \(fastLoss) vs \(exactLoss)")
        #expect(abs(referenceLoss - exactLoss) <= lossBound, "ref loss")
        guard gradient else {
          #expect(fast == input, "without a gradient the logits stay")
          continue
        }
        for i in 0..<count {
          let p = exact[i] / total
          let expected = Double(weight) * (p - (i == Int(label) ? 1 : 0))
          // exp(x - lse) with lse rounded to float and x - lse rounded: |x| + |lse| ulps of error.
          let lse = maxValue + log(total)
          let bound = Double(weight) * (p * (1e-6 + (abs(lse) + abs(Double(input[i]))) * 1.2e-7) + 1e-7) + 1e-30
          #expect(abs(Double(fast[i]) - expected) <= bound, "fast \(i): \(fast[i]) vs \(expected)")
          #expect(abs(Double(reference[i]) - expected) <= bound, "ref \(i)")
        }
      }
    }
  }

  @Test("keep masks: the AVX2 fill draws exactly what the scalar one does", arguments: [0, 1, 5, 16, 17, 1003])
  func keepMask(count: Int) {
    for (threshold, keep) in [(UInt32(0), Float(1)), (3277, 1 / 0.95), (32768, 2), (65536, .infinity)] {
      var fastState: [UInt64] = [0x1234_5678_9ABC_DEF0, 7, 0xFFFF_0000_FFFF_0000, 99]
      var referenceState = fastState
      var fast = [Float](repeating: .nan, count: count)
      var reference = fast
      dq_xoshiro_keep_mask(&fastState, &fast, Int64(count), threshold, keep)
      dq_xoshiro_keep_mask_ref(&referenceState, &reference, Int64(count), threshold, keep)
      #expect(fast == reference, "threshold \(threshold)")
      #expect(fastState == referenceState, "threshold \(threshold)")
      #expect(fast.allSatisfy { $0 == 0 || $0 == keep })
      if threshold == 0 { #expect(fast.allSatisfy { $0 == keep }) }
      if threshold == 65536 { #expect(fast.allSatisfy { $0 == 0 }) }
      if threshold == 32768 && count > 1000 {
        let kept = fast.filter { $0 != 0 }.count
        #expect(abs(kept - count / 2) < count / 10, "\(kept) of \(count) kept at p = 0.5")
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

  @Test("GeGLU (tanh GELU) matches float64 within float rounding")
  func geglu() {
    let gate = Self.randomValues(1543, scale: 30, seed: 11) + [-100, 100, 0, -40, 40, -3.1, 1e-3]
    let up = Self.randomValues(gate.count, scale: 3, seed: 12)
    var fast = [Float](repeating: .nan, count: gate.count)
    var reference = fast
    dq_geglu(&fast, gate, up, Int64(gate.count))
    dq_geglu_ref(&reference, gate, up, Int64(gate.count))
    for i in 0..<gate.count {
      let g = Double(gate[i])
      let exact = 0.5 * g * (1 + tanh(0.7978845608028654 * g * (1 + 0.044715 * g * g))) * Double(up[i])
      // libm's tanhf (the scalar twin) is off by ~1e-7 absolute, which matters where 1 + tanh is small.
      let bound = 2e-6 * abs(exact) + 1e-7 * abs(g * Double(up[i]))
      #expect(abs(Double(fast[i]) - exact) <= bound, "fast \(i): g \(g)")
      #expect(abs(Double(reference[i]) - exact) <= bound, "ref \(i): g \(g)")
    }
  }

  @Test("SwiGLU backward matches float64 within float rounding")
  func swigluBackward() {
    let count = 1543
    let gate = Self.randomValues(count, scale: 30, seed: 3) + [-100, 100, 0, -87.5, 88.9, -1.2785]
    let up = Self.randomValues(gate.count, scale: 3, seed: 4)
    let dh = Self.randomValues(gate.count, scale: 2, seed: 5)
    let n = gate.count
    var fast = (gate: [Float](repeating: .nan, count: n), up: [Float](repeating: .nan, count: n))
    var reference = fast
    dq_swiglu_backward(&fast.gate, &fast.up, dh, gate, up, Int64(n))
    dq_swiglu_backward_ref(&reference.gate, &reference.up, dh, gate, up, Int64(n))
    for i in 0..<n {
      let (g, u, d) = (Double(gate[i]), Double(up[i]), Double(dh[i]))
      let sigma = 1 / (1 + exp(-g))
      let exactGate = d * u * sigma * (1 + g * (1 - sigma))
      let exactUp = d * g * sigma
      // Relative to the size of the terms: 1 + g(1 - σ) cancels near g ≈ -1.28.
      let gateScale = abs(d * u) * (sigma + abs(g) * sigma * (1 - sigma))
      for (ours, label) in [(fast, "fast"), (reference, "ref")] {
        #expect(abs(Double(ours.gate[i]) - exactGate) <= 2e-6 * gateScale + 1e-30, "\(label) d_gate \(i): g \(g)")
        #expect(abs(Double(ours.up[i]) - exactUp) <= 2e-6 * abs(exactUp) + 1e-30, "\(label) d_up \(i): g \(g)")
      }
    }
  }

  @Test("GeGLU backward matches float64 within float rounding")
  func gegluBackward() {
    let gate = Self.randomValues(1543, scale: 30, seed: 13) + [-100, 100, 0, -40, 40, -3.1, 1e-3, -0.75]
    let up = Self.randomValues(gate.count, scale: 3, seed: 14)
    let dh = Self.randomValues(gate.count, scale: 2, seed: 15)
    let n = gate.count
    var fast = (gate: [Float](repeating: .nan, count: n), up: [Float](repeating: .nan, count: n))
    var reference = fast
    dq_geglu_backward(&fast.gate, &fast.up, dh, gate, up, Int64(n))
    dq_geglu_backward_ref(&reference.gate, &reference.up, dh, gate, up, Int64(n))
    let (c, a) = (0.7978845608028654, 0.044715)
    for i in 0..<n {
      let (g, u, d) = (Double(gate[i]), Double(up[i]), Double(dh[i]))
      let t = tanh(c * g * (1 + a * g * g))
      let inner = c * (1 + 3 * a * g * g)
      let exactGate = d * u * (0.5 * (1 + t) + 0.5 * g * (1 - t * t) * inner)
      let exactUp = d * 0.5 * g * (1 + t)
      // Relative to the size of the terms (the two terms of gelu' cancel near g ≈ -0.75), plus
      // libm tanhf's ~1e-7 absolute error in t (the scalar twin), which matters where 1 + t is small.
      let gateScale = abs(d * u) * (0.5 * (1 + t) + 0.5 * abs(g) * (1 - t * t) * inner)
      let gateSlack = 1e-7 * abs(d * u) * (1 + abs(g) * inner)
      for (ours, label) in [(fast, "fast"), (reference, "ref")] {
        #expect(abs(Double(ours.gate[i]) - exactGate) <= 2e-6 * gateScale + gateSlack + 1e-30,
                "\(label) d_gate \(i): g \(g)")
        #expect(abs(Double(ours.up[i]) - exactUp) <= 2e-6 * abs(exactUp) + 1e-7 * abs(d * g) + 1e-30,
                "\(label) d_up \(i): g \(g)")
      }
    }
  }
}

struct LowRankKernelTests {
  @Test("dq_add_low_rank equals its reference", arguments: [
    (rows: 1, columns: 32, rank: 1), (rows: 7, columns: 576, rank: 8), (rows: 64, columns: 1536, rank: 32),
    (rows: 5, columns: 100, rank: 3),  // columns not a multiple of 32 or 64: the tails
  ])
  func matchesReference(rows: Int, columns: Int, rank: Int) {
    let ldw = columns + 3  // row strides wider than the rows
    let w = OpsKernelTests.randomValues(rows * ldw, scale: 2, seed: 3)
    let b = OpsKernelTests.randomValues(rows * rank, scale: 1, seed: 4)
    let a = OpsKernelTests.randomValues(rank * columns, scale: 1, seed: 5)
    var fast = w
    var reference = w
    dq_add_low_rank(&fast, Int64(ldw), b, Int64(rank), a, Int64(columns), Int64(rows), Int64(columns), Int64(rank), 0.75)
    dq_add_low_rank_ref(&reference, Int64(ldw), b, Int64(rank), a, Int64(columns), Int64(rows), Int64(columns), Int64(rank), 0.75)
    for i in 0..<rows {
      for j in 0..<ldw {
        // Same products, summed in the same k order; the fused multiply-adds round once
        // where the reference rounds twice: a few ulps of the sum's magnitude (<= rank).
        let bound: Float = j < columns ? 1e-6 * Float(rank) * 4 : 0
        #expect(abs(fast[i * ldw + j] - reference[i * ldw + j]) <= bound, "row \(i) column \(j)")
      }
    }
  }
}
