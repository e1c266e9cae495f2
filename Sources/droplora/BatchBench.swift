// `droplora bench --sequences N`: aggregate decode speed of N sequences stepping together in one
// batched forward pass (the daemon's continuous batching, LlamaBatch), against one sequence on
// the same pool, interleaved; with --lora-rank, every sequence on an unmerged random adapter:
// all on one adapter, and each on its own (rows grouped by adapter), and all on that adapter merged
// into Q8_0 weights (the two forms the engine picks between per step).
import Adapters
import Dispatch
import Engine
import Kernels
import Llama

struct BatchedBench {
  var single = Double.infinity  // seconds for genTokens steps of one sequence
  var sameAdapter = Double.infinity  // N sequences (on one adapter, or none)
  var distinctAdapters: Double?  // N sequences on N adapters
  var mergedSameAdapter: Double?  // N sequences on the first adapter merged (Q8_0)
  var mergedSingle: Double?  // one sequence on it merged
}

extension BenchCommand {
  func benchBatched(model: LlamaModel, firstToken: Int32) throws -> BatchedBench {
    let pool = ThreadPool(threads: threads)
    let length = genTokens + 2
    let contexts = (0..<sequences).map { _ in
      LlamaContext(model: model, contextLength: length, pool: pool, maxBatch: 1, cacheElement: kvCacheType)
    }
    let batch = LlamaBatch(model: model, maxRows: sequences, maxContextLength: length, pool: pool)
    let adapters =
      loraRank > 0
      ? (0..<sequences).map {
        LoRAAdapter.random(base: model.hyper, rank: loraRank, bScale: 0.05, seed: UInt64($0 + 1))
      } : []
    let hooks = adapters.map { LoRAHook(adapter: $0) }
    let merged = try adapters.first.map { try Merge.merge($0, into: model, type: .q8_0, pool: pool) }

    func run(_ count: Int, hooks: [LoRAHook?], weights: LlamaModel? = nil) throws -> Double {
      let running = Array(contexts.prefix(count))
      for (context, hook) in zip(running, hooks) {
        context.use(model: weights ?? model)
        context.projectionHook = hook
      }
      try batch.evaluate(running.map { ($0, [firstToken]) })
      var greedy = Sampler(.greedy)
      let start = DispatchTime.now().uptimeNanoseconds
      for _ in 0..<genTokens {
        let next = running.map { greedy.sample(logits: $0.lastLogits, history: []) }
        try batch.evaluate(zip(running, next).map { ($0, [$1]) })
      }
      return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
    }

    var result = BatchedBench()
    let one: LoRAHook? = hooks.first
    for _ in 0..<repetitions {
      result.single = min(result.single, try run(1, hooks: [one]))
      result.sameAdapter = min(result.sameAdapter, try run(sequences, hooks: Array(repeating: one, count: sequences)))
      if !hooks.isEmpty {
        result.distinctAdapters = min(result.distinctAdapters ?? .infinity, try run(sequences, hooks: hooks))
      }
      if let merged {
        let none = [LoRAHook?](repeating: nil, count: sequences)
        result.mergedSingle = min(result.mergedSingle ?? .infinity, try run(1, hooks: none, weights: merged))
        result.mergedSameAdapter = min(
          result.mergedSameAdapter ?? .infinity, try run(sequences, hooks: none, weights: merged))
      }
    }
    return result
  }
}
