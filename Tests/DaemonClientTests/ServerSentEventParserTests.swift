// The event-stream parser on the format's corner cases, fed in every possible split.
import DaemonClient
import Testing

@Suite struct ServerSentEventParserTests {
  private func parseInTwo(_ text: String, at split: Int) throws -> [ServerSentEvent] {
    let bytes = Array(text.utf8)
    var p = ServerSentEventParser()
    return try p.feed(bytes[..<split]) + p.feed(bytes[split...])
  }

  @Test func everySplitGivesTheSameEvents() throws {
    // CRLF and lone CR line ends, a comment, multi-line data, an event name, no space after
    // the colon, a two-byte and a four-byte UTF-8 character, an unterminated last event.
    let text = "data: {\"a\":\"é\"}\r\n\r\n: keep-alive\n\nevent: note\rdata:line1\rdata: line2 🙂\r\rdata: [DONE]\n\ndata: cut"
    let expected = [
      ServerSentEvent(data: "{\"a\":\"é\"}"),
      ServerSentEvent(event: "note", data: "line1\nline2 🙂"),
      ServerSentEvent(data: "[DONE]"),
    ]
    for split in 0...text.utf8.count {
      #expect(try parseInTwo(text, at: split) == expected, "split at \(split)")
    }
  }

  @Test func fieldWithoutColonAndBlankData() throws {
    var p = ServerSentEventParser()
    // "data" alone is an empty data line; id and retry are ignored.
    #expect(try p.feed(Array("id: 3\nretry: 10\ndata\n\n".utf8)) == [ServerSentEvent(data: "")])
  }

  @Test func overlongLineIsRefused() {
    var p = ServerSentEventParser(maxLineBytes: 8)
    #expect(throws: ServerSentEventParser.Failure.lineTooLong(8)) {
      _ = try p.feed(Array("data: 0123456789".utf8))
    }
  }
}
