// The daemon's adapters on disk: files are only read from inside the adapters directory, newly
// created adapters are saved there (PEFT format, so they load anywhere), and which adapters are
// loaded — with the default — is remembered in `<state>/adapters.json` (written atomically) so a
// restart serves the same set. Holds the registry's names in step with that record.
import Adapters
import Foundation
import HTTPAPI
import Llama
import Logging
import Training

final class AdapterLibrary: @unchecked Sendable {
  // unchecked: `entries` and `defaultName` are guarded by `lock`; the registry locks itself.
  struct Entry: Codable, Equatable {
    var name: String
    /// Relative to the adapters directory.
    var path: String
    var pruningRate: Double
    /// Creation time, Unix seconds (the `created` of `/v1/models`).
    var created: Int

    enum CodingKeys: String, CodingKey {
      case name, path, created
      case pruningRate = "pruning_rate"
    }
  }

  private struct Record: Codable {
    var adapters: [Entry]
    var `default`: String?
  }

  let registry: AdapterRegistry
  let directory: URL
  private let recordURL: URL
  private let logger: Logger
  private let lock = NSLock()
  private var entries: [String: Entry] = [:]

  init(registry: AdapterRegistry, directory: String, stateDirectory: String, logger: Logger) {
    self.registry = registry
    self.directory = URL(fileURLWithPath: directory).standardizedFileURL
    recordURL = URL(fileURLWithPath: stateDirectory).appendingPathComponent("adapters.json")
    self.logger = logger
  }

  /// Loads what the record lists, then `configuredDefault` (a name found in the adapters
  /// directory) if it is not loaded yet. An adapter that no longer loads is logged and left out.
  func restore(configuredDefault: String?) {
    var record = Record(adapters: [], default: nil)
    if let data = try? Data(contentsOf: recordURL) {
      do {
        record = try JSONDecoder().decode(Record.self, from: data)
      } catch {
        logger.error("ignoring \(recordURL.path): \(error)")
      }
    }
    for entry in record.adapters {
      do {
        try loadIntoRegistry(entry)
      } catch {
        logger.error("adapter '\(entry.name)' from \(entry.path) not restored: \(error)")
      }
    }
    if let name = configuredDefault, registry.adapter(named: name) == nil {
      for candidate in [name, name + ".gguf"] where FileManager.default.fileExists(atPath: resolve(candidate).path) {
        do {
          try loadIntoRegistry(Entry(name: name, path: candidate, pruningRate: 0, created: Self.now()))
          break
        } catch {
          logger.error("default adapter '\(name)' not loaded from \(candidate): \(error)")
        }
      }
    }
    let chosen = configuredDefault ?? record.default
    if let chosen {
      do {
        try registry.setDefault(chosen)
      } catch {
        logger.error("default adapter '\(chosen)' is not loaded; serving the base model by default")
      }
    }
    persist()
  }

  func infos() -> [AdapterInfo] {
    let defaultName = registry.defaultAdapter
    return registry.names.compactMap { name in
      guard let adapter = registry.adapter(named: name) else { return nil }
      return info(name: name, adapter: adapter, isDefault: name == defaultName)
    }
  }

  func created(_ name: String) -> Int { lock.withLock { entries[name]?.created ?? 0 } }

  func load(name: String, path: String) throws -> AdapterInfo {
    let url = resolve(path)
    guard isInside(url) else {
      throw BackendError.invalidRequest(field: "path", message: "'\(path)' is outside the adapters directory")
    }
    guard FileManager.default.fileExists(atPath: url.path) else {
      throw BackendError.invalidRequest(field: "path", message: "no adapter at '\(path)' in the adapters directory")
    }
    guard registry.adapter(named: name) == nil else { throw BackendError.adapterExists(name) }
    let entry = Entry(name: name, path: path, pruningRate: 0, created: Self.now())
    do {
      try loadIntoRegistry(entry)
    } catch let error as AdapterError {
      throw BackendError.invalidRequest(field: "path", message: "cannot load '\(path)': \(error)")
    }
    persist()
    return try info(name)
  }

