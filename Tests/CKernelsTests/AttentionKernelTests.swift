// The blocked attention kernel against its scalar reference twin on random data.
import CKernels
import Testing

struct AttentionKernelTests {
  @Test("dq_attention_head equals the reference", arguments: [
    (rows: 1, headDim: 64, visible0: 1), (rows: 1, headDim: 64, visible0: 300),
    (rows: 7, headDim: 64, visible0: 1), (rows: 32, headDim: 64, visible0: 17),
    (rows: 5, headDim: 48, visible0: 9), (rows: 3, headDim: 128, visible0: 40),
    (rows: 6, headDim: 12, visible0: 2),  // not a multiple of 8: the scalar path
    // AVX-512: 8 rows per pass, then the AVX2 rows; head dims 16 (not 32) apart, Gemma's 256
    (rows: 32, headDim: 256, visible0: 200), (rows: 13, headDim: 80, visible0: 5),
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
    // A row gets the same bits alone as in a block (a batch's sequences equal themselves alone).
    for r in 0..<rows {
      var one = [Float](repeating: .nan, count: ldq)
      q.withUnsafeBufferPointer { qp in
        dq_attention_head(&one, Int64(ldq), qp.baseAddress! + r * ldq, Int64(ldq), k, v, Int64(ldkv), 1,
                          Int64(headDim), Int64(visible0 + r), scale, &scores)
      }
      #expect(Array(one[0..<headDim]) == Array(fast[(r * ldq)..<(r * ldq + headDim)]), "row \(r) alone")
    }
  }
}

/// The fp16-cache kernel: its SIMD path against its reference, and both against the fp32
/// kernel run on the same keys and values rounded to fp16 (so only the cache's storage differs).
struct HalfCacheAttentionTests {
  @Test("dq_attention_head_f16 equals its reference and the fp32 kernel on rounded values", arguments: [
    (rows: 1, headDim: 64, visible0: 1), (rows: 1, headDim: 64, visible0: 300),
    (rows: 9, headDim: 64, visible0: 17), (rows: 3, headDim: 128, visible0: 40),
    (rows: 6, headDim: 12, visible0: 2),  // not a multiple of 8: the scalar path
    (rows: 19, headDim: 256, visible0: 33),
  ])
  func matches(rows: Int, headDim: Int, visible0: Int) {
    var state: UInt64 = 0x9E37_79B9 &+ UInt64(rows * 1000 + headDim)
    func random() -> Float {
      state = state &* 6364136223846793005 &+ 1442695040888963407
      return Float(Int64(bitPattern: state >> 11) % 2000 - 1000) / 500
    }
    let positions = visible0 + rows - 1
    let ldkv = headDim * 3
    let ldq = headDim * 2
    let q = (0..<(rows * ldq)).map { _ in random() }
    let k = (0..<(positions * ldkv)).map { _ in random() }
    let v = (0..<(positions * ldkv)).map { _ in random() }
    var k16 = [UInt16](repeating: 0, count: k.count)
    var v16 = [UInt16](repeating: 0, count: v.count)
    dq_fp32_to_fp16_row(&k16, k, Int64(k.count))
    dq_fp32_to_fp16_row(&v16, v, Int64(v.count))
    // The row converter gives the scalar converter's bits.
    #expect(k16 == k.map { dq_fp32_to_fp16($0) })
    let kRounded = k16.map { dq_fp16_to_fp32($0) }
    let vRounded = v16.map { dq_fp16_to_fp32($0) }

    var fast = [Float](repeating: .nan, count: rows * ldq)
    var reference = fast
    var viaF32 = fast
    var scores = [Float](repeating: 0, count: 4 * positions)
    let scale = 1 / Float(headDim).squareRoot()
    dq_attention_head_f16(&fast, Int64(ldq), q, Int64(ldq), k16, v16, Int64(ldkv), Int64(rows), Int64(headDim),
                          Int64(visible0), scale, &scores)
    dq_attention_head_f16_ref(&reference, Int64(ldq), q, Int64(ldq), k16, v16, Int64(ldkv), Int64(rows),
                              Int64(headDim), Int64(visible0), scale, &scores)
    dq_attention_head(&viaF32, Int64(ldq), q, Int64(ldq), kRounded, vRounded, Int64(ldkv), Int64(rows),
                      Int64(headDim), Int64(visible0), scale, &scores)
    for r in 0..<rows {
      for i in 0..<headDim {
        #expect(abs(fast[r * ldq + i] - reference[r * ldq + i]) < 1e-5, "row \(r) dim \(i)")
        #expect(abs(fast[r * ldq + i] - viaF32[r * ldq + i]) < 1e-5, "row \(r) dim \(i)")
      }
      #expect(fast[r * ldq + headDim].isNaN)
    }
  }
}

/// Decode rows, scores split by keys: the chunks (run in any order, as threads would) and then
/// each head's values give every head the bits the per-head kernel gives it with one row, so a
/// decode row equals the same row inside a prefill block; for fp32 and fp16 caches, grouped kv
/// heads, and rows in one chunk or many.
struct DecodeAttentionTests {
  @Test("dq_attention_decode_scores + _values equal dq_attention_head(_f16) with one row, bitwise", arguments: [
    (heads: 8, group: 1, headDim: 64, visible: 1),
    (heads: 8, group: 1, headDim: 64, visible: 32),  // the longest row in one chunk
    (heads: 8, group: 1, headDim: 64, visible: 33),  // two chunks of 16 and 17 keys
    (heads: 12, group: 3, headDim: 64, visible: 300),  // GQA, 10 chunks
    (heads: 4, group: 2, headDim: 256, visible: 9),  // Gemma's head size
    (heads: 6, group: 2, headDim: 80, visible: 1000),  // 16 apart, not 32; 16 chunks of 62-63 keys
  ])
  func matchesPerHead(heads: Int, group: Int, headDim: Int, visible: Int) {
    guard dq_attention_decode_available(Int64(headDim)) else { return }  // the model runs per head
    var state: UInt64 = 0xD1CE &+ UInt64(heads * 7919 + headDim * 31 + visible)
    func random() -> Float {
      state = state &* 6364136223846793005 &+ 1442695040888963407
      return Float(Int64(bitPattern: state >> 11) % 2000 - 1000) / 500
    }
    let kvHeads = heads / group
    let ldkv = kvHeads * headDim + 16  // rows with a gap after the last kv head
    let q = (0..<(heads * headDim)).map { _ in random() }
    let k = (0..<(visible * ldkv)).map { _ in random() }
    let v = (0..<(visible * ldkv)).map { _ in random() }
    var k16 = [UInt16](repeating: 0, count: k.count)
    var v16 = [UInt16](repeating: 0, count: v.count)
    dq_fp32_to_fp16_row(&k16, k, Int64(k.count))
    dq_fp32_to_fp16_row(&v16, v, Int64(v.count))
    let scale = 1 / Float(headDim).squareRoot()
    var scratch = [Float](repeating: 0, count: 4 * visible)
    let chunks = Int(dq_attention_decode_chunks(Int64(visible)))
    #expect(chunks == min(16, (visible + 31) / 32))

    for half in [false, true] {
      var scores = [Float](repeating: .nan, count: heads * visible)
      for chunk in (0..<chunks).reversed() {
        let done =
          half
          ? dq_attention_decode_scores(&scores, q, k16, true, Int64(ldkv), Int64(heads), Int64(group),
                                       Int64(headDim), Int64(visible), Int64(chunk), scale)
          : dq_attention_decode_scores(&scores, q, k, false, Int64(ldkv), Int64(heads), Int64(group),
                                       Int64(headDim), Int64(visible), Int64(chunk), scale)
        #expect(done)
      }
      #expect(!scores.contains { $0.isNaN }, "the chunks cover every key of every head")
      var decoded = [Float](repeating: .nan, count: heads * headDim)
      let done =
        half
        ? dq_attention_decode_values(&decoded, &scores, v16, true, Int64(ldkv), Int64(heads), Int64(group),
                                     Int64(headDim), Int64(visible))
        : dq_attention_decode_values(&decoded, &scores, v, false, Int64(ldkv), Int64(heads), Int64(group),
                                     Int64(headDim), Int64(visible))
      #expect(done)
      for head in 0..<heads {
        let kvOffset = head / group * headDim
        var one = [Float](repeating: .nan, count: headDim)
        q.withUnsafeBufferPointer { qp in
          if half {
            k16.withUnsafeBufferPointer { kp in
              v16.withUnsafeBufferPointer { vp in
                dq_attention_head_f16(&one, Int64(headDim), qp.baseAddress! + head * headDim, Int64(headDim),
                                      kp.baseAddress! + kvOffset, vp.baseAddress! + kvOffset, Int64(ldkv), 1,
                                      Int64(headDim), Int64(visible), scale, &scratch)
              }
            }
          } else {
            k.withUnsafeBufferPointer { kp in
              v.withUnsafeBufferPointer { vp in
                dq_attention_head(&one, Int64(headDim), qp.baseAddress! + head * headDim, Int64(headDim),
                                  kp.baseAddress! + kvOffset, vp.baseAddress! + kvOffset, Int64(ldkv), 1,
                                  Int64(headDim), Int64(visible), scale, &scratch)
              }
            }
          }
        }
        #expect(Array(decoded[(head * headDim)..<((head + 1) * headDim)]) == one, "head \(head), fp16 cache: \(half)")
      }
    }
  }
}
