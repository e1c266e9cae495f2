// Starting a trainer from an existing adapter's factors (a continuing run on an adapter the
// daemon already serves) instead of a fresh initialisation.
import Adapters

extension LoRAParameters {
  /// Copies A and B of every module the adapter has. The adapter must have this rank; modules
  /// it lacks keep their initialisation.
  public func load(from adapter: LoRAAdapter) throws(TrainingError) {
    guard adapter.rank == config.rank else {
      throw .invalidConfig("the adapter has rank \(adapter.rank); training is set up for rank \(config.rank)")
    }
    for module in modules {
      guard let factors = adapter.factors[module.target] else { continue }
      guard factors.a.count == module.a.count, factors.b.count == module.b.count else {
        throw .invalidConfig("\(module.target): the adapter's factors do not have the model's shape")
      }
      factors.a.withUnsafeBufferPointer { module.a.pointer.update(from: $0.baseAddress!, count: $0.count) }
      factors.b.withUnsafeBufferPointer { module.b.pointer.update(from: $0.baseAddress!, count: $0.count) }
    }
  }
}
