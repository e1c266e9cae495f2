// Command-line overrides go through the same key table and checks as the file: values are
// typed, ranges and cross-key rules hold, unknown keys are refused, errors say "command line"
// and the key path, and a failed override leaves the settings untouched.
import Testing

import Settings

@Suite struct OverrideTests {
  @Test func overridesApply() throws {
    var s = DaemonSettings()
    try s.apply(overrides: [
      "model.threads": "4", "generation.top_k": "20", "server.allowed_uids": "[1000, 1001]",
      "server.socket_mode": "0600", "adapters.default": "math", "log_level": "warning",
      "model.path": "/srv/m.gguf", "training.pruning_rate": "0.1",
    ])
    #expect(s.model.threads == 4 && s.generation.topK == 20 && s.server.allowedUIDs == [1000, 1001])
    #expect(s.server.socketMode == 0o600 && s.adapters.defaultAdapter == "math" && s.logLevel == .warning)
    #expect(s.model.path == "/srv/m.gguf" && s.training.pruningRate == 0.1)
    // A null clears an optional key.
    try s.apply(overrides: ["adapters.default": "~"])
    #expect(s.adapters.defaultAdapter == nil)
  }

  @Test func overridesOnTopOfTheFile() throws {
    let file = try SettingsLoader.decode("model:\n  threads: 2\n  context_size: 512\n")
    let s = try file.applying(overrides: ["model.threads": "8"])
    #expect(s.model.threads == 8 && s.model.contextSize == 512)
  }

  @Test func overrideErrors() {
    let cases: [([String: String], SettingsError)] = [
      (["model.thread": "4"], SettingsError(.unknownKey, keyPath: "model.thread", source: "command line")),
      (["model": "4"], SettingsError(.unknownKey, keyPath: "model", source: "command line")),
      (["model.threads": "four"],
       SettingsError(.wrongType(expected: "an integer", found: "\"four\""), keyPath: "model.threads", source: "command line")),
      (["model.threads": ""],
       SettingsError(.wrongType(expected: "an integer", found: "null"), keyPath: "model.threads", source: "command line")),
      (["generation.top_p": "2"],
       SettingsError(.outOfRange("2 is not in 0.0...1.0"), keyPath: "generation.top_p", source: "command line")),
      (["limits.max_tokens": "100"],
       SettingsError(
         .outOfRange("generation.max_tokens (512) is above limits.max_tokens (100)"), keyPath: "limits.max_tokens",
         source: "command line")),
      (["model.threads": "&a 3"], SettingsError(.unsupported("anchors (&name)"), keyPath: "model.threads", source: "command line")),
      (["model.path": "[x"],
       SettingsError(
         .syntax("did not find expected ',' or ']' while parsing a flow sequence"), keyPath: "model.path", source: "command line")),
    ]
    for (overrides, expected) in cases {
      var s = DaemonSettings()
      #expect(throws: expected) { try s.apply(overrides: overrides) }
      #expect(s == DaemonSettings(), "a failed override changed the settings")
    }
  }

  @Test func failedOverrideLeavesEarlierOnesUnapplied() {
    var s = DaemonSettings()
    #expect(throws: SettingsError.self) { try s.apply(overrides: ["model.threads": "4", "model.zzz": "1"]) }
    #expect(s.model.threads == 0)
  }
}
