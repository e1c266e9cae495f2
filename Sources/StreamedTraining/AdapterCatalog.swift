// The one owner of every adapter's durable facts: where it came from, its shape, its training
// settings, whether it is the default or paused, which version serves and every saved version
// with its metrics. Stored in the journal's SQLite database (tables `adapter` and
// `adapter_version`), so a fact is written once, in a transaction, and survives a crash whole.
// The registry in memory and the trainer follow it: a change to an adapter is a catalog
// transaction, and `apply` runs the in-memory side inside that transaction, so an adapter that
// was deleted cannot be brought back by a publish that was already under way.
import DurableFiles
import Foundation
import GRDB

public struct CatalogAdapter: Sendable, Equatable {
  /// `created`: the daemon made it (its files in the adapters directory are the daemon's);
  /// `loaded`: an operator's file, never removed by the daemon.
  public enum Source: String, Sendable { case created, loaded }

  public var name: String
  /// Relative to the adapters directory.
  public var path: String
  public var source: Source
  /// Unix seconds.
  public var created: Int
  /// nil until the file has been read (adapters imported from an older state directory).
  public var rank: Int?
  public var alpha: Double?
  public var pruningRate: Double
  /// The DropLoRA mask granularity (`step`/`token`); nil: the daemon's `training.mask`.
  public var mask: String?
  public var isDefault = false
  /// nil: the adapter's own file serves.
  public var servingVersion: Int?
  public var paused = false
  public var learningRate: Double?
  public var batchSize: Int?
  public var publishEvery: Int?

  public init(
    name: String, path: String, source: Source, created: Int, rank: Int?, alpha: Double?, pruningRate: Double,
    mask: String? = nil
  ) {
    self.name = name
    self.path = path
    self.source = source
    self.created = created
    self.rank = rank
    self.alpha = alpha
    self.pruningRate = pruningRate
    self.mask = mask
  }
}

public enum CatalogError: Error, Sendable, Equatable, CustomStringConvertible {
  case exists(String)
  case unknownAdapter(String)
  case unknownVersion(String, Int)
  /// The database could not be written or read (a full disk among others); nothing changed.
  case storage(String)

  public var description: String {
    switch self {
    case .exists(let name): return "an adapter named '\(name)' is already in the catalog"
    case .unknownAdapter(let name): return "no adapter named '\(name)' is loaded"
    case .unknownVersion(let name, let version): return "adapter '\(name)' has no saved version \(version)"
    case .storage(let reason): return "the adapter catalog could not be written: \(reason)"
    }
  }

  /// The disk (or its quota) is full.
  public var isDiskFull: Bool {
    guard case .storage(let reason) = self else { return false }
    return reason.contains("SQLITE_FULL") || reason.contains("database or disk is full")
      || reason.contains("No space left") || reason.contains("quota")
  }
}

public final class AdapterCatalog: Sendable {
  private let database: DatabaseQueue

  /// The catalog in the journal's database (migrated there by `SampleJournal`).
  public init(journal: SampleJournal) { database = journal.database }

  // MARK: - reading

  public func all() throws(CatalogError) -> [CatalogAdapter] {
    try read { db in try Row.fetchAll(db, sql: "SELECT * FROM adapter ORDER BY name").map(Self.adapter) }
  }

  public func adapter(named name: String) throws(CatalogError) -> CatalogAdapter? {
    try read { db in try Row.fetchOne(db, sql: "SELECT * FROM adapter WHERE name = ?", arguments: [name]).map(Self.adapter) }
  }

  public func defaultName() throws(CatalogError) -> String? {
    try read { db in try String.fetchOne(db, sql: "SELECT name FROM adapter WHERE is_default = 1") }
  }

  /// Oldest first.
  public func versions(of name: String) throws(CatalogError) -> [TrainingVersion] {
    try read { db in
      try Row.fetchAll(
        db, sql: "SELECT * FROM adapter_version WHERE adapter = ? ORDER BY version", arguments: [name]
      ).map(Self.version)
    }
  }

  // MARK: - transactions

