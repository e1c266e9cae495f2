// The AVX-512 decode kernels (quants_avx512.c) against the scalar references, on every row
// count around their four-row passes (and one row a pass, as when the weights stream from memory) and on block counts that leave the four-block steps a
// tail of pairs (odd counts: the zero-padded last pair), and
// the AVX2 dots, which the dispatcher no longer picks on an AVX-512 machine, against the
// references too. Tolerances as in TwinTests (same exact integer sums per block).
import CKernels
import Foundation
import Testing

@Suite struct DecodeKernelTests {
  /// Types with an AVX-512 matvec kernel.
  static let avx512Types = ["Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q4_K", "Q5_K", "Q6_K"]

  @Test(arguments: avx512Types) func matvecMatchesReferenceOnEveryRowCount(name: String) {
    let (type, block) = weightType(name)
    var rng = SeededRNG(seed: 6000 + UInt64(type))
    for n in block == 256 ? [256, 768, 2048] : [32, 96, 160, 576, 640, 2048] {
      let rs = Quant.rowSize(type, n)
      let maxRows = 9
      let rowBytes = (0..<maxRows).map { _ in Quant.randomRow(type, n: n, rng: &rng) }
      let w = rowBytes.flatMap { $0 }
      let x = Quant.activation(for: type, (0..<n).map { _ in rng.gaussian() })
      // four rows a pass (weights in cache) and one (weights streaming from memory): same bits
      for (rows, streaming) in (1...maxRows).flatMap({ r in [(r, false), (r, true)] }) {
        dq_set_weights_stream_from_memory(streaming)
        defer { dq_set_weights_stream_from_memory(false) }
        var y = [Float](repeating: .nan, count: rows + 1)
        w.withUnsafeBytes { wp in
          x.withUnsafeBytes { xp in
            y.withUnsafeMutableBufferPointer { yp in
              dq_matvec_rows(type, Int64(n), wp.baseAddress!, rs, xp.baseAddress!, yp.baseAddress!, 0, Int64(rows))
            }
          }
        }
        #expect(y[rows].isNaN, "\(name) wrote past row_end")
        for r in 0..<rows {
          let ref = Quant.dot(type, n: n, rowBytes[r], x, ref: true)
          let s = magnitude(Quant.dequantize(type, rowBytes[r], n: n), Quant.dequantize(dq_vec_dot_type(type), x, n: n))
          let tol = summationTolerance(n: n, block: block, s)
          #expect(abs(Double(y[r]) - Double(ref)) <= tol, "\(name) n=\(n) rows=\(rows) r=\(r) streaming=\(streaming): \(y[r]) vs \(ref)")
          // a row's arithmetic does not depend on the rows sharing its pass
          #expect(y[r].bitPattern == Quant.dot(type, n: n, rowBytes[r], x, ref: false).bitPattern, "\(name) n=\(n) rows=\(rows) r=\(r) streaming=\(streaming)")
        }
      }
    }
  }

