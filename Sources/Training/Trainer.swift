// The trainer: one adapter's parameters, optimizer and noise on a shared, frozen base model.
// A step takes one batch (the effective batch), runs it in micro-batches whose gradients
// accumulate (the sequences of a micro-batch packed into one forward, so every weight tile is
// dequantized once per micro-batch rather than once per sequence), normalises by the batch's loss tokens (every target token weighs the same, as
// if the batch were one), clips, and applies AdamW. A step can be cancelled between
// micro-batches; it then leaves no trace (gradients dropped, the random state rewound).
// The daemon drives this same type in the background; nothing here knows about services.
import Adapters
import Dispatch
import Foundation
import Kernels
import Llama

public struct TrainerConfig: Sendable, Codable, Equatable {
  public var lora: LoRATrainingConfig
  public var optimizer: AdamWConfig
  public var learningRate: Float
  public var schedule: ScheduleKind
  public var warmupSteps: Int
  /// Optimizer steps the schedule spans.
  public var totalSteps: Int
  /// Sequences per micro-batch (gradients of a batch accumulate over its micro-batches).
  public var microBatch: Int
  public var maxSequenceLength: Int
  public var seed: UInt64
  public var threads: Int
  /// Recompute activations per layer in the backward (less memory, one more forward pass).
  public var recomputeActivations: Bool = false
  /// Fill each micro-batch with as many sequences as fit in `microBatch · maxSequenceLength`
  /// tokens instead of exactly `microBatch` of them: short samples then share one forward
  /// (larger, faster matrix products). Attention and positions stay per sample either way.
  public var packSequences: Bool = false
  /// Precision of the frozen base's products (see ComputeType).
  public var computeType: ComputeType = .f32

  public init(
    lora: LoRATrainingConfig = LoRATrainingConfig(), optimizer: AdamWConfig = AdamWConfig(),
    learningRate: Float = 3e-4, schedule: ScheduleKind = .linear, warmupSteps: Int = 0,
    totalSteps: Int = 100, microBatch: Int = 1, maxSequenceLength: Int = 512, seed: UInt64 = 0,
    threads: Int = 1
  ) {
    self.lora = lora
    self.optimizer = optimizer
    self.learningRate = learningRate
    self.schedule = schedule
    self.warmupSteps = warmupSteps
    self.totalSteps = totalSteps
    self.microBatch = microBatch
    self.maxSequenceLength = maxSequenceLength
    self.seed = seed
    self.threads = threads
  }

  /// Tokens one micro-batch holds (all its sequences together).
  public var microBatchTokens: Int { microBatch * maxSequenceLength }

  /// `batch` cut into micro-batches, in order: `microBatch` sequences each, or with
  /// `packSequences` as many consecutive sequences as fit in `microBatchTokens`.
  public func microBatches(of batch: [EncodedSample]) -> [ArraySlice<EncodedSample>] {
    if packSequences { return packedRuns(batch, tokenCapacity: microBatchTokens) }
    return stride(from: 0, to: batch.count, by: microBatch).map { batch[$0..<min(batch.count, $0 + microBatch)] }
  }

  public var learningRateSchedule: LearningRateSchedule {
    LearningRateSchedule(kind: schedule, peak: learningRate, warmupSteps: warmupSteps, totalSteps: totalSteps)
  }

  public func validate() throws(TrainingError) {
    try lora.validate()
    guard learningRate > 0, learningRate.isFinite else { throw .invalidConfig("learning rate must be positive") }
    guard microBatch >= 1 else { throw .invalidConfig("micro-batch must be at least 1") }
    guard maxSequenceLength >= 2 else { throw .invalidConfig("max sequence length must be at least 2") }
    guard threads >= 1 else { throw .invalidConfig("threads must be at least 1") }
    guard totalSteps >= 1 else { throw .invalidConfig("total steps must be at least 1") }
    if let why = computeType.unsupportedReason { throw .invalidConfig("compute type " + why) }
  }
}

/// `samples` cut, in order, into runs of as many consecutive samples as fit in `tokenCapacity`
/// tokens (a longer sample runs alone).
func packedRuns(_ samples: [EncodedSample], tokenCapacity: Int) -> [ArraySlice<EncodedSample>] {
  var runs: [ArraySlice<EncodedSample>] = []
  var first = 0
  while first < samples.count {
    var end = first + 1
    var tokens = samples[first].tokens.count
    while end < samples.count && tokens + samples[end].tokens.count <= tokenCapacity {
      tokens += samples[end].tokens.count
      end += 1
    }
    runs.append(samples[first..<end])
    first = end
  }
  return runs
}

