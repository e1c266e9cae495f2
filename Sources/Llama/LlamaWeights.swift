// The model's weights as views into the mapped GGUF file: nothing is copied. Tensor names and
// expected shapes are declared once here; loading a tensor is one line.
import CKernels
import GGUF
import Kernels

/// The linear projections of a layer, with their GGUF tensor names. LoRA targets these.
public enum LlamaProjection: String, CaseIterable, Sendable, Codable {
  case q = "attn_q"
  case k = "attn_k"
  case v = "attn_v"
  case o = "attn_output"
  case gate = "ffn_gate"
  case up = "ffn_up"
  case down = "ffn_down"

  public func tensorName(layer: Int) -> String { "blk.\(layer).\(rawValue).weight" }

  /// The projection's matrix shape in a model with `hyper` (rows = outputs, columns = inputs).
  public func shape(_ hyper: LlamaHyperParameters) -> (rows: Int, columns: Int) {
    let d = hyper.embeddingLength
    switch self {
    case .q: return (hyper.queryDimension, d)
    case .k, .v: return (hyper.kvDimension, d)
    case .o: return (d, hyper.queryDimension)
    case .gate, .up: return (hyper.feedForwardLength, d)
    case .down: return (d, hyper.feedForwardLength)
    }
  }
}

/// A dense fp32 vector of the model (norm weights, biases), copied out of the file at load.
public struct VectorView: @unchecked Sendable {
  // unchecked: read-only memory that the weights' VectorStorage keeps alive.
  public let base: UnsafePointer<Float>
  public let count: Int
}

/// Owns the copies of the model's vectors. They are copied because every step reads them: in
/// the mapping, each read would keep its page and, by the kernel's fault-around, the 64 KiB
/// around it (pages of the matrices beside it) resident, after those matrices were repacked
/// and their file pages given back.
final class VectorStorage: @unchecked Sendable {
  // unchecked: appended to only while the loader runs, read-only afterwards.
  private var buffers: [UnsafeMutablePointer<Float>] = []

  func copy(_ source: UnsafePointer<Float>, count: Int) -> UnsafePointer<Float> {
    let buffer = UnsafeMutablePointer<Float>.allocate(capacity: max(1, count))
    buffer.update(from: source, count: count)
    buffers.append(buffer)
    return UnsafePointer(buffer)
  }

  deinit { for buffer in buffers { buffer.deallocate() } }
}

public struct LlamaLayerWeights: Sendable {
  public let attentionNorm: VectorView
  public let feedForwardNorm: VectorView
  public let projections: [LlamaProjection: WeightMatrix]
  public let queryBias: VectorView?
  public let keyBias: VectorView?
  public let valueBias: VectorView?
  /// Per-head RMSNorm weights of q and k ([headDimension]), for families that have them.
  public let queryNorm: VectorView?
  public let keyNorm: VectorView?
  /// RMSNorms of the attention and feed-forward outputs before the residual add (Gemma).
  public let postAttentionNorm: VectorView?
  public let postFeedForwardNorm: VectorView?

  public func matrix(_ projection: LlamaProjection) -> WeightMatrix { projections[projection]! }
}

public struct LlamaWeights: Sendable {
  public let tokenEmbedding: WeightMatrix
  public let outputNorm: VectorView
  /// The output matrix; the token embedding when the model ties them.
  public private(set) var output: WeightMatrix
  /// Llama 3.1 RoPE scaling: the rotation frequency of pair i is divided by factor i.
  public let ropeFrequencyFactors: VectorView?
  public private(set) var layers: [LlamaLayerWeights]
  /// The memory of every VectorView above.
  private let vectorStorage: VectorStorage

  /// Every tensor of the file must be one this forward pass uses: an unknown one (an extra
  /// norm, a bias, scaling factors) would otherwise be ignored and the logits silently wrong.
  public init(file: GGUFFile, hyper: LlamaHyperParameters) throws {
    let loader = TensorLoader(file: file)
    let family = hyper.family
    let d = hyper.embeddingLength
    tokenEmbedding = try loader.matrix("token_embd.weight", columns: d, rows: nil)
    let vocabularySize = tokenEmbedding.rows
    outputNorm = try loader.vector("output_norm.weight", count: d)
    if file.tensor(named: "output.weight") != nil {
      output = try loader.matrix("output.weight", columns: d, rows: vocabularySize)
    } else {
      output = tokenEmbedding
    }
    ropeFrequencyFactors =
      family.allowsRoPEFrequencyFactors
      ? try loader.optionalVector("rope_freqs.weight", count: hyper.ropeDimension / 2) : nil
    layers = try (0..<hyper.layerCount).map { layer in
      var projections: [LlamaProjection: WeightMatrix] = [:]
      for projection in LlamaProjection.allCases {
        let shape = projection.shape(hyper)
        projections[projection] = try loader.matrix(
          projection.tensorName(layer: layer), columns: shape.columns, rows: shape.rows)
      }
      return LlamaLayerWeights(
        attentionNorm: try loader.vector("blk.\(layer).attn_norm.weight", count: d),
        feedForwardNorm: try loader.vector("blk.\(layer).ffn_norm.weight", count: d),
        projections: projections,
        queryBias: family.allowsQKVBias
          ? try loader.optionalVector("blk.\(layer).attn_q.bias", count: hyper.queryDimension) : nil,
        keyBias: family.allowsQKVBias
          ? try loader.optionalVector("blk.\(layer).attn_k.bias", count: hyper.kvDimension) : nil,
        valueBias: family.allowsQKVBias
          ? try loader.optionalVector("blk.\(layer).attn_v.bias", count: hyper.kvDimension) : nil,
        queryNorm: family.hasQueryKeyNorm
          ? try loader.vector("blk.\(layer).attn_q_norm.weight", count: hyper.headDimension) : nil,
        keyNorm: family.hasQueryKeyNorm
          ? try loader.vector("blk.\(layer).attn_k_norm.weight", count: hyper.headDimension) : nil,
        postAttentionNorm: family.hasPostNorms
          ? try loader.vector("blk.\(layer).post_attention_norm.weight", count: d) : nil,
        postFeedForwardNorm: family.hasPostNorms
          ? try loader.vector("blk.\(layer).post_ffw_norm.weight", count: d) : nil)
    }
    vectorStorage = loader.vectors
    if let unused = file.tensors.map(\.name).first(where: { !loader.used.contains($0) }) {
      throw LlamaError.unsupportedFeature(
        name: unused, reason: "is a tensor the \(hyper.architecture) forward pass does not use")
    }
  }