  /// A batched decode step (up to dq_matvec_tokens_max(type) tokens through dq_matmul_rows) takes
  /// the matvec kernels with every token against each row: each (row, token) must carry exactly
  /// the one-token dot's bits, whatever the token count and wherever the row range starts, and
  /// lie within the summation tolerance of the scalar reference. Past the threshold the tiles
  /// take over (TileTests); here only the tolerance is checked for them.
  @Test(arguments: avx512Types) func batchedDecodeGivesEachTokenItsOneTokenBits(name: String) {
    let (type, block) = weightType(name)
    let dotType = dq_vec_dot_type(type)
    var rng = SeededRNG(seed: 6500 + UInt64(type))
    // Only where the AVX-512 kernels run, or the tiles keep the one-row dot's order, must the bits match.
    let exactPath = String(cString: dq_dot_path()) == "avx512" || dq_matmul_rows_exact(type)
    let maxTokens = Int(dq_matvec_tokens_max(type))
    for n in block == 256 ? [256, 2048] : [32, 160, 2048] {
      let rs = Quant.rowSize(type, n)
      let stride = rs + 8  // rows need not be packed
      let rows = 23
      let rowBytes = (0..<rows).map { _ in Quant.randomRow(type, n: n, rng: &rng) }
      var w = [UInt8](repeating: 0xEE, count: stride * rows)
      for r in 0..<rows { w.replaceSubrange((r * stride)..<(r * stride + rs), with: rowBytes[r]) }
      let tokenCount = maxTokens + 2
      let xs = Quant.rowSize(dotType, n) + 16
      let xRows = (0..<tokenCount).map { t in
        Quant.activation(for: type, (0..<n).map { _ in rng.gaussian() * (t == 2 ? 0 : 1) })
      }
      var x = [UInt8](repeating: 0xAB, count: xs * tokenCount)
      for t in 0..<tokenCount { x.replaceSubrange((t * xs)..<(t * xs + xRows[t].count), with: xRows[t]) }
      for tokens in 1...tokenCount {
        for range in [0..<1, 1..<6, 3..<rows] {
          let ldy = range.count + 3
          var y = [Float](repeating: .nan, count: ldy * tokens)
          w.withUnsafeBytes { wp in
            x.withUnsafeBytes { xp in
              y.withUnsafeMutableBufferPointer { yp in
                dq_matmul_rows(type, Int64(n), wp.baseAddress!, stride, xp.baseAddress!, xs, Int64(tokens),
                               yp.baseAddress!, Int64(ldy), Int64(range.lowerBound), Int64(range.upperBound))
              }
            }
          }
          for t in 0..<tokens {
            for c in range.count..<ldy { #expect(y[t * ldy + c].isNaN, "\(name) wrote into the output gap") }
            for r in range {
              let got = y[t * ldy + r - range.lowerBound]
              if exactPath && tokens <= maxTokens {
                let one = Quant.dot(type, n: n, rowBytes[r], xRows[t], ref: false)
                #expect(got.bitPattern == one.bitPattern, "\(name) n=\(n) tokens=\(tokens) row \(r) token \(t): \(got) vs \(one)")
              }
              let ref = Quant.dot(type, n: n, rowBytes[r], xRows[t], ref: true)
              let s = magnitude(Quant.dequantize(type, rowBytes[r], n: n), Quant.dequantize(dotType, xRows[t], n: n))
              #expect(abs(Double(got) - Double(ref)) <= summationTolerance(n: n, block: block, s),
                      "\(name) n=\(n) tokens=\(tokens) row \(r) token \(t): \(got) vs \(ref)")
            }
          }
        }
      }
    }
  }

  /// The AVX2 dots stay correct (they run on AVX2-only machines and for the other types).
  @Test(arguments: weightTypeNames) func avx2DotsAgreeWithReferences(name: String) {
    let (type, block) = weightType(name)
    dq_force_avx2_dots(true)
    defer { dq_force_avx2_dots(false) }
    var rng = SeededRNG(seed: 7000 + UInt64(type))
    for n in TwinTests.lengths(block: block) {
      let w = Quant.randomRow(type, n: n, rng: &rng)
      let x = Quant.activation(for: type, (0..<n).map { _ in rng.gaussian() })
      let ref = Quant.dot(type, n: n, w, x, ref: true)
      let fast = Quant.dot(type, n: n, w, x, ref: false)
      let s = magnitude(Quant.dequantize(type, w, n: n), Quant.dequantize(dq_vec_dot_type(type), x, n: n))
      #expect(abs(Double(ref) - Double(fast)) <= summationTolerance(n: n, block: block, s), "\(name) n=\(n)")
    }
  }

  #if arch(x86_64) && os(Linux)
    /// The AVX-512 kernels are taken exactly when the kernel reports the features they need.
    @Test func avx512PathIsTakenWhenTheCPUHasIt() throws {
      dispatchPathLock.lock()
      defer { dispatchPathLock.unlock() }
      let cpuinfo = try String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)
      let flagsLine = try #require(cpuinfo.split(separator: "\n").first { $0.hasPrefix("flags") })
      let flags = Set(flagsLine.split(separator: " ").map(String.init))
      // A scalar-only build (DQ_SCALAR_ONLY, scripts/test-scalar.sh) takes no SIMD path whatever the CPU has.
      let simdBuilt = dq_simd_compiled()
      let has = simdBuilt && ["avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni"].allSatisfy(flags.contains)
      #expect(String(cString: dq_dot_path()) == (has ? "avx512" : String(cString: dq_simd_path())))
      dq_force_avx2_dots(true)
      #expect(String(cString: dq_dot_path()) == String(cString: dq_simd_path()))
      dq_force_avx2_dots(false)
    }
  #endif
}
