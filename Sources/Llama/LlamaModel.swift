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
  /// The r16 copies the products read (see RepackedWeights); nil when nothing was repacked.
  let repacked: RepackedWeights?

  /// `repackWeights`: repack the k-quant matrices for the AVX-512 VNNI kernels where the CPU
  /// has them (the default, unless DROPLORA_REPACK=0); false keeps every product on the file.
  public init(file: GGUFFile, repackWeights: Bool = LlamaModel.repacksWeightsByDefault) throws {
    self.file = file
    hyper = try LlamaHyperParameters(file: file)
    let weights = try LlamaWeights(file: file, hyper: hyper)
    if repackWeights {
      let repacked = RepackedWeights(file: file)
      self.weights = weights.mappingProductMatrices(repacked.repack)
      self.repacked = repacked.byteCount > 0 ? repacked : nil
    } else {
      self.weights = weights
      repacked = nil
    }
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
    repacked = base.repacked
  }

  public convenience init(path: String, repackWeights: Bool = LlamaModel.repacksWeightsByDefault) throws {
    try self.init(file: try GGUFFile(path: path), repackWeights: repackWeights)
  }

  /// Whether loads repack the k-quant matrices: yes, unless the environment sets DROPLORA_REPACK=0.
  public static var repacksWeightsByDefault: Bool { RepackedWeights.enabledByDefault }

  /// Bytes of the repacked copies the products read (0: none).
  public var repackedByteCount: Int { repacked?.byteCount ?? 0 }

  public var vocabularySize: Int { weights.tokenEmbedding.rows }

  /// Gives back the file pages that embedding lookups mapped, when no product reads the table
  /// (the output matrix is its own tensor, or the products read a repacked copy of it). A
  /// lookup faults in one row, and the kernel maps the 64 KiB around it as well (fault-around;
  /// madvise(MADV_RANDOM) does not stop it), so a 256-token random prompt held 15 MiB of a
  /// 1.7B model's table, and a long-running daemon would come to hold all of it, for rows the
  /// page cache serves again at the next lookup anyway.
  func releaseEmbeddingPages() {
    let table = weights.tokenEmbedding
    let readByProducts = weights.output.base == table.base && !weights.output.isRepacked
    guard !readByProducts else { return }
    file.releasePages(table.base, count: table.byteCount)
  }

  /// The RoPE of `layer`: the sliding layers' own, or the model's.
  public func rope(layer: Int) -> RoPEFrequencies {
    hyper.isSliding(layer) ? slidingRope! : rope
  }

  /// The widest input any matmul of this model takes (sizes the matmul workspace).
  var widestMatrixInput: Int {
    max(hyper.embeddingLength, hyper.queryDimension, hyper.feedForwardLength)
  }
}
