// dq_matmul_rows (the batched product: prefill, training's frozen products, batched decode)
// against the one-token kernels, for every weight type and on every tile path the CPU has
// (AVX-512 and AVX2 tiles, scalar references): over a sub-range of rows with padded row and
// activation strides, an output stride wider than the rows, and token counts that leave tails
// after the 4-token tiles. Where the tiles keep each token's arithmetic (dq_matmul_rows_exact),
// every result must carry exactly the bits of the AVX2 one-row dot on the same path (the AVX-512 decode dots of
// quants_avx512.c sum in another order and are checked by DecodeKernelTests); every result, exact or
// not (the AVX-512 VNNI k-quant tiles sum in fp32 vectors), lies within the summation tolerance
// of the scalar reference.
import CKernels
import Foundation
import Testing

@Suite struct TileTests {
  enum Path: String, CaseIterable { case widest, avx2, scalar }

  @Test(arguments: weightTypeNames, Path.allCases) func matmulRowsGivesTheBitsOfPerTokenDots(name: String, path: Path) {
    let (type, block) = weightType(name)
    var rng = SeededRNG(seed: 5000 + UInt64(type))
    for n in block == 256 ? [256, 768] : block == 1 ? [33, 96] : [32, 96, 576] {
      for tokens in [1, 4, 7, 9, 13, 16] {
        check(name, path: path, n: n, rows: 9, range: 2..<9, tokens: tokens, rng: &rng)
      }
    }
  }

  /// Ranges of many rows: Q4_0/Q5_0/Q8_0 on AVX-512 VNNI repack 16 rows at a time (from 8
  /// tokens on), the rest of the range and the other types go through the tiles in row blocks.
  @Test(arguments: weightTypeNames) func matmulRowsOverRowBlocks(name: String) {
    let (type, block) = weightType(name)
    var rng = SeededRNG(seed: 7000 + UInt64(type))
    let n = block == 256 ? 512 : block == 1 ? 64 : 2048
    for tokens in [8, 11, 19] {
      check(name, path: .widest, n: n, rows: 41, range: 3..<40, tokens: tokens, rng: &rng)
    }
  }

  func check(_ name: String, path: Path, n: Int, rows: Int, range: Range<Int>, tokens: Int, rng: inout SeededRNG) {
    let (type, block) = weightType(name)
    let dotType = dq_vec_dot_type(type)
    let rs = Quant.rowSize(type, n)
    let stride = rs + 8  // rows need not be packed
    var w = [UInt8](repeating: 0xEE, count: stride * rows)
    var rowBytes: [[UInt8]] = []
    for r in 0..<rows {
      let q = Quant.randomRow(type, n: n, rng: &rng)
      rowBytes.append(q)
      w.replaceSubrange((r * stride)..<(r * stride + rs), with: q)
    }
    let xs = Quant.rowSize(dotType, n) + 16
    var x = [UInt8](repeating: 0xAB, count: xs * tokens)
    var xRows: [[UInt8]] = []
    for t in 0..<tokens {
      let q = Quant.activation(for: type, (0..<n).map { _ in rng.gaussian() * (t == 2 ? 0 : 1) })
      xRows.append(q)
      x.replaceSubrange((t * xs)..<(t * xs + q.count), with: q)
    }
    let (begin, end) = (range.lowerBound, range.upperBound)
    let ldy = end - begin + 3
    var y = [Float](repeating: .nan, count: ldy * tokens)
    dispatchPathLock.lock()
    defer { dispatchPathLock.unlock() }
    dq_force_scalar(path == .scalar)
    dq_force_avx2_tiles(path == .avx2)
    dq_force_avx2_dots(true)
    defer {
      dq_force_scalar(false)
      dq_force_avx2_tiles(false)
      dq_force_avx2_dots(false)
    }
    let exact = dq_matmul_rows_exact(type)
    w.withUnsafeBytes { wp in
      x.withUnsafeBytes { xp in
        y.withUnsafeMutableBufferPointer { yp in
          dq_matmul_rows(type, Int64(n), wp.baseAddress!, stride, xp.baseAddress!, xs, Int64(tokens),
                         yp.baseAddress!, Int64(ldy), Int64(begin), Int64(end))
        }
      }
    }
    for t in 0..<tokens {
      for c in (end - begin)..<ldy { #expect(y[t * ldy + c].isNaN, "\(name) wrote into the output gap") }
      for r in begin..<end {
        let got = y[t * ldy + r - begin]
        let one = Quant.dot(type, n: n, rowBytes[r], xRows[t], ref: false)
        if exact { #expect(got.bitPattern == one.bitPattern, "\(name) \(path) n=\(n) tokens=\(tokens) row \(r) token \(t): \(got) vs \(one)") }
        let ref = Quant.dot(type, n: n, rowBytes[r], xRows[t], ref: true)
        let s = magnitude(Quant.dequantize(type, rowBytes[r], n: n), Quant.dequantize(dotType, xRows[t], n: n))
        #expect(abs(Double(got) - Double(ref)) <= summationTolerance(n: n, block: block, s), "\(name) \(path) n=\(n) tokens=\(tokens) row \(r) token \(t): \(got) vs \(ref)")
      }
    }
  }
}
