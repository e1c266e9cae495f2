// Training samples from JSONL, one conversation a line, in the formats people already have:
// OpenAI chat {"messages":[{"role","content"}...]}, {"prompt","completion"} and Alpaca
// {"instruction","input","output"}. A bad line is an error naming its line number, or is
// skipped and counted.
import Foundation
import Tokenization

public struct TrainingSample: Sendable, Equatable {
  public var messages: [ChatMessage]

  public init(messages: [ChatMessage]) { self.messages = messages }

  /// Parses one JSONL line; throws a reason (without the line number) when it is not a sample.
  public static func parse(_ line: Substring) throws(SampleParseError) -> TrainingSample {
    guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)),
      let dictionary = object as? [String: Any]
    else { throw SampleParseError("not a JSON object") }
    return try parse(object: dictionary)
  }

  /// A message's content as chat accepts it: a string, or an array of `{"type": "text", "text": ...}`
  /// parts joined (any other part type is refused, as chat refuses it).
  static func text(_ content: Any?) -> String? {
    if let string = content as? String { return string }
    guard let parts = content as? [Any], !parts.isEmpty else { return nil }
    var joined = ""
    for part in parts {
      guard let part = part as? [String: Any], part["type"] as? String == "text", let text = part["text"] as? String
      else { return nil }
      joined += text
    }
    return joined
  }

  /// The same for a line already decoded (the daemon also reads its `"id"`).
  public static func parse(object dictionary: [String: Any]) throws(SampleParseError) -> TrainingSample {
    if let messages = dictionary["messages"] {
      guard let list = messages as? [Any], !list.isEmpty else {
        throw SampleParseError("\"messages\" must be a non-empty array")
      }
      var parsed: [ChatMessage] = []
      for (i, item) in list.enumerated() {
        guard let message = item as? [String: Any], let role = message["role"] as? String,
          let content = Self.text(message["content"])
        else {
          throw SampleParseError(
            "messages[\(i)] needs string \"role\" and \"content\" (a string or an array of text parts)")
        }
        guard ["system", "user", "assistant"].contains(role) else {
          throw SampleParseError("messages[\(i)] has unknown role '\(role)'")
        }
        parsed.append(ChatMessage(role: role, content: content))
      }
      guard parsed.contains(where: { $0.role == "assistant" }) else {
        throw SampleParseError("no assistant message to learn from")
      }
      return TrainingSample(messages: parsed)
    }
    if dictionary["prompt"] != nil || dictionary["completion"] != nil {
      guard let prompt = dictionary["prompt"] as? String,
        let completion = dictionary["completion"] as? String
      else { throw SampleParseError("\"prompt\" and \"completion\" must both be strings") }
      return TrainingSample(messages: [
        ChatMessage(role: "user", content: prompt), ChatMessage(role: "assistant", content: completion),
      ])
    }
    if dictionary["instruction"] != nil || dictionary["output"] != nil {
      guard let instruction = dictionary["instruction"] as? String,
        let output = dictionary["output"] as? String
      else { throw SampleParseError("\"instruction\" and \"output\" must both be strings") }
      guard dictionary["input"] == nil || dictionary["input"] is String else {
        throw SampleParseError("\"input\" must be a string")
      }
      let input = dictionary["input"] as? String ?? ""
      // Alpaca's own prompt puts the input after the instruction, separated by a blank line.
      let user = input.isEmpty ? instruction : instruction + "\n\n" + input
      return TrainingSample(messages: [
        ChatMessage(role: "user", content: user), ChatMessage(role: "assistant", content: output),
      ])
    }
    throw SampleParseError("expected \"messages\", \"prompt\"/\"completion\" or \"instruction\"/\"output\"")
  }
}

public struct SampleParseError: Error, Sendable, Equatable {
  public let reason: String
  init(_ reason: String) { self.reason = reason }
}

/// The samples of a JSONL file and how many lines were skipped.
public struct SampleFile: Sendable {
  public var samples: [TrainingSample]
  public var skippedLines: Int

  /// Reads `path`; blank lines are ignored. With `skipBadLines` a malformed line is counted
  /// instead of failing the whole file.
  public static func read(path: String, skipBadLines: Bool = false) throws(TrainingError) -> SampleFile {
    guard let data = FileManager.default.contents(atPath: path) else {
      throw .io(path: path, reason: "cannot read the file")
    }
    return try parse(String(decoding: data, as: UTF8.self), path: path, skipBadLines: skipBadLines)
  }

  public static func parse(_ text: String, path: String, skipBadLines: Bool) throws(TrainingError) -> SampleFile {
    var samples: [TrainingSample] = []
    var skipped = 0
    for (i, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
      let trimmed = line.trimmingCharacters(in: .whitespacesAndNewlines)
      if trimmed.isEmpty { continue }
      do {
        samples.append(try TrainingSample.parse(Substring(trimmed)))
      } catch {
        if skipBadLines {
          skipped += 1
        } else {
          throw .badSample(path: path, line: i + 1, reason: error.reason)
        }
      }
    }
    guard !samples.isEmpty else { throw .noSamples(path: path) }
    return SampleFile(samples: samples, skippedLines: skipped)
  }
}
