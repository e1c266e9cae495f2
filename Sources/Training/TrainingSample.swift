// Training samples from JSONL, one conversation a line, in the formats people already have:
// OpenAI chat {"messages":[{"role","content"}...]} (with "tools", assistant "tool_calls" and
// "tool" results, rendered as serving renders them: ToolMessages.swift), {"prompt","completion"} and Alpaca
// {"instruction","input","output"}. A bad line is an error naming its line number, or is
// skipped and counted.
import Foundation
import Grammar
import Tokenization

public struct TrainingSample: Sendable, Equatable {
  public var messages: [ChatMessage]

  public init(messages: [ChatMessage]) { self.messages = messages }

  /// Parses one JSONL line; throws a reason (without the line number) when it is not a sample.
  public static func parse(_ line: Substring) throws(SampleParseError) -> TrainingSample {
    guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)),
      let dictionary = object as? [String: Any]
    else { throw SampleParseError("not a JSON object") }
    // Tool schemas keep the key order they were written in (as serving renders them).
    let tools = dictionary["tools"] != nil ? (try? OrderedJSON(parsing: String(line)))?["tools"] : nil
    return try parse(object: dictionary, orderedTools: tools)
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
  /// `orderedTools`: the line's `tools` with keys in written order, when the caller has it.
  public static func parse(object dictionary: [String: Any], orderedTools: OrderedJSON? = nil) throws(SampleParseError)
    -> TrainingSample
  {
    if let messages = dictionary["messages"] {
      guard let list = messages as? [Any], !list.isEmpty else {
        throw SampleParseError("\"messages\" must be a non-empty array")
      }
      var parsed: [ChatMessage] = []
      for (i, item) in list.enumerated() {
        guard let message = item as? [String: Any], var role = message["role"] as? String else {
          throw SampleParseError("messages[\(i)] needs a string \"role\"")
        }
        if role == "developer" { role = "system" }
        guard ["system", "user", "assistant", "tool"].contains(role) else {
          throw SampleParseError("messages[\(i)] has unknown role '\(role)'")
        }
        let calls = try toolCalls(message["tool_calls"], index: i)
        if !calls.isEmpty, role != "assistant" { throw SampleParseError("messages[\(i)]: only assistant messages carry tool_calls") }
        // An assistant turn that only calls tools has null (or no) content, as OpenAI writes it.
        let missing = message["content"] == nil || message["content"] is NSNull
        guard let content = missing && !calls.isEmpty ? "" : Self.text(message["content"]) else {
          throw SampleParseError(
            "messages[\(i)] needs \"content\" (a string or an array of text parts)")
        }
        switch role {
        case "tool": parsed.append(.toolResult(content))
        case "assistant": parsed.append(.assistant(content, calls: calls))
        default: parsed.append(ChatMessage(role: role, content: content))
        }
      }
      guard parsed.contains(where: { $0.role == "assistant" }) else {
        throw SampleParseError("no assistant message to learn from")
      }
      return TrainingSample(messages: parsed.offering(try tools(dictionary["tools"], ordered: orderedTools)))
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

extension TrainingSample {
  /// OpenAI's `tool_calls`: `[{"id", "type": "function", "function": {"name", "arguments"}}]`,
  /// arguments a JSON string (or object) holding an object.
  static func toolCalls(_ value: Any?, index i: Int) throws(SampleParseError) -> [ToolCallSyntax.Call] {
    guard let value, !(value is NSNull) else { return [] }
    guard let list = value as? [Any] else { throw SampleParseError("messages[\(i)].tool_calls must be an array") }
    var calls: [ToolCallSyntax.Call] = []
    for (k, item) in list.enumerated() {
      guard let call = item as? [String: Any], let function = call["function"] as? [String: Any],
        let name = function["name"] as? String
      else { throw SampleParseError("messages[\(i)].tool_calls[\(k)] needs function.name") }
      var arguments = function["arguments"] as? String
      if arguments == nil, let object = function["arguments"] as? [String: Any],
        let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
      {
        arguments = String(decoding: data, as: UTF8.self)
      }
      guard let arguments, let parsed = try? OrderedJSON(parsing: arguments), case .object = parsed else {
        throw SampleParseError("messages[\(i)].tool_calls[\(k)].function.arguments must be a JSON object (as a string)")
      }
      calls.append(.init(name: name, arguments: arguments))
    }
    return calls
  }

  /// OpenAI's `tools`: `[{"type": "function", "function": {"name", "description", "parameters"}}]`.
  static func tools(_ value: Any?, ordered: OrderedJSON?) throws(SampleParseError) -> [ToolCallSyntax.Function] {
    guard let value, !(value is NSNull) else { return [] }
    guard let list = value as? [Any] else { throw SampleParseError("\"tools\" must be an array") }
    var functions: [ToolCallSyntax.Function] = []
    for (k, item) in list.enumerated() {
      guard let tool = item as? [String: Any], let function = tool["function"] as? [String: Any],
        let name = function["name"] as? String
      else { throw SampleParseError("tools[\(k)] needs function.name") }
      var parameters: OrderedJSON = .object([("type", .string("object")), ("properties", .object([]))])
      if case .array(let orderedList)? = ordered, k < orderedList.count, let p = orderedList[k]["function"]?["parameters"] {
        parameters = p
      } else if let p = function["parameters"] {
        guard let data = try? JSONSerialization.data(withJSONObject: p, options: [.sortedKeys]),
          let parsed = try? OrderedJSON(parsing: String(decoding: data, as: UTF8.self))
        else { throw SampleParseError("tools[\(k)].function.parameters must be a JSON Schema object") }
        parameters = parsed
      }
      functions.append(.init(name: name, description: function["description"] as? String, parameters: parameters))
    }
    return functions
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
