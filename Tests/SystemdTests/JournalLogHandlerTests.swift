// The log handler: syslog priorities per level, the exact `<N>` line format written to a
// descriptor (checked through a pipe), journal field names and fields, and the JOURNAL_STREAM
// check that decides between the journal and stderr. What journald stores is not read back
// (no journald in the test environment).
import Foundation
import Logging
import Testing

import Systemd

#if canImport(Glibc)
  import Glibc
#endif

@Suite struct JournalLogHandlerTests {
  @Test func priorities() {
    let levels: [(Logger.Level, Int)] = [
      (.trace, 7), (.debug, 7), (.info, 6), (.notice, 5), (.warning, 4), (.error, 3), (.critical, 2),
    ]
    for (level, priority) in levels { #expect(JournalLogHandler.syslogPriority(level) == priority) }
  }

  @Test func streamLineFormat() {
    #expect(JournalLogHandler.streamLine(priority: 6, label: "droplorad", message: "ready", metadata: [:]) == "<6>droplorad: ready\n")
    #expect(
      JournalLogHandler.streamLine(priority: 3, label: "", message: "bad", metadata: ["b": "2", "a": "1"]) == "<3>bad a=1 b=2\n")
    #expect(
      JournalLogHandler.streamLine(priority: 4, label: "x", message: "two\nlines", metadata: [:]) == "<4>x: two\n<4>x: lines\n")
  }

  @Test func writesThroughLogger() throws {
    var fds: [Int32] = [0, 0]
    #expect(pipe(&fds) == 0)
    defer { close(fds[0]) }
    let writeEnd = fds[1]
    var logger = Logger(label: "droplorad") { label in
      JournalLogHandler(label: label, destination: .stream(fd: writeEnd), metadataProvider: nil)
    }
    logger.logLevel = .info
    logger[metadataKey: "adapter"] = "math"
    logger.debug("not shown")
    logger.warning("queue full", metadata: ["depth": "32"])
    logger.critical("oops")
    close(writeEnd)
    let output = String(decoding: FileHandle(fileDescriptor: fds[0], closeOnDealloc: false).readDataToEndOfFile(), as: UTF8.self)
    #expect(output == "<4>droplorad: queue full adapter=math depth=32\n<2>droplorad: oops adapter=math\n")
  }

  @Test func journalFields() {
    let fields = JournalLogHandler.journalFields(
      priority: 6, label: "droplorad", message: "ready", metadata: ["adapter.name": "math", "_secret": "x", "9lives": "y"],
      source: "Systemd", file: "Systemd/X.swift", function: "f()", line: 12)
    #expect(
      fields == [
        "MESSAGE=ready", "PRIORITY=6", "CODE_FILE=Systemd/X.swift", "CODE_LINE=12", "CODE_FUNC=f()",
        "LOGGER_LABEL=droplorad", "LOGGER_SOURCE=Systemd", "M9LIVES=y", "M_SECRET=x", "ADAPTER_NAME=math",
      ])
    #expect(JournalLogHandler.journalFieldName(String(repeating: "k", count: 100)).count == 64)
    #expect(JournalLogHandler.journalFieldName("") == "M")
  }

  /// Exercises the sd_journal_sendv path (iovecs into one buffer). Without journald the send
  /// fails quietly; with it, one debug entry lands in the journal. Its content is not read back.
  @Test func journalDestinationSendsWithoutCrashing() {
    var logger = Logger(label: "droplorad-test") { label in
      JournalLogHandler(label: label, destination: .journal, metadataProvider: nil)
    }
    logger.logLevel = .debug
    logger.debug("JournalLogHandler test entry\nsecond line", metadata: ["test.key": "value", "": "empty"])
  }

  @Test func journalStreamDetection() throws {
    var fds: [Int32] = [0, 0]
    #expect(pipe(&fds) == 0)
    defer {
      close(fds[0])
      close(fds[1])
    }
    var info = stat()
    #expect(fstat(fds[1], &info) == 0)
    #expect(JournalLogHandler.journalStreamMatches("\(info.st_dev):\(info.st_ino)", fd: fds[1]))
    #expect(!JournalLogHandler.journalStreamMatches("\(info.st_dev):\(info.st_ino + 1)", fd: fds[1]))
    #expect(!JournalLogHandler.journalStreamMatches("garbage", fd: fds[1]))
    #expect(!JournalLogHandler.journalStreamMatches(nil, fd: fds[1]))
  }
}

@Suite struct HumanLogLineTests {
  @Test func timestampLevelWordAndLabel() {
    let t = timespec(tv_sec: 1_796_400_672, tv_nsec: 45_000_000)  // 2026-12-04T16:11:12.045Z
    let line = JournalLogHandler.humanLine(
      time: t, level: .notice, label: "droplorad", message: "serving\nsecond", metadata: ["b": "2", "a": "1"])
    #expect(line == "2026-12-04T16:11:12.045Z notice droplorad: serving\n" + String(repeating: " ", count: 43) + "second a=1 b=2\n")
  }

  @Test func destinationFollowsJournalStream() {
    // Outside systemd: human lines; JOURNAL_STREAM naming another file: priority prefixes.
    #expect(JournalLogHandler.Destination.choose(journalStream: nil, fd: 2) == .human(fd: 2))
    #expect(JournalLogHandler.Destination.choose(journalStream: "1:1", fd: 2) == .stream(fd: 2))
  }
}
