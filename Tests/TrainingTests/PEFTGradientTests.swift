// The trainer's loss and LoRA gradients on the real default model against PyTorch + PEFT
// (Fixtures/make_peft_gradients.py: transformers loads the GGUF dequantized, PEFT adds the
// adapter PEFT itself wrote for the adapters tests, autograd gives the gradients). PEFT's
// gradients are in Hugging Face row order, so q/k lora_B only agree after the row permutation:
// this checks the q/k row order of training, import and export together.
import Adapters
import Foundation
import GGUF
import Kernels
import Llama
import Testing
import Tokenization
import Training
import TinyModelSupport

struct PEFTGradientFixture: Decodable {
  struct Module: Decodable {
    let layer: Int
    let projection: String
    let factor: String
    let shape: [Int]
    let norm: Double
    let indices: [Int]
    let values: [Double]
  }
  let tokens: [Int32]
  let loss_mask: [Bool]
  let loss: Double
  let modules: [Module]
}

extension TrainingSuites {
@Suite(.serialized, .enabled(if: defaultModelIsPresent, "needs models/SmolLM2-135M-Instruct.Q4_1.gguf"))
struct PEFTGradientTests {
  @Test func lossAndEveryGradientMatchPyTorchPEFT() async throws {
    try await offCooperativePool {
    let fixture = try JSONDecoder().decode(PEFTGradientFixture.self, from: fixtureData("peft_gradients.json"))
    let model = try LlamaModel(file: try GGUFFile(path: defaultModelPath))
    let adapterPath = packageRoot.appendingPathComponent(
      "Tests/AdaptersTests/Fixtures/peft_adapter/adapter_model.safetensors.bin").path
    let adapter = try PEFTFormat.read(path: adapterPath, base: model.hyper)

    let config = LoRATrainingConfig(
      rank: adapter.rank, alpha: adapter.config.loraAlpha, useRSLoRA: adapter.config.useRSLoRA ?? false, dropout: 0,
      targets: LlamaProjection.allCases, method: .lora, pruningRate: 0)
    let parameters = LoRAParameters(config: config, hyper: model.hyper)
    try parameters.load(from: adapter)
    let graph = TrainingGraph(model: model, parameters: parameters, maxTokens: 64, pool: ThreadPool(threads: 2))
    let result = try graph.run(tokens: fixture.tokens, lossMask: fixture.loss_mask, gradientWeight: 1) { _, _ in LoRANoise() }

    let lossError = abs(result.lossSum - fixture.loss) / fixture.loss
    // Both fp32; transformers dequantizes Q4_1 itself. Measured: see the print below.
    #expect(lossError < 1e-4, "loss \(result.lossSum) vs PEFT \(fixture.loss)")

    #expect(fixture.modules.count == 2 * parameters.modules.count)
    var worstNorm = 0.0
    var worstEntry = 0.0
    for reference in fixture.modules {
      let projection = try #require(LlamaProjection(anyName: reference.projection))
      let module = try #require(parameters.module(layer: reference.layer, projection: projection))
      let isA = reference.factor == "A"
      var gradient = Array(isA ? module.gradA.pointer : module.gradB.pointer, count: isA ? module.a.count : module.b.count)
      // Ours is in GGUF row order; PEFT's B of q and k in Hugging Face order.
      if !isA, let heads = RowOrder.permutedHeads(projection, model.hyper) {
        gradient = RowOrder.permute(gradient, rows: module.rows, width: module.rank, heads: heads, toGGUF: false)
      }
      #expect(reference.shape == (isA ? [module.rank, module.columns] : [module.rows, module.rank]))
      let norm = gradient.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
      let normError = abs(norm - reference.norm) / max(reference.norm, 1e-12)
      worstNorm = max(worstNorm, normError)
      #expect(normError < 1e-3, "layer \(reference.layer) \(reference.projection) \(reference.factor): norm \(norm) vs PEFT \(reference.norm)")
      for (index, value) in zip(reference.indices, reference.values) {
        // Relative to the module's gradient norm: single entries can be near zero.
        let error = abs(Double(gradient[index]) - value) / max(reference.norm, 1e-12)
        worstEntry = max(worstEntry, error)
        #expect(error < 1e-3, "layer \(reference.layer) \(reference.projection) \(reference.factor)[\(index)]: \(gradient[index]) vs PEFT \(value)")
      }
    }
    print("PEFT gradients: loss relative error \(lossError), worst norm error \(worstNorm), worst entry error / norm \(worstEntry)")
    }
  }
}
}

extension Array where Element == Float {
  init(_ pointer: UnsafeMutablePointer<Float>, count: Int) {
    self.init(UnsafeBufferPointer(start: pointer, count: count))
  }
}
