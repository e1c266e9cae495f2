// sd_notify for a Type=notify service: READY=1, STATUS=, WATCHDOG=1, RELOADING=1 (with the
// MONOTONIC_USEC systemd requires for Type=notify-reload), STOPPING=1, and the watchdog
// interval from sd_watchdog_enabled. Outside systemd (NOTIFY_SOCKET unset) every call is a
// no-op. Deliberately not here: a timer that sends WATCHDOG=1 (the serving loop does, so a
// wedged loop stops the pings) and signal handling.
import CSystemd

#if canImport(Glibc)
  import Glibc
#endif

public struct Notifier: Sendable {
  public init() {}

  /// Whether NOTIFY_SOCKET is set, i.e. the service manager listens for notifications.
  public var isEnabled: Bool { getenv("NOTIFY_SOCKET") != nil }

  /// Sends newline-separated `KEY=value` assignments. Returns false when there is no notify
  /// socket (nothing sent); throws when sending failed.
  @discardableResult
  public func send(_ assignments: [String]) throws(SystemdError) -> Bool {
    let state = assignments.joined(separator: "\n")
    return try SystemdError.check("sd_notify", sd_notify(0, state)) > 0
  }

  /// The service is up: the model is mapped and the socket serves.
  @discardableResult
  public func ready(status: String? = nil) throws(SystemdError) -> Bool {
    try send(["READY=1"] + (status.map { ["STATUS=" + Self.oneLine($0)] } ?? []))
  }

  /// A one-line state shown by `systemctl status`.
  @discardableResult
  public func status(_ text: String) throws(SystemdError) -> Bool {
    try send(["STATUS=" + Self.oneLine(text)])
  }

  @discardableResult
  public func watchdog() throws(SystemdError) -> Bool { try send(["WATCHDOG=1"]) }

  /// Reloading the configuration; send `ready()` when done.
  @discardableResult
  public func reloading(status: String? = nil) throws(SystemdError) -> Bool {
    try send(
      ["RELOADING=1", "MONOTONIC_USEC=\(Self.monotonicMicroseconds())"]
        + (status.map { ["STATUS=" + Self.oneLine($0)] } ?? []))
  }

  @discardableResult
  public func stopping(status: String? = nil) throws(SystemdError) -> Bool {
    try send(["STOPPING=1"] + (status.map { ["STATUS=" + Self.oneLine($0)] } ?? []))
  }

  /// The watchdog interval (WatchdogSec=) when systemd expects WATCHDOG=1 from this process,
  /// else nil. Ping at half of it.
  public func watchdogInterval() throws(SystemdError) -> Duration? {
    var usec: UInt64 = 0
    guard try SystemdError.check("sd_watchdog_enabled", sd_watchdog_enabled(0, &usec)) > 0 else { return nil }
    return .microseconds(Int64(clamping: usec))
  }

  /// CLOCK_MONOTONIC in microseconds, as MONOTONIC_USEC expects.
  public static func monotonicMicroseconds() -> UInt64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return UInt64(now.tv_sec) * 1_000_000 + UInt64(now.tv_nsec) / 1000
  }

  /// A newline would end the STATUS= assignment and start another.
  static func oneLine(_ text: String) -> String {
    String(text.map { $0.isNewline ? " " : $0 })
  }
}
