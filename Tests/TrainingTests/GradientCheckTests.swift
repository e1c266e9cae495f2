// Finite-difference checks of the hand-written backward: the LoRA gradients of every target
// type (q, k, v, o, gate, up, down) in both layers of a tiny model, against central
// differences of an independent double-precision reference of the same loss with the same
// noise. The reference's differences are exact to ~1e-9, so the tolerance only has to absorb
// the fp32 arithmetic of the trainer: 1e-3 of the difference plus 1e-4 of the matrix's
// largest gradient (fp32 rounding through two layers stays near 1e-5 relative). Layer 0's
// q/k/v gradients flow back through every op of both layers (cross-entropy, output norm,
// SwiGLU, attention, RoPE, RMSNorm, the frozen Wᵀ·dy products), so these checks cover each
// op's backward.
import Adapters
import Foundation
import Kernels
import Llama
import Testing
import Training
import TinyModelSupport

let checkTokens: [Int32] = [3, 17, 42, 5, 60, 0, 33, 33, 12, 8]
let checkMask: [Bool] = [false, false, false, true, true, false, true, true, true, true]

struct GradientCase: CustomTestStringConvertible, Sendable {
  var name: String
  var spec: TinyModelSpec
  var dropout: Float = 0
  var pruningRate: Float = 0
  var granularity: MaskGranularity = .token
  var testDescription: String { name }
}


/// A model, random nonzero factors on every projection, and a graph over them.
struct GradientFixture {
  let tiny: TinyModel
  let model: LlamaModel
  let config: LoRATrainingConfig
  let parameters: LoRAParameters
  let graph: TrainingGraph

  init(
    spec: TinyModelSpec, config: LoRATrainingConfig, threads: Int = 1, factorSeed: UInt64 = 11,
    recompute: Bool = false
  ) throws {
    tiny = try TinyModel(spec)
    model = try LlamaModel(path: tiny.path)
    self.config = config
    parameters = LoRAParameters(config: config, hyper: model.hyper)
    var random = SplitMix(seed: factorSeed)
    for m in parameters.modules {
      for i in 0..<m.a.count { m.a[i] = Float(0.3 * random.symmetric()) }
      for i in 0..<m.b.count { m.b[i] = Float(0.3 * random.symmetric()) }
    }
    graph = TrainingGraph(
      model: model, parameters: parameters, maxTokens: 16, recompute: recompute, pool: ThreadPool(threads: threads))
  }

  /// The reference's view of the factors and of the noise the graph's last forward drew.
  func referenceBranches() -> [String: ReferenceLoRA] {
    var lora: [String: ReferenceLoRA] = [:]
    for (i, m) in parameters.modules.enumerated() {
      let noise = graph.noise[i]
      lora[m.target.ggufName] = ReferenceLoRA(
        rank: m.rank, a: m.a.array.map(Double.init), b: m.b.array.map(Double.init),
        dropout: noise.dropoutFactors(tokens: checkTokens.count, columns: m.columns)?.map(Double.init), mask: noise.tokenMask?.array.map(Double.init),
        stepMask: noise.stepMask?.array.map(Double.init))
    }
    return lora
  }
}

// Serialized, and single-threaded unless a test is about threads: the machine has 2 cores and
// the timing-sensitive suites of other modules (HTTP clients with deadlines) run beside these.
extension TrainingSuites {
@Suite(.serialized)
struct GradientCheckTests {
  static let cases: [GradientCase] = [
    GradientCase(name: "llama f32, plain LoRA", spec: TinyModelSpec()),
    GradientCase(
      name: "llama q4_1 weights, token mask p=0.5 + dropout",
      spec: TinyModelSpec(matrixType: .q4_1, embeddingType: .q8_0), dropout: 0.2, pruningRate: 0.5),
    GradientCase(
      name: "llama f32 tied, step mask p=0.3", spec: TinyModelSpec(tiedOutput: true),
      pruningRate: 0.3, granularity: .step),
    GradientCase(
      name: "qwen2 biases (neox RoPE), dropout + token mask",
      spec: TinyModelSpec(architecture: "qwen2", biases: true), dropout: 0.1, pruningRate: 0.3),
    GradientCase(
      name: "qwen3 per-head q/k norms (neox RoPE), token mask",
      spec: TinyModelSpec(architecture: "qwen3", tiedOutput: true, queryKeyNorm: true), pruningRate: 0.3),
    GradientCase(
      name: "llama rope_freqs (Llama 3.1 RoPE scaling)", spec: TinyModelSpec(ropeFrequencyFactors: true)),
    GradientCase(
      name: "gemma3: GeGLU, post-norms, q/k norms, √d embeddings, sliding window 4, token mask",
      spec: TinyModelSpec.gemma3(), dropout: 0.1, pruningRate: 0.3),
  ]

