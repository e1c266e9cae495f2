// Logging for the daemon: the journal (or `<N>`-prefixed stderr lines outside systemd) through
// the Systemd module's handler, with one process-wide level that SIGHUP can change live.
import Foundation
import Logging
import Settings
import Systemd

final class LiveLogLevel: @unchecked Sendable {
  // unchecked: `level` is guarded by `lock`.
  static let shared = LiveLogLevel()
  private let lock = NSLock()
  private var current = Logger.Level.info

  var level: Logger.Level {
    get { lock.withLock { current } }
    set { lock.withLock { current = newValue } }
  }

  static func level(_ name: LogLevelName) -> Logger.Level {
    Logger.Level(rawValue: name.rawValue) ?? .info
  }

  /// Routes every Logger of the process through the journal handler at the shared level.
  static func bootstrap(_ name: LogLevelName) {
    shared.level = level(name)
    LoggingSystem.bootstrap { label in LiveLevelHandler(inner: JournalLogHandler(label: label)) }
  }
}

/// Reads its level from `LiveLogLevel.shared` on every message, so a reload reaches loggers
/// that were made before it.
struct LiveLevelHandler: LogHandler {
  var inner: JournalLogHandler

  var logLevel: Logger.Level {
    get { LiveLogLevel.shared.level }
    set {}
  }

  var metadata: Logger.Metadata {
    get { inner.metadata }
    set { inner.metadata = newValue }
  }

  subscript(metadataKey key: String) -> Logger.Metadata.Value? {
    get { inner[metadataKey: key] }
    set { inner[metadataKey: key] = newValue }
  }

  func log(event: LogEvent) { inner.log(event: event) }
}
