// --compute-type bf16 in the trainer: the frozen products are exactly the products of the
// bf16-rounded operands (checked in double, through several tiles, a row tail and both thread
// splits), and training with it is deterministic and learns like fp32. Agreement with PyTorch
// on the real model is in PEFTGradientTests.
import CKernels
import Kernels
import Llama
import Testing
import Training
import TinyModelSupport

extension TrainingSuites {
@Suite(.serialized, .enabled(if: ComputeType.bf16.isSupported, "needs AVX512-BF16"))
struct BF16ComputeTests {
  static func bf16(_ x: Float) -> Double { Double(dq_bf16_to_fp32(dq_fp32_to_bf16(x))) }

  /// 600 rows: a full 512-row tile and a partial one; 37 tokens: a partial 32-row panel.
  @Test(arguments: [1, 2]) func frozenProductsAreProductsOfRoundedOperands(threads: Int) async throws {
    try await offCooperativePool {
      let (rows, columns, tokens) = (600, 96, 37)
      var random = SplitMix(seed: 5)
      let weights = (0..<rows * columns).map { _ in Float(random.symmetric()) }
      let x = (0..<tokens * columns).map { _ in Float(random.symmetric()) }
      let dy = (0..<tokens * rows).map { _ in Float(random.symmetric()) }
      let dx0 = (0..<tokens * columns).map { _ in Float(random.symmetric()) }
      let pool = ThreadPool(threads: threads)
      let workspace = FrozenLinearWorkspace(
        maxColumns: columns, maxTokens: tokens, threads: threads, computeType: .bf16)
      var out = [Float](repeating: .nan, count: tokens * rows)
      var dx = dx0
      weights.withUnsafeBytes { bytes in
        let w = WeightMatrix(type: UInt32(DQ_TYPE_F32), rows: rows, columns: columns, base: bytes.baseAddress!)!
        FrozenLinear.forward(&out, w, x, tokens: tokens, pool: pool, workspace: workspace)
        FrozenLinear.backward(&dx, w, dy, tokens: tokens, pool: pool, workspace: workspace)
      }
      var worst = 0.0
      for t in 0..<tokens {
        for r in 0..<rows {
          var exact = 0.0, magnitude = 0.0
          for c in 0..<columns {
            let term = Self.bf16(x[t * columns + c]) * Self.bf16(weights[r * columns + c])
            exact += term
            magnitude += abs(term)
          }
          worst = max(worst, abs(Double(out[t * rows + r]) - exact) / magnitude)
        }
        for c in 0..<columns {
          var exact = Double(dx0[t * columns + c]), magnitude = abs(exact)
          for r in 0..<rows {
            let term = Self.bf16(dy[t * rows + r]) * Self.bf16(weights[r * columns + c])
            exact += term
            magnitude += abs(term)
          }
          worst = max(worst, abs(Double(dx[t * columns + c]) - exact) / magnitude)
        }
      }
      // fp32 sums of up to 600 exact products: far below one bf16 rounding (2⁻⁹).
      #expect(worst < Double(rows) * 0x1p-24, "worst error relative to the sum of |terms|: \(worst)")
    }
  }

  @Test func trainingIsDeterministicAndLearnsLikeF32() async throws {
    try await offCooperativePool { try expectDeterministicAndLearnsLikeF32(.bf16) }
  }
}
}
