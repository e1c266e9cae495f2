// The bf16 products of training's --compute-type bf16 (gemm_bf16.c). The packers against
// dq_fp32_to_bf16 element by element; the scalar twin against a plain double-precision loop
// over the unpacked matrices (so a layout misunderstanding shared by twin and kernel shows);
// the AVX512-BF16 kernel bit for bit against the twin (it sums in the twin's order, and the
// products of two bf16 are exact in fp32), over row and column tails and both B layouts.
import CKernels
import Testing

@Suite struct GemmBF16Tests {
  static func bf16(_ x: Float) -> Float { dq_bf16_to_fp32(dq_fp32_to_bf16(x)) }

  /// A (rows x 2·pairs) packed, and the same values rounded to bf16, unpacked.
  static func packed(_ a: [Float], rows: Int, pairs: Int) -> [UInt32] {
    var out = [UInt32](repeating: 0xDEAD_BEEF, count: pairs * Int(dq_bf16_padded_rows(Int64(rows))))
    dq_bf16_pack_a(&out, a, Int64(2 * pairs), Int64(rows), Int64(pairs))
    return out
  }

  @Test func packersRoundEveryElementToNearestEven() {
    var rng = SeededRNG(seed: 11)
    for (rows, pairs) in [(1, 1), (31, 17), (32, 16), (45, 40), (70, 288)] {
      let a = (0..<rows * 2 * pairs).map { _ in rng.gaussian() * 3 }
      let p = Self.packed(a, rows: rows, pairs: pairs)
      let panel = Int(DQ_GEMM_BF16_ROWS)
      for i in 0..<Int(dq_bf16_padded_rows(Int64(rows))) {
        for q in 0..<pairs {
          let got = p[((i / panel) * pairs + q) * panel + i % panel]
          let want: UInt32 = i < rows
            ? UInt32(dq_fp32_to_bf16(a[i * 2 * pairs + 2 * q]))
              | UInt32(dq_fp32_to_bf16(a[i * 2 * pairs + 2 * q + 1])) << 16
            : 0
          #expect(got == want, "rows \(rows) pairs \(pairs) i \(i) q \(q)")
        }
      }
    }
    for n in [1, 15, 16, 31, 32, 33, 576] {
      let x = (0..<2 * n).map { _ in rng.gaussian() }
      var converted = [UInt16](repeating: 0, count: n)
      dq_bf16_convert(&converted, x, Int64(n))
      #expect(converted == x[0..<n].map { dq_fp32_to_bf16($0) }, "convert n \(n)")
      var interleaved = [UInt16](repeating: 0, count: 2 * n)
      dq_bf16_interleave_rows(&interleaved, x, Array(x[n...]), Int64(n))
      let want = (0..<2 * n).map { dq_fp32_to_bf16(x[($0 % 2) * n + $0 / 2]) }
      #expect(interleaved == want, "interleave n \(n)")
    }
  }

  /// C = A·B for A (rows x k), B (k x columns), through both B layouts the trainer uses:
  /// weight rows along k (forward) and row pairs interleaved (backward).
  @Test(arguments: [false, true]) func kernelEqualsTwinAndTwinEqualsTheProduct(interleaved: Bool) {
    var rng = SeededRNG(seed: interleaved ? 21 : 22)
    // Every column tail (1...11 past a multiple of 12), rows under, at and past a panel, and
    // (k = 2048) rows over several of the kernel's L2 row blocks, the last one partial.
    let shapes = [(1, 1, 2), (32, 12, 576), (45, 100, 64), (256, 37, 512), (200, 13, 2048)]
      + (1...11).map { (33, 12 + $0, 34) }
    for (rows, columns, k) in shapes {
      let a = (0..<rows * k).map { _ in rng.gaussian() }
      let bMatrix = (0..<k * columns).map { _ in rng.gaussian() * 0.1 }  // k x columns
      let pairs = k / 2
      let ap = Self.packed(a, rows: rows, pairs: pairs)
      var b16 = [UInt16](repeating: 0, count: k * columns)
      let ldbPair: Int, ldbColumn: Int
      if interleaved {
        for p in 0..<pairs {
          let row0 = Array(bMatrix[(2 * p * columns)..<((2 * p + 1) * columns)])
          let row1 = Array(bMatrix[((2 * p + 1) * columns)..<((2 * p + 2) * columns)])
          b16.withUnsafeMutableBufferPointer {
            dq_bf16_interleave_rows($0.baseAddress! + 2 * p * columns, row0, row1, Int64(columns))
          }
        }
        (ldbPair, ldbColumn) = (columns, 1)
      } else {
        let transposed = (0..<columns * k).map { bMatrix[($0 % k) * columns + $0 / k] }
        dq_bf16_convert(&b16, transposed, Int64(k * columns))
        (ldbPair, ldbColumn) = (1, pairs)
      }
      let b = b16.withUnsafeBytes { Array($0.bindMemory(to: UInt32.self)) }
      let start = (0..<rows * columns).map { _ in rng.gaussian() }
      for accumulate in [false, true] {
        var fast = start, ref = start
        dq_gemm_bf16(&fast, Int64(columns), ap, Int64(rows), b, Int64(ldbPair), Int64(ldbColumn),
                     Int64(columns), Int64(pairs), accumulate)
        dq_gemm_bf16_ref(&ref, Int64(columns), ap, Int64(rows), b, Int64(ldbPair), Int64(ldbColumn),
                         Int64(columns), Int64(pairs), accumulate)
        let differing = zip(fast, ref).filter { $0 != $1 }.count
        #expect(differing == 0, "\(rows)x\(columns)x\(k) accumulate \(accumulate): \(differing) differ")
        for i in 0..<rows {
          for j in 0..<columns {
            var exact = accumulate ? Double(start[i * columns + j]) : 0
            var magnitude = abs(exact)
            for t in 0..<k {
              let term = Double(Self.bf16(a[i * k + t])) * Double(Self.bf16(bMatrix[t * columns + j]))
              exact += term
              magnitude += abs(term)
            }
            #expect(abs(Double(ref[i * columns + j]) - exact) <= Double(k + 2) * 0x1p-24 * magnitude,
                    "\(rows)x\(columns)x\(k) [\(i)][\(j)]: \(ref[i * columns + j]) vs \(exact)")
          }
        }
      }
    }
  }
}
