// The merge's low-rank update (sgemm per row tile) against the scalar reference
// dq_add_low_rank_ref on the real model: F32-merged rows must equal dequant(W) + s·B·A within
// fp32 rounding of a rank-term sum, |Δ| <= (rank + 16) · 2^-23 · (|w| + s · sum_k |b_ik a_kj|).
import Adapters
import CKernels
import Kernels
import Llama
import Testing

@Suite(.enabled(if: defaultModelIsPresent, needsModel)) struct MergeKernelTests {
  @Test func mergedRowsEqualTheScalarReference() throws {
    let base = try requireModel()
    let rank = 32
    let adapter = LoRAAdapter.random(
      base: base.hyper, rank: rank, projections: [.q, .k, .down], layers: 0..<2, bScale: 0.02, seed: 5)
    let merged = try Merge.merge(adapter, into: base, type: .f32, pool: ThreadPool(threads: 2))
    for target in adapter.targets {
      let f = adapter.factors[target]!
      let w = base.weights.layers[target.layer].matrix(target.projection)
      let m = merged.weights.layers[target.layer].matrix(target.projection)
      var expected = [Float](repeating: 0, count: f.columns)
      var got = [Float](repeating: 0, count: f.columns)
      var worst = 0.0
      for row in stride(from: 0, to: f.rows, by: 7) {
        w.dequantizeRow(row, into: &expected)
        let original = expected
        f.b.withUnsafeBufferPointer { b in
          dq_add_low_rank_ref(
            &expected, Int64(f.columns), b.baseAddress! + row * rank, Int64(rank), f.a, Int64(f.columns), 1,
            Int64(f.columns), Int64(rank), adapter.scale)
        }
        m.dequantizeRow(row, into: &got)
        for j in 0..<f.columns {
          var s = Double(abs(original[j]))
          for k in 0..<rank { s += Double(abs(adapter.scale * f.b[row * rank + k] * f.a[k * f.columns + j])) }
          let tolerance = Double(rank + 16) * 0x1p-23 * s + 1e-30
          worst = max(worst, abs(Double(expected[j] - got[j])) / tolerance)
          #expect(abs(Double(expected[j] - got[j])) <= tolerance, "\(target) row \(row) column \(j)")
          if abs(Double(expected[j] - got[j])) > tolerance { return }
        }
      }
      #expect(worst < 1)
    }
  }
}
