// --compute-type int8 in the trainer: the forward's products are inference's own (MatMul on the
// quantized weights, 8-bit activations), the backward's fp32. Training with it is deterministic
// and learns like fp32; agreement with PyTorch on the real model is in PEFTGradientTests.
import Kernels
import Llama
import Testing
import Training
import TinyModelSupport

extension TrainingSuites {
@Suite(.serialized)
struct Int8ComputeTests {
  /// A quantized matrix's forward is exactly inference's product; its backward exactly f32's.
  @Test(arguments: [1, 2]) func forwardIsInferencesProductBackwardIsF32(threads: Int) async throws {
    try await offCooperativePool {
      let tiny = try TinyModel(TinyModelSpec(matrixType: .q4_1, embeddingType: .q8_0))
      let model = try LlamaModel(path: tiny.path)
      let w = model.weights.layers[0].matrix(.gate)
      #expect(w.isQuantized)
      let tokens = 37
      var random = SplitMix(seed: 9)
      let x = (0..<tokens * w.columns).map { _ in Float(random.symmetric()) }
      let dy = (0..<tokens * w.rows).map { _ in Float(random.symmetric()) }
      let pool = ThreadPool(threads: threads)
      func run(_ type: ComputeType) -> (out: [Float], dx: [Float]) {
        let workspace = FrozenLinearWorkspace(
          maxColumns: w.columns, maxTokens: tokens, threads: threads, computeType: type)
        var out = [Float](repeating: .nan, count: tokens * w.rows)
        var dx = [Float](repeating: 0, count: tokens * w.columns)
        FrozenLinear.forward(&out, w, x, tokens: tokens, pool: pool, workspace: workspace)
        FrozenLinear.backward(&dx, w, dy, tokens: tokens, pool: pool, workspace: workspace)
        return (out, dx)
      }
      let int8 = run(.int8), f32 = run(.f32)
      var inference = [Float](repeating: .nan, count: tokens * w.rows)
      MatMul.multiply(
        &inference, w, x, tokens: tokens, pool: pool,
        workspace: MatMulWorkspace(maxColumns: w.columns, maxTokens: tokens, threads: threads))
      #expect(int8.out == inference)
      #expect(int8.out != f32.out, "8-bit activations should round somewhere")
      #expect(int8.dx == f32.dx)
    }
  }

  @Test func trainingIsDeterministicAndLearnsLikeF32() async throws {
    try await offCooperativePool { try expectDeterministicAndLearnsLikeF32(.int8) }
  }
}
}
