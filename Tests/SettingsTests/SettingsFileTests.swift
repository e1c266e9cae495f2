// The shipped config/droplorad.yaml decodes to exactly the built-in defaults, every key in the
// key table appears in it and in the man page, and partial files keep the other defaults.
import Foundation
import Testing

import Settings

let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
  .deletingLastPathComponent().deletingLastPathComponent()
let shippedConfig = packageRoot.appendingPathComponent("config/droplorad.yaml").path
let manPage = packageRoot.appendingPathComponent("man/droplorad.yaml.5").path

@Suite struct SettingsFileTests {
  @Test func shippedConfigIsTheDefaults() throws {
    let settings = try SettingsLoader.load(path: shippedConfig)
    #expect(settings == DaemonSettings())
  }

  /// The defaults spelled out, so a changed default is a visible change here too.
  @Test func documentedDefaults() {
    let s = DaemonSettings()
    #expect(s.model.path == "/var/lib/droplora/models/SmolLM2-135M-Instruct.Q4_1.gguf")
    #expect(s.model.contextSize == 2048 && s.model.threads == 0 && s.model.kvCacheType == .f32)
    #expect(s.server.socketPath == "/run/droplora/droplorad.sock" && s.server.socketMode == 0o660)
    #expect(s.server.socketGroup == nil && s.server.allowedUIDs.isEmpty && s.server.allowedGroups.isEmpty)
    #expect(s.adapters.directory == "/var/lib/droplora/adapters" && s.adapters.defaultAdapter == nil)
    #expect(s.adapters.mergeType == .q8_0 && s.adapters.mergedCacheSize == 4)
    #expect(s.generation.temperature == 0.8 && s.generation.topP == 0.95 && s.generation.topK == 40)
    #expect(s.generation.minP == 0.05 && s.generation.repeatPenalty == 1.0 && s.generation.maxTokens == 512)
    #expect(s.limits.maxRequestBytes == 1_048_576 && s.limits.maxTokens == 4096)
    #expect(s.limits.maxConcurrentGenerations == 2 && s.limits.queueLimit == 32)
    #expect(s.training.rank == 32 && s.training.alpha == 64 && s.training.pruningRate == 0.5)
    #expect(s.training.maskGranularity == .step && s.training.loraDropout == 0.05 && s.training.computeType == .f32)
    #expect(s.training.learningRate == 3e-4 && s.training.publishEvery == 50)
    #expect(s.stateDirectory == "/var/lib/droplora" && s.logLevel == .info)
  }

  @Test func everyKeyIsInTheShippedFileAndTheManPage() throws {
    let config = try String(contentsOfFile: shippedConfig, encoding: .utf8)
    let man = try String(contentsOfFile: manPage, encoding: .utf8)
    for path in SettingsLoader.keyPaths {
      let leaf = String(path.split(separator: ".").last!)
      #expect(config.contains(leaf + ":"), "\(path) missing from config/droplorad.yaml")
      // The man page lists each key by its full dotted path, with roff's escaped underscore-free form.
      #expect(man.contains(path.replacingOccurrences(of: "-", with: "\\-")), "\(path) missing from the man page")
    }
  }

  @Test func emptyAndCommentOnlyFilesAreTheDefaults() throws {
    #expect(try SettingsLoader.decode("") == DaemonSettings())
    #expect(try SettingsLoader.decode("# nothing\n") == DaemonSettings())
    #expect(try SettingsLoader.decode("---\n...\n") == DaemonSettings())
  }

  @Test func partialFileKeepsOtherDefaults() throws {
    let s = try SettingsLoader.decode(
      """
      model:
        path: models/x.gguf
        threads: 2
        kv_cache_type: f16
      server:
        socket_mode: "0600"
        socket_group: droplora
        allowed_uids: [1000, 1001]
        allowed_groups:
          - wheel
          - 1234
      adapters: {default: math, merge_type: f16}
      generation:
        temperature: 0
      training:
        mask_granularity: token
        compute_type: bf16
        learning_rate: 1e-4
      log_level: debug
      """)
    var expected = DaemonSettings()
    expected.model.path = "models/x.gguf"
    expected.model.threads = 2
    expected.model.kvCacheType = .f16
    expected.server.socketMode = 0o600
    expected.server.socketGroup = "droplora"
    expected.server.allowedUIDs = [1000, 1001]
    expected.server.allowedGroups = ["wheel", "1234"]
    expected.adapters.defaultAdapter = "math"
    expected.adapters.mergeType = .f16
    expected.generation.temperature = 0
    expected.training.maskGranularity = .token
    expected.training.computeType = .bf16
    expected.training.learningRate = 1e-4
    expected.logLevel = .debug
    #expect(s == expected)
  }

  @Test(arguments: ["0660", "660", "0o660", "\"0660\"", "'660'"])
  func socketModeSpellings(_ spelling: String) throws {
    let s = try SettingsLoader.decode("server:\n  socket_mode: \(spelling)\n")
    #expect(s.server.socketMode == 0o660)
  }

  @Test func loadNamesTheFileInErrors() throws {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("settings-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    let file = dir.appendingPathComponent("d.yaml").path
    try "model:\n  threads: many\n".write(toFile: file, atomically: true, encoding: .utf8)
    #expect(throws: SettingsError(
      .wrongType(expected: "an integer", found: "\"many\""), keyPath: "model.threads", source: file,
      mark: Mark(line: 2, column: 12))) { try SettingsLoader.load(path: file) }
    let missing = dir.appendingPathComponent("missing.yaml").path
    let error = #expect(throws: SettingsError.self) { try SettingsLoader.load(path: missing) }
    #expect(error?.source == missing)
    if case .unreadable = error?.kind {} else { Issue.record("expected unreadable, got \(String(describing: error))") }
    let message = "\(SettingsError(.wrongType(expected: "an integer", found: "\"many\""), keyPath: "model.threads", source: "/etc/d.yaml", mark: Mark(line: 2, column: 12)))"
    #expect(message == "/etc/d.yaml:2:12: model.threads: expected an integer, found \"many\"")
  }
}
