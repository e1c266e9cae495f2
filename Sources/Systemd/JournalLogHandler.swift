// A swift-log LogHandler for a systemd service: structured entries through sd_journal_sendv
// (MESSAGE, PRIORITY, CODE_*, the logger label and every metadata key as a field) when stderr
// is journald's stream (JOURNAL_STREAM names stderr's device and inode); under systemd with
// stderr elsewhere, one line per message prefixed with `<N>`, the syslog priority that journald
// and `SyslogLevelPrefix=` understand; outside systemd (a terminal, a pipe, a file), lines a
// person reads: a UTC timestamp and the level's word. Not here: choosing the level (the daemon
// sets `logLevel` from log_level).
import CSystemd
import Logging

#if canImport(Glibc)
  import Glibc
#endif

public struct JournalLogHandler: LogHandler {
  public enum Destination: Sendable, Equatable {
    case journal
    /// `<N>`-prefixed lines written to this descriptor (not closed by the handler).
    case stream(fd: Int32)
    /// `2026-12-05T16:11:12.345Z notice label: message` lines written to this descriptor.
    case human(fd: Int32)

    public static let standardError = Destination.stream(fd: 2)

    /// The journal when stderr is connected to it (JOURNAL_STREAM matches fd 2), `<N>` lines on
    /// stderr when JOURNAL_STREAM is set but names another stream (systemd's priority prefixes
    /// still apply), else human lines on stderr.
    public static func detect() -> Destination {
      let value = getenv("JOURNAL_STREAM").map { String(cString: $0) }
      return choose(journalStream: value, fd: 2)
    }

    public static func choose(journalStream: String?, fd: Int32) -> Destination {
      if JournalLogHandler.journalStreamMatches(journalStream, fd: fd) { return .journal }
      return journalStream == nil ? .human(fd: fd) : .stream(fd: fd)
    }
  }

  public let label: String
  public let destination: Destination
  public var logLevel: Logger.Level = .info
  public var metadata: Logger.Metadata = [:]
  public var metadataProvider: Logger.MetadataProvider?

  public init(
    label: String, destination: Destination = .detect(),
    metadataProvider: Logger.MetadataProvider? = LoggingSystem.metadataProvider
  ) {
    self.label = label
    self.destination = destination
    self.metadataProvider = metadataProvider
  }

