// The trainer on a tiny model: determinism (same seed and data, same loss curve, bit for bit),
// p = 0 is exactly LoRA, resume equals an uninterrupted run, a cancelled step leaves no trace,
// PiSSA starts at the base and exports as an ordinary adapter, and the optimizer and schedule
// against their formulas.
import Adapters
import Foundation
import Kernels
import Llama
import Testing
import Training
import TinyModelSupport

/// Random token sequences with answers in their second half.
func tinySamples(count: Int, seed: UInt64, vocabulary: Int = 61) -> [EncodedSample] {
  var random = SplitMix(seed: seed)
  return (0..<count).map { _ in
    let length = 6 + Int(random.next() % 7)
    let tokens = (0..<length).map { _ in Int32(random.next() % UInt64(vocabulary)) }
    let mask = (0..<length).map { $0 >= length / 2 }
    return EncodedSample(tokens: tokens, lossMask: mask)
  }
}

func tinyConfig(
  method: LoRAMethod = .droplora, p: Float = 0.3, granularity: MaskGranularity = .token,
  initialization: LoRAInit = .lora, dropout: Float = 0.1
) -> TrainerConfig {
  TrainerConfig(
    lora: LoRATrainingConfig(
      rank: 4, alpha: 8, dropout: dropout, targets: [.q, .k, .v, .o, .gate, .up, .down], method: method,
      pruningRate: p, granularity: granularity, initialization: initialization),
    optimizer: AdamWConfig(weightDecay: 0.01, maxGradNorm: 1), learningRate: 1e-2, schedule: .cosine,
    warmupSteps: 2, totalSteps: 8, microBatch: 2, maxSequenceLength: 16, seed: 42, threads: 1)
}

/// Losses of `steps` steps of batches of 3 from the start of the data order.
func runSteps(_ trainer: Trainer, data: inout TrainingData, position: inout DataPosition, steps: Int) throws -> [Double] {
  var losses: [Double] = []
  for _ in 0..<steps {
    let batch = data.nextBatch(size: 3, position: &position)
    losses.append(try trainer.step(batch)!.loss)
  }
  return losses
}

