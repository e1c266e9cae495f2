// DurableFile, the one way files that must survive a crash are written: complete after the
// call, the old file untouched and no temporary left when the write fails, a full disk reported
// as a typed error with ENOSPC (on a real 64 KiB tmpfs when the tests run as root).
import DurableFiles
import Foundation
import Testing

#if canImport(Glibc)
  import Glibc
#endif

private func temporaryDirectory() throws -> String {
  var template = Array("/tmp/durable-XXXXXX".utf8CString)
  guard let made = mkdtemp(&template) else { throw DurableWriteError(path: "/tmp", operation: "mkdtemp", errno: errno) }
  return String(cString: made)
}

private func names(in directory: String) -> [String] {
  ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).sorted()
}

private func mode(of path: String) -> mode_t {
  var st = stat()
  stat(path, &st)
  return st.st_mode & 0o777
}

// Serialized: one test changes the process's umask.
@Suite(.serialized) struct DurableFileTests {
  @Test func aWriteIsCompleteAndLeavesOnlyTheFile() throws {
    let directory = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let path = directory + "/state.json"
    try DurableFile.write(Array("old".utf8), to: path)
    let big = (0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
    try DurableFile.write(big, to: path, mode: 0o600)
    #expect(FileManager.default.contents(atPath: path) == Data(big))
    #expect(mode(of: path) == 0o600)
    #expect(names(in: directory) == ["state.json"])
    // Streamed in pieces, Data and slices alike.
    try DurableFile.write(to: path) { (sink) throws(DurableWriteError) in
      try sink.write(Data("a".utf8))
      try sink.write([UInt8]("bcd".utf8)[1...])
    }
    #expect(String(decoding: FileManager.default.contents(atPath: path) ?? Data(), as: UTF8.self) == "acd")
  }

  /// Without a mode a file is created as open(2) would (0666 less the umask): an operator's
  /// umask 077 keeps it private. A given mode is exact, whatever the umask.
  @Test func theUmaskAppliesUnlessAModeIsGiven() throws {
    let directory = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let old = umask(0o077)
    defer { umask(old) }
    try DurableFile.write(Array("a".utf8), to: directory + "/private")
    #expect(mode(of: directory + "/private") == 0o600)
    umask(0o022)
    try DurableFile.write(Array("b".utf8), to: directory + "/shared")
    #expect(mode(of: directory + "/shared") == 0o644)
    // Replacing a file takes the new file's mode, not the old one's.
    try DurableFile.write(Array("c".utf8), to: directory + "/private")
    #expect(mode(of: directory + "/private") == 0o644)
    umask(0)
    try DurableFile.write(Array("d".utf8), to: directory + "/given", mode: 0o600)
    #expect(mode(of: directory + "/given") == 0o600)
    try DurableFile.write(to: directory + "/open") { (sink) throws(DurableWriteError) in try sink.write(Array("e".utf8)) }
    #expect(mode(of: directory + "/open") == 0o666)
    #expect(names(in: directory) == ["given", "open", "private", "shared"])
  }

  @Test func aFailedWriteKeepsTheOldFileAndNoTemporary() throws {
    let directory = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let path = directory + "/adapter.gguf"
    try DurableFile.write(Array("complete".utf8), to: path)
    let failure = DurableWriteError(path: path, operation: "encode", errno: EIO)
    #expect(throws: failure) {
      try DurableFile.write(to: path) { (sink) throws(DurableWriteError) in
        try sink.write(Array("half".utf8))
        throw failure
      }
    }
    #expect(FileManager.default.contents(atPath: path) == Data("complete".utf8))
    #expect(names(in: directory) == ["adapter.gguf"])
    // A directory that does not exist: a typed error naming it, nothing created.
    let missing = #expect(throws: DurableWriteError.self) {
      try DurableFile.write([1, 2, 3], to: directory + "/missing/x")
    }
    #expect(missing?.errno == ENOENT && "\(missing.map { "\($0)" } ?? "")".contains("missing/x"))
    #expect(names(in: directory) == ["adapter.gguf"])
  }

  @Test func aDirectoryIsInstalledWholeAndNeverOverAnotherUnlessAsked() throws {
    let directory = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let staging = directory + "/v1.tmp"
    try DurableFile.makeDirectories(staging + "/inner")
    try DurableFile.write(Array("config".utf8), to: staging + "/adapter_config.json")
    try DurableFile.write(Array("weights".utf8), to: staging + "/inner/w")
    try DurableFile.install(directory: staging, at: directory + "/v1")
    #expect(names(in: directory) == ["v1"])
    #expect(FileManager.default.contents(atPath: directory + "/v1/inner/w") == Data("weights".utf8))

    try DurableFile.makeDirectories(staging)
    try DurableFile.write(Array("new".utf8), to: staging + "/adapter_config.json")
    #expect(throws: DurableWriteError.self) { try DurableFile.install(directory: staging, at: directory + "/v1") }
    #expect(FileManager.default.contents(atPath: directory + "/v1/adapter_config.json") == Data("config".utf8))
    try DurableFile.install(directory: staging, at: directory + "/v1", replacing: true)
    #expect(FileManager.default.contents(atPath: directory + "/v1/adapter_config.json") == Data("new".utf8))
    #expect(names(in: directory + "/v1") == ["adapter_config.json"])
    #expect(names(in: directory) == ["v1"])
  }

  /// A 64 KiB tmpfs: writing 1 MiB fails with ENOSPC as a typed error, the old file stays whole
  /// and no temporary is left to fill the disk further.
  @Test(.enabled(if: getuid() == 0, "mounting a tmpfs needs root"))
  func aFullDiskIsATypedErrorAndLeavesNothingBehind() throws {
    let directory = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let mounted = directory.withCString { mount("tmpfs", $0, "tmpfs", 0, "size=64k") } == 0
    try #require(mounted, "mount tmpfs: \(String(cString: strerror(errno)))")
    defer { umount(directory) }
    let path = directory + "/default.json"
    try DurableFile.write(Array("kept".utf8), to: path)
    let full = #expect(throws: DurableWriteError.self) {
      try DurableFile.write([UInt8](repeating: 7, count: 1 << 20), to: path)
    }
    #expect(full?.isDiskFull == true && full?.errno == ENOSPC, "\(String(describing: full))")
    #expect(full?.description.contains("No space left on device") == true)
    #expect(FileManager.default.contents(atPath: path) == Data("kept".utf8))
    #expect(names(in: directory) == ["default.json"])
  }
}
