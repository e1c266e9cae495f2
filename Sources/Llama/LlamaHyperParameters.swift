// Hyper-parameters of a Llama-family model, read from GGUF metadata under the architecture's
// prefix (`llama.block_count`, ...). Defaults follow llama.cpp where a key is optional.
import GGUF

public struct LlamaHyperParameters: Sendable, Equatable {
  /// Architectures whose forward pass is this one (Mistral GGUFs use `llama`).
  public static var supportedArchitectures: Set<String> { Set(ModelFamily.all.keys) }

  public var architecture: String
  public var family: ModelFamily
  public var layerCount: Int
  public var embeddingLength: Int
  public var feedForwardLength: Int
  public var headCount: Int
  public var kvHeadCount: Int
  public var headDimension: Int
  public var ropeDimension: Int
  public var ropeBase: Float
  /// Linear RoPE scaling: positions are multiplied by this (1 / scaling factor).
  public var ropeFrequencyScale: Float
  /// Qwen2 rotates pairs (i, i + d/2); GGUF Llama q/k rows are permuted for pairs (2i, 2i+1).
  public var ropeIsNeox: Bool { family.ropeIsNeox }
  public var rmsEpsilon: Float
  /// Positions a sliding-window layer attends to (itself included); 0 when no layer slides.
  public var slidingWindow: Int
  /// Every `slidingWindowPattern`-th layer (the last of each group) attends to everything;
  /// the others slide (llama.cpp's default of 6 for Gemma 3).
  public var slidingWindowPattern: Int
  /// RoPE base of the sliding layers (their scale is 1).
  public var slidingRopeBase: Float
  public var trainedContextLength: Int

  public var queryDimension: Int { headCount * headDimension }

  /// Whether `layer` attends only to the last `slidingWindow` positions.
  public func isSliding(_ layer: Int) -> Bool {
    slidingWindow > 0 && layer % slidingWindowPattern < slidingWindowPattern - 1
  }
  public var kvDimension: Int { kvHeadCount * headDimension }

  public init(file: GGUFFile) throws {
    guard let arch = file.architecture, let family = ModelFamily.all[arch] else {
      throw LlamaError.unsupportedArchitecture(file.architecture)
    }
    self.family = family
    try family.rejectUnimplementedMetadata(in: file)
    func required(_ suffix: String) throws -> Int {
      let key = "\(arch).\(suffix)"
      guard let value = try file.int(key) else { throw LlamaError.missingMetadata(key: key) }
      guard value > 0 else {
        throw LlamaError.invalidMetadata(key: key, reason: "must be positive, is \(value)")
      }
      return value
    }
    func optional(_ suffix: String) throws -> Int? {
      let key = "\(arch).\(suffix)"
      guard let value = try file.int(key) else { return nil }
      guard value > 0 else {
        throw LlamaError.invalidMetadata(key: key, reason: "must be positive, is \(value)")
      }
      return value
    }
    architecture = arch
    layerCount = try required("block_count")
    embeddingLength = try required("embedding_length")
    feedForwardLength = try required("feed_forward_length")
    headCount = try required("attention.head_count")
    kvHeadCount = try optional("attention.head_count_kv") ?? headCount
    headDimension = try optional("attention.key_length") ?? embeddingLength / headCount
    ropeDimension = try optional("rope.dimension_count") ?? headDimension
    trainedContextLength = try optional("context_length") ?? 2048
    ropeBase = Float(try file.float("\(arch).rope.freq_base") ?? 10000)
    rmsEpsilon = Float(try file.float("\(arch).attention.layer_norm_rms_epsilon") ?? 1e-5)
    if let valueLength = try optional("attention.value_length"), valueLength != headDimension {
      throw LlamaError.unsupportedFeature(
        name: "\(arch).attention.value_length",
        reason: "is \(valueLength), unlike the key length \(headDimension), which is not implemented")
    }

    ropeFrequencyScale = 1
    if let kind = try file.string("\(arch).rope.scaling.type"), kind != "none" {
      guard kind == "linear" else {
        throw LlamaError.unsupportedFeature(
          name: "\(arch).rope.scaling.type", reason: "'\(kind)' is not implemented (only none and linear)")
      }
      if let factor = try file.float("\(arch).rope.scaling.factor"), factor > 0 {
        ropeFrequencyScale = Float(1 / factor)
      }
    }

    slidingWindow = 0
    slidingWindowPattern = 1
    slidingRopeBase = 10000
    if family.hasSlidingWindow, let window = try optional("attention.sliding_window") {
      slidingWindow = window
      if file.metadata["\(arch).attention.sliding_window_pattern"] != nil {
        guard let pattern = try? file.int("\(arch).attention.sliding_window_pattern"), pattern > 0 else {
          throw LlamaError.unsupportedFeature(
            name: "\(arch).attention.sliding_window_pattern", reason: "is not a positive integer (per-layer lists are not implemented)")
        }
        slidingWindowPattern = pattern
      } else {
        slidingWindowPattern = 6
      }
      slidingRopeBase = Float(try file.float("\(arch).rope.freq_base_swa") ?? 10000)
    }

    guard headCount % kvHeadCount == 0 else {
      throw LlamaError.invalidMetadata(
        key: "\(arch).attention.head_count_kv",
        reason: "\(kvHeadCount) does not divide head_count \(headCount)")
    }
    guard ropeDimension <= headDimension, ropeDimension % 2 == 0 else {
      throw LlamaError.invalidMetadata(
        key: "\(arch).rope.dimension_count",
        reason: "\(ropeDimension) must be even and at most the head dimension \(headDimension)")
    }
    guard ropeBase > 0, rmsEpsilon > 0 else {
      throw LlamaError.invalidMetadata(
        key: "\(arch).rope.freq_base", reason: "base \(ropeBase) and epsilon \(rmsEpsilon) must be positive")
    }
  }
}
