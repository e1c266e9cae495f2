// The unmerged-LoRA kernels (lora.c): the SIMD twins (AVX-512 or AVX2, as the CPU has them)
// against the scalar references, on random F16 factors with ranks and lengths that exercise
// every tail (odd rank, columns not a multiple of 16, rows not a multiple of 32). The twins
// differ only in summation order and FMA rounding, so the bound is the usual recursive-summation
// one on S = sum |terms|. The fused decode job (dq_pool_matvec_lora: quantized matvec plus the
// update, one pool job) against the matvec rows and the scalar references, on 1-3 threads. The
// grouped batch job (dq_pool_matmul_lora: a multi-row product plus several adapters' updates,
// each on its own token rows) against the same job without updates plus the scalar references,
// with and without the base product.
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

  @Test(arguments: [1, 2, 3]) func fusedMatvecMatchesMatvecPlusReferences(threads: Int) {
    var rng = SeededRNG(seed: 9000 + UInt64(threads))
    let pool = dq_pool_create(Int32(threads))!
    defer { dq_pool_destroy(pool) }
    for name in ["Q4_1", "Q8_0"] {
      let (type, _) = weightType(name)
      for (rank, rows, n) in [(1, 31, 64), (3, 96, 576), (8, 577, 576), (32, 192, 576), (32, 576, 1536)] {
        let rs = Quant.rowSize(type, n)
        var w: [UInt8] = []
        for _ in 0..<rows { w += Quant.randomRow(type, n: n, rng: &rng) }
        let xf = (0..<n).map { _ in rng.gaussian() }
        let xq = Quant.activation(for: type, xf)
        let a = Self.f16((0..<rank * n).map { _ in rng.gaussian() * 0.05 })
        let bt = Self.f16((0..<rank * rows).map { _ in rng.gaussian() * 0.05 })
        let scale: Float = 0.75
        var plain = [Float](repeating: 0, count: rows)
        var fused = [Float](repeating: .nan, count: rows + 1)  // one sentinel past the end
        var u = [Float](repeating: 0, count: rank)
        w.withUnsafeBytes { wp in
          xq.withUnsafeBytes { xp in
            dq_matvec_rows(type, Int64(n), wp.baseAddress!, rs, xp.baseAddress!, &plain, 0, Int64(rows))
            a.withUnsafeBufferPointer { ap in
              bt.withUnsafeBufferPointer { bp in
                var lora = dq_lora_f16(a: ap.baseAddress!, bt: bp.baseAddress!, rank: Int64(rank), scale: scale)
                dq_pool_matvec_lora(
                  pool, type, Int64(n), wp.baseAddress!, rs, xp.baseAddress!, xf, &fused, Int64(rows), &lora, &u)
              }
            }
          }
        }
        #expect(fused.last!.isNaN, "wrote past the last row")
        var uRef = [Float](repeating: 0, count: rank)
        dq_lora_down_f16_ref(&uRef, a, Int64(rank), xf, Int64(n), scale)
        var expected = plain
        dq_lora_up_f16_ref(&expected, bt, Int64(rows), uRef, Int64(rank), Int64(rows))
        let downS = (0..<rank).map { k in
          (0..<n).reduce(0.0) { $0 + Double(abs(scale * dq_fp16_to_fp32(a[k * n + $1]) * xf[$1])) }
        }
        for j in 0..<rows {
          let s = Double(abs(plain[j]))
            + (0..<rank).reduce(0.0) { $0 + Double(abs(dq_fp16_to_fp32(bt[$1 * rows + j]))) * downS[$1] }
          #expect(abs(Double(fused[j] - expected[j])) <= Double(rank + n / 8 + 32) * 0x1p-23 * s + 1e-30,
                  "\(name) threads \(threads) rank \(rank) rows \(rows) j \(j): \(fused[j]) vs \(expected[j])")
        }
      }
    }
  }

  /// Four runs of adapters take the job's by-adapter walk at every thread count here; one run
  /// takes it on one thread and the walk that splits each adapter's work on two and three.
  @Test(arguments: [1, 2, 3], [false, true]) func groupedMatmulMatchesMatmulPlusReferences(threads: Int, oneRun: Bool) {
    var rng = SeededRNG(seed: 9500 + UInt64(threads))
    let pool = dq_pool_create(Int32(threads))!
    defer { dq_pool_destroy(pool) }
    // Token rows 0-1 on adapter 0, 2 on none, 3-5 on adapter 1, 6 on adapter 2, 7-8 on adapter 0
    // again (a second run of the same factors); or only rows 3-5 on adapter 1.
    let runs: [(adapter: Int, first: Int, count: Int)] =
      oneRun ? [(1, 3, 3)] : [(0, 0, 2), (1, 3, 3), (2, 6, 1), (0, 7, 2)]
    let tokens = 9
    for name in ["Q4_1", "Q8_0", "Q4_K"] {
      let (type, _) = weightType(name)
      for (ranks, rows, n) in [([1, 3, 8], 31, 256), ([16, 5, 64], 577, 512), ([64, 64, 64], 192, 1536)] {
        let rs = Quant.rowSize(type, n)
        var w: [UInt8] = []
        for _ in 0..<rows { w += Quant.randomRow(type, n: n, rng: &rng) }
        let xf = (0..<tokens * n).map { _ in rng.gaussian() }
        var xq: [UInt8] = []
        for t in 0..<tokens { xq += Quant.activation(for: type, Array(xf[t * n..<(t + 1) * n])) }
        let xs = xq.count / tokens
        let factors = ranks.map { rank in
          (a: Self.f16((0..<rank * n).map { _ in rng.gaussian() * 0.05 }),
           bt: Self.f16((0..<rank * rows).map { _ in rng.gaussian() * 0.05 }), rank: rank)
        }
        // The job reads the factors through pointers; copies that outlive every call.
        let pointers = factors.map { f in
          (a: UnsafeMutablePointer<UInt16>.allocate(capacity: f.a.count), bt: UnsafeMutablePointer<UInt16>.allocate(capacity: f.bt.count))
        }
        defer { for p in pointers { p.a.deallocate(); p.bt.deallocate() } }
        for (p, f) in zip(pointers, factors) {
          p.a.initialize(from: f.a, count: f.a.count)
          p.bt.initialize(from: f.bt, count: f.bt.count)
        }
        let scales: [Float] = [0.75, -1.5, 2]
        let ldy = rows + 3  // output rows inside a wider buffer
        let ldu = ranks.max()!
        var u = [Float](repeating: 0, count: tokens * ldu)
        func job(_ y: inout [Float], base: Bool, updates: Bool) {
          w.withUnsafeBytes { wp in
            xq.withUnsafeBytes { xp in
              let groups = updates
                ? runs.map { run in
                  dq_lora_rows(
                    lora: dq_lora_f16(
                      a: pointers[run.adapter].a, bt: pointers[run.adapter].bt, rank: Int64(ranks[run.adapter]),
                      scale: scales[run.adapter]),
                    first: Int64(run.first), count: Int64(run.count))
                } : []
              dq_pool_matmul_lora(
                pool, type, Int64(n), base ? wp.baseAddress! : nil, rs, xp.baseAddress!, xs, xf, Int64(tokens), &y,
                Int64(ldy), Int64(rows), groups, Int32(groups.count), &u, Int64(ldu))
            }
          }
        }
        var plain = [Float](repeating: .nan, count: tokens * ldy)
        job(&plain, base: true, updates: false)
        var direct = [Float](repeating: .nan, count: tokens * ldy)
        w.withUnsafeBytes { wp in
          xq.withUnsafeBytes { xp in
            dq_pool_matmul(pool, type, Int64(n), wp.baseAddress!, rs, xp.baseAddress!, xs, Int64(tokens), &direct,
                           Int64(ldy), Int64(rows))
          }
        }
        for t in 0..<tokens {
          for j in 0..<rows {
            #expect(plain[t * ldy + j] == direct[t * ldy + j], "\(name) base t \(t) j \(j)")
          }
          for j in rows..<ldy { #expect(plain[t * ldy + j].isNaN, "wrote past the rows") }
        }
        var fused = plain.map { _ in Float.nan }
        job(&fused, base: true, updates: true)
        var addedOnly = plain  // the base already in y, the job adds the updates
        job(&addedOnly, base: false, updates: true)
        // References: each token row's updates, scalar, on the base-only rows.
        var expected = plain
        var bound = [Double](repeating: 0, count: tokens * ldy)
        for run in runs {
          let f = factors[run.adapter]
          let scale = scales[run.adapter]
          for t in run.first..<(run.first + run.count) {
            let x = Array(xf[t * n..<(t + 1) * n])
            var uRef = [Float](repeating: 0, count: f.rank)
            dq_lora_down_f16_ref(&uRef, f.a, Int64(f.rank), x, Int64(n), scale)
            expected.withUnsafeMutableBufferPointer {
              dq_lora_up_f16_ref($0.baseAddress! + t * ldy, f.bt, Int64(rows), uRef, Int64(f.rank), Int64(rows))
            }
            let downS = (0..<f.rank).map { k in
              (0..<n).reduce(0.0) { $0 + Double(abs(scale * dq_fp16_to_fp32(f.a[k * n + $1]) * x[$1])) }
            }
            for j in 0..<rows {
              bound[t * ldy + j] = Double(f.rank + n / 8 + 32) * 0x1p-23
                * (Double(abs(plain[t * ldy + j]))
                  + (0..<f.rank).reduce(0.0) { $0 + Double(abs(dq_fp16_to_fp32(f.bt[$1 * rows + j]))) * downS[$1] })
            }
          }
        }
        for t in 0..<tokens {
          for j in 0..<rows {
            let i = t * ldy + j
            #expect(abs(Double(fused[i] - expected[i])) <= bound[i] + 1e-30,
                    "\(name) threads \(threads) ranks \(ranks) rows \(rows) t \(t) j \(j): \(fused[i]) vs \(expected[i])")
            #expect(addedOnly[i] == fused[i], "\(name) t \(t) j \(j): the base-less job adds the same update")
          }
          for j in rows..<ldy { #expect(fused[t * ldy + j].isNaN && addedOnly[t * ldy + j].isNaN, "wrote past the rows") }
        }
        // The token row on no adapter keeps the base product.
        #expect(Array(fused[2 * ldy..<2 * ldy + rows]) == Array(plain[2 * ldy..<2 * ldy + rows]))
      }
    }
  }
}
