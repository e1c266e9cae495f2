// The adapters a server holds: the loaded LoRA factors by name (a few MB each) and a bounded
// cache of merged weight sets, least recently used out. `model(for:)` hands out an immutable
// LlamaModel; a request keeps the one it started with, and Swift's reference counting keeps
// that set's memory alive until the request drops it, however the registry changes meanwhile
// (load, unload, eviction, reloading a name). The base model is always available.
// A merge evicts first when the cache is full, and takes the buffer of the evicted set once no
// request holds it any more (`MergeBufferPool`, one buffer kept), so a steady stream of
// switches does not pay the kernel for ~100 MiB of fresh zeroed pages per merge.
// With merge type `none` the cache holds unmerged hooks (F16 factors) instead of merged sets:
// `weights(for:)` hands out the base model and the hook its context applies at each projection.
import Foundation
import Kernels
import Llama

/// What a request computes with: `model`, and, when the registry serves unmerged, the hook its
/// context must apply at every projection (`LlamaContext.projectionHook = hook`). Both are
/// immutable; a request keeps the pair it was handed.
public struct AdaptedModel: Sendable {
  public let model: LlamaModel
  public let hook: LoRAHook?

  public init(model: LlamaModel, hook: LoRAHook?) {
    self.model = model
    self.hook = hook
  }
}

public final class AdapterRegistry: @unchecked Sendable {
  // unchecked: every mutable field is guarded by `lock`.
  public let base: LlamaModel
  /// Merged sets kept; lowering it evicts the least recently used at once.
  public var cacheCapacity: Int {
    get { lock.withLock { capacity } }
    set {
      lock.withLock {
        capacity = max(0, newValue)
        if cache.count > capacity { cache.removeFirst(cache.count - capacity) }
      }
    }
  }
  public let mergeType: MergeType
  /// The name that selects the base model without any adapter.
  public static let baseName = "base"

  private let lock = NSLock()
  private let pool: ThreadPool
  private let buffers = MergeBufferPool(capacity: 1)
  private var adapters: [String: LoRAAdapter] = [:]
  /// Merged sets, most recently used last.
  private var cache: [(name: String, weights: AdaptedModel)] = []
  private var defaultName: String?
  private var capacity: Int
  private var hits = 0
  private var misses = 0

  public init(base: LlamaModel, cacheCapacity: Int = 4, mergeType: MergeType = .q8_0, threads: Int = 1) {
    self.base = base
    capacity = max(0, cacheCapacity)
    self.mergeType = mergeType
    pool = ThreadPool(threads: threads)
  }

  /// Adds (or replaces) `name`; a replaced adapter's cached merge is dropped.
  public func add(_ adapter: LoRAAdapter, name: String) throws(AdapterError) {
    guard name != Self.baseName, !name.isEmpty else {
      throw .unsupportedOption(key: "adapter name", value: "'\(name)' (reserved or empty)")
    }
    try adapter.validate(against: base.hyper)
    lock.withLock {
      adapters[name] = adapter
      cache.removeAll { $0.name == name }
    }
  }

  /// Reads the adapter at `path` (PEFT or GGUF-LoRA) and adds it as `name`.
  public func load(path: String, name: String) throws(AdapterError) {
    try add(AdapterFile.read(path: path, base: base.hyper), name: name)
  }

  public func unload(name: String) {
    lock.withLock {
      adapters[name] = nil
      cache.removeAll { $0.name == name }
      if defaultName == name { defaultName = nil }
    }
  }

  public var names: [String] { lock.withLock { adapters.keys.sorted() } }
  /// The loaded adapter called `name`, if any.
  public func adapter(named name: String) -> LoRAAdapter? { lock.withLock { adapters[name] } }
  /// Requests for an adapter served from the merged cache, and those that had to merge.
  public var cacheCounts: (hits: Int, misses: Int) { lock.withLock { (hits, misses) } }
  public var cachedNames: [String] { lock.withLock { cache.map(\.name) } }

  /// The adapter used when a request names none; nil means the base model.
  public var defaultAdapter: String? {
    get { lock.withLock { defaultName } }
  }

  public func setDefault(_ name: String?) throws(AdapterError) {
    lock.lock()
    defer { lock.unlock() }
    if let name, name != Self.baseName, adapters[name] == nil { throw .unknownAdapter(name) }
    defaultName = name == Self.baseName ? nil : name
  }

  /// The weights for a request: `name` nil → the default, "base" → the base model, otherwise
  /// the named adapter merged (from the cache, or merged now and cached). With merge type
  /// `none` there is no merged model: use `weights(for:)`; this throws for an adapter then.
  public func model(for name: String?) throws(AdapterError) -> LlamaModel {
    let weights = try weights(for: name)
    if weights.hook != nil {
      throw .unsupportedOption(key: "merge type", value: "none (use weights(for:) and apply the hook)")
    }
    return weights.model
  }

  /// The weights for a request and, with merge type `none`, the hook to apply (nil otherwise
  /// and for the base model). Cached like merged sets.
  public func weights(for name: String?) throws(AdapterError) -> AdaptedModel {
    lock.lock()
    defer { lock.unlock() }
    guard let chosen = name ?? defaultName, chosen != Self.baseName else { return AdaptedModel(model: base, hook: nil) }
    if let index = cache.firstIndex(where: { $0.name == chosen }) {
      let entry = cache.remove(at: index)
      cache.append(entry)
      hits += 1
      return entry.weights
    }
    guard let adapter = adapters[chosen] else { throw .unknownAdapter(chosen) }
    misses += 1
    // Evict before merging, so the evicted set's buffer can be reused by this merge when no
    // request holds it.
    if capacity > 0, cache.count >= capacity { cache.removeFirst(cache.count - capacity + 1) }
    // Merging holds the lock: one merge at a time, on the registry's own threads.
    let weights =
      mergeType == .none
      ? AdaptedModel(model: base, hook: LoRAHook(adapter: adapter))
      : AdaptedModel(
        model: try Merge.merge(adapter, into: base, type: mergeType, pool: pool, buffers: buffers), hook: nil)
    if capacity > 0 { cache.append((chosen, weights)) }
    return weights
  }
}
