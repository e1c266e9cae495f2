// Structured output and tool use, as requested: `response_format` (text, json_object,
// json_schema), llama-server's `grammar`, and `tools` / `tool_choice` / `parallel_tool_calls`,
// read into typed values with every malformed part refused by its path, and compiled into the
// one grammar the output must follow. JSON Schemas keep their property order (it decides the
// order of generated properties): they are read from the raw body, since JSONDecoder's objects
// are unordered.
import Foundation
import Grammar

/// What `response_format` asks for.
public enum ResponseFormat: Sendable, Equatable {
  case text
  case jsonObject
  case jsonSchema(name: String?, schema: OrderedJSON)
}

/// `tool_choice`.
public enum ToolChoice: Sendable, Equatable {
  case none, auto, required
  case function(String)
}

/// The tools a chat request offers and how the model may use them.
public struct ToolUse: Sendable, Equatable {
  public var functions: [ToolCallSyntax.Function]
  public var choice: ToolChoice
  public var parallel: Bool
}

extension CodingUserInfoKey {
  /// The request body as text, so decoders can re-read parts whose key order matters.
  static let requestBody = CodingUserInfoKey(rawValue: "droplorad.requestBody")!
}

extension JSONValue {
  /// The same value with object keys in sorted order (when the raw body is not at hand).
  var ordered: OrderedJSON {
    switch self {
    case .null: return .null
    case .bool(let b): return .bool(b)
    case .number(let d):
      return .number(d == d.rounded() && abs(d) < 1e15 ? String(Int64(d)) : "\(d)")
    case .string(let s): return .string(s)
    case .array(let a): return .array(a.map(\.ordered))
    case .object(let o): return .object(o.sorted { $0.key < $1.key }.map { ($0.key, $0.value.ordered) })
    }
  }
}

extension RequestedFeatures {
  /// Reads the order-preserving copies of `response_format` and `tools` from the raw body when
  /// the decoder has it, else converts what JSONDecoder read.
  mutating func keepOrder(_ decoder: any Decoder) {
    guard responseFormat != nil || tools != nil else { return }
    let body = (decoder.userInfo[.requestBody] as? String).flatMap { try? OrderedJSON(parsing: $0) }
    orderedResponseFormat = body?["response_format"] ?? responseFormat?.ordered
    if case .array(let list)? = body?["tools"] {
      orderedTools = list
    } else {
      orderedTools = tools?.map(\.ordered)
    }
  }

  /// The typed `response_format`; nil when absent.
  public func responseFormatValue() throws(APIError) -> ResponseFormat? {
    guard let format = orderedResponseFormat else { return nil }
    let field = "response_format"
    let members = try Self.object(format, field, known: ["type", "json_schema"])
    guard case .string(let type)? = members["type"] else { throw .invalidField(field + ".type", "required: text, json_object or json_schema") }
    switch type {
    case "text", "json_object":
      if members["json_schema"] != nil { throw .invalidField(field + ".json_schema", "only with type json_schema") }
      return type == "text" ? .text : .jsonObject
    case "json_schema":
      guard let spec = members["json_schema"] else { throw .invalidField(field + ".json_schema", "required with type json_schema") }
      let s = try Self.object(spec, field + ".json_schema", known: ["name", "description", "schema", "strict"])
      var name: String? = nil
      if let n = s["name"] {
        guard case .string(let v) = n else { throw .invalidField(field + ".json_schema.name", "must be a string") }
        name = v
      }
      if let d = s["description"], case .string = d {} else if s["description"] != nil {
        throw .invalidField(field + ".json_schema.description", "must be a string")
      }
      // Every schema is enforced; `strict: false` asks for less and gets the same.
      if let strict = s["strict"], case .bool = strict {} else if s["strict"] != nil {
        throw .invalidField(field + ".json_schema.strict", "must be true or false")
      }
      return .jsonSchema(name: name, schema: s["schema"] ?? .object([]))
    default:
      throw .invalidField(field + ".type", "must be text, json_object or json_schema, got '\(type.prefix(40))'")
    }
  }

