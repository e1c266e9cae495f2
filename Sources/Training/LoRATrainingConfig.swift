// What is trained and how the adapter's noise is drawn: rank, alpha, targets, input dropout,
// the DropLoRA rank mask (pruning rate and granularity) and the initialisation.
import Llama

/// Granularity of the DropLoRA rank mask.
public enum MaskGranularity: String, Sendable, Codable, CaseIterable {
  /// One r-vector per adapted module per optimizer step, shared by every token (the paper's text).
  case step
  /// An independent draw per token and rank element (the authors' released code: a dropout on
  /// the r-dimensional intermediate).
  case token
}

public enum LoRAMethod: String, Sendable, Codable, CaseIterable {
  case droplora
  /// Plain LoRA: no rank mask whatever the pruning rate.
  case lora
}

public enum LoRAInit: String, Sendable, Codable, CaseIterable {
  /// A Kaiming-uniform (bound 1/sqrt(in), as PEFT's kaiming_uniform_(a=√5)), B zero.
  case lora
  /// A ~ N(0, 1/r), B zero (PEFT's init_lora_weights="gaussian").
  case gaussian
  /// Top-r singular triplets of the dequantized weight (PiSSA).
  case pissa
  /// Bottom-r singular triplets (MiLoRA).
  case milora
}

public struct LoRATrainingConfig: Sendable, Codable, Equatable {
  public var rank: Int
  public var alpha: Double
  public var useRSLoRA: Bool
  /// Input dropout on x before A (PEFT's lora_dropout).
  public var dropout: Float
  public var targets: [LlamaProjection]
  public var method: LoRAMethod
  /// DropLoRA pruning rate p: each rank direction is dropped with probability p.
  public var pruningRate: Float
  public var granularity: MaskGranularity
  public var initialization: LoRAInit

  public init(
    rank: Int = 32, alpha: Double? = nil, useRSLoRA: Bool = false, dropout: Float = 0.05,
    targets: [LlamaProjection] = [.q, .k, .v, .up, .down], method: LoRAMethod = .droplora,
    pruningRate: Float = 0.5, granularity: MaskGranularity = .token, initialization: LoRAInit = .lora
  ) {
    self.rank = rank
    self.alpha = alpha ?? Double(2 * rank)
    self.useRSLoRA = useRSLoRA
    self.dropout = dropout
    self.targets = targets
    self.method = method
    self.pruningRate = pruningRate
    self.granularity = granularity
    self.initialization = initialization
  }

  /// s in y = W x + s·B·A x.
  public var scale: Float {
    useRSLoRA ? Float(alpha / Double(rank).squareRoot()) : Float(alpha / Double(rank))
  }

  /// The rank mask's drop probability in effect (0 for plain LoRA).
  public var effectivePruningRate: Float { method == .lora ? 0 : pruningRate }

  public func validate() throws(TrainingError) {
    guard rank >= 1, rank <= 4096 else { throw .invalidConfig("rank must be in 1...4096, is \(rank)") }
    guard alpha.isFinite, alpha > 0 else { throw .invalidConfig("alpha must be positive") }
    guard dropout >= 0, dropout < 1 else { throw .invalidConfig("lora dropout must be in [0, 1)") }
    guard pruningRate >= 0, pruningRate < 1 else { throw .invalidConfig("pruning rate must be in [0, 1)") }
    guard !targets.isEmpty else { throw .invalidConfig("no target projections") }
    guard Set(targets).count == targets.count else { throw .invalidConfig("a target is named twice") }
  }
}
