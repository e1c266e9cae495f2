// fp16 / bf16 <-> fp32: checked against numpy (fixture fp16.json) and against Swift's own
// Float16, an independent implementation (compiler-rt / F16C), over every half bit pattern.
import CKernels
import Foundation
import Testing

@Suite struct ConversionTests {
  struct FP16Fixture: Decodable {
    let f32_bits: [UInt32]
    let f16_bits: [UInt16]
    let bf16_bits: [UInt16]
    let nan_f32_bits: [UInt32]
    let nan_bf16_bits: [UInt16]
  }

  func fixture() throws -> FP16Fixture {
    try JSONDecoder().decode(FP16Fixture.self, from: Data(contentsOf: Fixtures.url("fp16.json")))
  }

  @Test func fp32ToFp16MatchesNumpy() throws {
    let fx = try fixture()
    #expect(fx.f32_bits.count > 250)
    for (i, bits) in fx.f32_bits.enumerated() {
      let f = Float(bitPattern: bits)
      let got = dq_fp32_to_fp16(f)
      #expect(got == fx.f16_bits[i], "fp16 of \(f) (0x\(String(bits, radix: 16)))")
    }
  }

  @Test func fp32ToBf16MatchesGguf() throws {
    let fx = try fixture()
    for (i, bits) in fx.f32_bits.enumerated() {
      let f = Float(bitPattern: bits)
      #expect(dq_fp32_to_bf16(f) == fx.bf16_bits[i], "bf16 of \(f)")
    }
    for (i, bits) in fx.nan_f32_bits.enumerated() {
      #expect(dq_fp32_to_bf16(Float(bitPattern: bits)) == fx.nan_bf16_bits[i], "NaN 0x\(String(bits, radix: 16))")
    }
  }

  #if arch(x86_64) || arch(arm64)
    @Test func everyHalfDecodesLikeSwiftFloat16() {
      for h in 0...UInt16.max {
        let want = Float(Float16(bitPattern: h))
        let got = dq_fp16_to_fp32(h)
        if want.isNaN {
          #expect(got.isNaN, "0x\(String(h, radix: 16))")
          #expect(got.sign == want.sign)
          // the payload survives the round trip and the NaN stays quiet-able
          #expect(dq_fp32_to_fp16(got) & 0x7C00 == 0x7C00)
          #expect(dq_fp32_to_fp16(got) & 0x3FF != 0)
        } else {
          #expect(got.bitPattern == want.bitPattern, "0x\(String(h, radix: 16))")
          #expect(dq_fp32_to_fp16(got) == h, "round trip 0x\(String(h, radix: 16))")
        }
      }
    }

    @Test func randomFloatsEncodeLikeSwiftFloat16() {
      var rng = SeededRNG(seed: 16)
      var checked = 0
      for _ in 0..<200_000 {
        // bias towards the half range, subnormals and the rounding boundaries
        let e = UInt32.random(in: 100...145, using: &rng)
        let bits = (UInt32.random(in: 0...1, using: &rng) << 31) | (e << 23)
          | UInt32.random(in: 0..<(1 << 23), using: &rng)
        let f = Float(bitPattern: bits)
        #expect(dq_fp32_to_fp16(f) == Float16(f).bitPattern, "\(f)")
        checked += 1
      }
      #expect(checked == 200_000)
    }
  #endif

  @Test func edgeCases() {
    #expect(dq_fp32_to_fp16(65504) == 0x7BFF)
    #expect(dq_fp32_to_fp16(65519.996) == 0x7BFF)
    #expect(dq_fp32_to_fp16(65520) == 0x7C00)  // ties to even: the even neighbour is 2^16 -> Inf
    #expect(dq_fp32_to_fp16(-.infinity) == 0xFC00)
    #expect(dq_fp32_to_fp16(-0.0) == 0x8000)
    #expect(dq_fp32_to_fp16(0x1p-24) == 0x0001)  // smallest subnormal
    #expect(dq_fp32_to_fp16(0x1p-25) == 0x0000)  // tie -> even (zero)
    #expect(dq_fp32_to_fp16(0x1.8p-24) == 0x0002)  // 1.5 ulp tie -> even (2)
    #expect(dq_fp32_to_fp16(0x1.ffcp-15) == 0x0400)  // rounds up into the smallest normal
    #expect(dq_fp32_to_fp16(1 + 0x1p-11) == 0x3C00)  // tie -> even (1.0)
    #expect(dq_fp32_to_fp16(1 + 0x3p-11) == 0x3C02)  // tie -> even (up)
    #expect(dq_fp16_to_fp32(0x0001) == 0x1p-24)
    #expect(dq_fp16_to_fp32(0x7C00) == .infinity)
    #expect(dq_fp16_to_fp32(0x7E00).isNaN)
    #expect(dq_fp32_to_fp16(.nan) & 0x7E00 == 0x7E00)  // quiet NaN

    #expect(dq_bf16_to_fp32(0x3F80) == 1)
    #expect(dq_bf16_to_fp32(0xFF80) == -.infinity)
    #expect(dq_fp32_to_bf16(1 + 0x1p-8) == 0x3F80)  // tie -> even
    #expect(dq_fp32_to_bf16(1 + 0x3p-8) == 0x3F82)
    #expect(dq_fp32_to_bf16(.greatestFiniteMagnitude) == 0x7F80)  // rounds to Inf
    #expect(dq_fp32_to_bf16(Float(bitPattern: 0x0000_8001)) == 0x0001)  // subnormal rounds up, kept
    #expect(dq_fp32_to_bf16(Float(bitPattern: 0x7F80_0001)) == 0x7FC0)  // signalling NaN -> quiet
  }
}
