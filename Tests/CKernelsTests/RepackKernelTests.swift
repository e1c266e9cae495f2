// The r16 layout (dq_r16_*: k-quant rows repacked 16 to a group, read by every product of a
// repacked matrix): each (row, token) lies within the summation tolerance of the scalar
// reference, and has the same bits whatever the number of tokens in the call and whichever
// group-aligned slice of rows is asked, which is what lets a batched decode step give each
// sequence the bits it gets alone. Row counts that leave a short last group are included.
import CKernels
import Testing

@Suite struct RepackKernelTests {
  static let types = ["Q4_K", "Q5_K", "Q6_K"]

  struct Packed {
    let type: UInt32
    let n: Int
    let rows: Int
    let groupBytes: Int
    let bytes: UnsafeMutableRawPointer
    let rowBytes: [[UInt8]]

    init(type: UInt32, n: Int, rows: Int, rng: inout SeededRNG) {
      self.type = type
      self.n = n
      self.rows = rows
      groupBytes = dq_r16_group_bytes(type, Int64(n))
      let groups = (rows + 15) / 16
      bytes = UnsafeMutableRawPointer.allocate(byteCount: groups * groupBytes, alignment: 64)
      let rs = Quant.rowSize(type, n)
      var rowBytes: [[UInt8]] = []
      for _ in 0..<rows { rowBytes.append(Quant.randomRow(type, n: n, rng: &rng)) }
      self.rowBytes = rowBytes
      let flat = rowBytes.flatMap { $0 }
      flat.withUnsafeBytes { w in
        for g in 0..<groups {
          dq_r16_pack_group(
            type, Int64(n), w.baseAddress! + g * 16 * rs, rs, Int64(min(16, rows - g * 16)), bytes + g * groupBytes)
        }
      }
    }

    /// Rows [begin, end) against the tokens x (x_stride apart), through dq_matmul_rows with the
    /// r16 type id, as the pool calls it.
    func products(_ x: [UInt8], xStride: Int, tokens: Int, begin: Int, end: Int) -> [Float] {
      var y = [Float](repeating: .nan, count: (end - begin) * tokens)
      x.withUnsafeBytes { xp in
        y.withUnsafeMutableBufferPointer { yp in
          dq_matmul_rows(
            type | UInt32(DQ_TYPE_R16), Int64(n), bytes, groupBytes / 16, xp.baseAddress!, xStride, Int64(tokens),
            yp.baseAddress!, Int64(end - begin), Int64(begin), Int64(end))
        }
      }
      return y
    }
  }

  @Test(arguments: types) func productsMatchTheReferenceWithTheSameBitsForAnyBatch(name: String) {
    let (type, _) = weightType(name)
    guard dq_r16_supported(type) else { return }  // no AVX-512 VNNI: nothing is repacked
    var rng = SeededRNG(seed: 9100 + UInt64(type))
    let n = 512
    let rows = 45  // two whole groups and a short one
    let packed = Packed(type: type, n: n, rows: rows, rng: &rng)
    defer { packed.bytes.deallocate() }
    let dotType = dq_vec_dot_type(type)
    let tokenCount = 37
    let xStride = Quant.rowSize(dotType, n) + 16
    var x = [UInt8](repeating: 0xAB, count: xStride * tokenCount)
    var xRows: [[UInt8]] = []
    for t in 0..<tokenCount {
      let q = Quant.activation(for: type, (0..<n).map { _ in rng.gaussian() * (t == 2 ? 0 : 1) })
      xRows.append(q)
      x.replaceSubrange((t * xStride)..<(t * xStride + q.count), with: q)
    }
    let all = packed.products(x, xStride: xStride, tokens: tokenCount, begin: 0, end: rows)
    for t in 0..<tokenCount {
      for r in 0..<rows {
        let got = all[t * rows + r]
        let ref = Quant.dot(type, n: n, packed.rowBytes[r], xRows[t], ref: true)
        let s = magnitude(Quant.dequantize(type, packed.rowBytes[r], n: n), Quant.dequantize(dotType, xRows[t], n: n))
        #expect(abs(Double(got) - Double(ref)) <= summationTolerance(n: n, block: 256, s), "\(name) row \(r) token \(t): \(got) vs \(ref)")
      }
    }
    // Fewer tokens, from any token on, and group-aligned slices of rows: the same bits.
    for tokens in [1, 2, 3, 5, 8, 9, 16] {
      for first in [0, 4, tokenCount - tokens] {
        let slice = Array(x[(first * xStride)..<((first + tokens) * xStride)])
        for (begin, end) in [(0, rows), (16, rows), (16, 32), (32, 45), (0, 7)] {
          let y = packed.products(slice, xStride: xStride, tokens: tokens, begin: begin, end: end)
          for t in 0..<tokens {
            for r in begin..<end {
              let got = y[t * (end - begin) + r - begin]
              let want = all[(first + t) * rows + r]
              #expect(
                got.bitPattern == want.bitPattern,
                "\(name) tokens \(tokens) from \(first), rows \(begin)..<\(end): row \(r) token \(first + t): \(got) vs \(want)")
            }
          }
        }
      }
    }
    // One token through the one-token entry (decode), too.
    for t in [0, 5] {
      var y = [Float](repeating: .nan, count: rows)
      let one = Array(x[(t * xStride)..<((t + 1) * xStride)])
      one.withUnsafeBytes { xp in
        y.withUnsafeMutableBufferPointer { yp in
          dq_matvec_rows(
            type | UInt32(DQ_TYPE_R16), Int64(n), packed.bytes, packed.groupBytes / 16, xp.baseAddress!, yp.baseAddress!,
            0, Int64(rows))
        }
      }
      for r in 0..<rows { #expect(y[r].bitPattern == all[t * rows + r].bitPattern, "\(name) matvec row \(r) token \(t)") }
    }
  }
}
