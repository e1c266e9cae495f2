// Draws the training noise of the LoRA branches: input dropout (per token and input element)
// and the DropLoRA rank mask, per token and rank element (`token`) or one r-vector per module
// per optimizer step (`step`). Kept entries carry 1/(1-p). With p = 0 (or method lora) no rank
// mask is drawn and no random number is consumed for it, so the run is exactly LoRA's.

public struct NoiseSampler: Sendable {
  public let config: LoRATrainingConfig

  public init(config: LoRATrainingConfig) { self.config = config }

  /// New step masks for every module (`step` granularity with p > 0); called once per optimizer step.
  public func drawStepMasks(_ parameters: LoRAParameters, random: inout TrainingRandom) {
    let p = config.effectivePruningRate
    guard p > 0, config.granularity == .step else { return }
    for module in parameters.modules {
      random.fillKeepMask(module.stepMask.pointer, count: module.rank, dropProbability: p)
    }
  }

  /// The noise of one module for a run of `tokens` tokens (valid until its next draw: the
  /// token-mask buffer is the module's, reused).
  public func draw(_ module: LoRAModule, tokens: Int, random: inout TrainingRandom) -> LoRANoise {
    var noise = LoRANoise()
    if config.dropout > 0 {
      // One word of the trainer's stream seeds the factors (see LoRANoise.fillDropout).
      noise.dropoutSeed = random.next()
      noise.dropoutRate = config.dropout
    }
    let p = config.effectivePruningRate
    if p > 0 {
      switch config.granularity {
      case .token:
        if module.tokenMaskStorage.count < tokens * module.rank {
          module.tokenMaskStorage = FloatBuffer(tokens * module.rank)
        }
        let buffer = module.tokenMaskStorage
        random.fillKeepMask(buffer.pointer, count: tokens * module.rank, dropProbability: p)
        noise.tokenMask = buffer
      case .step:
        noise.stepMask = module.stepMask
      }
    }
    return noise
  }
}
