// The trainable state of an adapter: fp32 A (r x in) and B (out x r) of every target, their
// gradients, and for PiSSA/MiLoRA the frozen initial factors whose product is subtracted so
// the model starts unchanged while the base stays mmapped and untouched. B's rows are in the
// GGUF base's order (as LoRAAdapter keeps them); PEFT export permutes q/k.
import Adapters
import Llama

public final class LoRAModule: @unchecked Sendable {
  // unchecked: owned by one trainer, which serialises access; workers write disjoint slices.
  public let target: LoRATarget
  public let rank: Int
  /// Outputs (rows of W and of B).
  public let rows: Int
  /// Inputs (columns of W and of A).
  public let columns: Int
  public let a: FloatBuffer
  public let b: FloatBuffer
  public let gradA: FloatBuffer
  public let gradB: FloatBuffer
  /// PiSSA/MiLoRA: the initial factors, frozen; the forward adds -s·B0·A0·x.
  public var frozenA: FloatBuffer?
  public var frozenB: FloatBuffer?
  /// The current step's DropLoRA mask (`step` granularity): r factors, 0 or 1/(1-p).
  public let stepMask: FloatBuffer
  /// Reused storage for a run's token masks (grown as needed): drawing into fresh
  /// allocations cost page faults and a zero fill per module per run.
  var tokenMaskStorage = FloatBuffer(0)

  init(target: LoRATarget, rank: Int, rows: Int, columns: Int) {
    self.target = target
    self.rank = rank
    self.rows = rows
    self.columns = columns
    a = FloatBuffer(rank * columns)
    b = FloatBuffer(rows * rank)
    gradA = FloatBuffer(rank * columns)
    gradB = FloatBuffer(rows * rank)
    stepMask = FloatBuffer([Float](repeating: 1, count: rank))
  }
}

public final class LoRAParameters: @unchecked Sendable {
  // unchecked: see LoRAModule.
  public let config: LoRATrainingConfig
  /// Sorted by (layer, projection); the order of the optimizer state and of random draws.
  public let modules: [LoRAModule]
  let index: [LoRATarget: Int]

  public init(config: LoRATrainingConfig, hyper: LlamaHyperParameters) {
    self.config = config
    var modules: [LoRAModule] = []
    for layer in 0..<hyper.layerCount {
      for projection in LlamaProjection.allCases where config.targets.contains(projection) {
        let shape = projection.shape(hyper)
        modules.append(
          LoRAModule(
            target: LoRATarget(layer: layer, projection: projection), rank: config.rank,
            rows: shape.rows, columns: shape.columns))
      }
    }
    self.modules = modules
    index = Dictionary(uniqueKeysWithValues: modules.enumerated().map { ($1.target, $0) })
  }

  public func module(layer: Int, projection: LlamaProjection) -> LoRAModule? {
    index[LoRATarget(layer: layer, projection: projection)].map { modules[$0] }
  }

  public var parameterCount: Int { modules.reduce(0) { $0 + $1.a.count + $1.b.count } }

  public func zeroGradients() {
    for m in modules {
      m.gradA.zero()
      m.gradB.zero()
    }
  }

  /// The trained adapter as an ordinary LoRA adapter. PiSSA/MiLoRA factors are exported the
  /// way PEFT converts them: ΔW = s(B·A − B0·A0) = s·[B, −B0]·[A; A0], rank 2r.
  public func snapshot(baseModelName: String? = nil) -> LoRAAdapter {
    let names = config.targets.map(\.huggingFaceName)
    let hasFrozen = modules.contains { $0.frozenA != nil }
    let rank = hasFrozen ? 2 * config.rank : config.rank
    // With rank doubled the scale must stay s: alpha' = s·r' (or s·sqrt(r') with rsLoRA).
    let alpha =
      hasFrozen
      ? (config.useRSLoRA
        ? Double(config.scale) * Double(rank).squareRoot() : Double(config.scale) * Double(rank))
      : config.alpha
    var adapterConfig = AdapterConfig(
      r: rank, loraAlpha: alpha, targetModules: names, useRSLoRA: config.useRSLoRA,
      baseModelNameOrPath: baseModelName)
    adapterConfig.loraDropout = Double(config.dropout)
    var factors: [LoRATarget: LoRAFactors] = [:]
    for m in modules {
      var a = m.a.array
      var b = m.b.array
      if let fa = m.frozenA, let fb = m.frozenB {
        a += fa.array
        var widened = [Float](repeating: 0, count: m.rows * 2 * m.rank)
        for row in 0..<m.rows {
          for k in 0..<m.rank {
            widened[row * 2 * m.rank + k] = b[row * m.rank + k]
            widened[row * 2 * m.rank + m.rank + k] = -fb[row * m.rank + k]
          }
        }
        b = widened
      }
      factors[m.target] = LoRAFactors(rank: rank, rows: m.rows, columns: m.columns, a: a, b: b)
    }
    return LoRAAdapter(config: adapterConfig, factors: factors)
  }

  /// Loads trained factors (e.g. from a checkpoint); the adapter must match this configuration.
  public func load(_ adapter: LoRAAdapter) throws(TrainingError) {
    for m in modules {
      guard let f = adapter.factors[m.target], f.rank == m.rank, f.rows == m.rows,
        f.columns == m.columns
      else {
        throw .invalidConfig("adapter does not match the configuration at \(m.target)")
      }
      f.a.withUnsafeBufferPointer { m.a.pointer.update(from: $0.baseAddress!, count: f.a.count) }
      f.b.withUnsafeBufferPointer { m.b.pointer.update(from: $0.baseAddress!, count: f.b.count) }
    }
  }

}