  /// Adds `adapter`; `apply` (the registry's side) runs inside the transaction, and a throw
  /// from it leaves the catalog unchanged.
  public func insert(_ adapter: CatalogAdapter, apply: () throws -> Void = {}) throws {
    try write { db in
      guard try Bool.fetchOne(db, sql: "SELECT 1 FROM adapter WHERE name = ?", arguments: [adapter.name]) == nil else {
        throw CatalogError.exists(adapter.name)
      }
      try Self.insert(adapter, db)
      try apply()
    }
  }

  /// Forgets `name` with its versions; returns what it was. `apply` runs inside the transaction.
  @discardableResult
  public func remove(_ name: String, apply: (CatalogAdapter) throws -> Void = { _ in }) throws -> CatalogAdapter {
    try write { db in
      guard let row = try Row.fetchOne(db, sql: "SELECT * FROM adapter WHERE name = ?", arguments: [name]) else {
        throw CatalogError.unknownAdapter(name)
      }
      let adapter = Self.adapter(row)
      try db.execute(sql: "DELETE FROM adapter_version WHERE adapter = ?", arguments: [name])
      try db.execute(sql: "DELETE FROM adapter WHERE name = ?", arguments: [name])
      try apply(adapter)
      return adapter
    }
  }

  /// Makes `name` the default (nil: the base model).
  public func setDefault(_ name: String?, apply: () throws -> Void = {}) throws {
    try write { db in
      if let name {
        guard try Bool.fetchOne(db, sql: "SELECT 1 FROM adapter WHERE name = ?", arguments: [name]) != nil else {
          throw CatalogError.unknownAdapter(name)
        }
      }
      try db.execute(sql: "UPDATE adapter SET is_default = (name IS ?)", arguments: [name])
      try apply()
    }
  }

  /// Changes the facts of an existing adapter that `change` touches.
  public func update(_ name: String, _ change: (inout CatalogAdapter) -> Void) throws {
    try write { db in
      guard let row = try Row.fetchOne(db, sql: "SELECT * FROM adapter WHERE name = ?", arguments: [name]) else {
        throw CatalogError.unknownAdapter(name)
      }
      var adapter = Self.adapter(row)
      change(&adapter)
      try db.execute(sql: "DELETE FROM adapter WHERE name = ?", arguments: [name])
      try Self.insert(adapter, db)
    }
  }

  /// Records a saved version; when `published`, it becomes the serving version and `apply`
  /// (swapping it into the registry) runs inside the transaction. Versions beyond the newest
  /// `keep` (never the serving one) are forgotten and returned, for their files to be removed.
  /// Throws `unknownAdapter` when the adapter was deleted meanwhile: nothing is served again.
  public func recordVersion(
    _ name: String, _ version: TrainingVersion, keep: Int, apply: () throws -> Void = {}
  ) throws -> [Int] {
    try write { db in
      guard let serving = try Row.fetchOne(db, sql: "SELECT serving_version FROM adapter WHERE name = ?", arguments: [name])
      else { throw CatalogError.unknownAdapter(name) }
      try db.execute(
        sql: """
          INSERT OR REPLACE INTO adapter_version (adapter, version, step, eval_loss, train_loss, created, published)
          VALUES (?, ?, ?, ?, ?, ?, ?)
          """,
        arguments: [
          name, version.version, version.step, version.evalLoss, version.trainLoss, version.created, version.published,
        ])
      var servingVersion: Int? = serving[0]
      if version.published {
        servingVersion = version.version
        try db.execute(sql: "UPDATE adapter SET serving_version = ? WHERE name = ?", arguments: [version.version, name])
      }
      let all = try Int.fetchAll(db, sql: "SELECT version FROM adapter_version WHERE adapter = ? ORDER BY version", arguments: [name])
      let kept = Set(all.suffix(max(1, keep)) + [servingVersion].compactMap { $0 })
      let doomed = all.filter { !kept.contains($0) }
      for gone in doomed {
        try db.execute(sql: "DELETE FROM adapter_version WHERE adapter = ? AND version = ?", arguments: [name, gone])
      }
      if version.published { try apply() }
      return doomed
    }
  }

