// The adapter catalog: a state directory written by the release before it is imported whole
// (the trainer's pruning rate and versions, the library's default), its transactions leave
// nothing behind when the in-memory side fails, and a version recorded for a deleted adapter
// is refused (what let a DELETE be undone by a publish under way).
import Foundation
import Testing

import StreamedTraining

@Suite struct AdapterCatalogTests {
  /// A copy of the fixture state directory (the test must not change the committed one).
  func legacyState() throws -> String {
    let source = try #require(Bundle.module.url(forResource: "Fixtures/state-1cdf4ca", withExtension: nil))
    let copy = FileManager.default.temporaryDirectory.appendingPathComponent("catalog-\(UUID().uuidString)")
    try FileManager.default.copyItem(at: source, to: copy)
    return copy.path
  }

  func emptyCatalog() throws -> (AdapterCatalog, String) {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("catalog-\(UUID().uuidString)").path
    let journal = try SampleJournal(path: directory + "/journal.sqlite", heldOutEvery: 4)
    return (AdapterCatalog(journal: journal), directory)
  }

  @Test func importsAStateDirectoryFromTheRelease() throws {
    let state = try legacyState()
    defer { try? FileManager.default.removeItem(atPath: state) }
    let journal = try SampleJournal(path: state + "/journal.sqlite", heldOutEvery: 4)
    let catalog = AdapterCatalog(journal: journal)
    #expect(try catalog.importLegacyState(stateDirectory: state) == ["task"])
    let task = try #require(try catalog.adapter(named: "task"))
    #expect(task.source == .created)
    #expect(task.path == "task")
    #expect(task.pruningRate == 0.3)
    #expect(task.isDefault)
    #expect(task.servingVersion == 2)
    #expect(!task.paused)
    #expect(try catalog.versions(of: "task").map(\.version) == [1, 2])
    #expect(try catalog.versions(of: "task").allSatisfy(\.published))
    #expect(try catalog.defaultName() == "task")
    // The journal's samples survive the migration that added the catalog.
    #expect(try journal.counts(adapter: "task", after: 0).training + journal.counts(adapter: "task", after: 0).heldOut == 12)
    // The old records are retired, so a second start imports nothing and nothing disagrees.
    #expect(!FileManager.default.fileExists(atPath: state + "/adapters.json"))
    #expect(!FileManager.default.fileExists(atPath: state + "/training/task/training.json"))
    #expect(try catalog.importLegacyState(stateDirectory: state) == [])
    #expect(try catalog.all().count == 1)
  }

  /// A record that cannot be retired stops the import (so the daemon does not start) with an
  /// error naming it: left readable, it would bring back on a later start an adapter deleted
  /// since. Once it can be, the next start retires it and imports nothing twice.
  @Test func aRecordThatCannotBeRetiredIsAnError() throws {
    let state = try legacyState()
    defer { try? FileManager.default.removeItem(atPath: state) }
    let blocker = state + "/adapters.json.imported/x"  // a non-empty directory: the rename fails
    try FileManager.default.createDirectory(atPath: blocker, withIntermediateDirectories: true)
    let catalog = AdapterCatalog(journal: try SampleJournal(path: state + "/journal.sqlite", heldOutEvery: 4))
    let error = #expect(throws: CatalogError.self) { try catalog.importLegacyState(stateDirectory: state) }
    #expect("\(error.map { "\($0)" } ?? "")".contains("adapters.json"), "\(String(describing: error))")
    #expect(FileManager.default.fileExists(atPath: state + "/adapters.json"))
    try FileManager.default.removeItem(atPath: state + "/adapters.json.imported")
    #expect(try catalog.importLegacyState(stateDirectory: state) == [])
    #expect(try catalog.all().map(\.name) == ["task"])
    #expect(!FileManager.default.fileExists(atPath: state + "/adapters.json"))
    #expect(FileManager.default.fileExists(atPath: state + "/adapters.json.imported"))
  }

  @Test func aFailingRegistryLeavesTheCatalogUnchanged() throws {
    let (catalog, directory) = try emptyCatalog()
    defer { try? FileManager.default.removeItem(atPath: directory) }
    struct Refused: Error {}
    let entry = CatalogAdapter(name: "a", path: "a", source: .created, created: 1, rank: 4, alpha: 8, pruningRate: 0.5)
    #expect(throws: Refused.self) { try catalog.insert(entry) { throw Refused() } }
    #expect(try catalog.adapter(named: "a") == nil)
    try catalog.insert(entry)
    #expect(throws: CatalogError.exists("a")) { try catalog.insert(entry) }
    #expect(throws: Refused.self) { try catalog.setDefault("a") { throw Refused() } }
    #expect(try catalog.defaultName() == nil)
    try catalog.setDefault("a")
    #expect(try catalog.defaultName() == "a")
  }

  @Test func aDeletedAdapterCannotBePublishedAgain() throws {
    let (catalog, directory) = try emptyCatalog()
    defer { try? FileManager.default.removeItem(atPath: directory) }
    try catalog.insert(CatalogAdapter(name: "a", path: "a", source: .created, created: 1, rank: 4, alpha: 8, pruningRate: 0.5))
    let v1 = TrainingVersion(version: 1, step: 3, evalLoss: 2, trainLoss: 2.5, created: 10, published: true)
    var swappedIn = 0
    #expect(try catalog.recordVersion("a", v1, keep: 5) { swappedIn += 1 } == [])
    #expect(try catalog.adapter(named: "a")?.servingVersion == 1)
    try catalog.remove("a")
    let v2 = TrainingVersion(version: 2, step: 6, evalLoss: 1, trainLoss: 2, created: 20, published: true)
    #expect(throws: CatalogError.unknownAdapter("a")) { try catalog.recordVersion("a", v2, keep: 5) { swappedIn += 1 } }
    #expect(swappedIn == 1)
    #expect(try catalog.versions(of: "a").isEmpty)
    // Re-created under the same name, it starts without the old versions.
    try catalog.insert(CatalogAdapter(name: "a", path: "a", source: .created, created: 2, rank: 4, alpha: 8, pruningRate: 0.5))
    #expect(try catalog.adapter(named: "a")?.servingVersion == nil)
  }

  @Test func oldVersionsArePrunedButNeverTheServingOne() throws {
    let (catalog, directory) = try emptyCatalog()
    defer { try? FileManager.default.removeItem(atPath: directory) }
    try catalog.insert(CatalogAdapter(name: "a", path: "a", source: .created, created: 1, rank: 4, alpha: 8, pruningRate: 0.5))
    var doomed: [Int] = []
    for v in 1...4 {
      doomed += try catalog.recordVersion(
        "a", TrainingVersion(version: v, step: v, evalLoss: nil, trainLoss: nil, created: Double(v), published: v == 1),
        keep: 2)
    }
    #expect(doomed == [2])
    #expect(try catalog.versions(of: "a").map(\.version) == [1, 3, 4])
    try catalog.rollback("a", to: 3)
    #expect(try catalog.adapter(named: "a")?.servingVersion == 3)
    #expect(throws: CatalogError.unknownVersion("a", 9)) { try catalog.rollback("a", to: 9) }
  }

  @Test func theJournalIsPrivateWhateverTheUmask() throws {
    let old = umask(0)
    defer { umask(old) }
    let (_, directory) = try emptyCatalog()
    defer { try? FileManager.default.removeItem(atPath: directory) }
    var info = stat()
    #expect(stat(directory + "/journal.sqlite", &info) == 0)
    #expect(info.st_mode & 0o777 == 0o600)
    #expect(stat(directory, &info) == 0)
    #expect(info.st_mode & 0o077 == 0)
  }
}
