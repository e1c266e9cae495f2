// Tool calls as text and as a grammar: the call grammar's outputs parse back into calls whose
// arguments validate under each function's schema (checked by Python's jsonschema); the text
// form round-trips; and a conversation with tools, calls and results keeps all of them, in
// order and as message content, through every chat template family.
import Foundation
import Grammar
import Testing
import Tokenization

struct ToolCallTests {
  static let weather = #"{"type": "object", "properties": {"city": {"type": "string", "maxLength": 20}, "unit": {"enum": ["c", "f"]}}, "required": ["city"], "additionalProperties": false}"#
  static let count = ##"{"type": "object", "properties": {"n": {"type": "integer", "minimum": 1, "maximum": 9}, "items": {"type": "array", "items": {"$ref": "#/$defs/item"}, "maxItems": 2}}, "required": ["n", "items"], "$defs": {"item": {"type": "string", "maxLength": 4}}}"##

  static func functions() throws -> [ToolCallSyntax.Function] {
    [
      .init(name: "get_weather", description: "Weather now", parameters: try OrderedJSON(parsing: weather)),
      .init(name: "count", description: nil, parameters: try OrderedJSON(parsing: count)),
    ]
  }

  @Test(.enabled(if: defaultModelIsPresent, "needs models/SmolLM2-135M-Instruct.Q4_1.gguf"))
  func grammarOutputsParseIntoValidCalls() throws {
    let functions = try Self.functions()
    let matcher = GrammarMatcher(
      grammar: try ToolCallGrammar.grammar(functions: functions, parallel: true), vocabulary: defaultVocabulary)
    var random = SplitMix64(state: 5)
    var arguments: [String: [String]] = [:]
    var walks = 0
    for _ in 0..<60 {
      guard let bytes = randomWalk(matcher, &random), let text = String(validating: bytes, as: UTF8.self) else { continue }
      walks += 1
      let parsed = try #require(ToolCallSyntax.parse(text), "not parsed: \(text)")
      #expect(parsed.content.isEmpty)
      for call in parsed.calls { arguments[call.name, default: []].append(call.arguments) }
    }
    #expect(walks >= 50)
    #expect(Set(arguments.keys) == ["get_weather", "count"])
    let (ok, report) = try validateWithJSONSchema([
      (Self.weather, arguments["get_weather"] ?? []), (Self.count, arguments["count"] ?? []),
    ])
    #expect(ok, "\(report)")
  }

  @Test func unsupportedParameterKeywordsNameTheFunction() throws {
    var functions = try Self.functions()
    functions[1].parameters = try OrderedJSON(parsing: #"{"type": "object", "properties": {"a": {"type": "string", "pattern": "x"}}}"#)
    #expect(throws: ToolSchemaError(index: 1, error: .unsupported(keyword: "pattern", path: "/properties/a"))) {
      try ToolCallGrammar.grammar(functions: functions, parallel: false)
    }
  }

  @Test func textFormRoundTrips() {
    let calls = [
      ToolCallSyntax.Call(name: "get_weather", arguments: #"{"city":"Paris"}"#),
      ToolCallSyntax.Call(name: "count", arguments: #"{"n":3,"items":[]}"#),
    ]
    let text = ToolCallSyntax.assistantContent("Let me look.", calls: calls)
    let parsed = ToolCallSyntax.parse(text)
    #expect(parsed?.content == "Let me look.")
    #expect(parsed?.calls == calls)
    // Arguments given as a JSON string (some models write them so) are read as the object.
    #expect(
      ToolCallSyntax.parse("<tool_call>\n{\"name\": \"f\", \"arguments\": \"{\\\"a\\\": 1}\"}\n</tool_call>")?.calls
        == [.init(name: "f", arguments: #"{"a":1}"#)])
    // Anything not a complete, well-formed call is text.
    for bad in [
      "plain text", "<tool_call>\n{\"name\": \"f\", \"arguments\": {}}", "<tool_call>\n{\"arguments\": {}}\n</tool_call>",
      "<tool_call>\n{\"name\": \"f\", \"arguments\": [1]}\n</tool_call>", "<tool_call>\nnot json\n</tool_call>",
    ] {
      #expect(ToolCallSyntax.parse(bad) == nil, "\(bad)")
    }
    #expect(ToolCallSyntax.mayBeginCall("\n <tool_c"))
    #expect(ToolCallSyntax.mayBeginCall("<tool_call>\n{\"na"))
    #expect(!ToolCallSyntax.mayBeginCall("The weather"))
  }

  /// Families whose template drops system messages entirely (the first Phi-3 template) cannot
  /// carry the tools block; every other family must carry everything.
  @Test(arguments: ChatTemplate.Family.allCases.filter { $0 != .phi3Legacy })
  func conversationsWithToolsSurviveEveryTemplateFamily(family: ChatTemplate.Family) throws {
    let functions = try Self.functions()
    let call = ToolCallSyntax.Call(name: "get_weather", arguments: #"{"city": "Paris"}"#)
    let system = ToolCallSyntax.systemPrompt("Be brief.", functions: functions)
    let messages = [
      ChatMessage(role: "system", content: system),
      ChatMessage(role: "user", content: "Weather in Paris?"),
      ChatMessage(role: "assistant", content: ToolCallSyntax.assistantContent("", calls: [call])),
      ChatMessage(role: "user", content: ToolCallSyntax.toolResponse(#"{"sky": "sunny"}"#)),
    ]
    let segments = ChatTemplate(family: family, bosToken: "<s>", eosToken: "</s>").render(messages, addGenerationPrompt: true)
    let content = segments.compactMap { if case .content(let t) = $0 { t } else { nil } }.joined(separator: "|")
    let pieces = ["<tools>", #""name":"get_weather""#, "</tools>", "Weather in Paris?", ToolCallSyntax.render(call), "<tool_response>\n{\"sky\": \"sunny\"}\n</tool_response>"]
    var at = content.startIndex
    for piece in pieces {
      let found = try #require(content[at...].range(of: piece), "\(family): '\(piece)' missing from the content in order:\n\(content)")
      at = found.upperBound
    }
    // The call as rendered in the assistant's turn parses back to the same call.
    #expect(ToolCallSyntax.parse(ToolCallSyntax.assistantContent("", calls: [call]))?.calls == [.init(name: "get_weather", arguments: #"{"city":"Paris"}"#)])
  }
}
