// A loaded Llama-family model: the mapped file, its hyper-parameters and weight views.
// Immutable and shared by every context (serving sequences, the trainer).
import CKernels
import GGUF
import Kernels

public final class LlamaModel: Sendable {
  public let file: GGUFFile
  public let hyper: LlamaHyperParameters
  public let weights: LlamaWeights
  public let rope: RoPEFrequencies
  /// The sliding-window layers' RoPE, when the model has such layers.
  public let slidingRope: RoPEFrequencies?
  /// Keeps the memory of replaced matrices alive (a merged adapter's buffers); nil for a model
  /// read straight from its file.
  public let owner: (any AnyObject & Sendable)?

  public init(file: GGUFFile) throws {
    self.file = file
    hyper = try LlamaHyperParameters(file: file)
    weights = try LlamaWeights(file: file, hyper: hyper)
    rope = RoPEFrequencies(hyper: hyper, factors: weights.ropeFrequencyFactors)
    slidingRope = RoPEFrequencies.sliding(hyper)
    owner = nil
    // A decode step reads every weight once: past the last-level cache they come from memory,
    // where the matvec walks one row per pass (see dq_set_weights_stream_from_memory).
    let weightBytes = Int64(file.fileSize - file.dataOffset)
    dq_set_weights_stream_from_memory(weightBytes > dq_cpu_last_level_cache_bytes())
  }

  /// `base` with some projection matrices replaced by views into memory `owner` keeps alive;
  /// untouched matrices stay views into the base's mapping (kept alive through `file`).
  public init(
    base: LlamaModel, replacing replacements: [Int: [LlamaProjection: WeightMatrix]],
    owner: any AnyObject & Sendable
  ) {
    file = base.file
    hyper = base.hyper
    weights = base.weights.replacing(replacements)
    rope = base.rope
    slidingRope = base.slidingRope
    self.owner = owner
  }

  public convenience init(path: String) throws {
    try self.init(file: try GGUFFile(path: path))
  }

  public var vocabularySize: Int { weights.tokenEmbedding.rows }

  /// The RoPE of `layer`: the sliding layers' own, or the model's.
  public func rope(layer: Int) -> RoPEFrequencies {
    hyper.isSliding(layer) ? slidingRope! : rope
  }

  /// The widest input any matmul of this model takes (sizes the matmul workspace).
  var widestMatrixInput: Int {
    max(hyper.embeddingLength, hyper.queryDimension, hyper.feedForwardLength)
  }
}