  /// A new adapter with LoRA's initialisation (A uniform in ±1/sqrt(in), B zero, so it starts
  /// as the base model), saved as `<name>/` in PEFT format.
  func create(_ spec: AdapterSpec.Resolved) throws -> AdapterInfo {
    guard registry.adapter(named: spec.name) == nil else { throw BackendError.adapterExists(spec.name) }
    var projections: [LlamaProjection] = []
    for target in spec.targets {
      guard let projection = LlamaProjection(anyName: target) else {
        throw BackendError.invalidRequest(
          field: "targets", message: "unknown target '\(target)'; use q, k, v, o, gate, up or down")
      }
      if !projections.contains(projection) { projections.append(projection) }
    }
    let adapter = LoRAAdapter.random(
      base: registry.base.hyper, rank: spec.rank, alpha: spec.alpha, projections: projections, bScale: 0,
      seed: UInt64.random(in: 1...UInt64.max))
    let url = directory.appendingPathComponent(spec.name)
    guard !FileManager.default.fileExists(atPath: url.path) else {
      throw BackendError.adapterExists("\(spec.name) (a file of that name is in the adapters directory)")
    }
    do {
      try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
      try AdapterFile.write(adapter, to: url.path, base: registry.base.hyper)
    } catch {
      throw BackendError.internalFailure("cannot save the new adapter to \(url.path): \(error)")
    }
    let entry = Entry(name: spec.name, path: spec.name, pruningRate: spec.pruningRate, created: Self.now())
    do {
      try registry.add(adapter, name: spec.name)
    } catch {
      throw BackendError.invalidRequest(field: nil, message: "\(error)")
    }
    lock.withLock { entries[spec.name] = entry }
    persist()
    return try info(spec.name)
  }

  /// Forgets the adapter (its files stay in the adapters directory).
  func unload(name: String) throws {
    guard registry.adapter(named: name) != nil else { throw BackendError.adapterNotFound(name) }
    registry.unload(name: name)
    lock.withLock { entries[name] = nil }
    persist()
  }

  func setDefault(_ name: String?) throws {
    do {
      try registry.setDefault(name)
    } catch {
      throw BackendError.adapterNotFound(name ?? "")
    }
    persist()
  }

  // MARK: -

  private func loadIntoRegistry(_ entry: Entry) throws {
    let url = resolve(entry.path)
    guard isInside(url) else { throw AdapterError.unsupportedOption(key: "path", value: "outside the adapters directory") }
    try registry.load(path: url.path, name: entry.name)
    lock.withLock { entries[entry.name] = entry }
  }

  private func info(_ name: String) throws -> AdapterInfo {
    guard let adapter = registry.adapter(named: name) else { throw BackendError.adapterNotFound(name) }
    return info(name: name, adapter: adapter, isDefault: registry.defaultAdapter == name)
  }

  private func info(name: String, adapter: LoRAAdapter, isDefault: Bool) -> AdapterInfo {
    let projections = Set(adapter.targets.map(\.projection))
    return AdapterInfo(
      name: name, rank: adapter.rank, alpha: adapter.config.loraAlpha,
      targets: LlamaProjection.allCases.filter(projections.contains).map(\.shortName),
      pruningRate: lock.withLock { entries[name]?.pruningRate ?? 0 }, isDefault: isDefault)
  }

  private func resolve(_ path: String) -> URL {
    directory.appendingPathComponent(path).standardizedFileURL.resolvingSymlinksInPath()
  }

  /// Inside the adapters directory after resolving `..` and symbolic links.
  private func isInside(_ url: URL) -> Bool {
    let root = directory.resolvingSymlinksInPath().path
    return url.path.hasPrefix(root.hasSuffix("/") ? root : root + "/")
  }

  /// Writes the record atomically: a temporary file, fsync, rename.
  private func persist() {
    let record = lock.withLock {
      Record(adapters: entries.values.sorted { $0.name < $1.name }, default: registry.defaultAdapter)
    }
    do {
      let encoder = JSONEncoder()
      encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
      try FileManager.default.createDirectory(
        at: recordURL.deletingLastPathComponent(), withIntermediateDirectories: true)
      try AtomicFile.write(try encoder.encode(record), to: recordURL.path)
    } catch {
      logger.error("cannot save the adapter list to \(recordURL.path): \(error)")
    }
  }

  private static func now() -> Int { Int(Date().timeIntervalSince1970) }
}