/// A reduced-precision compute type trains the tiny model deterministically (two runs, the same
/// losses), differs from f32 (it rounds somewhere), lowers the loss, and stays within 1 % of
/// f32's losses over six steps.
func expectDeterministicAndLearnsLikeF32(_ computeType: ComputeType) throws {
  let tiny = try TinyModel(TinyModelSpec(matrixType: .q4_1, embeddingType: .q8_0))
  let model = try LlamaModel(path: tiny.path)
  let samples = tinySamples(count: 7, seed: 1)
  var curves: [[Double]] = []
  for type in [computeType, computeType, .f32] {
    var config = tinyConfig()
    config.computeType = type
    let trainer = try Trainer(model: model, config: config)
    var data = TrainingData(samples: samples, seed: 42)
    var position = DataPosition()
    curves.append(try runSteps(trainer, data: &data, position: &position, steps: 6))
  }
  let (first, second, f32) = (curves[0], curves[1], curves[2])
  #expect(first == second)
  #expect(first != f32, "\(computeType) should round somewhere")
  #expect(first.last! < first.first!, "loss should fall: \(first)")
  for (a, b) in zip(first, f32) { #expect(abs(a - b) <= 1e-2 * b, "\(computeType) \(first) vs f32 \(f32)") }
}

func factorBits(_ adapter: LoRAAdapter) -> [UInt32] {
  adapter.targets.flatMap { t in (adapter.factors[t]!.a + adapter.factors[t]!.b).map(\.bitPattern) }
}

extension TrainingSuites {
@Suite(.serialized)
struct TrainerTests {
  let tiny: TinyModel
  let model: LlamaModel
  let samples = tinySamples(count: 7, seed: 1)

  init() throws {
    tiny = try TinyModel(TinyModelSpec(matrixType: .q8_0))
    model = try LlamaModel(path: tiny.path)
  }

  @Test(arguments: [MaskGranularity.token, .step])
  func sameSeedSameLossCurve(_ granularity: MaskGranularity) async throws {
    try await offCooperativePool {
    var curves: [[Double]] = []
    var adapters: [[UInt32]] = []
    for _ in 0..<2 {
      let trainer = try Trainer(model: model, config: tinyConfig(granularity: granularity))
      var data = TrainingData(samples: samples, seed: 42)
      var position = DataPosition()
      curves.append(try runSteps(trainer, data: &data, position: &position, steps: 6))
      adapters.append(factorBits(trainer.snapshot()))
    }
    #expect(curves[0] == curves[1])
    #expect(adapters[0] == adapters[1])
    #expect(curves[0].last! < curves[0].first!, "loss should fall: \(curves[0])")
    // Another seed draws other noise and another order: another curve.
    var other = tinyConfig(granularity: granularity)
    other.seed = 7
    let trainer = try Trainer(model: model, config: other)
    var data = TrainingData(samples: samples, seed: 7)
    var position = DataPosition()
    #expect(try runSteps(trainer, data: &data, position: &position, steps: 6) != curves[0])
    }
  }

  @Test func pruningRateZeroIsExactlyLoRA() async throws {
    try await offCooperativePool {
    var bits: [[UInt32]] = []
    var curves: [[Double]] = []
    for config in [tinyConfig(method: .droplora, p: 0), tinyConfig(method: .lora, p: 0.5)] {
      let trainer = try Trainer(model: model, config: config)
      var data = TrainingData(samples: samples, seed: 42)
      var position = DataPosition()
      curves.append(try runSteps(trainer, data: &data, position: &position, steps: 4))
      bits.append(factorBits(trainer.snapshot()))
    }
    #expect(curves[0] == curves[1])
    #expect(bits[0] == bits[1])
    }
  }

  @Test(arguments: [MaskGranularity.token, .step])
  func resumeEqualsUninterrupted(_ granularity: MaskGranularity) async throws {
    try await offCooperativePool {
    let config = tinyConfig(granularity: granularity)
    let straight = try Trainer(model: model, config: config)
    var data = TrainingData(samples: samples, seed: 42)
    var position = DataPosition()
    let straightLosses = try runSteps(straight, data: &data, position: &position, steps: 6)

    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("resume-\(UUID().uuidString)").path
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let first = try Trainer(model: model, config: config)
    var data1 = TrainingData(samples: samples, seed: 42)
    var position1 = DataPosition()
    var losses = try runSteps(first, data: &data1, position: &position1, steps: 2)
    try first.saveCheckpoint(to: directory, dataPosition: position1)
    losses += try runSteps(first, data: &data1, position: &position1, steps: 1)
    try first.saveCheckpoint(to: directory, dataPosition: position1)  // replaces the first one

    let resumed = try Trainer(model: model, config: config)
    var position2 = try resumed.loadCheckpoint(from: directory)
    #expect(resumed.stepCount == 3)
    var data2 = TrainingData(samples: samples, seed: 42)
    losses += try runSteps(resumed, data: &data2, position: &position2, steps: 3)
    #expect(losses == straightLosses)
    #expect(factorBits(resumed.snapshot()) == factorBits(straight.snapshot()))
    // The checkpoint's adapter reads back as a PEFT adapter.
    let adapter = try PEFTFormat.read(path: directory + "/checkpoint/adapter", base: model.hyper)
    #expect(adapter.factors.count == 14)
    #expect(!FileManager.default.fileExists(atPath: directory + "/checkpoint.tmp"))
    #expect(!FileManager.default.fileExists(atPath: directory + "/checkpoint.old"))
    }
  }

  /// Packing puts several samples in one forward; attention and positions stay per sample, so
  /// the step's loss and gradients are those of the unpacked step.
  @Test func packedStepEqualsUnpackedStep() async throws {
    try await offCooperativePool {
    var config = tinyConfig(method: .lora, p: 0, dropout: 0)
    config.microBatch = 1
    var packed = config
    packed.microBatch = 2
    packed.packSequences = true
    let batch = Array(samples.prefix(6))
    let slices = packed.microBatches(of: batch)
    // Capacity 2 · 16 tokens: the 6 samples (6–12 tokens) fit in fewer, fuller forwards.
    #expect(slices.count < batch.count && slices.count >= 2)
    #expect(slices.flatMap { $0 }.map(\.tokens) == batch.map(\.tokens))
    #expect(slices.allSatisfy { $0.reduce(0) { $0 + $1.tokens.count } <= packed.microBatchTokens })
    #expect(slices.contains { $0.count > 1 })

    let one = try Trainer(model: model, config: config)
    let many = try Trainer(model: model, config: packed)
    let a = try one.step(batch)!
    let b = try many.step(batch)!
    #expect(a.tokens == b.tokens && a.lossTokens == b.lossTokens)
    #expect(abs(a.loss - b.loss) <= 1e-5 * a.loss, "unpacked \(a.loss) packed \(b.loss)")
    for (x, y) in zip(one.parameters.modules, many.parameters.modules) {
      for (gx, gy, n) in [(x.gradA, y.gradA, x.a.count), (x.gradB, y.gradB, x.b.count)] {
        let scale = (0..<n).reduce(Float(0)) { max($0, abs(gx.pointer[$1])) }
        let worst = (0..<n).reduce(Float(0)) { max($0, abs(gx.pointer[$1] - gy.pointer[$1])) }
        #expect(worst <= 1e-4 * scale + 1e-9, "\(x.target): gradients differ by \(worst) of \(scale)")
      }
    }
    }
  }

  @Test func cancelledStepLeavesNoTrace() async throws {
    try await offCooperativePool {
    let config = tinyConfig()
    let a = try Trainer(model: model, config: config)
    let b = try Trainer(model: model, config: config)
    let batch = Array(samples.prefix(4))
    var calls = 0
    #expect(try a.step(batch) { calls += 1; return calls == 2 } == nil)
    #expect(a.stepCount == 0)
    let ra = try a.step(batch)!
    let rb = try b.step(batch)!
    #expect(ra.loss == rb.loss)
    #expect(factorBits(a.snapshot()) == factorBits(b.snapshot()))
    }
  }

  /// PiSSA/MiLoRA: the model starts exactly at the base (frozen product subtracted), and the
  /// exported adapter (rank 2r) gives the trained model's loss through the evaluator.
  @Test(arguments: [LoRAInit.pissa, .milora, .gaussian])
  func initialisationsStartAtBaseAndExport(_ initialization: LoRAInit) async throws {
    try await offCooperativePool {
    let config = tinyConfig(initialization: initialization)
    let trainer = try Trainer(model: model, config: config)
    let base = try Evaluator(model: model, adapter: nil, maxSequenceLength: 16, threads: 1).loss(samples)
    let start = try trainer.evaluate(samples)
    #expect(abs(start.loss - base.loss) <= 1e-4 * base.loss, "\(start.loss) vs base \(base.loss)")
    var data = TrainingData(samples: samples, seed: 42)
    var position = DataPosition()
    _ = try runSteps(trainer, data: &data, position: &position, steps: 3)
    let trained = try trainer.evaluate(samples)
    #expect(trained.loss < start.loss)
    let exported = trainer.snapshot()
    #expect(exported.rank == (initialization == .gaussian ? 4 : 8))
    #expect(abs(exported.scale - config.lora.scale) < 1e-6)
    let viaExport = try Evaluator(model: model, adapter: exported, maxSequenceLength: 16, threads: 1).loss(samples)
    #expect(abs(viaExport.loss - trained.loss) <= 1e-4 * trained.loss)
    }
  }

  /// SVD initialisation: B0·A0·s reproduces W's top singular directions; for full rank the
  /// product is W itself.
  @Test func pissaFullRankReproducesWeight() async throws {
    try await offCooperativePool {
    var config = tinyConfig(initialization: .pissa)
    config.lora.rank = 64  // min(rows, columns) of q (64 x 64)
    config.lora.alpha = 64
    config.lora.targets = [.q]
    let trainer = try Trainer(model: model, config: config)
    let m = trainer.parameters.modules[0]
    let w = model.weights.layers[0].matrix(.q)
    var row = [Float](repeating: 0, count: w.columns)
    var worst: Float = 0
    for r in 0..<w.rows {
      row.withUnsafeMutableBufferPointer { w.dequantizeRow(r, into: $0.baseAddress!) }
      for c in 0..<w.columns {
        var sum: Float = 0
        for k in 0..<m.rank { sum += m.b[r * m.rank + k] * m.a[k * m.columns + c] }
        worst = max(worst, abs(config.lora.scale * sum - row[c]))
      }
    }
    #expect(worst < 1e-4)
    }
  }

  @Test func adamWMatchesItsFormula() async throws {
    try await offCooperativePool {
    let config = LoRATrainingConfig(rank: 1, alpha: 1, dropout: 0, targets: [.q], method: .lora, pruningRate: 0)
    let parameters = LoRAParameters(config: config, hyper: model.hyper)
    let optimizer = AdamW(config: AdamWConfig(weightDecay: 0.1, maxGradNorm: 0), parameters: parameters)
    let m0 = parameters.modules[0]
    m0.a[0] = 0.5
    var p = 0.5
    var m = 0.0
    var v = 0.0
    let pool = ThreadPool(threads: 1)
    for (t, g) in [0.3, -0.1, 0.7].enumerated() {
      parameters.zeroGradients()
      m0.gradA[0] = Float(g)
      optimizer.update(parameters, lr: 0.01, pool: pool)
      m = 0.9 * m + 0.1 * g
      v = 0.999 * v + 0.001 * g * g
      let mHat = m / (1 - pow(0.9, Double(t + 1)))
      let vHat = v / (1 - pow(0.999, Double(t + 1)))
      p = p * (1 - 0.01 * 0.1) - 0.01 * mHat / (vHat.squareRoot() + 1e-8)
      #expect(abs(Double(m0.a[0]) - p) < 1e-6)
    }
    // Global-norm clipping scales every gradient by max_norm / norm.
    let clipped = AdamW(config: AdamWConfig(maxGradNorm: 1), parameters: parameters)
    parameters.zeroGradients()
    m0.gradA[0] = 3
    m0.gradB[0] = 4
    #expect(clipped.update(parameters, lr: 0, pool: pool) == 5)
    }
  }

  @Test func schedules() async throws {
    try await offCooperativePool {
    let linear = LearningRateSchedule(kind: .linear, peak: 1, warmupSteps: 4, totalSteps: 14)
    #expect(linear.rate(atStep: 0) == 0)
    #expect(linear.rate(atStep: 2) == 0.5)
    #expect(linear.rate(atStep: 4) == 1)
    #expect(abs(linear.rate(atStep: 9) - 0.5) < 1e-6)
    #expect(linear.rate(atStep: 14) == 0)
    let cosine = LearningRateSchedule(kind: .cosine, peak: 2, warmupSteps: 0, totalSteps: 10)
    #expect(cosine.rate(atStep: 0) == 2)
    #expect(abs(cosine.rate(atStep: 5) - 1) < 1e-6)
    #expect(cosine.rate(atStep: 10) < 1e-6)
    }
  }

  @Test func dataOrderAndSplit() async throws {
    try await offCooperativePool {
    var data = TrainingData(samples: samples, seed: 3)
    var position = DataPosition()
    let epoch0 = data.nextBatch(size: 7, position: &position)
    #expect(Set(epoch0.map(\.tokens)) == Set(samples.map(\.tokens)))
    let next = data.nextBatch(size: 2, position: &position)
    #expect(position == DataPosition(epoch: 1, cursor: 2))
    var again = TrainingData(samples: samples, seed: 3)
    var resumed = DataPosition(epoch: 1, cursor: 0)
    #expect(again.nextBatch(size: 2, position: &resumed) == next)
    let (train, eval) = TrainingData.split(samples, evalFraction: 0.3, seed: 1)
    #expect(eval.count == 2 && train.count == 5)
    #expect(Set((train + eval).map(\.tokens)) == Set(samples.map(\.tokens)))
    }
  }

  /// Mask factors: 0 with probability p, else exactly 1/(1-p), so the mean stays 1.
  @Test(arguments: [Float(0.05), 0.3, 0.5])
  func keepMaskStatistics(_ p: Float) async throws {
    try await offCooperativePool {
    var random = TrainingRandom(seed: 12)
    let count = 200_003  // not a multiple of 4: the last word is used in part
    var mask = [Float](repeating: .nan, count: count)
    mask.withUnsafeMutableBufferPointer { random.fillKeepMask($0.baseAddress!, count: count, dropProbability: p) }
    let dropped = Double(mask.filter { $0 == 0 }.count) / Double(count)
    #expect(abs(dropped - Double(p)) < 0.005, "dropped \(dropped) for p \(p)")
    #expect(mask.allSatisfy { $0 == 0 || $0 == 1 / (1 - p) })
    let mean = mask.reduce(0.0) { $0 + Double($1) } / Double(count)
    #expect(abs(mean - 1) < 0.02)
    }
  }

  /// The mask fill (in CKernels) reads the generator's own stream: four 16-bit draws per
  /// next(), lowest first, and leaves the state where next() would.
  @Test func keepMaskFollowsTheStream() {
    var random = TrainingRandom(seed: 21)
    var words = random
    var mask = [Float](repeating: .nan, count: 6)
    mask.withUnsafeMutableBufferPointer { random.fillKeepMask($0.baseAddress!, count: 6, dropProbability: 0.5) }
    let draws = [words.next(), words.next()].flatMap { w in (0..<4).map { (w >> (16 * UInt64($0))) & 0xFFFF } }
    #expect(mask == draws.prefix(6).map { $0 < 32768 ? 0 : 2 })
    #expect(random == words)
  }

  /// The random state round-trips through its checkpoint form, {"state": [four words]}.
  @Test func randomStateCoding() async throws {
    try await offCooperativePool {
    var random = TrainingRandom(seed: 5)
    _ = random.next()
    let json = try JSONEncoder().encode(random)
    #expect(String(decoding: json, as: UTF8.self).hasPrefix(#"{"state":["#))
    var decoded = try JSONDecoder().decode(TrainingRandom.self, from: json)
    #expect(decoded == random)
    #expect(decoded.next() == random.next())
    #expect(throws: DecodingError.self) { try JSONDecoder().decode(TrainingRandom.self, from: Data(#"{"state":[0,0,0,0]}"#.utf8)) }
    }
  }
}
}