extension TrainerConfig {
  // Written by hand only so checkpoints from before a newer optional field still load.
  public init(from decoder: any Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    lora = try c.decode(LoRATrainingConfig.self, forKey: .lora)
    optimizer = try c.decode(AdamWConfig.self, forKey: .optimizer)
    learningRate = try c.decode(Float.self, forKey: .learningRate)
    schedule = try c.decode(ScheduleKind.self, forKey: .schedule)
    warmupSteps = try c.decode(Int.self, forKey: .warmupSteps)
    totalSteps = try c.decode(Int.self, forKey: .totalSteps)
    microBatch = try c.decode(Int.self, forKey: .microBatch)
    maxSequenceLength = try c.decode(Int.self, forKey: .maxSequenceLength)
    seed = try c.decode(UInt64.self, forKey: .seed)
    threads = try c.decode(Int.self, forKey: .threads)
    recomputeActivations = try c.decodeIfPresent(Bool.self, forKey: .recomputeActivations) ?? false
    packSequences = try c.decodeIfPresent(Bool.self, forKey: .packSequences) ?? false
    computeType = try c.decodeIfPresent(ComputeType.self, forKey: .computeType) ?? .f32
  }
}

public struct StepReport: Sendable, Codable, Equatable {
  /// Optimizer steps taken, this one included.
  public var step: Int
  /// Mean cross-entropy per loss token over the batch.
  public var loss: Double
  public var lossTokens: Int
  /// Tokens run through the model (prompt and answer).
  public var tokens: Int
  public var learningRate: Float
  public var gradientNorm: Double
  public var seconds: Double
}

public final class Trainer: @unchecked Sendable {
  // unchecked: one owner drives a trainer at a time (steps are not reentrant).
  public let model: LlamaModel
  public let config: TrainerConfig
  public let parameters: LoRAParameters
  public let optimizer: AdamW
  public internal(set) var random: TrainingRandom
  let sampler: NoiseSampler
  let graph: TrainingGraph
  let pool: ThreadPool

  public init(model: LlamaModel, config: TrainerConfig) throws(TrainingError) {
    try config.validate()
    self.model = model
    self.config = config
    parameters = LoRAParameters(config: config.lora, hyper: model.hyper)
    optimizer = AdamW(config: config.optimizer, parameters: parameters)
    random = TrainingRandom(seed: config.seed)
    sampler = NoiseSampler(config: config.lora)
    pool = ThreadPool(threads: config.threads)
    // A micro-batch runs packed: capacity for microBatch sequences of the longest length.
    graph = TrainingGraph(
      model: model, parameters: parameters, maxTokens: config.microBatchTokens,
      maxSequence: config.maxSequenceLength, recompute: config.recomputeActivations,
      computeType: config.computeType, pool: pool)
    try LoRAInitializer.initialize(parameters, model: model, random: &random, pool: pool)
  }

  /// Optimizer steps taken so far.
  public var stepCount: Int { optimizer.step }

  /// One optimizer step over `batch`. Returns nil, with nothing changed, when `isCancelled`
  /// turns true between micro-batches.
  public func step(_ batch: [EncodedSample], isCancelled: () -> Bool = { false }) throws(TrainingError)
    -> StepReport?
  {
    let start = DispatchTime.now().uptimeNanoseconds
    let savedRandom = random
    let lossTokens = batch.reduce(0) { $0 + $1.lossTokenCount }
    let weight = lossTokens > 0 ? 1 / Float(lossTokens) : 0
    parameters.zeroGradients()
    sampler.drawStepMasks(parameters, random: &random)
    var lossSum = 0.0
    var tokens = 0
    for micro in config.microBatches(of: batch) {
      if isCancelled() {
        random = savedRandom
        parameters.zeroGradients()
        return nil
      }
      let result = try graph.run(Array(micro), gradientWeight: weight) {
        sampler.draw($0, tokens: $1, random: &random)
      }
      lossSum += result.lossSum
      tokens += micro.reduce(0) { $0 + $1.tokens.count }
    }
    let lr = config.learningRateSchedule.rate(atStep: optimizer.step)
    let norm = optimizer.update(parameters, lr: lr, pool: pool)
    guard norm.isFinite else { throw .numerics("gradient norm is \(norm) at step \(optimizer.step)") }
    let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
    return StepReport(
      step: optimizer.step, loss: lossTokens > 0 ? lossSum / Double(lossTokens) : 0,
      lossTokens: lossTokens, tokens: tokens, learningRate: lr, gradientNorm: norm, seconds: seconds)
  }

  /// Mean loss per loss token over `samples` with the adapter as it is (no dropout, no mask).
  public func evaluate(_ samples: [EncodedSample]) throws(TrainingError) -> (loss: Double, lossTokens: Int) {
    var sum = 0.0
    var count = 0
    for micro in config.microBatches(of: samples) {
      let result = try graph.run(Array(micro), gradientWeight: nil) { _, _ in LoRANoise() }
      sum += result.lossSum
      count += result.lossTokens
    }
    return (count > 0 ? sum / Double(count) : 0, count)
  }

  /// The adapter as an ordinary LoRA adapter (for the registry to merge, or to write).
  public func snapshot() -> LoRAAdapter {
    parameters.snapshot(baseModelName: model.file.path.split(separator: "/").last.map(String.init))
  }
}
