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
// A request at another scale (`weights(for:scale:)`) always runs unmerged: the base model and
// the adapter's hook scaled for that request. With a merging type the hooks for such requests
// are kept apart from the merged sets (`hooks`, same capacity), so a scaled request never
// merges again.
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
        if hooks.count > capacity { hooks.removeFirst(hooks.count - capacity) }
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
  /// With a merging type: unmerged hooks for requests at another scale, most recently used last.
  private var hooks: [(name: String, hook: LoRAHook)] = []
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
      hooks.removeAll { $0.name == name }
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
      hooks.removeAll { $0.name == name }
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
    try weights(for: name, scale: nil)
  }

  /// The scales a request may ask for (`adapter_scale`, llama-server's `lora[].scale`). A guard,
  /// not a numeric limit: past four times its trained strength an adapter's update swamps the
  /// base's projections and the output turns to noise, so a larger value is far likelier a
  /// typo (40 for 0.4) than a wish. NaN and infinities are outside it.
  public static let scaleRange: ClosedRange<Float> = -4...4

  /// As `weights(for:)`, with the adapter's update multiplied by `scale` (nil or 1: as stored;
  /// 0: the base model). Any other scale runs unmerged, the base model and a hook on the
  /// adapter's cached factors at alpha/r × scale, whatever the merge type. The base model has
  /// nothing to scale: it is returned as it is.
  public func weights(for name: String?, scale: Float?) throws(AdapterError) -> AdaptedModel {
    lock.lock()
    defer { lock.unlock() }
    guard let chosen = name ?? defaultName, chosen != Self.baseName else { return AdaptedModel(model: base, hook: nil) }
    guard let scale, scale != 1 else { return try cachedWeights(chosen) }
    guard Self.scaleRange.contains(scale) else {
      throw .unsupportedOption(key: "adapter scale", value: "\(scale) (must be in \(Self.scaleRange))")
    }
    guard adapters[chosen] != nil else { throw .unknownAdapter(chosen) }
    if scale == 0 { return AdaptedModel(model: base, hook: nil) }
    let hook: LoRAHook
    if mergeType == .none {
      hook = try cachedWeights(chosen).hook!  // merge type none: always a hook
    } else if let index = hooks.firstIndex(where: { $0.name == chosen }) {
      let entry = hooks.remove(at: index)
      hooks.append(entry)
      hook = entry.hook
    } else {
      hook = LoRAHook(adapter: adapters[chosen]!)  // checked above
      if capacity > 0 {
        if hooks.count >= capacity { hooks.removeFirst(hooks.count - capacity + 1) }
        hooks.append((chosen, hook))
      }
    }
    return AdaptedModel(model: base, hook: hook.scaled(by: scale))
  }

  /// `chosen`'s weights as stored, from the cache or made now; the caller holds `lock`.
  private func cachedWeights(_ chosen: String) throws(AdapterError) -> AdaptedModel {
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
