// Incremental server-sent-events parser (the WHATWG event-stream format): bytes in, complete
// events out. Handles LF, CRLF and CR line ends, lines and UTF-8 characters split across
// chunks, comments, multi-line data, and the optional space after the colon.

public struct ServerSentEvent: Sendable, Equatable {
  /// The `event:` field; nil for the default "message".
  public var event: String?
  /// The `data:` lines joined with "\n".
  public var data: String

  public init(event: String? = nil, data: String) {
    self.event = event
    self.data = data
  }
}

public struct ServerSentEventParser: Sendable {
  private var line: [UInt8] = []
  private var dataLines: [String] = []
  private var eventName: String?
  /// The previous chunk ended in CR: an LF at the start of this one belongs to that line end.
  private var skipLF = false
  /// Guards against a peer that never ends a line.
  public let maxLineBytes: Int

  public init(maxLineBytes: Int = 1 << 20) {
    self.maxLineBytes = maxLineBytes
  }

  public enum Failure: Error, Equatable { case lineTooLong(Int) }

  /// Feeds bytes; returns the events they complete. An event still open at the end of the
  /// stream is dropped, as the format says.
  public mutating func feed<S: Sequence<UInt8>>(_ bytes: S) throws(Failure) -> [ServerSentEvent] {
    var events: [ServerSentEvent] = []
    for b in bytes {
      if skipLF {
        skipLF = false
        if b == 0x0A { continue }
      }
      if b == 0x0A || b == 0x0D {
        skipLF = b == 0x0D
        if let e = endLine() { events.append(e) }
        continue
      }
      line.append(b)
      if line.count > maxLineBytes { throw .lineTooLong(maxLineBytes) }
    }
    return events
  }

  private mutating func endLine() -> ServerSentEvent? {
    defer { line.removeAll(keepingCapacity: true) }
    if line.isEmpty {
      // A blank line dispatches; nothing collected means nothing to dispatch.
      defer {
        dataLines = []
        eventName = nil
      }
      guard !dataLines.isEmpty else { return nil }
      return ServerSentEvent(event: eventName, data: dataLines.joined(separator: "\n"))
    }
    if line[0] == 0x3A { return nil }  // ":" comment
    let field: String
    let value: String
    if let colon = line.firstIndex(of: 0x3A) {
      field = String(decoding: line[..<colon], as: UTF8.self)
      var start = colon + 1
      if start < line.count, line[start] == 0x20 { start += 1 }
      value = String(decoding: line[start...], as: UTF8.self)
    } else {
      field = String(decoding: line, as: UTF8.self)
      value = ""
    }
    switch field {
    case "data": dataLines.append(value)
    case "event": eventName = value.isEmpty ? nil : value
    default: break  // id and retry mean nothing to this client
    }
    return nil
  }
}