  public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
    get { metadata[key] }
    set { metadata[key] = newValue }
  }

  public func log(event: LogEvent) {
    var merged = metadata
    if let provided = metadataProvider?.get() { merged.merge(provided) { $1 } }
    if let explicit = event.metadata { merged.merge(explicit) { $1 } }
    if let error = event.error { merged["error"] = "\(error)" }
    let priority = Self.syslogPriority(event.level)
    switch destination {
    case .journal:
      let fields = Self.journalFields(
        priority: priority, label: label, message: event.message.description, metadata: merged,
        source: event.source, file: event.file, function: event.function, line: event.line)
      Self.sendToJournal(fields)
    case let .stream(fd):
      let line = Self.streamLine(priority: priority, label: label, message: event.message.description, metadata: merged)
      Self.writeAll(fd, Array(line.utf8))
    case let .human(fd):
      let line = Self.humanLine(
        time: Self.now(), level: event.level, label: label, message: event.message.description, metadata: merged)
      Self.writeAll(fd, Array(line.utf8))
    }
  }

  // MARK: formatting (static so tests check the exact bytes)

  /// syslog priorities (sd-daemon.h's SD_*): swift-log has no alert/emergency.
  public static func syslogPriority(_ level: Logger.Level) -> Int {
    switch level {
    case .trace, .debug: return 7
    case .info: return 6
    case .notice: return 5
    case .warning: return 4
    case .error: return 3
    case .critical: return 2
    }
  }

  /// `<6>label: message key=value …\n`, metadata sorted by key; a multi-line message repeats
  /// the prefix on each line so every line keeps its priority.
  public static func streamLine(priority: Int, label: String, message: String, metadata: Logger.Metadata) -> String {
    var text = message
    if !metadata.isEmpty {
      text += " " + metadata.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
    }
    let prefix = "<\(priority)>" + (label.isEmpty ? "" : label + ": ")
    return text.split(separator: "\n", omittingEmptySubsequences: false).map { prefix + $0 + "\n" }.joined()
  }

  /// `2026-12-05T16:11:12.345Z warning label: message key=value …\n`; a multi-line message
  /// indents its continuation lines under the first.
  public static func humanLine(
    time: timespec, level: Logger.Level, label: String, message: String, metadata: Logger.Metadata
  ) -> String {
    var text = message
    if !metadata.isEmpty {
      text += " " + metadata.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
    }
    var seconds = time_t(time.tv_sec)
    var parts = tm()
    gmtime_r(&seconds, &parts)
    func pad(_ n: Int32, _ width: Int) -> String {
      let digits = String(n)
      return String(repeating: "0", count: max(0, width - digits.count)) + digits
    }
    let stamp = "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2))T"
      + "\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2)).\(pad(Int32(time.tv_nsec / 1_000_000), 3))Z"
    let prefix = "\(stamp) \(level.rawValue)" + (label.isEmpty ? ": " : " \(label): ")
    let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
    let indent = String(repeating: " ", count: prefix.count)
    return lines.enumerated().map { ($0.offset == 0 ? prefix : indent) + $0.element + "\n" }.joined()
  }

  static func now() -> timespec {
    var t = timespec()
    clock_gettime(CLOCK_REALTIME, &t)
    return t
  }

  /// `FIELD=value` entries for sd_journal_sendv.
  public static func journalFields(
    priority: Int, label: String, message: String, metadata: Logger.Metadata, source: String, file: String,
    function: String, line: UInt
  ) -> [String] {
    var fields = [
      "MESSAGE=" + message, "PRIORITY=\(priority)", "CODE_FILE=" + file, "CODE_LINE=\(line)",
      "CODE_FUNC=" + function, "LOGGER_LABEL=" + label, "LOGGER_SOURCE=" + source,
    ]
    for (key, value) in metadata.sorted(by: { $0.key < $1.key }) {
      fields.append(journalFieldName(key) + "=" + "\(value)")
    }
    return fields
  }

  /// A metadata key as a journal field name: upper case, `[A-Z0-9_]`, not starting with `_` or
  /// a digit (those are trusted or invalid), at most 64 characters.
  public static func journalFieldName(_ key: String) -> String {
    var name = String(
      key.uppercased().unicodeScalars.map { scalar -> Character in
        (("A"..."Z").contains(scalar) || ("0"..."9").contains(scalar)) ? Character(scalar) : "_"
      })
    if name.isEmpty || name.first == "_" || name.first!.isNumber { name = "M" + name }
    return String(name.prefix(64))
  }

  /// Whether JOURNAL_STREAM's `device:inode` is the file `fd` refers to.
  public static func journalStreamMatches(_ value: String?, fd: Int32) -> Bool {
    guard let value else { return false }
    let parts = value.split(separator: ":")
    guard parts.count == 2, let device = UInt64(parts[0]), let inode = UInt64(parts[1]) else { return false }
    var info = stat()
    guard fstat(fd, &info) == 0 else { return false }
    return UInt64(info.st_dev) == device && UInt64(info.st_ino) == inode
  }

  // MARK: output

  static func sendToJournal(_ fields: [String]) {
    // One buffer holding every field; each iovec points into it.
    var buffer: [UInt8] = []
    var ranges: [Range<Int>] = []
    for field in fields {
      let start = buffer.count
      buffer.append(contentsOf: field.utf8)
      ranges.append(start..<buffer.count)
    }
    buffer.withUnsafeMutableBytes { bytes in
      let iovecs = ranges.map { iovec(iov_base: bytes.baseAddress! + $0.lowerBound, iov_len: $0.count) }
      // A failed journal write has nowhere better to be reported; logging must not throw.
      _ = iovecs.withUnsafeBufferPointer { sd_journal_sendv($0.baseAddress, Int32($0.count)) }
    }
  }

  static func writeAll(_ fd: Int32, _ bytes: [UInt8]) {
    bytes.withUnsafeBytes { raw in
      var offset = 0
      while offset < raw.count {
        let n = write(fd, raw.baseAddress! + offset, raw.count - offset)
        if n < 0 {
          if errno == EINTR { continue }
          return
        }
        offset += n
      }
    }
  }
}
