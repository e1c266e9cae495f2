// The unmerged-LoRA kernels (lora.c): the AVX2 twins against the scalar references, on random
// F16 factors with ranks and lengths that exercise every tail (odd rank, columns not a multiple
// of 16, rows not a multiple of 32). The twins differ only in summation order and FMA rounding,
// so the bound is the usual recursive-summation one on S = sum |terms|.
import CKernels
import Testing

@Suite struct LoRAKernelTests {
  static func f16(_ values: [Float]) -> [UInt16] { values.map { dq_fp32_to_fp16($0) } }

  @Test(arguments: [1, 3, 8, 32]) func downTwinsAgree(rank: Int) {
    var rng = SeededRNG(seed: 7000 + UInt64(rank))
    for columns in [1, 15, 16, 33, 576, 1536] {
      let a = Self.f16((0..<rank * columns).map { _ in rng.gaussian() * 0.05 })
      let x = (0..<columns).map { _ in rng.gaussian() }
      var ref = [Float](repeating: 0, count: rank)
      var fast = [Float](repeating: 0, count: rank)
      dq_lora_down_f16_ref(&ref, a, Int64(rank), x, Int64(columns), 0.5)
      dq_lora_down_f16(&fast, a, Int64(rank), x, Int64(columns), 0.5)
      for k in 0..<rank {
        let s = (0..<columns).reduce(0.0) { $0 + 0.5 * Double(abs(dq_fp16_to_fp32(a[k * columns + $1]) * x[$1])) }
        #expect(abs(Double(ref[k] - fast[k])) <= Double(columns / 8 + 16) * 0x1p-23 * s + 1e-30,
                "rank \(rank) columns \(columns) k \(k): \(ref[k]) vs \(fast[k])")
      }
    }
  }

  @Test(arguments: [1, 3, 8, 32]) func upTwinsAgree(rank: Int) {
    var rng = SeededRNG(seed: 8000 + UInt64(rank))
    for rows in [1, 31, 32, 96, 192, 577] {
      // A chunk of rows out of a wider Bᵀ (ldbt > n), as the threads use it.
      let ldbt = rows + 5
      let bt = Self.f16((0..<rank * ldbt).map { _ in rng.gaussian() * 0.05 })
      let u = (0..<rank).map { _ in rng.gaussian() }
      let y0 = (0..<rows).map { _ in rng.gaussian() }
      var ref = y0
      var fast = y0
      dq_lora_up_f16_ref(&ref, bt, Int64(ldbt), u, Int64(rank), Int64(rows))
      dq_lora_up_f16(&fast, bt, Int64(ldbt), u, Int64(rank), Int64(rows))
      for j in 0..<rows {
        let s = Double(abs(y0[j])) + (0..<rank).reduce(0.0) { $0 + Double(abs(u[$1] * dq_fp16_to_fp32(bt[$1 * ldbt + j]))) }
        #expect(abs(Double(ref[j] - fast[j])) <= Double(rank + 16) * 0x1p-23 * s + 1e-30,
                "rank \(rank) rows \(rows) j \(j): \(ref[j]) vs \(fast[j])")
      }
    }
  }
}
