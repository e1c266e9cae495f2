// `droplora adapter bench`: the adapter numbers of the README — load + merge time for random
// adapters of several ranks on every projection, switching between two cached merged sets,
// memory per merged set, and decode tokens/s merged versus base.
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
  @Option(help: "Type of the merged matrices: q8_0, f16 or f32.") var type = "q8_0"
  @Option(help: "Tokens decoded for the decode measurement.") var genTokens = 64
  @Option(help: "Repetitions; the best run is reported.") var repetitions = 3

  func run() throws {
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
      var last: LlamaModel?
      for _ in 0..<max(1, repetitions) {
        let start = now()
        let adapter = try AdapterFile.read(path: path, base: model.hyper)
        let loaded = now()
        last = try Merge.merge(adapter, into: model, type: mergeType, pool: pool)
        bestLoad = min(bestLoad, loaded - start)
        bestMerge = min(bestMerge, now() - loaded)
      }
      let bytes = (last?.owner as? MergedWeights)?.byteCount ?? 0
      print(String(format: "rank %3d  load %.1f ms  merge %.1f ms  (load+merge %.1f ms)  merged set %.1f MiB (%@)",
                   r, bestLoad * 1000, bestMerge * 1000, (bestLoad + bestMerge) * 1000,
                   Double(bytes) / 1_048_576, type))
      if let last { merged.append(last) }
    }

    // Switching: a registry with two adapters cached; time model(for:) alternating.
    let registry = AdapterRegistry(base: model, cacheCapacity: 2, mergeType: mergeType, threads: threads)
    try registry.add(LoRAAdapter.random(base: model.hyper, rank: 8, seed: 1), name: "a")
    try registry.add(LoRAAdapter.random(base: model.hyper, rank: 8, seed: 2), name: "b")
    _ = try registry.model(for: "a")
    _ = try registry.model(for: "b")
    let switches = 1000
    let switchStart = now()
    for i in 0..<switches { _ = try registry.model(for: i % 2 == 0 ? "a" : "b") }
    print(String(format: "switch between two cached adapters: %.2f µs", (now() - switchStart) / Double(switches) * 1e6))

    // Base and merged alternate, so both see the same machine load; best run of each.
    if let first = merged.first {
      let baseContext = decodeContext(model)
      let mergedContext = decodeContext(first)
      var best = (base: Double.infinity, merged: Double.infinity)
      for _ in 0..<max(1, repetitions) {
        best.base = min(best.base, try decodeSeconds(baseContext))
        best.merged = min(best.merged, try decodeSeconds(mergedContext))
      }
      print(String(format: "decode base %.1f tok/s, merged (rank %d, %@) %.1f tok/s",
                   Double(genTokens) / best.base, rank[0], type, Double(genTokens) / best.merged))
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
