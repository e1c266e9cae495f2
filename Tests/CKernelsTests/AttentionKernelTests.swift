// The blocked attention kernel against its scalar reference twin on random data.
import CKernels
import Testing

struct AttentionKernelTests {
  @Test("dq_attention_head equals the reference", arguments: [
    (rows: 1, headDim: 64, visible0: 1), (rows: 1, headDim: 64, visible0: 300),
    (rows: 7, headDim: 64, visible0: 1), (rows: 32, headDim: 64, visible0: 17),
    (rows: 5, headDim: 48, visible0: 9), (rows: 3, headDim: 128, visible0: 40),
    (rows: 6, headDim: 12, visible0: 2),  // not a multiple of 8: the scalar path
  ])
  func matchesReference(rows: Int, headDim: Int, visible0: Int) {
    var state: UInt64 = 0x1234_5678 &+ UInt64(rows * 1000 + headDim)
    func random() -> Float {
      state = state &* 6364136223846793005 &+ 1442695040888963407
      return Float(Int64(bitPattern: state >> 11) % 2000 - 1000) / 500
    }
    let positions = visible0 + rows - 1
    let ldkv = headDim * 3  // interleaved kv heads, as in the cache
    let ldq = headDim * 2
    let q = (0..<(rows * ldq)).map { _ in random() }
    let k = (0..<(positions * ldkv)).map { _ in random() }
    let v = (0..<(positions * ldkv)).map { _ in random() }
    var fast = [Float](repeating: .nan, count: rows * ldq)
    var reference = fast
    var scores = [Float](repeating: 0, count: 4 * positions)
    let scale = 1 / Float(headDim).squareRoot()
    dq_attention_head(&fast, Int64(ldq), q, Int64(ldq), k, v, Int64(ldkv), Int64(rows), Int64(headDim),
                      Int64(visible0), scale, &scores)
    dq_attention_head_ref(&reference, Int64(ldq), q, Int64(ldq), k, v, Int64(ldkv), Int64(rows),
                          Int64(headDim), Int64(visible0), scale, &scores)
    for r in 0..<rows {
      for i in 0..<headDim {
        // Outputs are convex combinations of values in [-2, 2]; the two paths differ only in
        // summation order, so a few float ulps of 2 bound the difference.
        #expect(abs(fast[r * ldq + i] - reference[r * ldq + i]) < 1e-5, "row \(r) dim \(i)")
      }
      // The columns between heads are not written.
      #expect(fast[r * ldq + headDim].isNaN)
    }
  }
}
