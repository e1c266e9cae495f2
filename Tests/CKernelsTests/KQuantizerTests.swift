// The K-quant quantizers (Q4_K, Q5_K, Q6_K) have no independent byte reference (the gguf
// package cannot quantize them), so they are checked through what can be checked independently:
// the dequantizers they are read back with are gguf-verified (FixtureTests), and the
// reconstruction must beat the simpler min/max formats of similar size on the same data. Each
// comparison is against another format's quantizer, not against numbers from this one.
import CKernels
import Testing

func relativeRMSE(_ type: UInt32, _ x: [Float]) -> Double {
  let back = Quant.dequantize(type, Quant.quantize(type, x), n: x.count)
  let err = zip(back, x).reduce(0.0) { $0 + Double($1.0 - $1.1) * Double($1.0 - $1.1) }
  let ref = x.reduce(0.0) { $0 + Double($1) * Double($1) }
  return (err / ref).squareRoot()
}

@Suite struct KQuantizerTests {
  // (K-quant, a format it must beat, an absolute ceiling for Gaussian data). The ceilings are
  // about 1.2x what ggml's K-quants reach on Gaussian data (about 0.07, 0.036 and 0.017 relative
  // RMSE); a packing or scale mistake gives errors of order 1.
  static let cases: [(String, String, Double)] = [("Q4_K", "Q4_1", 0.085), ("Q5_K", "Q5_1", 0.045), ("Q6_K", "Q5_1", 0.021)]

  @Test(arguments: [0, 1, 2]) func beatsMinMaxFormats(caseIndex: Int) {
    let (kName, baseName, ceiling) = Self.cases[caseIndex]
    let k = weightType(kName).type, base = weightType(baseName).type
    var rng = SeededRNG(seed: 900 + UInt64(caseIndex))
    for shift: Float in [0, 0.5, -2] {
      let x = (0..<4096).map { _ in rng.gaussian() * 0.05 + shift * 0.05 }
      let ek = relativeRMSE(k, x), eb = relativeRMSE(base, x)
      #expect(ek < ceiling, "\(kName) shift \(shift): rmse \(ek)")
      #expect(ek < eb, "\(kName) \(ek) should beat \(baseName) \(eb) (shift \(shift))")
    }
  }

  @Test(arguments: ["Q4_K", "Q5_K", "Q6_K"]) func flatRows(name: String) {
    let type = weightType(name).type
    let zeros = [Float](repeating: 0, count: 512)
    #expect(Quant.dequantize(type, Quant.quantize(type, zeros), n: 512).allSatisfy { $0 == 0 })
    for c: Float in [0.75, -0.5, 3e-3] {
      let back = Quant.dequantize(type, Quant.quantize(type, [Float](repeating: c, count: 256)), n: 256)
      // value = d * sc * q with d fp16: a few fp16 ulps of c, but for small c the super-block
      // scale d (about c / 945 for Q4_K) is an fp16 subnormal, whose absolute error of up to
      // 2^-25 is multiplied by sc * q <= 63 * 63
      let tol: Float = abs(c) * 0x1p-8 + Float(63 * 63) * 0x1p-25
      for v in back { #expect(abs(v - c) <= tol, "\(name) constant \(c): \(v)") }
    }
  }

  /// Mixed magnitudes inside one super-block: sub-blocks with tiny values next to large ones
  /// must still come back with bounded error (the sub-scales are relative to the largest).
  @Test(arguments: ["Q4_K", "Q5_K", "Q6_K"]) func mixedMagnitudes(name: String) {
    let type = weightType(name).type
    var rng = SeededRNG(seed: 31)
    var x = (0..<256).map { _ in rng.gaussian() }
    for i in 0..<64 { x[i] *= 1e-3 }
    let back = Quant.dequantize(type, Quant.quantize(type, x), n: 256)
    let amax = x.map { abs($0) }.max()!
    for i in 0..<256 { #expect(abs(back[i] - x[i]) <= amax * 0.15, "\(name) [\(i)]: \(back[i]) vs \(x[i])") }
    #expect(back.allSatisfy { $0.isFinite })
  }
}
