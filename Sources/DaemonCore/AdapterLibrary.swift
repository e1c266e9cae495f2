// The daemon's adapters on disk: files are only read from inside the adapters directory, newly
// created adapters are saved there (PEFT format, so they load anywhere). Which adapters exist,
// with every fact about them, is the adapter catalog's (in the journal's database); every change
// here is a catalog transaction with the registry's side run inside it, so the two agree.
import Adapters
import DurableFiles
import Engine
import Foundation
import HTTPAPI
import Llama
import Logging
import Settings
import StreamedTraining
import Training

public final class AdapterLibrary: @unchecked Sendable {
  // unchecked: `limits` is guarded by `lock`; the catalog and the registry lock themselves.
  public let registry: AdapterRegistry
  public let catalog: AdapterCatalog
  public let directory: URL
  private let stateDirectory: String
  private let logger: Logger
  private let lock = NSLock()
  private var limits: AdapterSettings

  public init(
    registry: AdapterRegistry, catalog: AdapterCatalog, directory: String, stateDirectory: String,
    limits: AdapterSettings, logger: Logger
  ) {
    self.limits = limits
    self.registry = registry
    self.catalog = catalog
    self.directory = URL(fileURLWithPath: directory).standardizedFileURL
    self.stateDirectory = stateDirectory
    self.logger = logger
  }

  /// Imports a state directory from before the catalog, loads every catalogued adapter, then
  /// `configuredDefault` (a name found in the adapters directory) if it is not catalogued yet.
  /// An adapter that no longer loads is logged and left out of serving (it stays catalogued).
  public func restore(configuredDefault: String?) {
    do {
      let imported = try catalog.importLegacyState(stateDirectory: stateDirectory)
      if !imported.isEmpty { logger.notice("adapter catalog: imported \(imported.joined(separator: ", ")) from \(stateDirectory)") }
    } catch {
      logger.error("adapter catalog: \(error)")
    }
    for entry in (try? catalog.all()) ?? [] {
      do {
        try loadIntoRegistry(entry)
        if entry.rank == nil, let adapter = registry.adapter(named: entry.name) {
          try? catalog.update(entry.name) {
            $0.rank = adapter.rank
            $0.alpha = Double(adapter.config.loraAlpha)
          }
        }
      } catch {
        logger.error("adapter '\(entry.name)' from \(entry.path) not restored: \(error)")
      }
    }
    if let name = configuredDefault, registry.adapter(named: name) == nil, (try? catalog.adapter(named: name)) == nil {
      for candidate in [name, name + ".gguf"] where FileManager.default.fileExists(atPath: resolve(candidate).path) {
        do {
          _ = try load(name: name, path: candidate)
          break
        } catch {
          logger.error("default adapter '\(name)' not loaded from \(candidate): \(error)")
        }
      }
    }
    let chosen = configuredDefault ?? (try? catalog.defaultName()) ?? nil
    if let chosen {
      do {
        try setDefault(chosen)
      } catch {
        logger.error("default adapter '\(chosen)' is not loaded; serving the base model by default")
      }
    }
  }

  /// The limits changed (SIGHUP); adapters already held stay.
  public func update(limits: AdapterSettings) { lock.withLock { self.limits = limits } }

