// The trainer's loss and LoRA gradients on the real default model against an independent
// float64 reference (Fixtures/make_gradient_reference.py: numpy over weights dequantized by the
// `gguf` package, central finite differences) for one chat sample and a fixed adapter on all
// seven projection types, checked in the first, a middle and the last layer.
import Foundation
import GGUF
import Kernels
import Llama
import Testing
import Tokenization
import Training
import TinyModelSupport

struct GradientFixtureFile: Decodable {
  struct Entry: Decodable {
    let layer: Int
    let projection: String
    let factor: String
    let index: Int
    let gradient: Double
  }
  let tokens: [Int32]
  let loss_mask: [Bool]
  let rank: Int
  let alpha: Double
  let loss: Double
  let entries: [Entry]
}

extension TrainingSuites {
@Suite(.serialized, .enabled(if: defaultModelIsPresent, "needs models/SmolLM2-135M-Instruct.Q4_1.gguf"))
struct RealModelGradientTests {
  @Test func lossAndGradientsMatchFloat64Reference() async throws {
    try await offCooperativePool {
    let fixture = try JSONDecoder().decode(GradientFixtureFile.self, from: fixtureData("realmodel_gradients.json"))
    let file = try GGUFFile(path: defaultModelPath)
    let model = try LlamaModel(file: file)
    let tokenizer = try Tokenizer(gguf: file)

    // The fixture's tokens and mask are what the sample encoder makes of the conversation.
    let encoder = SampleEncoder(tokenizer: tokenizer, template: try tokenizer.chatTemplate(), maxTokens: 512)
    let encoded = encoder.encode(TrainingSample(messages: [
      ChatMessage(role: "system", content: "You are terse."),
      ChatMessage(role: "user", content: "Who built the Glass Tower?"),
      ChatMessage(role: "assistant", content: "Mira Okonkwo built it in 1907."),
    ])).sample
    #expect(encoded.tokens == fixture.tokens)
    #expect(encoded.lossMask == fixture.loss_mask)

    let projections: [LlamaProjection] = [.q, .k, .v, .o, .gate, .up, .down]
    let config = LoRATrainingConfig(
      rank: fixture.rank, alpha: fixture.alpha, dropout: 0, targets: projections, method: .lora, pruningRate: 0)
    let parameters = LoRAParameters(config: config, hyper: model.hyper)
    for m in parameters.modules {
      let (l, p) = (Double(m.target.layer), Double(projections.firstIndex(of: m.target.projection)!))
      for k in 0..<m.rank {
        for c in 0..<m.columns {
          m.a[k * m.columns + c] = Float(0.05 * sin(0.37 * Double(c) + 1.3 * Double(k) + 0.7 * l + 0.11 * p + 1.0))
        }
      }
      for j in 0..<m.rows {
        for k in 0..<m.rank {
          m.b[j * m.rank + k] = Float(0.02 * cos(0.29 * Double(j) + 0.9 * Double(k) + 0.5 * l + 0.13 * p))
        }
      }
    }
    let graph = TrainingGraph(model: model, parameters: parameters, maxTokens: 64, pool: ThreadPool(threads: 1))
    let result = try graph.run(tokens: fixture.tokens, lossMask: fixture.loss_mask, gradientWeight: 1) { _, _ in LoRANoise() }
    let lossError = abs(result.lossSum - fixture.loss) / fixture.loss
    // fp32 through 30 layers against float64: measured 4e-7 relative.
    #expect(lossError < 1e-4, "loss \(result.lossSum) vs reference \(fixture.loss)")

    let largest = fixture.entries.map { abs($0.gradient) }.max()!
    var worst = 0.0
    for entry in fixture.entries {
      let projection = projections[["q", "k", "v", "o", "gate", "up", "down"].firstIndex(of: entry.projection)!]
      let module = parameters.module(layer: entry.layer, projection: projection)!
      let ours = Double(entry.factor == "A" ? module.gradA[entry.index] : module.gradB[entry.index])
      let error = abs(ours - entry.gradient)
      worst = max(worst, error / largest)
      // 0.2% of the entry plus 1e-4 of the largest checked gradient; measured worst: 2e-6 to 7e-6 of
      // the largest (fp32 rounding over 30 layers, and the finite difference's O(h²) error).
      #expect(
        error <= 2e-3 * abs(entry.gradient) + 1e-4 * largest,
        "layer \(entry.layer) \(entry.projection) \(entry.factor)[\(entry.index)]: ours \(ours), reference \(entry.gradient)")
    }
    print("real-model gradients: loss relative error \(lossError), worst gradient error / largest \(worst)")
    }
  }
}
}