  /// The tools and how they may be used; nil when no tools are offered (a `tool_choice` that
  /// needs tools is then refused).
  public func toolUse() throws(APIError) -> ToolUse? {
    var functions: [ToolCallSyntax.Function] = []
    for (i, tool) in (orderedTools ?? []).enumerated() {
      let field = "tools[\(i)]"
      let t = try Self.object(tool, field, known: ["type", "function"])
      if let type = t["type"], type != .string("function") {
        throw .invalidField(field + ".type", "only \"function\" tools exist")
      }
      guard let f = t["function"] else { throw .invalidField(field + ".function", "required field is missing") }
      let fn = try Self.object(f, field + ".function", known: ["name", "description", "parameters", "strict"])
      guard case .string(let name)? = fn["name"], Self.isFunctionName(name) else {
        throw .invalidField(field + ".function.name", "must be 1 to 64 letters, digits, '_' or '-'")
      }
      if functions.contains(where: { $0.name == name }) {
        throw .invalidField(field + ".function.name", "'\(name)' is offered twice")
      }
      var description: String? = nil
      if let d = fn["description"] {
        guard case .string(let v) = d else { throw .invalidField(field + ".function.description", "must be a string") }
        description = v
      }
      if let strict = fn["strict"], case .bool = strict {} else if fn["strict"] != nil {
        throw .invalidField(field + ".function.strict", "must be true or false")
      }
      let parameters = fn["parameters"] ?? .object([("type", .string("object")), ("properties", .object([]))])
      guard case .object = parameters else { throw .invalidField(field + ".function.parameters", "must be a JSON Schema object") }
      functions.append(.init(name: name, description: description, parameters: parameters))
    }
    var choice: ToolChoice = functions.isEmpty ? .none : .auto
    switch toolChoice {
    case nil: break
    case .string("none")?: choice = .none
    case .string("auto")?: choice = .auto
    case .string("required")?: choice = .required
    case .object(let o)?:
      guard o["type"] == .string("function"), case .object(let f)? = o["function"], case .string(let name)? = f["name"],
        Set(o.keys).isSubset(of: ["type", "function"]), Set(f.keys) == ["name"]
      else {
        throw .invalidField("tool_choice", "must be none, auto, required or {\"type\": \"function\", \"function\": {\"name\": …}}")
      }
      guard functions.contains(where: { $0.name == name }) else {
        throw .invalidField("tool_choice", "names '\(name.prefix(64))', which is not among tools")
      }
      choice = .function(name)
    default:
      throw .invalidField("tool_choice", "must be none, auto, required or {\"type\": \"function\", \"function\": {\"name\": …}}")
    }
    if functions.isEmpty {
      guard choice == .none || choice == .auto else { throw .invalidField("tool_choice", "needs tools to choose from") }
      return nil
    }
    return ToolUse(functions: functions, choice: choice, parallel: parallelToolCalls ?? true)
  }

  /// The grammar the output must follow, or nil for free text. Only one of `response_format`
  /// (json), `grammar` and a required tool call may constrain the output.
  public func outputGrammar() throws(APIError) -> Grammar? {
    let format = try responseFormatValue()
    let tools = try toolUse()
    let formatConstrains = format != nil && format != .text
    if formatConstrains, grammar != nil { throw .invalidField("grammar", "give either grammar or a JSON response_format") }
    if let tools, tools.choice != .none, formatConstrains || grammar != nil {
      // A constrained answer could never hold the calls the tools ask for.
      throw .invalidField(formatConstrains ? "response_format" : "grammar", "cannot be combined with tools unless tool_choice is \"none\"")
    }
    if let text = grammar {
      guard text.utf8.count <= Self.maxGrammarBytes else {
        throw .invalidField("grammar", "at most \(Self.maxGrammarBytes) bytes")
      }
      do {
        return try Grammar(gbnf: text)
      } catch {
        throw .grammar(field: "grammar", error)
      }
    }
    switch format {
    case .jsonObject?: return JSONSchemaCompiler.anyObjectGrammar()
    case .jsonSchema(_, let schema)?:
      do {
        return try JSONSchemaCompiler.grammar(schema: schema)
      } catch {
        throw .schema(field: "response_format.json_schema.schema", error)
      }
    case .text?, nil: break
    }
    guard let tools else { return nil }
    switch tools.choice {
    case .none, .auto: return nil
    case .required, .function:
      let offered = tools.functions.filter { if case .function(let n) = tools.choice { $0.name == n } else { true } }
      do {
        // Several calls only when asked for explicitly: a small model given the choice tends to
        // repeat calls until the token limit instead of ending.
        return try ToolCallGrammar.grammar(functions: offered, parallel: parallelToolCalls == true && tools.choice == .required)
      } catch {
        let index = error.index.flatMap { i in tools.functions.firstIndex { $0.name == offered[i].name } }
        throw .schema(field: index.map { "tools[\($0)].function.parameters" } ?? "tools", error.error)
      }
    }
  }

  static let maxGrammarBytes = 256 * 1024

  private static func isFunctionName(_ s: String) -> Bool {
    !s.isEmpty && s.utf8.count <= 64
      && s.utf8.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 | 0x20 >= 0x61 && $0 | 0x20 <= 0x7A) || $0 == 0x5F || $0 == 0x2D }
  }

  /// The members of an object field, refusing any key not in `known` by its path.
  private static func object(_ value: OrderedJSON, _ field: String, known: Set<String>) throws(APIError) -> [String: OrderedJSON] {
    guard case .object(let members) = value else { throw .invalidField(field, "must be an object") }
    var out: [String: OrderedJSON] = [:]
    for (key, v) in members {
      guard known.contains(key) else { throw .invalidField(field + "." + key, "unknown field; this server does not implement it") }
      out[key] = v
    }
    return out
  }
}
