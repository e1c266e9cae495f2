// `droplora push FILE --adapter NAME`: sends a JSONL file of training samples to the daemon in
// pieces of whole lines, with a progress line on a terminal. Every line gets a stable `"id"`
// (file name, line number and a hash of the line) unless it has one, so pushing the same file
// again after an interruption stores nothing twice: the daemon counts those lines as
// duplicates and the push carries on where it stopped.
import ArgumentParser
import DaemonClient
import Foundation
import HTTPAPI

#if canImport(Glibc)
  import Glibc
#endif

struct PushCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "push", abstract: "Push a JSONL file of training samples to an adapter of the daemon.")

  @Argument(help: "JSONL file: one sample per line ({\"messages\"}, {\"prompt\",\"completion\"} or Alpaca), - for stdin.")
  var file: String

  @Option(help: "The adapter to train.") var adapter: String

  @Option(help: "Largest piece sent in one request, in KiB (keep it under the daemon's limits.max_push_bytes).")
  var chunkKib = 4096

  @Flag(help: "Print the daemon's answers as JSON lines.") var json = false

  @OptionGroup var socketOptions: SocketOptions

  func validate() throws {
    guard chunkKib >= 1 else { throw ValidationError("--chunk-kib must be at least 1") }
  }

  func run() async throws {
    let data: Data
    if file == "-" {
      data = FileHandle.standardInput.readDataToEndOfFile()
    } else {
      guard let contents = FileManager.default.contents(atPath: file) else {
        throw ValidationError("cannot read \(file)")
      }
      data = contents
    }
    let label = file == "-" ? "stdin" : URL(fileURLWithPath: file).lastPathComponent
    let lines = Self.lines(of: data)
    let client = socketOptions.client
    let showProgress = !json && isatty(2) != 0
    var totals = (accepted: 0, duplicates: 0, rejected: 0)
    var index = 0
    while index < lines.count {
      // One piece: whole lines up to the size limit (at least one line).
      var piece: [UInt8] = []
      let first = index
      while index < lines.count {
        let line = Self.withID(lines[index], label: label, number: index + 1)
        if !piece.isEmpty && piece.count + line.count + 1 > chunkKib * 1024 { break }
        piece += line + [0x0A]
        index += 1
      }
      let result = try await client.pushSamples(adapter: adapter, jsonl: piece)
      totals.accepted += result.accepted
      totals.duplicates += result.duplicates
      totals.rejected += result.rejected.count
      for rejection in result.rejected {
        Terminal.note("\(showProgress ? "\r" : "")\(label):\(first + rejection.line): \(rejection.reason)\n")
      }
      if json { print(try Self.jsonLine(result)) }
      if showProgress {
        Terminal.note("\rpushed \(index)/\(lines.count) lines: \(totals.accepted) new, \(totals.duplicates) already there")
      }
    }
    if showProgress { Terminal.note("\n") }
    if !json {
      print("\(totals.accepted) accepted, \(totals.duplicates) already in the journal, \(totals.rejected) rejected")
    }
    if totals.rejected > 0 { throw ExitCode(1) }
  }

  /// The lines of `data` as raw bytes without their line ends (LF or CRLF). Bytes, not
  /// Strings: decoding would replace invalid UTF-8 with U+FFFD, so the daemon could no longer
  /// reject exactly the bad line by its number. A final line end ends the last line rather than
  /// starting an empty one, so a 5 000-line file is 5 000 lines.
  static func lines(of data: Data) -> [[UInt8]] {
    guard !data.isEmpty else { return [] }
    var pieces = data.split(separator: 0x0A, omittingEmptySubsequences: false)
    if data.last == 0x0A { pieces.removeLast() }
    return pieces.map { piece in Array(piece.last == 0x0D ? piece.dropLast() : piece) }
  }

  /// The line with an `"id"` added when it is a JSON object without one; any other line
  /// (blank, not JSON, not UTF-8) goes unchanged, for the daemon to judge.
  static func withID(_ line: [UInt8], label: String, number: Int) -> [UInt8] {
    guard line.contains(where: { $0 != 0x20 && $0 != 0x09 }),
      var object = (try? JSONSerialization.jsonObject(with: Data(line))) as? [String: Any], object["id"] == nil
    else { return line }
    let hash = line.reduce(UInt64(0xcbf2_9ce4_8422_2325)) { ($0 ^ UInt64($1)) &* 0x0000_0100_0000_01b3 }
    object["id"] = "\(label):\(number):\(String(hash, radix: 16))"
    guard let encoded = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]) else { return line }
    return Array(encoded)
  }

  static func jsonLine<T: Encodable>(_ value: T) throws -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    return String(decoding: try encoder.encode(value), as: UTF8.self)
  }
}

