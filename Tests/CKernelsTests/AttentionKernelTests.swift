// The blocked attention kernel against its scalar reference twin on random data.
import CKernels
import Foundation
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

/// Decode rows split by keys: a row in one chunk gets, head by head, the bits of the per-head
/// kernel with one row; a row in several chunks, merged, agrees with it to float rounding; for
/// fp32 and fp16 caches, grouped kv heads, and merges over parts of the head range.
struct DecodeAttentionTests {
  @Test("dq_attention_decode_chunk + merge equal dq_attention_head(_f16) with one row", arguments: [
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
    var scores = [Float](repeating: 0, count: 4 * visible)
    let chunks = Int(dq_attention_decode_chunks(Int64(visible)))
    #expect(chunks == min(16, (visible + 31) / 32))
    let partStride = heads * (headDim + 1)
    var chunkScores = [Float](repeating: 0, count: Int(dq_attention_decode_scratch(Int64(heads), Int64(visible))))

    for half in [false, true] {
      // Each chunk into its own part (or, with one chunk, straight into the row's output).
      var parts = [Float](repeating: .nan, count: chunks * partStride)
      for chunk in 0..<chunks {
        let done = parts.withUnsafeMutableBufferPointer { p in
          half
            ? dq_attention_decode_chunk_f16(p.baseAddress! + chunk * partStride, q, k16, v16, Int64(ldkv),
                                            Int64(heads), Int64(group), Int64(headDim), Int64(visible),
                                            Int64(chunk), scale, &chunkScores)
            : dq_attention_decode_chunk(p.baseAddress! + chunk * partStride, q, k, v, Int64(ldkv), Int64(heads),
                                        Int64(group), Int64(headDim), Int64(visible), Int64(chunk), scale,
                                        &chunkScores)
        }
        #expect(done)
      }
      var decoded = [Float](repeating: .nan, count: heads * headDim)
      if chunks == 1 {
        decoded = Array(parts[0..<(heads * headDim)])
      } else {
        // Two calls over two pieces of the head range, as two threads would.
        let middle = heads / 2 + 1
        dq_attention_decode_merge(&decoded, parts, Int64(chunks), Int64(heads), Int64(headDim), 0, Int64(middle))
        #expect(decoded[middle * headDim].isNaN, "the merge writes only its heads")
        dq_attention_decode_merge(&decoded, parts, Int64(chunks), Int64(heads), Int64(headDim), Int64(middle),
                                  Int64(heads))
      }
      for head in 0..<heads {
        var one = [Float](repeating: .nan, count: headDim)
        let kvOffset = head / group * headDim
        q.withUnsafeBufferPointer { qp in
          if half {
            k16.withUnsafeBufferPointer { kp in
              v16.withUnsafeBufferPointer { vp in
                dq_attention_head_f16(&one, Int64(headDim), qp.baseAddress! + head * headDim, Int64(headDim),
                                      kp.baseAddress! + kvOffset, vp.baseAddress! + kvOffset, Int64(ldkv), 1,
                                      Int64(headDim), Int64(visible), scale, &scores)
              }
            }
          } else {
            k.withUnsafeBufferPointer { kp in
              v.withUnsafeBufferPointer { vp in
                dq_attention_head(&one, Int64(headDim), qp.baseAddress! + head * headDim, Int64(headDim),
                                  kp.baseAddress! + kvOffset, vp.baseAddress! + kvOffset, Int64(ldkv), 1,
                                  Int64(headDim), Int64(visible), scale, &scores)
              }
            }
          }
        }
        let slice = Array(decoded[(head * headDim)..<((head + 1) * headDim)])
        if chunks == 1 {
          #expect(slice == one, "head \(head), fp16 cache: \(half)")
        } else {
          // Outputs are convex combinations of values in [-2, 2]; the merge reorders the sums.
          let worst = zip(slice, one).map { abs($0 - $1) }.max()!
          #expect(worst < 2e-5, "head \(head), fp16 cache: \(half): off by \(worst)")
        }
      }
    }
  }

  @Test("dq_attention_decode_scratch covers every chunk of every row up to the capacity")
  func scratchCoversEveryChunk() {
    for capacity in [1, 31, 40, 100, 512, 513, 1000, 4099] {
      let room = Int(dq_attention_decode_scratch(1, Int64(capacity)))
      #expect(Int(dq_attention_decode_scratch(7, Int64(capacity))) == 7 * room)
      for visible in 1...capacity {
        let chunks = Int(dq_attention_decode_chunks(Int64(visible)))
        let longest = (0..<chunks).map { (($0 + 1) * visible / chunks) - ($0 * visible / chunks) }.max()!
        #expect(longest <= room, "capacity \(capacity), visible \(visible): \(longest) keys > \(room)")
      }
    }
  }

  @Test("dq_softmax_lse gives dq_softmax's bits and the log of the sum of exponentials")
  func softmaxLogSumExp() {
    for n in [1, 7, 8, 100] {
      let x = (0..<n).map { Float($0 % 13) * 0.7 - 3 + Float(n) }
      var plain = x
      var withLSE = x
      dq_softmax(&plain, Int64(n))
      let lse = dq_softmax_lse(&withLSE, Int64(n))
      #expect(plain == withLSE)
      let expected = Foundation.log(x.map { Foundation.exp(Double($0)) }.reduce(0, +))
      #expect(abs(Double(lse) - expected) < 1e-5 * max(1, abs(expected)), "n \(n): \(lse) vs \(expected)")
    }
  }
}
