// The Q4_0 decode shadow (DQ_TYPE_Q4_0_X16, q4_0_x16.c): its packing is lossless, and its kernel
// agrees with the scalar Q4_0 reference on the plain rows, giving a token the same bits through
// every decode walk (the dot, the matvec at any row offset, steps of up to 8 tokens), and past
// that (prefill) the bits the packed kernels give the plain rows.
// Row lengths cover whole runs of 16 blocks and short last runs (960 columns: one run of 16 and
// one of 14). On a machine without AVX-512 VNNI the shadow's fallback is checked the same way.
import CKernels
import Testing

extension DecodeKernelTests {
  static let shadowLengths = [32, 96, 480, 512, 544, 960, 2048, 2560]

  @Test func q4_0ShadowPackingIsLossless() {
    var rng = SeededRNG(seed: 8100)
    let type = UInt32(DQ_TYPE_Q4_0)
    for n in Self.shadowLengths {
      let rows = 3
      let plain = (0..<rows).flatMap { _ in Quant.randomRow(type, n: n, rng: &rng) }
      var shadow = [UInt8](repeating: 0, count: plain.count)
      var back = [UInt8](repeating: 0, count: plain.count)
      plain.withUnsafeBytes { p in
        shadow.withUnsafeMutableBytes { s in dq_q4_0_x16_pack_rows(p.baseAddress!, s.baseAddress!, Int64(n), Int64(rows)) }
      }
      shadow.withUnsafeBytes { s in
        back.withUnsafeMutableBytes { b in dq_q4_0_x16_unpack_rows(s.baseAddress!, b.baseAddress!, Int64(n), Int64(rows)) }
      }
      #expect(back == plain, "n=\(n)")
      if n >= 64 {
        #expect(shadow != plain, "n=\(n): packing moved nothing")
        // the first run's scales lead the row: block 1's scale right after block 0's
        #expect(shadow[2] == plain[18] && shadow[3] == plain[19], "n=\(n)")
      }
    }
  }

  @Test func q4_0ShadowMatchesReferenceWithOneTokensBitsOnEveryWalk() {
    let type = UInt32(DQ_TYPE_Q4_0), shadowType = UInt32(DQ_TYPE_Q4_0_X16)
    #expect(dq_vec_dot_type(shadowType) == UInt32(DQ_TYPE_Q8_0))
    var rng = SeededRNG(seed: 8200)
    for n in Self.shadowLengths {
      let rs = Quant.rowSize(type, n)
      let stride = rs + 8  // rows need not be packed
      let rows = 21
      let plainRows = (0..<rows).map { _ in Quant.randomRow(type, n: n, rng: &rng) }
      var w = [UInt8](repeating: 0xEE, count: stride * rows)
      for r in 0..<rows {
        var s = [UInt8](repeating: 0, count: rs)
        plainRows[r].withUnsafeBytes { p in
          s.withUnsafeMutableBytes { d in dq_q4_0_x16_pack_rows(p.baseAddress!, d.baseAddress!, Int64(n), 1) }
        }
        w.replaceSubrange((r * stride)..<(r * stride + rs), with: s)
      }
      let shadowRows = (0..<rows).map { Array(w[($0 * stride)..<($0 * stride + rs)]) }
      var plainW = [UInt8](repeating: 0xEE, count: stride * rows)
      for r in 0..<rows { plainW.replaceSubrange((r * stride)..<(r * stride + rs), with: plainRows[r]) }
      let tokenCount = 11  // one chunk of 8 and a shorter one
      let xs = Quant.rowSize(UInt32(DQ_TYPE_Q8_0), n) + 16
      let xRows = (0..<tokenCount).map { t in
        Quant.activation(for: type, (0..<n).map { _ in rng.gaussian() * (t == 2 ? 0 : Float(t + 1)) })
      }
      var x = [UInt8](repeating: 0xAB, count: xs * tokenCount)
      for t in 0..<tokenCount { x.replaceSubrange((t * xs)..<(t * xs + xRows[t].count), with: xRows[t]) }
      // the dot: against the reference on the plain rows
      var one = [[Float]](repeating: [], count: tokenCount)
      for t in 0..<tokenCount {
        one[t] = (0..<rows).map { Quant.dot(shadowType, n: n, shadowRows[$0], xRows[t], ref: false) }
        for r in 0..<rows {
          let ref = Quant.dot(type, n: n, plainRows[r], xRows[t], ref: true)
          let s = magnitude(Quant.dequantize(type, plainRows[r], n: n), Quant.dequantize(UInt32(DQ_TYPE_Q8_0), xRows[t], n: n))
          #expect(abs(Double(one[t][r]) - Double(ref)) <= summationTolerance(n: n, block: 32, s),
                  "n=\(n) row \(r) token \(t): \(one[t][r]) vs \(ref)")
        }
      }
      for range in [0..<1, 1..<6, 3..<rows] {
        // the matvec
        for t in [0, 2, 5] {
          var y = [Float](repeating: .nan, count: range.count + 1)
          w.withUnsafeBytes { wp in
            xRows[t].withUnsafeBytes { xp in
              y.withUnsafeMutableBufferPointer { yp in
                dq_matvec_rows(shadowType, Int64(n), wp.baseAddress!, stride, xp.baseAddress!, yp.baseAddress!,
                               Int64(range.lowerBound), Int64(range.upperBound))
              }
            }
          }
          #expect(y[range.count].isNaN, "n=\(n): the matvec wrote past row_end")
          for r in range {
            #expect(y[r - range.lowerBound].bitPattern == one[t][r].bitPattern, "n=\(n) matvec row \(r) token \(t)")
          }
        }
        // the batched products, every token count
        for tokens in 1...tokenCount {
          let ldy = range.count + 3
          var y = [Float](repeating: .nan, count: ldy * tokens)
          w.withUnsafeBytes { wp in
            x.withUnsafeBytes { xp in
              y.withUnsafeMutableBufferPointer { yp in
                dq_matmul_rows(shadowType, Int64(n), wp.baseAddress!, stride, xp.baseAddress!, xs, Int64(tokens),
                               yp.baseAddress!, Int64(ldy), Int64(range.lowerBound), Int64(range.upperBound))
              }
            }
          }
          // past a decode step (prefill) the packed kernels take whole groups of 16 rows, with
          // the bits they give the plain rows; the rows left over keep the one-token bits
          let decodeStep = tokens <= Int(dq_matvec_tokens_max(shadowType))
          var plainY = [Float](repeating: .nan, count: ldy * tokens)
          if !decodeStep {
            plainW.withUnsafeBytes { wp in
              x.withUnsafeBytes { xp in
                plainY.withUnsafeMutableBufferPointer { yp in
                  dq_matmul_rows(type, Int64(n), wp.baseAddress!, stride, xp.baseAddress!, xs, Int64(tokens),
                                 yp.baseAddress!, Int64(ldy), Int64(range.lowerBound), Int64(range.upperBound))
                }
              }
            }
          }
          let packedRows = decodeStep || !dq_q4_0_x16_available() ? 0 : range.count / 16 * 16
          for t in 0..<tokens {
            for c in range.count..<ldy { #expect(y[t * ldy + c].isNaN, "n=\(n): wrote into the output gap") }
            for r in range {
              let got = y[t * ldy + r - range.lowerBound]
              let want = r - range.lowerBound < packedRows ? plainY[t * ldy + r - range.lowerBound] : one[t][r]
              #expect(got.bitPattern == want.bitPattern,
                      "n=\(n) tokens=\(tokens) row \(r) token \(t): \(got) vs \(want)")
            }
          }
        }
      }
    }
  }
}
