// `droplora adapter bench`: the adapter numbers of the README — load + merge time for random
// adapters of several ranks on every projection, switching between two cached sets,
// memory per merged set, and decode tokens/s of the base, merged and unmerged (LoRAHook).
import Adapters
import ArgumentParser
import Dispatch
import Foundation
import Kernels
import Llama

struct AdapterBenchCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "bench", abstract: "Time adapter load, merge, switch and merged decode.")

  @OptionGroup var modelOptions: ModelOptions
  @Option(help: "Compute threads.") var threads = 2
  @Option(help: "Ranks to measure (repeatable).") var rank: [Int] = [8, 32, 64]
  @Option(help: "Type of the merged matrices: q8_0, f16, f32, or none (unmerged).") var type = "q8_0"
  @Option(help: "Tokens decoded for the decode measurement.") var genTokens = 64
  @Option(help: "Repetitions; the best run is reported.") var repetitions = 3

  func run() throws {
    OpenBLASCoreType.ensureSet()  // measure the merge with the sgemm kernels the daemon gets
    let model = try loadModel(modelOptions)
    let mergeType = try MergeType(parsing: type)
    let pool = ThreadPool(threads: threads)
    let directory = NSTemporaryDirectory() + "droplora-adapter-bench-\(getpid())"
    defer { try? FileManager.default.removeItem(atPath: directory) }
    var merged: [LlamaModel] = []
    for r in rank {
      let path = directory + "/r\(r).gguf"
      try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
      try GGUFLoRAFormat.write(LoRAAdapter.random(base: model.hyper, rank: r, seed: UInt64(r)), to: path, base: model.hyper)
      var bestLoad = Double.infinity
      var bestMerge = Double.infinity
      var coldTotal = 0.0
      var last: LlamaModel?
      var hookBytes = 0
      // Like the registry: a dropped set's buffer is kept for the next merge. The first
      // repetition merges into fresh memory (cold), the second too (the first set is still
      // held), later ones into the buffer the set before last left.
      let buffers = MergeBufferPool(capacity: 1)
      for repetition in 0..<max(1, repetitions) {
        let start = now()
        let adapter = try AdapterFile.read(path: path, base: model.hyper)
        let loaded = now()
        if mergeType == .none {
          hookBytes = LoRAHook(adapter: adapter).byteCount  // "merge" = building the F16 factors
        } else {
          last = try Merge.merge(adapter, into: model, type: mergeType, pool: pool, buffers: buffers)
        }
        let end = now()
        if repetition == 0 { coldTotal = end - start }
        bestLoad = min(bestLoad, loaded - start)
        bestMerge = min(bestMerge, end - loaded)
      }
      let bytes = (last?.owner as? MergedWeights)?.byteCount ?? hookBytes
      print(String(format: "rank %3d  load %.1f ms  merge %.1f ms  (load+merge %.1f ms; first, into fresh memory: %.1f ms)  merged set %.1f MiB (%@)",
                   r, bestLoad * 1000, bestMerge * 1000, (bestLoad + bestMerge) * 1000, coldTotal * 1000,
                   Double(bytes) / 1_048_576, type))
      if let last { merged.append(last) }
    }

    // Switching: a registry with two adapters cached; time weights(for:) alternating.
    let registry = AdapterRegistry(base: model, cacheCapacity: 2, mergeType: mergeType, threads: threads)
    try registry.add(LoRAAdapter.random(base: model.hyper, rank: 8, seed: 1), name: "a")
    try registry.add(LoRAAdapter.random(base: model.hyper, rank: 8, seed: 2), name: "b")
    _ = try registry.weights(for: "a")
    _ = try registry.weights(for: "b")
    let switches = 1000
    let switchStart = now()
    for i in 0..<switches { _ = try registry.weights(for: i % 2 == 0 ? "a" : "b") }
    print(String(format: "switch between two cached adapters: %.2f µs", (now() - switchStart) / Double(switches) * 1e6))

    // Base, merged and unmerged (LoRAHook at each projection, one per rank) alternate within
    // every repetition, so all see the same machine load; best run of each.
    do {
      var runs: [(label: String, context: LlamaContext)] = [("base", decodeContext(model))]
      if let first = merged.first {
        runs.append((String(format: "merged rank %d %@", rank[0], type), decodeContext(first)))
      }
      for r in rank {
        let context = decodeContext(model)
        context.projectionHook = LoRAHook(adapter: LoRAAdapter.random(base: model.hyper, rank: r, seed: UInt64(r)))
        runs.append((String(format: "unmerged rank %d (F16 factors)", r), context))
      }
      var best = [Double](repeating: .infinity, count: runs.count)
      for _ in 0..<max(1, repetitions) {
        for (i, run) in runs.enumerated() { best[i] = min(best[i], try decodeSeconds(run.context)) }
      }
      for (i, run) in runs.enumerated() {
        print(String(format: "decode %@: %.1f tok/s (%.1f%% of base)", run.label,
                     Double(genTokens) / best[i], best[0] / best[i] * 100))
      }
    }
    print(String(format: "peak RSS %.1f MiB", Double(peakRSSBytes()) / 1_048_576))
  }

  func decodeContext(_ model: LlamaModel) -> LlamaContext {
    LlamaContext(model: model, contextLength: genTokens + 2, threads: threads, maxBatch: 1)
  }

  /// Seconds for `genTokens` greedy single-token decodes after one prompt token.
  func decodeSeconds(_ context: LlamaContext) throws -> Double {
    context.reset()
    try context.evaluate([1])
    var token: Int32 = 1
    let start = now()
    for _ in 0..<genTokens {
      try context.evaluate([token])
      let logits = context.lastLogits
      var top = 0
      for i in 1..<logits.count where logits[i] > logits[top] { top = i }
      token = Int32(top)
    }
    return now() - start
  }
}

private func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }
