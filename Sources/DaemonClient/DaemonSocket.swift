// Where the client finds the daemon's socket when no --socket is given: $DROPLORA_SOCKET, else
// server.socket_path of the system-wide config (so a changed path needs no client flags),
// else the built-in default.
import Foundation
import Settings

public enum DaemonSocket {
  public static let environmentVariable = "DROPLORA_SOCKET"
  public static let systemConfigPath = "/etc/droplora/droplorad.yaml"
  public static let defaultPath = ServerSettings().socketPath

  public static func resolve(
    explicit: String?, environment: [String: String] = ProcessInfo.processInfo.environment,
    configPath: String = systemConfigPath
  ) -> String {
    if let explicit, !explicit.isEmpty { return explicit }
    if let fromEnvironment = environment[environmentVariable], !fromEnvironment.isEmpty { return fromEnvironment }
    // A config that is missing, unreadable or invalid is the daemon's problem to report; the
    // client just falls back to the default path.
    if FileManager.default.isReadableFile(atPath: configPath),
      let settings = try? SettingsLoader.load(path: configPath)
    {
      return settings.server.socketPath
    }
    return defaultPath
  }
}
