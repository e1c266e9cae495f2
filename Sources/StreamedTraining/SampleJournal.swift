// The durable journal of pushed training samples: SQLite (through GRDB) in WAL mode with
// synchronous=FULL, so a push is acknowledged only after its transaction is on disk. Every
// sample gets an increasing id; the trainer's checkpoint records the last id it consumed, so
// after a crash it replays exactly what followed. Every k-th sample of an adapter is held
// out for evaluation when it arrives, and a client-supplied id makes a retried push a no-op.
import Foundation
import GRDB

public struct JournalSample: Sendable, Equatable {
  public var id: Int64
  /// The JSON line as pushed.
  public var line: String
  public var heldOut: Bool
}

public struct AppendOutcome: Sendable, Equatable {
  public var accepted: Int
  /// Lines whose client id was already in the journal (a retried push): not stored again.
  public var duplicates: Int
}

public struct JournalCounts: Sendable, Equatable {
  /// Training samples (not held out) in the journal.
  public var training: Int
  public var heldOut: Int
  /// Training samples with an id above `after`.
  public var pending: Int
}

public final class SampleJournal: Sendable {
  /// Shared with the adapter catalog (one database, one writer).
  let database: DatabaseQueue
  /// Every `heldOutEvery`-th sample of an adapter is held out.
  public let heldOutEvery: Int

  public init(path: String, heldOutEvery: Int) throws {
    self.heldOutEvery = max(2, heldOutEvery)
    try Self.createPrivately(path)
    var configuration = Configuration()
    configuration.prepareDatabase { db in
      // FULL: the commit (and so the acknowledgement) waits for fsync of the WAL.
      try db.execute(sql: "PRAGMA synchronous = FULL")
    }
    database = try DatabaseQueue(path: path, configuration: configuration)
    _ = try database.writeWithoutTransaction { db in try String.fetchOne(db, sql: "PRAGMA journal_mode = WAL") }
    var migrator = DatabaseMigrator()
    migrator.registerMigration("v1") { db in
      try db.execute(
        sql: """
          CREATE TABLE sample (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            adapter TEXT NOT NULL,
            client_id TEXT,
            line TEXT NOT NULL,
            held_out INTEGER NOT NULL,
            received REAL NOT NULL,
            UNIQUE (adapter, client_id)
          );
          CREATE INDEX sample_adapter ON sample (adapter, held_out, id);
          """)
    }
    AdapterCatalog.registerMigrations(&migrator)
    try migrator.migrate(database)
  }

  /// Pushed data is nobody else's: the journal's directory 0700 and the database 0600 whatever
  /// the umask (SQLite gives its -wal and -shm files the database's mode). An older journal
  /// created 0644 is narrowed too.
  private static func createPrivately(_ path: String) throws {
    let directory = (path as NSString).deletingLastPathComponent
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    var info = stat()
    if stat(directory, &info) == 0, info.st_mode & 0o077 != 0 { chmod(directory, info.st_mode & 0o700) }
    let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
    guard fd >= 0 else {
      throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: path, "reason": String(cString: strerror(errno))])
    }
    fchmod(fd, 0o600)
    close(fd)
    for suffix in ["-wal", "-shm"] where FileManager.default.fileExists(atPath: path + suffix) {
      chmod(path + suffix, 0o600)
    }
  }

  /// Every sample of `adapter` in the order pushed, with the client's id (`droplora training export`).
  public func allSamples(adapter: String) throws -> [(sample: JournalSample, clientID: String?)] {
    try database.read { db in
      try Row.fetchAll(
        db, sql: "SELECT id, line, held_out, client_id FROM sample WHERE adapter = ? ORDER BY id", arguments: [adapter]
      ).map { (JournalSample(id: $0[0], line: $0[1], heldOut: $0[2]), $0[3]) }
    }
  }

  /// Forgets every sample of `adapter` (the adapter was deleted).
  public func removeSamples(adapter: String) throws {
    try database.write { db in try db.execute(sql: "DELETE FROM sample WHERE adapter = ?", arguments: [adapter]) }
  }

  /// Stores `lines` (already validated) for `adapter` in one transaction; durable on return.
  public func append(adapter: String, lines: [(clientID: String?, line: String)]) throws -> AppendOutcome {
    try database.write { db in
      var outcome = AppendOutcome(accepted: 0, duplicates: 0)
      var count = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM sample WHERE adapter = ?", arguments: [adapter]) ?? 0
      let now = Date().timeIntervalSince1970
      for (clientID, line) in lines {
        if let clientID,
          try Bool.fetchOne(
            db, sql: "SELECT 1 FROM sample WHERE adapter = ? AND client_id = ?", arguments: [adapter, clientID]) != nil
        {
          outcome.duplicates += 1
          continue
        }
        count += 1
        try db.execute(
          sql: "INSERT INTO sample (adapter, client_id, line, held_out, received) VALUES (?, ?, ?, ?, ?)",
          arguments: [adapter, clientID, line, count % heldOutEvery == 0, now])
        outcome.accepted += 1
      }
      return outcome
    }
  }

  /// Training samples of `adapter` with ids above `after`, oldest first.
  public func trainingSamples(adapter: String, after: Int64, limit: Int) throws -> [JournalSample] {
    try fetch(
      "SELECT id, line, held_out FROM sample WHERE adapter = ? AND held_out = 0 AND id > ? ORDER BY id LIMIT ?",
      [adapter, after, limit])
  }

  /// Training samples of `adapter` with ids at most `upTo` (already trained), for replay.
  public func trainedSamples(adapter: String, upTo: Int64, offset: Int, limit: Int) throws -> [JournalSample] {
    try fetch(
      "SELECT id, line, held_out FROM sample WHERE adapter = ? AND held_out = 0 AND id <= ? ORDER BY id LIMIT ? OFFSET ?",
      [adapter, upTo, limit, offset])
  }

  /// The newest `limit` held-out samples of `adapter`.
  public func heldOutSamples(adapter: String, limit: Int) throws -> [JournalSample] {
    try fetch(
      "SELECT id, line, held_out FROM sample WHERE adapter = ? AND held_out = 1 ORDER BY id DESC LIMIT ?",
      [adapter, limit])
  }

  public func counts(adapter: String, after: Int64) throws -> JournalCounts {
    try database.read { db in
      let row = try Row.fetchOne(
        db,
        sql: """
          SELECT COALESCE(SUM(held_out = 0), 0), COALESCE(SUM(held_out = 1), 0),
                 COALESCE(SUM(held_out = 0 AND id > ?), 0)
          FROM sample WHERE adapter = ?
          """, arguments: [after, adapter])
      return JournalCounts(training: row?[0] ?? 0, heldOut: row?[1] ?? 0, pending: row?[2] ?? 0)
    }
  }

  /// Adapters with samples in the journal.
  public func adapters() throws -> [String] {
    try database.read { db in try String.fetchAll(db, sql: "SELECT DISTINCT adapter FROM sample ORDER BY adapter") }
  }

  private func fetch(_ sql: String, _ arguments: StatementArguments) throws -> [JournalSample] {
    try database.read { db in
      try Row.fetchAll(db, sql: sql, arguments: arguments).map {
        JournalSample(id: $0[0], line: $0[1], heldOut: $0[2])
      }
    }
  }
}