  @Test(arguments: cases)
  func loraGradientsMatchFiniteDifferences(_ c: GradientCase) async throws {
    try await offCooperativePool {
    let config = LoRATrainingConfig(
      rank: 4, alpha: 8, dropout: c.dropout, targets: LlamaProjection.allCases,
      pruningRate: c.pruningRate, granularity: c.granularity)
    let fixture = try GradientFixture(spec: c.spec, config: config)
    var random = TrainingRandom(seed: 5)
    let sampler = NoiseSampler(config: config)
    sampler.drawStepMasks(fixture.parameters, random: &random)
    let result = try fixture.graph.run(tokens: checkTokens, lossMask: checkMask, gradientWeight: 1) {
      sampler.draw($0, tokens: $1, random: &random)
    }
    var lora = fixture.referenceBranches()
    let scale = Double(config.scale)
    let reference = fixture.tiny.referenceLoss(checkTokens, lossMask: checkMask, lora: lora, scale: scale)
    #expect(result.lossTokens == 6)
    #expect(abs(result.lossSum - reference) <= 1e-5 * abs(reference), "loss \(result.lossSum) vs \(reference)")

    var pick = SplitMix(seed: 99)
    let h = 1e-4
    var checked = 0
    for m in fixture.parameters.modules {
      let name = m.target.ggufName
      for isA in [true, false] {
        let grad = isA ? m.gradA.array : m.gradB.array
        let largest = Double(grad.map(abs).max()!)
        #expect(largest > 0, "\(name) \(isA ? "A" : "B") has no gradient at all")
        for _ in 0..<3 {
          let index = Int(pick.next() % UInt64(grad.count))
          func loss(_ delta: Double) -> Double {
            var perturbed = lora
            if isA { perturbed[name]!.a[index] += delta } else { perturbed[name]!.b[index] += delta }
            return fixture.tiny.referenceLoss(checkTokens, lossMask: checkMask, lora: perturbed, scale: scale)
          }
          let fd = (loss(h) - loss(-h)) / (2 * h)
          let analytic = Double(grad[index])
          let tolerance = 1e-3 * abs(fd) + 1e-4 * largest + 1e-7
          #expect(
            abs(analytic - fd) <= tolerance,
            "\(name) \(isA ? "A" : "B")[\(index)]: analytic \(analytic), finite difference \(fd)")
          checked += 1
        }
      }
    }
    lora.removeAll()
    #expect(checked == 2 * 3 * 14)
    }
  }

  /// With `step` masks, a dropped rank direction k gets exactly zero gradient: row k of A and
  /// column k of B, in every module, for that step.
  @Test func stepMaskedDirectionsGetZeroGradient() async throws {
    try await offCooperativePool {
    let config = LoRATrainingConfig(
      rank: 8, alpha: 16, dropout: 0.1, targets: LlamaProjection.allCases, pruningRate: 0.5,
      granularity: .step)
    let fixture = try GradientFixture(spec: TinyModelSpec(), config: config)
    var random = TrainingRandom(seed: 3)
    let sampler = NoiseSampler(config: config)
    sampler.drawStepMasks(fixture.parameters, random: &random)
    _ = try fixture.graph.run(tokens: checkTokens, lossMask: checkMask, gradientWeight: 1) {
      sampler.draw($0, tokens: $1, random: &random)
    }
    var dropped = 0
    var kept = 0
    for m in fixture.parameters.modules {
      for k in 0..<m.rank {
        let rowA = (0..<m.columns).map { m.gradA[k * m.columns + $0] }
        let columnB = (0..<m.rows).map { m.gradB[$0 * m.rank + k] }
        if m.stepMask[k] == 0 {
          dropped += 1
          #expect(rowA.allSatisfy { $0 == 0 } && columnB.allSatisfy { $0 == 0 }, "\(m.target) direction \(k)")
        } else {
          kept += 1
          #expect(m.stepMask[k] == 2)
          #expect(rowA.contains { $0 != 0 } && columnB.contains { $0 != 0 }, "\(m.target) direction \(k)")
        }
      }
    }
    #expect(dropped > 10 && kept > 10)
    }
  }

