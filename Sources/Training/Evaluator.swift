// Mean masked loss of a fixed adapter (or of the base alone) over encoded samples, through the
// training forward (fp32 tiles, no noise), so eval numbers are the ones training reports.
import Adapters
import Kernels
import Llama

public final class Evaluator {
  let graph: TrainingGraph

  /// `adapter` nil evaluates the base model. Projections the adapter does not cover are left
  /// without a branch.
  public init(model: LlamaModel, adapter: LoRAAdapter?, maxSequenceLength: Int, threads: Int) throws(TrainingError) {
    let config: LoRATrainingConfig
    if let adapter {
      let projections = LlamaProjection.allCases.filter { p in adapter.factors.keys.contains { $0.projection == p } }
      config = LoRATrainingConfig(
        rank: adapter.rank, alpha: adapter.config.loraAlpha, useRSLoRA: adapter.config.useRSLoRA == true,
        dropout: 0, targets: projections, method: .lora, pruningRate: 0)
    } else {
      config = LoRATrainingConfig(rank: 1, alpha: 1, dropout: 0, targets: [], method: .lora, pruningRate: 0)
    }
    let parameters = LoRAParameters(config: config, hyper: model.hyper)
    if let adapter {
      for module in parameters.modules {
        // Layers the adapter leaves out keep A = B = 0: their branch adds nothing.
        guard let f = adapter.factors[module.target] else { continue }
        guard f.rank == module.rank, f.rows == module.rows, f.columns == module.columns else {
          throw .invalidConfig("adapter factors of \(module.target) do not fit the model")
        }
        for i in 0..<f.a.count { module.a[i] = f.a[i] }
        for i in 0..<f.b.count { module.b[i] = f.b[i] }
      }
    }
    graph = TrainingGraph(
      model: model, parameters: parameters, maxTokens: maxSequenceLength, pool: ThreadPool(threads: threads))
  }

  /// Mean cross-entropy per loss token, and the number of loss tokens. Consecutive samples
  /// share one forward while they fit in the graph (each weight tile is dequantized once per
  /// run, not once per sample); attention stays within each sample.
  public func loss(_ samples: [EncodedSample]) throws(TrainingError) -> (loss: Double, lossTokens: Int) {
    var sum = 0.0
    var count = 0
    for run in packedRuns(samples, tokenCapacity: graph.maxTokens) {
      let result = try graph.run(Array(run), gradientWeight: nil) { _, _ in LoRANoise() }
      sum += result.lossSum
      count += result.lossTokens
    }
    return (count > 0 ? sum / Double(count) : 0, count)
  }
}