  /// Serves saved version `version` again; `apply` swaps it in inside the transaction.
  public func rollback(_ name: String, to version: Int, apply: () throws -> Void = {}) throws {
    try write { db in
      guard try Bool.fetchOne(db, sql: "SELECT 1 FROM adapter WHERE name = ?", arguments: [name]) != nil else {
        throw CatalogError.unknownAdapter(name)
      }
      guard
        try Bool.fetchOne(
          db, sql: "SELECT 1 FROM adapter_version WHERE adapter = ? AND version = ?", arguments: [name, version]) != nil
      else { throw CatalogError.unknownVersion(name, version) }
      try db.execute(sql: "UPDATE adapter SET serving_version = ? WHERE name = ?", arguments: [version, name])
      try apply()
    }
  }

  // MARK: - importing a state directory from before the catalog

  /// Imports `<state>/adapters.json` (the adapter library's record) and every
  /// `<state>/training/<name>/training.json` (the trainer's), once: the files are renamed to
  /// `*.imported` afterwards so they can no longer disagree with the catalog. Where the two
  /// disagreed, the trainer's pruning rate wins (it is the one training used). Returns the
  /// names imported.
  @discardableResult
  public func importLegacyState(stateDirectory: String) throws -> [String] {
    let fm = FileManager.default
    let libraryURL = URL(fileURLWithPath: stateDirectory).appendingPathComponent("adapters.json")
    let trainingDirectory = URL(fileURLWithPath: stateDirectory).appendingPathComponent("training")
    var record = LegacyLibraryRecord(adapters: [], default: nil)
    let hasLibrary = fm.fileExists(atPath: libraryURL.path)
    if hasLibrary {
      do {
        record = try JSONDecoder().decode(LegacyLibraryRecord.self, from: Data(contentsOf: libraryURL))
      } catch {
        throw CatalogError.storage("\(libraryURL.path) cannot be imported: \(error)")
      }
    }
    var metas: [String: (URL, LegacyTrainingMeta)] = [:]
    for name in (try? fm.contentsOfDirectory(atPath: trainingDirectory.path)) ?? [] {
      let url = trainingDirectory.appendingPathComponent(name).appendingPathComponent("training.json")
      guard let data = fm.contents(atPath: url.path) else { continue }
      do {
        metas[name] = (url, try JSONDecoder().decode(LegacyTrainingMeta.self, from: data))
      } catch {
        throw CatalogError.storage("\(url.path) cannot be imported: \(error)")
      }
    }
    guard hasLibrary || !metas.isEmpty else { return [] }
    let imported: [String] = try write { db in
      var names: [String] = []
      for entry in record.adapters {
        guard try Bool.fetchOne(db, sql: "SELECT 1 FROM adapter WHERE name = ?", arguments: [entry.name]) == nil
        else { continue }
        let meta = metas[entry.name]?.1
        // The library wrote a created adapter to `<name>` (a directory it made).
        let source: CatalogAdapter.Source = entry.path == entry.name ? .created : .loaded
        var adapter = CatalogAdapter(
          name: entry.name, path: entry.path, source: source, created: entry.created, rank: nil, alpha: nil,
          pruningRate: meta?.pruningRate ?? entry.pruningRate)
        adapter.isDefault = record.default == entry.name
        adapter.servingVersion = meta?.servingVersion
        adapter.paused = meta?.paused ?? false
        adapter.learningRate = meta?.overrides?.learningRate.map(Double.init)
        adapter.batchSize = meta?.overrides?.batchSize
        adapter.publishEvery = meta?.overrides?.publishEvery
        try Self.insert(adapter, db)
        for version in meta?.versions ?? [] {
          try db.execute(
            sql: """
              INSERT OR REPLACE INTO adapter_version (adapter, version, step, eval_loss, train_loss, created, published)
              VALUES (?, ?, ?, ?, ?, ?, ?)
              """,
            arguments: [
              entry.name, version.version, version.step, version.evalLoss, version.trainLoss, version.created,
              version.published,
            ])
        }
        names.append(entry.name)
      }
      return names
    }
    // The catalog is committed: retire the old records so nothing reads them again, durably (a
    // record back after a crash would bring an adapter deleted since back on the next start).
    // A failure stops the start; the next one skips what the catalog holds and retries.
    let retired = (hasLibrary ? [libraryURL.path] : []) + metas.values.map(\.0.path)
    for path in retired {
      do {
        try DurableFile.rename(path, to: path + ".imported")
      } catch {
        throw CatalogError.storage("imported \(path) but cannot retire it: \(error)")
      }
    }
    return imported
  }

