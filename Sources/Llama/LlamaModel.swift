// A loaded Llama-family model: the mapped file, its hyper-parameters and weight views.
// Immutable and shared by every context (serving sequences, the trainer).
import GGUF
import Kernels

public final class LlamaModel: Sendable {
  public let file: GGUFFile
  public let hyper: LlamaHyperParameters
  public let weights: LlamaWeights

  public init(file: GGUFFile) throws {
    self.file = file
    hyper = try LlamaHyperParameters(file: file)
    weights = try LlamaWeights(file: file, hyper: hyper)
  }

  public convenience init(path: String) throws {
    try self.init(file: try GGUFFile(path: path))
  }

  public var vocabularySize: Int { weights.tokenEmbedding.rows }

  /// The widest input any matmul of this model takes (sizes the matmul workspace).
  var widestMatrixInput: Int {
    max(hyper.embeddingLength, hyper.queryDimension, hyper.feedForwardLength)
  }
}
