// How tool calls look as text, in one place: the Hermes/Qwen 2.5 convention every chat template
// family here uses (none of them has tool markup of its own). Tools are described in the system
// prompt inside <tools></tools>; a call is `<tool_call>\n{"name": …, "arguments": {…}}\n</tool_call>`;
// a tool's result is a user turn wrapped in <tool_response></tool_response>. The serving API,
// the training data and the call grammar all go through here, so they cannot drift apart.

public enum ToolCallSyntax {
  public static let open = "<tool_call>\n"
  public static let close = "\n</tool_call>"

  /// A function offered to the model, as the system prompt lists it.
  public struct Function: Sendable, Equatable {
    public var name: String
    public var description: String?
    /// The JSON Schema of the arguments (properties in the client's order).
    public var parameters: JSONValue
    public init(name: String, description: String?, parameters: JSONValue) {
      self.name = name
      self.description = description
      self.parameters = parameters
    }
  }

  /// A call the model made (or a client reports it made): arguments as JSON text.
  public struct Call: Sendable, Equatable {
    public var name: String
    public var arguments: String
    public init(name: String, arguments: String) {
      self.name = name
      self.arguments = arguments
    }
  }

  /// The block appended to the system prompt that offers `functions` (Qwen 2.5's wording).
  public static func systemBlock(_ functions: [Function]) -> String {
    var lines = [
      "# Tools", "", "You may call one or more functions to assist with the user query.", "",
      "You are provided with function signatures within <tools></tools> XML tags:", "<tools>",
    ]
    for f in functions {
      var function: [(String, JSONValue)] = [("name", .string(f.name))]
      if let d = f.description { function.append(("description", .string(d))) }
      function.append(("parameters", f.parameters))
      lines.append(JSONValue.object([("type", .string("function")), ("function", .object(function))]).serialized)
    }
    lines += [
      "</tools>", "",
      "For each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:",
      "<tool_call>", "{\"name\": <function-name>, \"arguments\": <args-json-object>}", "</tool_call>",
    ]
    return lines.joined(separator: "\n")
  }

  /// A system prompt with the tools block: after the client's system text, or alone.
  public static func systemPrompt(_ system: String?, functions: [Function]) -> String {
    guard let system, !system.isEmpty else { return systemBlock(functions) }
    return system + "\n\n" + systemBlock(functions)
  }

  /// One call as the assistant writes it. `arguments` is JSON text and goes in as it is.
  public static func render(_ call: Call) -> String {
    open + "{\"name\": " + JSONValue.quote(call.name) + ", \"arguments\": " + call.arguments + "}" + close
  }

  /// An assistant turn's content with its calls after the text.
  public static func assistantContent(_ content: String, calls: [Call]) -> String {
    var out = content
    for call in calls {
      if !out.isEmpty { out += "\n" }
      out += render(call)
    }
    return out
  }

  /// A tool's result as the user turn that carries it.
  public static func toolResponse(_ content: String) -> String {
    "<tool_response>\n" + content + "\n</tool_response>"
  }

  /// Whether `text` (what the model wrote so far) may still become a tool call: after leading
  /// whitespace it is a prefix of the opening tag, or starts with it.
  public static func mayBeginCall(_ text: Substring) -> Bool {
    let t = text.drop(while: { $0 == " " || $0 == "\n" || $0 == "\t" || $0 == "\r" })
    let tag = Substring("<tool_call>")
    return t.count < tag.count ? tag.hasPrefix(t) : t.hasPrefix(tag)
  }

  /// Splits a model's answer into text and calls. Nil when it holds no complete, well-formed
  /// call (then the whole answer is text): every `<tool_call>` block must close and hold an
  /// object with a string `name` and object `arguments` (a JSON string of an object is accepted).
  public static func parse(_ text: String) -> (content: String, calls: [Call])? {
    var rest = Substring(text)
    var content = ""
    var calls: [Call] = []
    let openTag = "<tool_call>", closeTag = "</tool_call>"
    while let start = rest.firstRange(of: openTag) {
      content += rest[..<start.lowerBound]
      let after = rest[start.upperBound...]
      guard let end = after.firstRange(of: closeTag) else { return nil }
      guard let value = try? JSONValue(parsing: String(after[..<end.lowerBound])),
        case .string(let name)? = value["name"]
      else { return nil }
      var arguments = value["arguments"] ?? value["parameters"] ?? .object([])
      if case .string(let inner) = arguments, let parsed = try? JSONValue(parsing: inner) { arguments = parsed }
      guard case .object = arguments else { return nil }
      calls.append(Call(name: name, arguments: arguments.serialized))
      rest = after[end.upperBound...]
    }
    content += rest
    guard !calls.isEmpty else { return nil }
    return (content.trimmingWhitespace(), calls)
  }
}

extension String {
  fileprivate func trimmingWhitespace() -> String {
    let ws: (Character) -> Bool = { $0 == " " || $0 == "\n" || $0 == "\t" || $0 == "\r" }
    guard let first = firstIndex(where: { !ws($0) }), let last = lastIndex(where: { !ws($0) }) else { return "" }
    return String(self[first...last])
  }
}