  // MARK: - schema

  static func registerMigrations(_ migrator: inout DatabaseMigrator) {
    migrator.registerMigration("adapter-catalog") { db in
      try db.execute(
        sql: """
          CREATE TABLE adapter (
            name TEXT PRIMARY KEY NOT NULL,
            path TEXT NOT NULL,
            source TEXT NOT NULL,
            created INTEGER NOT NULL,
            rank INTEGER,
            alpha REAL,
            pruning_rate REAL NOT NULL,
            mask TEXT,
            is_default INTEGER NOT NULL DEFAULT 0,
            serving_version INTEGER,
            paused INTEGER NOT NULL DEFAULT 0,
            learning_rate REAL,
            batch_size INTEGER,
            publish_every INTEGER
          );
          CREATE TABLE adapter_version (
            adapter TEXT NOT NULL,
            version INTEGER NOT NULL,
            step INTEGER NOT NULL,
            eval_loss REAL,
            train_loss REAL,
            created REAL NOT NULL,
            published INTEGER NOT NULL,
            PRIMARY KEY (adapter, version)
          );
          """)
    }
  }

  private static func insert(_ a: CatalogAdapter, _ db: Database) throws {
    try db.execute(
      sql: """
        INSERT INTO adapter (name, path, source, created, rank, alpha, pruning_rate, mask, is_default, serving_version,
                             paused, learning_rate, batch_size, publish_every)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
        """,
      arguments: [
        a.name, a.path, a.source.rawValue, a.created, a.rank, a.alpha, a.pruningRate, a.mask, a.isDefault,
        a.servingVersion, a.paused, a.learningRate, a.batchSize, a.publishEvery,
      ])
  }

  private static func adapter(_ row: Row) -> CatalogAdapter {
    var a = CatalogAdapter(
      name: row["name"], path: row["path"], source: CatalogAdapter.Source(rawValue: row["source"]) ?? .loaded,
      created: row["created"], rank: row["rank"], alpha: row["alpha"], pruningRate: row["pruning_rate"],
      mask: row["mask"])
    a.isDefault = row["is_default"]
    a.servingVersion = row["serving_version"]
    a.paused = row["paused"]
    a.learningRate = row["learning_rate"]
    a.batchSize = row["batch_size"]
    a.publishEvery = row["publish_every"]
    return a
  }

  private static func version(_ row: Row) -> TrainingVersion {
    TrainingVersion(
      version: row["version"], step: row["step"], evalLoss: row["eval_loss"], trainLoss: row["train_loss"],
      created: row["created"], published: row["published"])
  }

  private func read<T>(_ body: (Database) throws -> T) throws(CatalogError) -> T {
    do {
      return try database.read(body)
    } catch {
      throw .storage("\(error)")
    }
  }

  /// One transaction; errors from `body` pass through as they are, the database's become
  /// `CatalogError.storage`.
  private func write<T>(_ body: (Database) throws -> T) throws -> T {
    do {
      return try database.write(body)
    } catch let error as DatabaseError {
      throw CatalogError.storage("\(error)")
    }
  }
}

// The records written before the catalog existed (read once, by the import).
private struct LegacyLibraryRecord: Decodable {
  struct Entry: Decodable {
    var name: String
    var path: String
    var pruningRate: Double
    var created: Int
    enum CodingKeys: String, CodingKey {
      case name, path, created
      case pruningRate = "pruning_rate"
    }
  }
  var adapters: [Entry]
  var `default`: String?
}

private struct LegacyTrainingMeta: Decodable {
  struct Overrides: Decodable {
    var learningRate: Float?
    var batchSize: Int?
    var publishEvery: Int?
  }
  var paused: Bool?
  var servingVersion: Int?
  var versions: [TrainingVersion]?
  var pruningRate: Double?
  var overrides: Overrides?
}