  /// Evaluation (no gradient) gives the same loss as training's forward without noise, and the
  /// gradients do not depend on the thread count beyond rounding.
  @Test func threadCountDoesNotChangeGradients() async throws {
    try await offCooperativePool {
    let config = LoRATrainingConfig(rank: 4, alpha: 8, dropout: 0, targets: [.q, .v, .down], pruningRate: 0)
    let one = try GradientFixture(spec: TinyModelSpec(), config: config, threads: 1)
    let two = try GradientFixture(spec: TinyModelSpec(), config: config, threads: 2)
    let a = try one.graph.run(tokens: checkTokens, lossMask: checkMask, gradientWeight: 1) { _, _ in LoRANoise() }
    let b = try two.graph.run(tokens: checkTokens, lossMask: checkMask, gradientWeight: 1) { _, _ in LoRANoise() }
    let eval = try two.graph.run(tokens: checkTokens, lossMask: checkMask, gradientWeight: nil) { _, _ in LoRANoise() }
    #expect(abs(a.lossSum - b.lossSum) <= 1e-5 * abs(a.lossSum))
    #expect(eval.lossSum == b.lossSum)
    for (m1, m2) in zip(one.parameters.modules, two.parameters.modules) {
      let g1 = m1.gradA.array + m1.gradB.array
      let g2 = m2.gradA.array + m2.gradB.array
      let largest = g1.map(abs).max()!
      #expect(zip(g1, g2).allSatisfy { abs($0 - $1) <= 1e-4 * largest }, "\(m1.target)")
    }
    }
  }

  /// Packing sequences into one run (attention kept within each) gives the loss and gradients
  /// of running them one by one.
  @Test func packedRunEqualsSeparateRuns() async throws {
    try await offCooperativePool {
    let config = LoRATrainingConfig(rank: 4, alpha: 8, dropout: 0, targets: LlamaProjection.allCases, pruningRate: 0)
    let separate = try GradientFixture(spec: TinyModelSpec(), config: config)
    let packed = try GradientFixture(spec: TinyModelSpec(), config: config)
    let second = EncodedSample(tokens: [9, 4, 4, 50, 2, 7], lossMask: [false, false, true, true, true, true])
    let first = EncodedSample(tokens: checkTokens, lossMask: checkMask)
    var sum = 0.0
    for sample in [first, second] {
      sum += try separate.graph.run(tokens: sample.tokens, lossMask: sample.lossMask, gradientWeight: 1) { _, _ in LoRANoise() }.lossSum
    }
    let together = try packed.graph.run([first, second], gradientWeight: 1) { _, _ in LoRANoise() }
    #expect(together.lossTokens == 10)
    #expect(abs(together.lossSum - sum) <= 1e-5 * sum)
    for (a, b) in zip(separate.parameters.modules, packed.parameters.modules) {
      let ga = a.gradA.array + a.gradB.array
      let gb = b.gradA.array + b.gradB.array
      let largest = ga.map(abs).max()!
      #expect(zip(ga, gb).allSatisfy { abs($0 - $1) <= 1e-4 * largest }, "\(a.target)")
    }
    }
  }

  /// Recomputing activations in the backward gives the same gradients, bit for bit, with the
  /// same noise (dropout regenerated from its seed, masks kept).
  @Test func recomputedActivationsGiveTheSameGradients() async throws {
    try await offCooperativePool {
    let config = LoRATrainingConfig(
      rank: 4, alpha: 8, dropout: 0.2, targets: LlamaProjection.allCases, pruningRate: 0.5, granularity: .token)
    var results: [[UInt32]] = []
    for recompute in [false, true] {
      let fixture = try GradientFixture(spec: TinyModelSpec(matrixType: .q8_0), config: config, recompute: recompute)
      var random = TrainingRandom(seed: 8)
      let sampler = NoiseSampler(config: config)
      _ = try fixture.graph.run(tokens: checkTokens, lossMask: checkMask, gradientWeight: 1) {
        sampler.draw($0, tokens: $1, random: &random)
      }
      results.append(fixture.parameters.modules.flatMap { ($0.gradA.array + $0.gradB.array).map(\.bitPattern) })
    }
    #expect(results[0] == results[1])
    }
  }
}
}
