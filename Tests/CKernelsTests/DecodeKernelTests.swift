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
