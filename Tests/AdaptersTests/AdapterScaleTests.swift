// A request's adapter scale: a hook on the same F16 factors at alpha/r × scale equals the
// adapter merged (F32) with alpha × scale, in a batch and token by token (the fused decode
// path); scale 1 is the adapter's own numbers exactly and scale 0 the base's. The registry
// serves any scale but 0 and 1 unmerged, from cached factors, whatever its merge type.
//
// Tolerances as LoRAHookTests: on W = dequant(W) in F32, the F16 factors move logits by about
// 1e-3 of the update's effect (a few units here, times |scale|), so max |Δ| < 0.1, mean < 0.01;
// a scale applied twice, or not at all, moves them by units.
import Adapters
import Kernels
import Llama
import Testing

@Suite(.enabled(if: defaultModelIsPresent, needsModel), .serialized) struct AdapterScaleTests {
  func decodeLogits(_ model: LlamaModel, _ tokens: [Int32], hook: LlamaProjectionHook?) throws -> [Float] {
    let context = LlamaContext(model: model, contextLength: tokens.count + 1, threads: 2)
    context.projectionHook = hook
    var logits: [Float] = []
    for token in tokens {
      try context.evaluate([token])
      logits += Array(context.lastLogits)
    }
    return logits
  }

  @Test func scaledHookEqualsTheMergeAtThatScale() throws {
    let base = try requireModel()
    let pool = ThreadPool(threads: 2)
    let adapter = LoRAAdapter.random(base: base.hyper, rank: 8, bScale: 0.02, seed: 21)
    let fp32Base = try Merge.merge(
      LoRAAdapter.random(base: base.hyper, rank: 1, bScale: 0), into: base, type: .f32, pool: pool)
    let hook = LoRAHook(adapter: adapter)
    let plain = try allLogits(fp32Base, testPrompt)
    let unscaled = try allLogits(fp32Base, testPrompt, hook: hook)
    #expect(try allLogits(fp32Base, testPrompt, hook: hook.scaled(by: 1)) == unscaled)
    #expect(try allLogits(fp32Base, testPrompt, hook: hook.scaled(by: 0)) == plain)
    #expect(hook.scaled(by: 1).computesSameUpdate(as: hook) && !hook.scaled(by: 0.5).computesSameUpdate(as: hook))
    for scale in [0.5, -1, 2.5] {
      var atScale = adapter
      atScale.config.loraAlpha *= scale
      let merged = try allLogits(Merge.merge(atScale, into: base, type: .f32, pool: pool), testPrompt)
      let scaledHook = hook.scaled(by: Float(scale))
      #expect(scaledHook.scale == adapter.scale * Float(scale))
      let batch = try allLogits(fp32Base, testPrompt, hook: scaledHook)
      let decoded = try decodeLogits(fp32Base, testPrompt, hook: scaledHook)
      let mergedDecoded = try decodeLogits(Merge.merge(atScale, into: base, type: .f32, pool: pool), testPrompt, hook: nil)
      print("scale \(scale): hook vs merged F32 max |Δ| \(maxAbsDifference(batch, merged)), decode \(maxAbsDifference(decoded, mergedDecoded)); vs scale 1 \(maxAbsDifference(batch, unscaled))")
      for (a, b) in [(batch, merged), (decoded, mergedDecoded)] {
        #expect(maxAbsDifference(a, b) < 0.1)
        #expect(meanAbsDifference(a, b) < 0.01)
      }
      #expect(maxAbsDifference(batch, unscaled) > 0.5, "scale \(scale) must change the logits for the test to mean anything")
    }
  }

  @Test func registryServesScaledRequestsUnmergedWithoutMergingAgain() throws {
    let base = try requireModel()
    let adapter = LoRAAdapter.random(base: base.hyper, rank: 2, projections: [.v], layers: 0..<2, bScale: 0.5, seed: 5)
    let registry = AdapterRegistry(base: base, cacheCapacity: 2)  // merges (Q8_0)
    try registry.add(adapter, name: "a")
    let merged = try registry.weights(for: "a", scale: 1)
    #expect(merged.hook == nil && merged.model !== base)
    #expect(try registry.weights(for: "a", scale: nil).model === merged.model)
    let zero = try registry.weights(for: "a", scale: 0)
    #expect(zero.model === base && zero.hook == nil)
    let half = try registry.weights(for: "a", scale: 0.5)
    let halfAgain = try registry.weights(for: "a", scale: 0.5)
    let double = try registry.weights(for: "a", scale: 2)
    #expect(half.model === base && half.hook?.scale == adapter.scale * 0.5)
    // One hook instance per request, on one set of factors: equal scales share a KV cache.
    #expect(half.hook !== halfAgain.hook && half.hook!.computesSameUpdate(as: halfAgain.hook!))
    #expect(!double.hook!.computesSameUpdate(as: half.hook!))
    #expect(registry.cacheCounts.misses == 1, "only the scale-1 request merged")
    #expect(try allLogits(base, testPrompt, hook: half.hook) == (try allLogits(base, testPrompt, hook: LoRAHook(adapter: adapter).scaled(by: 0.5))))
    try registry.setDefault("a")
    #expect(try registry.weights(for: nil, scale: 0.5).hook?.computesSameUpdate(as: half.hook!) == true)
    #expect(try registry.weights(for: "base", scale: 3).hook == nil)
    #expect(throws: AdapterError.unknownAdapter("nope")) { try registry.weights(for: "nope", scale: 0) }
    for bad: Float in [4.5, -5, .nan, .infinity] {
      #expect(throws: AdapterError.self) { try registry.weights(for: "a", scale: bad) }
    }
    // Replacing the adapter drops its factors: a scaled request gets the new ones.
    try registry.add(LoRAAdapter.random(base: base.hyper, rank: 2, projections: [.v], layers: 0..<2, bScale: 0.5, seed: 6), name: "a")
    #expect(try !registry.weights(for: "a", scale: 0.5).hook!.computesSameUpdate(as: half.hook!))

    let unmerged = AdapterRegistry(base: base, cacheCapacity: 2, mergeType: .none)
    try unmerged.add(adapter, name: "a")
    let stored = try unmerged.weights(for: "a")
    #expect(try unmerged.weights(for: "a", scale: 1).hook === stored.hook)
    #expect(try unmerged.weights(for: "a", scale: -1).hook!.computesSameUpdate(as: stored.hook!.scaled(by: -1)))
  }
}