  public func infos() -> [AdapterInfo] {
    let defaultName = registry.defaultAdapter
    let entries = Dictionary(((try? catalog.all()) ?? []).map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
    return registry.names.compactMap { name in
      guard let adapter = registry.adapter(named: name) else { return nil }
      return info(name: name, adapter: adapter, entry: entries[name], isDefault: name == defaultName)
    }
  }

  public func created(_ name: String) -> Int { ((try? catalog.adapter(named: name)) ?? nil)?.created ?? 0 }

  public func load(name: String, path: String) throws -> AdapterInfo {
    let url = resolve(path)
    guard isInside(url) else {
      throw BackendError.invalidRequest(field: "path", message: "'\(path)' is outside the adapters directory")
    }
    guard FileManager.default.fileExists(atPath: url.path) else {
      throw BackendError.invalidRequest(field: "path", message: "no adapter at '\(path)' in the adapters directory")
    }
    let adapter: LoRAAdapter
    do {
      adapter = try AdapterFile.read(path: url.path, base: registry.base.hyper)
    } catch {
      throw BackendError.invalidRequest(field: "path", message: "cannot load '\(path)': \(error)")
    }
    try checkLimits(rank: adapter.rank)
    let entry = CatalogAdapter(
      name: name, path: path, source: .loaded, created: Self.now(), rank: adapter.rank,
      alpha: Double(adapter.config.loraAlpha), pruningRate: 0)
    try Self.mapped { try catalog.insert(entry) { try registry.add(adapter, name: name) } }
    return try info(name)
  }

  /// A new adapter with LoRA's initialisation (A uniform in ±1/sqrt(in), B zero, so it starts
  /// as the base model), saved as `<name>/` in PEFT format. The files are written under a
  /// temporary name and renamed into place only once complete; a failure (a full disk among
  /// others) removes them, so no half-written adapter blocks the name.
  public func create(_ spec: AdapterSpec.Resolved) throws -> AdapterInfo {
    guard (try? catalog.adapter(named: spec.name)) ?? nil == nil, registry.adapter(named: spec.name) == nil else {
      throw BackendError.adapterExists(spec.name)
    }
    var projections: [LlamaProjection] = []
    for target in spec.targets {
      guard let projection = LlamaProjection(anyName: target) else {
        throw BackendError.invalidRequest(
          field: "targets", message: "unknown target '\(target)'; use q, k, v, o, gate, up or down")
      }
      if !projections.contains(projection) { projections.append(projection) }
    }
    let url = directory.appendingPathComponent(spec.name)
    guard !FileManager.default.fileExists(atPath: url.path) else {
      throw BackendError.adapterExists("\(spec.name) (a file of that name is in the adapters directory)")
    }
    // Before any memory is spent on it.
    try checkLimits(rank: spec.rank)
    let adapter = LoRAAdapter.random(
      base: registry.base.hyper, rank: spec.rank, alpha: spec.alpha, projections: projections, bScale: 0,
      seed: UInt64.random(in: 1...UInt64.max))
    let budget = lock.withLock { limits.maxDirectoryBytes }
    let used = Self.bytes(under: directory)
    guard used + adapter.byteCount <= budget else {
      throw BackendError.invalidRequest(
        field: "rank",
        message:
          "the new adapter (\(adapter.byteCount) bytes) would take the adapters directory (\(used) bytes) past adapters.max_directory_bytes (\(budget))"
      )
    }
    let temporary = directory.appendingPathComponent(".\(spec.name).partial-\(getpid())")
    do {
      try DurableFile.removeTree(temporary.path)
      try PEFTFormat.write(adapter, to: temporary.path, base: registry.base.hyper)
      // Not replacing: a directory that appeared under the name meanwhile stays and this fails.
      try DurableFile.install(directory: temporary.path, at: url.path)
    } catch {
      try? DurableFile.removeTree(temporary.path)
      guard Self.isDiskFull(error) else {
        throw BackendError.internalFailure("cannot save the new adapter to \(url.path): \(error)")
      }
      throw BackendError.insufficientStorage(
        "no space left on the device of \(directory.path) for the new adapter (nothing was kept; No space left on device: \(error))")
    }
    let entry = CatalogAdapter(
      name: spec.name, path: spec.name, source: .created, created: Self.now(), rank: spec.rank, alpha: spec.alpha,
      pruningRate: spec.pruningRate)
    do {
      try Self.mapped { try catalog.insert(entry) { try registry.add(adapter, name: spec.name) } }
    } catch {
      try? FileManager.default.removeItem(at: url)
      throw error
    }
    return try info(spec.name)
  }

  /// Forgets the adapter in one catalog transaction (the registry drops it inside it, so a
  /// publish under way cannot bring it back) and returns what it was; for an adapter the daemon
  /// created, its directory in the adapters directory is removed too. An operator's file stays.
  @discardableResult
  public func unload(name: String) throws -> CatalogAdapter {
    let entry = try Self.mapped { try catalog.remove(name) { _ in registry.unload(name: name) } }
    // Its factors (and the buffers its creation used) are free now, unless a generation still
    // holds it: give the pages back to the system.
    FreedMemory.returnToSystem()
    if entry.source == .created {
      let url = resolve(entry.path)
      if isInside(url) { try? FileManager.default.removeItem(at: url) }
    }
    return entry
  }

  public func setDefault(_ name: String?) throws {
    if let name, registry.adapter(named: name) == nil { throw BackendError.adapterNotFound(name) }
    try Self.mapped { try catalog.setDefault(name) { try registry.setDefault(name) } }
  }

  // MARK: -

  private func checkLimits(rank: Int) throws {
    let limits = lock.withLock { self.limits }
    guard rank <= limits.maxRank else {
      throw BackendError.invalidRequest(field: "rank", message: "at most \(limits.maxRank) (adapters.max_rank), got \(rank)")
    }
    let count = ((try? catalog.all()) ?? []).count
    guard count < limits.maxCount else {
      throw BackendError.invalidRequest(
        field: "name", message: "\(count) adapters are held, the most adapters.max_count allows; DELETE one first")
    }
  }

  /// Bytes of the regular files under `url` (not following symbolic links).
  private static func bytes(under url: URL) -> Int {
    guard let walk = FileManager.default.enumerator(at: url, includingPropertiesForKeys: [.fileSizeKey, .isRegularFileKey])
    else { return 0 }
    var total = 0
    for case let file as URL in walk {
      let values = try? file.resourceValues(forKeys: [.fileSizeKey, .isRegularFileKey])
      if values?.isRegularFile == true { total += values?.fileSize ?? 0 }
    }
    return total
  }

  private func loadIntoRegistry(_ entry: CatalogAdapter) throws {
    let url = resolve(entry.path)
    guard isInside(url) else { throw AdapterError.unsupportedOption(key: "path", value: "outside the adapters directory") }
    try registry.load(path: url.path, name: entry.name)
  }

  private func info(_ name: String) throws -> AdapterInfo {
    guard let adapter = registry.adapter(named: name) else { throw BackendError.adapterNotFound(name) }
    let entry = (try? catalog.adapter(named: name)) ?? nil
    return info(name: name, adapter: adapter, entry: entry, isDefault: registry.defaultAdapter == name)
  }

  private func info(name: String, adapter: LoRAAdapter, entry: CatalogAdapter?, isDefault: Bool) -> AdapterInfo {
    let projections = Set(adapter.targets.map(\.projection))
    var info = AdapterInfo(
      name: name, rank: adapter.rank, alpha: adapter.config.loraAlpha,
      targets: LlamaProjection.allCases.filter(projections.contains).map(\.shortName),
      pruningRate: entry?.pruningRate ?? 0, isDefault: isDefault)
    info.version = entry?.servingVersion ?? 0
    return info
  }

  private func resolve(_ path: String) -> URL {
    directory.appendingPathComponent(path).standardizedFileURL.resolvingSymlinksInPath()
  }

  /// Inside the adapters directory after resolving `..` and symbolic links.
  private func isInside(_ url: URL) -> Bool {
    let root = directory.resolvingSymlinksInPath().path
    return url.path.hasPrefix(root.hasSuffix("/") ? root : root + "/")
  }

  /// The catalog's errors as the API's.
  private static func mapped<T>(_ body: () throws -> T) throws -> T {
    do {
      return try body()
    } catch let error as CatalogError {
      switch error {
      case .exists(let name): throw BackendError.adapterExists(name)
      case .unknownAdapter(let name): throw BackendError.adapterNotFound(name)
      case .unknownVersion: throw BackendError.invalidRequest(field: "version", message: error.description)
      case .storage:
        throw error.isDiskFull
          ? BackendError.insufficientStorage(error.description) : BackendError.internalFailure(error.description)
      }
    } catch let error as AdapterError {
      throw BackendError.invalidRequest(field: nil, message: "\(error)")
    }
  }

  /// A write that failed for want of space (the writers' errors carry their errno).
  public static func isDiskFull(_ error: any Error) -> Bool {
    switch error {
    case let error as DurableWriteError: return error.isDiskFull
    case AdapterError.storage(let error): return error.isDiskFull
    case TrainingError.storage(let error): return error.isDiskFull
    default: return false
    }
  }

  private static func now() -> Int { Int(Date().timeIntervalSince1970) }
}
