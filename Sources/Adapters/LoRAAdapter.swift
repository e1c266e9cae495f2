// A LoRA adapter in memory: the fp32 factors A (r x in) and B (out x r) of every targeted
// projection, with B's rows in the GGUF base's order (q/k permuted for Llama; see RowOrder),
// the PEFT configuration (rank, alpha, rsLoRA) and the element type of the file it came from
// (written back in the same type). Immutable and Sendable once built; files are read and
// written by PEFTFormat and GGUFLoRAFormat, merged by Merge.
import Llama

/// One targeted matrix: a projection of a layer.
public struct LoRATarget: Hashable, Comparable, Sendable, CustomStringConvertible {
  public let layer: Int
  public let projection: LlamaProjection

  public init(layer: Int, projection: LlamaProjection) {
    self.layer = layer
    self.projection = projection
  }

  public static func < (a: LoRATarget, b: LoRATarget) -> Bool {
    if a.layer != b.layer { return a.layer < b.layer }
    let order = LlamaProjection.allCases
    return order.firstIndex(of: a.projection)! < order.firstIndex(of: b.projection)!  // allCases
  }

  /// The base tensor's GGUF name, `blk.N.attn_q.weight`.
  public var ggufName: String { projection.tensorName(layer: layer) }
  public var description: String { ggufName }
}

/// The two factors of one target: ΔW = s · B · A.
public struct LoRAFactors: Sendable, Equatable {
  public let rank: Int
  /// Outputs (rows of W and of B).
  public let rows: Int
  /// Inputs (columns of W and of A).
  public let columns: Int
  /// A, rank x columns, row-major.
  public let a: [Float]
  /// B, rows x rank, row-major, rows in the GGUF base's order.
  public let b: [Float]

  public init(rank: Int, rows: Int, columns: Int, a: [Float], b: [Float]) {
    precondition(a.count == rank * columns && b.count == rows * rank, "factor sizes do not match")
    self.rank = rank
    self.rows = rows
    self.columns = columns
    self.a = a
    self.b = b
  }
}

public struct LoRAAdapter: Sendable {
  public var config: AdapterConfig
  /// The model architecture the adapter names (GGUF-LoRA files); nil when the file says none.
  public var architecture: String?
  public var factors: [LoRATarget: LoRAFactors]
  /// The element type of the factors in the file (F32, F16 or BF16); writers use it.
  public var storageType: SafetensorsDType
  /// adapter_config.json exactly as read, so conversions write it back unchanged.
  public var originalConfigJSON: [UInt8]?

  public init(
    config: AdapterConfig, factors: [LoRATarget: LoRAFactors], architecture: String? = nil,
    storageType: SafetensorsDType = .f32, originalConfigJSON: [UInt8]? = nil
  ) {
    self.config = config
    self.factors = factors
    self.architecture = architecture
    self.storageType = storageType
    self.originalConfigJSON = originalConfigJSON
  }

  public var rank: Int { config.r }
  /// s in W' = W + s·B·A: alpha / r, or alpha / sqrt(r) with rsLoRA.
  public var scale: Float { config.scale }
  public var targets: [LoRATarget] { factors.keys.sorted() }

  /// Bytes the fp32 factors take.
  public var byteCount: Int { factors.values.reduce(0) { $0 + 4 * ($1.a.count + $1.b.count) } }

  /// Checks every target against a base with `hyper`: architecture, layer index, both shapes,
  /// and the rank against the configuration.
  public func validate(against hyper: LlamaHyperParameters) throws(AdapterError) {
    if let architecture, architecture != hyper.architecture {
      throw .architectureMismatch(adapter: architecture, model: hyper.architecture)
    }
    for (target, factors) in factors {
      guard target.layer < hyper.layerCount else {
        throw .layerOutOfRange(
          tensor: target.ggufName, layer: target.layer, layerCount: hyper.layerCount)
      }
      let shape = target.projection.shape(hyper)
      guard factors.rows == shape.rows, factors.columns == shape.columns else {
        throw .shapeMismatchWithBase(
          target: target.ggufName, adapter: [factors.rows, factors.columns],
          model: [shape.rows, shape.columns])
      }
      guard factors.rank == rank else {
        throw .inconsistentRank(target: target.ggufName, rank: factors.rank, expected: rank)
      }
      try checkMagnitude(target, factors)
    }
    if case .names(let names)? = config.targetModules {
      let listed = Set(names.compactMap(AdapterConfig.module))
      if let stray = targets.first(where: { !listed.contains($0.projection.huggingFaceName) }) {
        throw .badConfig(
          path: "adapter_config.json",
          reason: "tensor '\(stray.ggufName)' targets \(stray.projection.huggingFaceName), which target_modules does not list")
      }
    }
  }

  /// Largest credible bound on one entry of ΔW = s·B·A; base weights are O(0.1), trained
  /// adapters change them by far less than 1.
  public static let maxDeltaBound: Float = 1e4

  /// Every factor finite, and s·r·max|A|·max|B| (a bound on every entry of ΔW) sane.
  func checkMagnitude(_ target: LoRATarget, _ factors: LoRAFactors) throws(AdapterError) {
    func largest(_ values: [Float]) -> Float? {
      var m: Float = 0
      for v in values {
        guard v.isFinite else { return nil }
        m = max(m, abs(v))
      }
      return m
    }
    guard let maxA = largest(factors.a) else { throw .nonFiniteFactor(tensor: target.ggufName, factor: "lora_A") }
    guard let maxB = largest(factors.b) else { throw .nonFiniteFactor(tensor: target.ggufName, factor: "lora_B") }
    let bound = Double(abs(scale)) * Double(rank) * Double(maxA) * Double(maxB)
    guard bound <= Double(Self.maxDeltaBound) else {
      throw .factorsTooLarge(tensor: target.ggufName, bound: Float(min(bound, Double(Float.greatestFiniteMagnitude))), limit: Self.maxDeltaBound)
    }
  }
}