  /// The same weights with `transform` applied to every matrix the products read (each layer's
  /// projections and the output matrix; the token embedding is only ever read by rows).
  func mappingProductMatrices(_ transform: (WeightMatrix) -> WeightMatrix) -> LlamaWeights {
    var copy = self
    copy.output = transform(output)
    copy.layers = layers.map { weights in
      LlamaLayerWeights(
        attentionNorm: weights.attentionNorm, feedForwardNorm: weights.feedForwardNorm,
        projections: weights.projections.mapValues(transform),
        queryBias: weights.queryBias, keyBias: weights.keyBias, valueBias: weights.valueBias,
        queryNorm: weights.queryNorm, keyNorm: weights.keyNorm,
        postAttentionNorm: weights.postAttentionNorm, postFeedForwardNorm: weights.postFeedForwardNorm)
    }
    return copy
  }

  /// The same weights with some projection matrices swapped for others of the same shape
  /// (merged adapters); everything not named in `replacements` stays the original view.
  public func replacing(_ replacements: [Int: [LlamaProjection: WeightMatrix]]) -> LlamaWeights {
    var copy = self
    copy.layers = layers.enumerated().map { layer, weights in
      guard let swapped = replacements[layer] else { return weights }
      return LlamaLayerWeights(
        attentionNorm: weights.attentionNorm, feedForwardNorm: weights.feedForwardNorm,
        projections: weights.projections.merging(swapped) { _, new in new },
        queryBias: weights.queryBias, keyBias: weights.keyBias, valueBias: weights.valueBias,
        queryNorm: weights.queryNorm, keyNorm: weights.keyNorm,
        postAttentionNorm: weights.postAttentionNorm, postFeedForwardNorm: weights.postFeedForwardNorm)
    }
    return copy
  }
}

/// Looks tensors up by name and checks their type and shape before handing out views.
final class TensorLoader {
  let file: GGUFFile
  /// Names of the tensors handed out so far.
  private(set) var used: Set<String> = []
  /// The copies `vector` hands out.
  let vectors = VectorStorage()

  init(file: GGUFFile) { self.file = file }

  func info(_ name: String) throws -> GGUFTensorInfo {
    guard let info = file.tensor(named: name) else { throw LlamaError.missingTensor(name: name) }
    used.insert(name)
    return info
  }

  /// A matrix of `rows` x `columns` (GGUF dims [columns, rows]); `rows: nil` accepts any.
  func matrix(_ name: String, columns: Int, rows: Int?) throws -> WeightMatrix {
    let info = try info(name)
    let dims = info.dimensions
    guard dims.count == 2, dims[0] == columns, rows == nil || dims[1] == rows else {
      throw LlamaError.wrongShape(name: name, expected: [columns, rows ?? -1], found: dims)
    }
    let bytes = file.bytes(of: info)
    guard
      let matrix = WeightMatrix(
        type: info.type.rawValue, rows: dims[1], columns: dims[0], base: bytes.baseAddress!),
      matrix.byteCount <= bytes.count
    else {
      throw LlamaError.unsupportedTensorType(name: name, type: info.type.name)
    }
    return matrix
  }

  func vector(_ name: String, count: Int) throws -> VectorView {
    let info = try info(name)
    guard info.dimensions == [count] else {
      throw LlamaError.wrongShape(name: name, expected: [count], found: info.dimensions)
    }
    guard info.type == .f32 else {
      throw LlamaError.unsupportedTensorType(name: name, type: info.type.name)
    }
    let bytes = file.bytes(of: info)
    guard Int(bitPattern: bytes.baseAddress) % MemoryLayout<Float>.alignment == 0 else {
      throw LlamaError.invalidMetadata(key: "general.alignment", reason: "tensor '\(name)' is not 4-byte aligned")
    }
    return VectorView(
      base: vectors.copy(bytes.baseAddress!.assumingMemoryBound(to: Float.self), count: count), count: count)
  }

  func optionalVector(_ name: String, count: Int) throws -> VectorView? {
    file.tensor(named: name) == nil ? nil : try vector(name, count: count)
  }
}
