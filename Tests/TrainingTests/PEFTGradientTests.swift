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
  /// Both fp32; transformers dequantizes Q4_1 itself.
  @Test func lossAndEveryGradientMatchPyTorchPEFT() async throws {
    try await offCooperativePool {
      let errors = try compare(.f32, tolerances: Errors(loss: 1e-4, norm: 1e-3, entry: 1e-3))
      print("PEFT gradients (f32): \(errors)")
    }
  }

  /// `computeType`'s loss and gradients against the fp32 reference, each within `times` the
  /// error of PyTorch's own bf16 autocast (the fixture made with --autocast-bf16).
  func compareWithinPyTorchBF16Error(_ computeType: ComputeType, times factor: Double) throws {
    let reference = try JSONDecoder().decode(PEFTGradientFixture.self, from: fixtureData("peft_gradients.json"))
    let autocast = try JSONDecoder().decode(
      PEFTGradientFixture.self, from: fixtureData("peft_gradients_autocast_bf16.json"))
    let yardstick = Errors(autocast, against: reference)
    let errors = try compare(
      computeType,
      tolerances: Errors(loss: factor * yardstick.loss, norm: factor * yardstick.norm, entry: factor * yardstick.entry))
    print("PEFT gradients (\(computeType)): \(errors); PyTorch autocast bf16: \(yardstick)")
  }

  /// bf16 products through the base against the same fp32 reference. The yardstick is how far
  /// PyTorch's own bf16 (autocast, the fixture made with --autocast-bf16) lands from that
  /// reference, by the same three measures: ours must stay within twice its error.
  @Test(.enabled(if: ComputeType.bf16.isSupported, "needs AVX512-BF16"))
  func bf16LossAndGradientsStayAsNearAsPyTorchBF16() async throws {
    try await offCooperativePool { try compareWithinPyTorchBF16Error(.bf16, times: 2) }
  }

  /// int8 forward products (inference's: 8-bit activations, integer dots) and fp32 backward
  /// products against the same fp32 reference, with PyTorch's own bf16 autocast error as the
  /// yardstick (loss 0.43 %, worst module norm 6.8 %, worst entry 1.4 % of its module's norm).
  /// int8's error is coarser than bf16's (the gradient passes straight through the 8-bit
  /// activation rounding) and which way each rounding goes follows last-bit differences in the
  /// fp32 parts: the same code measured loss 0.81 / 1.50 / 2.56 %, worst norm 13.5 / 18.7 / 44.9 %,
  /// worst entry 5.4 / 10.5 / 5.9 % with OpenBLAS's Prescott, Haswell (= Zen) and SkylakeX
  /// sgemm kernels, i.e. up to 5.9x, 6.6x and 7.5x PyTorch bf16's. The bound is 10x: a broken
  /// int8 product is off by far more.
  @Test func int8LossAndGradientsStayAsNearAsPyTorchBF16() async throws {
    try await offCooperativePool { try compareWithinPyTorchBF16Error(.int8, times: 10) }
  }

  /// Relative errors against the reference: the loss, the worst module gradient norm, and the
  /// worst sampled entry relative to its module's norm.
  struct Errors: CustomStringConvertible {
    var loss = 0.0, norm = 0.0, entry = 0.0
    init(loss: Double = 0, norm: Double = 0, entry: Double = 0) {
      self.loss = loss
      self.norm = norm
      self.entry = entry
    }
    init(_ other: PEFTGradientFixture, against reference: PEFTGradientFixture) {
      loss = abs(other.loss - reference.loss) / reference.loss
      for (o, r) in zip(other.modules, reference.modules) {
        norm = max(norm, abs(o.norm - r.norm) / r.norm)
        for (a, b) in zip(o.values, r.values) { entry = max(entry, abs(a - b) / r.norm) }
      }
    }
    var description: String { "loss \(loss), worst norm \(norm), worst entry / norm \(entry)" }
  }

  /// Runs the fixture's sample with PEFT's adapter; the loss, every module's gradient norm and
  /// every sampled entry must be within `tolerances` of the reference.
  func compare(_ computeType: ComputeType, tolerances: Errors) throws -> Errors {
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
    let graph = TrainingGraph(
      model: model, parameters: parameters, maxTokens: 64, computeType: computeType, pool: ThreadPool(threads: 2))
    let result = try graph.run(tokens: fixture.tokens, lossMask: fixture.loss_mask, gradientWeight: 1) { _, _ in LoRANoise() }

    var errors = Errors()
    errors.loss = abs(result.lossSum - fixture.loss) / fixture.loss
    #expect(errors.loss < tolerances.loss, "loss \(result.lossSum) vs PEFT \(fixture.loss)")

    #expect(fixture.modules.count == 2 * parameters.modules.count)
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
      errors.norm = max(errors.norm, normError)
      #expect(normError < tolerances.norm, "layer \(reference.layer) \(reference.projection) \(reference.factor): norm \(norm) vs PEFT \(reference.norm)")
      for (index, value) in zip(reference.indices, reference.values) {
        // Relative to the module's gradient norm: single entries can be near zero.
        let error = abs(Double(gradient[index]) - value) / max(reference.norm, 1e-12)
        errors.entry = max(errors.entry, error)
        #expect(error < tolerances.entry, "layer \(reference.layer) \(reference.projection) \(reference.factor)[\(index)]: \(gradient[index]) vs PEFT \(value)")
      }
    }
    return errors
  }
}
}

extension Array where Element == Float {
  init(_ pointer: UnsafeMutablePointer<Float>, count: Int) {
    self.init(UnsafeBufferPointer(start: pointer, count: count))
  }
}
