// The registry: per-request selection with a default and the always-available base, an LRU
// cache of merged sets, and requests that keep the weights they started with while adapters
// are unloaded, replaced or evicted.
import Adapters
import Kernels
import Llama
import Testing

@Suite(.enabled(if: defaultModelIsPresent, needsModel)) struct RegistryTests {
  func small(_ hyper: LlamaHyperParameters, seed: UInt64) -> LoRAAdapter {
    LoRAAdapter.random(base: hyper, rank: 2, projections: [.v], layers: 0..<2, bScale: 0.5, seed: seed)
  }

  @Test func selectionDefaultAndBase() throws {
    let base = try requireModel()
    let registry = AdapterRegistry(base: base, cacheCapacity: 2)
    try registry.add(small(base.hyper, seed: 1), name: "a")
    #expect(try registry.model(for: nil) === base)
    #expect(try registry.model(for: "base") === base)
    try registry.setDefault("a")
    let a = try registry.model(for: nil)
    let again = try registry.model(for: "a")
    #expect(a !== base && a === again)
    #expect(try registry.model(for: "base") === base)
    #expect(throws: AdapterError.unknownAdapter("nope")) { try registry.model(for: "nope") }
    #expect(throws: AdapterError.self) { try registry.add(small(base.hyper, seed: 1), name: "base") }
  }

  @Test func leastRecentlyUsedMergedSetIsEvicted() throws {
    let base = try requireModel()
    let registry = AdapterRegistry(base: base, cacheCapacity: 2)
    for (i, name) in ["a", "b", "c"].enumerated() { try registry.add(small(base.hyper, seed: UInt64(i)), name: name) }
    let a = try registry.model(for: "a")
    _ = try registry.model(for: "b")
    #expect(try registry.model(for: "a") === a)  // a cache hit makes a most recent
    _ = try registry.model(for: "c")  // evicts b
    #expect(registry.cachedNames == ["a", "c"])
    #expect(try registry.model(for: "a") === a)
  }

  @Test func requestsKeepTheWeightsTheyStartedWith() throws {
    let base = try requireModel()
    let registry = AdapterRegistry(base: base, cacheCapacity: 1)
    try registry.add(small(base.hyper, seed: 1), name: "a")
    var inFlight: LlamaModel? = try registry.model(for: "a")
    weak let buffers = inFlight?.owner as? MergedWeights
    let before = try allLogits(inFlight!, testPrompt)
    // Unload, replace and evict while the request still holds its model.
    registry.unload(name: "a")
    try registry.add(small(base.hyper, seed: 2), name: "a")
    _ = try registry.model(for: "a")
    #expect(buffers != nil)
    #expect(try allLogits(inFlight!, testPrompt) == before)
    #expect(try allLogits(registry.model(for: "a"), testPrompt) != before)
    // The request ends: its merged set goes with it.
    inFlight = nil
    #expect(buffers == nil)
  }

  /// At capacity, a merge evicts first and reuses the evicted set's buffer when no request
  /// holds it; a held set keeps its buffer.
  @Test func evictedBuffersAreReusedOnlyWhenDropped() throws {
    let base = try requireModel()
    let registry = AdapterRegistry(base: base, cacheCapacity: 1)
    for (i, name) in ["a", "b", "c"].enumerated() { try registry.add(small(base.hyper, seed: UInt64(i)), name: name) }
    func address(_ model: LlamaModel) -> UnsafeRawPointer {
      (model.owner as! MergedWeights).matrices.values.map(\.base).min()!
    }
    var a: LlamaModel? = try registry.model(for: "a")
    let aAddress = address(a!)
    let aLogits = try allLogits(a!, testPrompt)
    let b = try registry.model(for: "b")  // evicts a, which the request still holds
    #expect(address(b) != aAddress)
    #expect(try allLogits(a!, testPrompt) == aLogits)
    a = nil
    let c = try registry.model(for: "c")  // evicts b (held), reuses a's kept buffer
    #expect(address(c) == aAddress)
    #expect(registry.cachedNames == ["c"])
    #expect(try allLogits(c, testPrompt) == (try allLogits(Merge.merge(small(base.hyper, seed: 2), into: base, pool: ThreadPool(threads: 1)), testPrompt)))
  }

  /// Merge type `none`: the base model and a hook per adapter, cached like merged sets; a
  /// request's pair outlives an unload and still applies the adapter.
  @Test func unmergedServingHandsOutBaseAndHook() throws {
    let base = try requireModel()
    let registry = AdapterRegistry(base: base, cacheCapacity: 2, mergeType: .none)
    try registry.add(small(base.hyper, seed: 1), name: "a")
    let base0 = try registry.weights(for: "base")
    #expect(base0.model === base && base0.hook == nil)
    let a = try registry.weights(for: "a")
    #expect(a.model === base && a.hook != nil)
    #expect(try registry.weights(for: "a").hook === a.hook)  // cached
    #expect(throws: AdapterError.self) { try registry.model(for: "a") }
    registry.unload(name: "a")
    let unmerged = try allLogits(a.model, testPrompt, hook: a.hook)
    // LoRAHook's numerics are LoRAHookTests' job; here: the registry's hook is that adapter's.
    let direct = try allLogits(base, testPrompt, hook: LoRAHook(adapter: small(base.hyper, seed: 1)))
    #expect(maxAbsDifference(unmerged, try allLogits(base, testPrompt)) > 0.1, "the adapter must matter")
    #expect(unmerged == direct)
    #expect(throws: AdapterError.self) { try Merge.merge(small(base.hyper, seed: 1), into: base, type: .none, pool: ThreadPool(threads: 1)) }
  }
}
