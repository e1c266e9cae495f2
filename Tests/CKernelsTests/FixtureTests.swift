// Our dequantizers and quantizers against the independent numpy implementation in the `gguf`
// package (fixtures made by Fixtures/make_quant_fixtures.py). Expectations are exact: gguf's
// dequantizers do the same fp32 operations as ggml (d*q + m, (d*sc)*q - dmin*m), and its
// quantizers for these types are documented bit-exact with ggml's reference rounding.
import CKernels
import Testing

@Suite struct FixtureTests {
  static let dequantized = ["F32", "F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q4_K", "Q5_K", "Q6_K"]
  static let quantized = ["F32", "F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q8_1", "Q8_K"]

  @Test(arguments: dequantized) func dequantizeMatchesGguf(name: String) throws {
    let e = try #require(try Fixtures.manifest()[name])
    let q = try Fixtures.bytes("\(name).q.bin")
    let want = try Fixtures.floats("\(name).deq.f32")
    let rs = Quant.rowSize(e.type, e.n)
    #expect(q.count == rs * e.rows)
    #expect(want.count == e.n * e.rows)
    for r in 0..<e.rows {
      let row = Array(q[(r * rs)..<((r + 1) * rs)])
      let wantRow = Array(want[(r * e.n)..<((r + 1) * e.n)])
      for ref in [true, false] {
        let got = Quant.dequantize(e.type, row, n: e.n, ref: ref)
        let bad = (0..<e.n).filter { got[$0].bitPattern != wantRow[$0].bitPattern }
        #expect(bad.isEmpty, "\(name) row \(r) ref=\(ref): \(bad.count) differ, first at \(bad.first ?? -1): \(bad.first.map { "\(got[$0]) vs \(wantRow[$0])" } ?? "")")
      }
    }
  }

  @Test(arguments: quantized) func quantizeMatchesGguf(name: String) throws {
    let e = try #require(try Fixtures.manifest()[name])
    let x = try Fixtures.floats("\(name).in.f32")
    let want = try Fixtures.bytes("\(name).q.bin")
    let rs = Quant.rowSize(e.type, e.n)
    for r in 0..<e.rows {
      let got = Quant.quantize(e.type, Array(x[(r * e.n)..<((r + 1) * e.n)]))
      let wantRow = Array(want[(r * rs)..<((r + 1) * rs)])
      let bad = (0..<rs).filter { got[$0] != wantRow[$0] }
      #expect(bad.isEmpty, "\(name) row \(r): \(bad.count) bytes differ, first at \(bad.first ?? -1)")
    }
  }

  /// Q8_1 / Q8_K have no gguf dequantizer: their value is d * q by definition; check that reading
  /// them back lands within half a step of the input (the quantizer's rounding).
  @Test(arguments: ["Q8_1", "Q8_K"]) func activationRoundTrip(name: String) throws {
    let e = try #require(try Fixtures.manifest()[name])
    let x = try Fixtures.floats("\(name).in.f32")
    let block = name == "Q8_K" ? 256 : 32
    for r in 0..<e.rows {
      let row = Array(x[(r * e.n)..<((r + 1) * e.n)])
      let back = Quant.dequantize(e.type, Quant.quantize(e.type, row), n: e.n)
      for b in 0..<(e.n / block) {
        let amax = row[(b * block)..<((b + 1) * block)].map(abs).max()!
        let step = amax / 127
        for i in (b * block)..<((b + 1) * block) {
          // half a step, plus fp16 rounding of d for Q8_1 (relative 2^-11 of the value)
          #expect(abs(back[i] - row[i]) <= step * 0.5001 + abs(row[i]) * 0x1p-10, "\(name) [\(i)]")
        }
      }
    }
  }
}
