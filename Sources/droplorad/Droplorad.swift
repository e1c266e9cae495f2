// droplorad: the daemon's command line. Reads the configuration (file, then flags), and either
// checks it (--check-config) or starts the daemon (see Daemon.swift). Errors in the
// configuration name the file, line, column and key, and exit with status 1.
import ArgumentParser
import DaemonCore
import Foundation
import HTTPAPI
import Kernels
import Settings
import Training

@main
struct Droplorad: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "droplorad",
    abstract: "Serve a GGUF model and its DropLoRA adapters over HTTP on a Unix socket.",
    discussion: """
      Reads /etc/droplora/droplorad.yaml when it exists (or the file given with --config), then \
      applies the flags below. See droplorad(8) and droplorad.yaml(5).
      """,
    version: BuildInfo.version)

  static let defaultConfigPath = "/etc/droplora/droplorad.yaml"

  @Option(name: .long, help: "Configuration file (default: \(Droplorad.defaultConfigPath) when it exists).")
  var config: String?

  @Flag(name: .long, help: "Check the configuration, print the outcome and exit (0 valid, 1 not).")
  var checkConfig = false

  @Option(
    name: .customLong("set"),
    help: ArgumentHelp("Override a key of droplorad.yaml by its dotted path (repeatable).", valueName: "KEY=VALUE"))
  var assignments: [String] = []

  @Option(name: .long, help: "Socket path to bind when not socket-activated (server.socket_path).")
  var socket: String?

  @Option(name: .long, help: "GGUF model file (model.path).")
  var model: String?

  @Option(name: .long, help: "Compute threads, 0 = one per core (model.threads).")
  var threads: Int?

  @Option(name: .long, help: "Tokens of context per sequence (model.context_size).")
  var contextSize: Int?

  @Option(name: .long, help: "State directory (state_directory).")
  var stateDirectory: String?

  @Option(name: .long, help: "Adapters directory (adapters.directory).")
  var adaptersDirectory: String?

  @Option(name: .long, help: "trace, debug, info, notice, warning, error or critical (log_level).")
  var logLevel: String?

  func run() async throws {
    // Background training is sgemm-bound: OpenBLAS must pick its kernels for this CPU, which
    // only the environment at load time can make it do (see OpenBLASCoreType).
    if !checkConfig { OpenBLASCoreType.ensureSet() }
    let source = configSource()
    let settings: DaemonSettings
    do {
      settings = try Self.loadSettings(path: source, overrides: try overrides())
    } catch {
      FileHandle.standardError.write(Data("droplorad: \(error)\n".utf8))
      throw ExitCode(1)
    }
    if checkConfig {
      print("\(source ?? "built-in defaults"): valid")
      return
    }
    let overrides = try overrides()
    let daemon = Daemon(settings: settings) { try Self.loadSettings(path: source, overrides: overrides) }
    do {
      try await daemon.run()
    } catch {
      FileHandle.standardError.write(Data("droplorad: \(error)\n".utf8))
      throw ExitCode(1)
    }
  }

  /// The file to read: --config, else the default path when it exists, else none.
  func configSource() -> String? {
    if let config { return config }
    return FileManager.default.fileExists(atPath: Self.defaultConfigPath) ? Self.defaultConfigPath : nil
  }

  /// --set assignments and the named flags, as dotted key paths.
  func overrides() throws -> [String: String] {
    var result: [String: String] = [:]
    for assignment in assignments {
      guard let equals = assignment.firstIndex(of: "="), equals != assignment.startIndex else {
        throw ValidationError("--set takes KEY=VALUE, e.g. --set generation.top_k=20; got '\(assignment)'")
      }
      result[String(assignment[..<equals])] = String(assignment[assignment.index(after: equals)...])
    }
    let named: [(String, String?)] = [
      ("server.socket_path", socket.map(Self.quoted)), ("model.path", model.map(Self.quoted)),
      ("model.threads", threads.map(String.init)), ("model.context_size", contextSize.map(String.init)),
      ("state_directory", stateDirectory.map(Self.quoted)),
      ("adapters.directory", adaptersDirectory.map(Self.quoted)), ("log_level", logLevel),
    ]
    for case let (key, value?) in named { result[key] = value }
    return result
  }

  /// A path as a YAML scalar that stays a string whatever it contains.
  static func quoted(_ text: String) -> String {
    "'" + text.replacingOccurrences(of: "'", with: "''") + "'"
  }

  static func loadSettings(path: String?, overrides: [String: String]) throws -> DaemonSettings {
    var settings = try path.map { path throws(SettingsError) in try SettingsLoader.load(path: path) } ?? DaemonSettings()
    try settings.apply(overrides: overrides)
    // The one setting the file alone cannot validate: it depends on this CPU.
    if let why = Daemon.computeType(settings.training.computeType).unsupportedReason {
      throw SettingsError(.invalidValue(why), keyPath: "training.compute_type", source: path)
    }
    try resolveGroups(settings, source: path)
    try checkListeners(settings, source: path)
    try Daemon.checkKVBudget(settings, source: path)
    return settings
  }

  /// The API keys file must be usable and the TCP listeners allowed with or without it (the
  /// start would refuse them): --check-config and reloads say so too.
  static func checkListeners(_ settings: DaemonSettings, source: String?) throws {
    let keys: APIKeys?
    do {
      keys = try Daemon.apiKeys(settings.server)
    } catch {
      throw SettingsError(.invalidValue("\(error)"), keyPath: "server.api_keys_file", source: source)
    }
    do {
      try Daemon.checkListeners(settings.server, keys: keys)
    } catch {
      throw SettingsError(.invalidValue("\(error)"), keyPath: "server.listen", source: source)
    }
  }

  /// Group names must exist on this system (the start would fail on them): --check-config and
  /// reloads say so before a restart does.
  static func resolveGroups(_ settings: DaemonSettings, source: String?) throws {
    for name in settings.server.allowedGroups where Daemon.groupID(name) == nil {
      throw SettingsError(.invalidValue("no group '\(name)' on this system"), keyPath: "server.allowed_groups", source: source)
    }
    if let name = settings.server.socketGroup, Daemon.groupID(name) == nil {
      throw SettingsError(.invalidValue("no group '\(name)' on this system"), keyPath: "server.socket_group", source: source)
    }
  }
}