/// `droplora training status|start|pause|resume|stop|publish|versions|rollback --adapter NAME`.
struct TrainingCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "training", abstract: "Watch and steer the daemon's background training of an adapter.",
    subcommands: [TrainingStatusCommand.self, TrainingActionCommand.self, TrainingSetCommand.self,
      TrainingVersionsCommand.self, TrainingRollbackCommand.self, TrainingExportCommand.self],
    defaultSubcommand: TrainingStatusCommand.self)
}

struct TrainingStatusCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "status", abstract: "The adapter's training state, losses, samples and versions.")

  @Option(help: "The adapter.") var adapter: String
  @Flag(help: "Keep printing, every --interval seconds, until interrupted.") var follow = false
  @Option(help: "Seconds between updates with --follow.") var interval = 2.0
  @Flag(help: "Print JSON.") var json = false
  @OptionGroup var socketOptions: SocketOptions

  func run() async throws {
    let client = socketOptions.client
    repeat {
      let status = try await client.trainingStatus(adapter: adapter)
      print(json ? try PushCommand.jsonLine(status) : Self.describe(status))
      if follow { try await Task.sleep(for: .seconds(max(0.2, interval))) }
    } while follow
  }

  static func describe(_ s: TrainingStatusInfo) -> String {
    func number(_ x: Double?, _ digits: Int = 4) -> String { x.map { String(format: "%.\(digits)f", $0) } ?? "-" }
    var text = "\(s.adapter): \(s.state)\(s.reason.map { " (\($0))" } ?? "")  step \(s.step)"
    text += "  train loss \(number(s.trainLoss))  eval loss \(number(s.evalLoss))"
    text += "  lr \(s.learningRate.map { String(format: "%.2e", $0) } ?? "-")  \(number(s.tokensPerSecond, 0)) tok/s"
    text += "\n  samples: \(s.samplesReceived) received, \(s.samplesTrained) trained, \(s.samplesPending) pending, "
    text += "\(s.samplesHeldOut) held out"
    text += "\n  serving version \(s.servingVersion)"
    if let candidate = s.candidateVersion { text += ", candidate \(candidate)" }
    if let decision = s.lastDecision { text += "\n  \(decision)" }
    return text
  }
}

struct TrainingActionCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "control", abstract: "start, pause, resume, stop or publish the adapter's training.",
    aliases: ["start", "pause", "resume", "stop", "publish"])

  @Argument(help: "start, pause, resume, stop or publish (when invoked as `training pause` etc., that).")
  var action: String?
  @Option(help: "The adapter.") var adapter: String
  @OptionGroup var socketOptions: SocketOptions

  func run() async throws {
    let invoked = CommandLine.arguments.dropFirst().drop { $0 != "training" }.dropFirst().first
    let name = action ?? (invoked == "control" ? nil : invoked)
    guard let name, let chosen = TrainingAction(rawValue: name) else {
      throw ValidationError("give one of: \(TrainingAction.allCases.map(\.rawValue).joined(separator: ", "))")
    }
    let status = try await socketOptions.client.controlTraining(adapter: adapter, action: chosen)
    print(TrainingStatusCommand.describe(status))
  }
}

struct TrainingSetCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "set", abstract: "Change the adapter's training hyper-parameters from its next step on.")
  @Option(help: "The adapter.") var adapter: String
  @Option(help: "Peak learning rate.") var learningRate: Double?
  @Option(help: "Sequences per optimizer step.") var batchSize: Int?
  @Option(help: "Steps between publish decisions.") var publishEvery: Int?
  @OptionGroup var socketOptions: SocketOptions

  func run() async throws {
    let control = TrainingControl(learningRate: learningRate, batchSize: batchSize, publishEvery: publishEvery)
    print(TrainingStatusCommand.describe(try await socketOptions.client.controlTraining(adapter: adapter, control: control)))
  }
}

struct TrainingVersionsCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(commandName: "versions", abstract: "The adapter's saved versions.")
  @Option(help: "The adapter.") var adapter: String
  @OptionGroup var socketOptions: SocketOptions

  func run() async throws {
    let versions = try await socketOptions.client.trainingVersions(adapter: adapter)
    guard !versions.isEmpty else {
      print("no published versions of \(adapter) yet (training saves a candidate every training.publish_every steps)")
      return
    }
    for v in versions {
      let loss = v.evalLoss.map { String(format: "%.4f", $0) } ?? "-"
      print("version \(v.version)  step \(v.step)  eval loss \(loss)\(v.published ? "" : "  (candidate)")\(v.serving ? "  serving" : "")")
    }
  }
}

struct TrainingRollbackCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(commandName: "rollback", abstract: "Serve a saved version again.")
  @Option(help: "The adapter.") var adapter: String
  @Option(help: "The version to serve.") var version: Int
  @OptionGroup var socketOptions: SocketOptions

  func run() async throws {
    print(TrainingStatusCommand.describe(try await socketOptions.client.rollback(adapter: adapter, version: version)))
  }
}
