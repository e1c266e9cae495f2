// Tool calls and structured output through the routes with the stub backend: an answer in the
// `<tool_call>` form becomes OpenAI's `tool_calls` (plain and streamed as deltas), text that is
// not a call streams as content, schemas reach the backend in the client's key order, and bad
// schemas and grammars are refused naming the field.
import Foundation
import HTTPAPI
import Testing

@Suite struct ToolRouteTests {
  static let tools = #"[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{"zone":{"type":"string"},"city":{"type":"string"}}}}}]"#
  static let callTokens = ["<tool", "_call>\n{\"name\": \"get", "_weather\", \"arguments\": {\"city\": ", "\"Oslo\"}}\n</tool_call>"]

  @Test func callsBecomeToolCalls() async throws {
    let backend = StubBackend()
    backend.update { $0.tokens = Self.callTokens }
    try await withServer(backend) { path, backend, _ in
      let r = try await request(
        path, "POST", "/v1/chat/completions",
        json: #"{"messages":[{"role":"user","content":"Weather in Oslo?"}],"tools":\#(Self.tools)}"#)
      #expect(r.status == 200, "\(r.text)")
      let choice = try #require((try r.json()["choices"] as? [[String: Any]])?.first)
      #expect(choice["finish_reason"] as? String == "tool_calls")
      let message = try #require(choice["message"] as? [String: Any])
      #expect(message["content"] is NSNull)
      let call = try #require((message["tool_calls"] as? [[String: Any]])?.first)
      #expect((call["id"] as? String)?.hasPrefix("call_") == true)
      #expect(call["type"] as? String == "function")
      let function = try #require(call["function"] as? [String: Any])
      #expect(function["name"] as? String == "get_weather")
      #expect(function["arguments"] as? String == #"{"city":"Oslo"}"#)
      // The parameters reached the backend with their keys in the order written.
      let request = try #require(backend.snapshot.lastChat)
      let seen = try #require(try request.features.toolUse())
      #expect(seen.functions.first?.parameters.serialized == #"{"type":"object","properties":{"zone":{"type":"string"},"city":{"type":"string"}}}"#)
    }
  }

  @Test func streamedCallsComeAsOneDeltaAndTextStreamsAsItComes() async throws {
    let backend = StubBackend()
    backend.update { $0.tokens = Self.callTokens }
    try await withServer(backend) { path, backend, _ in
      let body = #"{"messages":[{"role":"user","content":"Weather?"}],"tools":\#(Self.tools),"stream":true}"#
      var events = sseEvents(try await request(path, "POST", "/v1/chat/completions", json: body).text)
      #expect(events.last == "[DONE]")
      events.removeLast()
      let choices = try events.map { e -> [String: Any] in
        let j = try JSONSerialization.jsonObject(with: Data(e.utf8)) as! [String: Any]
        return (j["choices"] as! [[String: Any]])[0]
      }
      let deltas = choices.map { $0["delta"] as! [String: Any] }
      // Nothing of the call leaks out as content.
      #expect(deltas.allSatisfy { ($0["content"] as? String ?? "").isEmpty })
      let calls = deltas.compactMap { $0["tool_calls"] as? [[String: Any]] }
      #expect(calls.count == 1)
      #expect(calls.first?.first?["index"] as? Int == 0)
      #expect((calls.first?.first?["function"] as? [String: Any])?["arguments"] as? String == #"{"city":"Oslo"}"#)
      #expect(choices.last?["finish_reason"] as? String == "tool_calls")

      // Text that cannot be a call is streamed as content, and finishes as text.
      backend.update { $0.tokens = ["It ", "rains", "."] }
      let text = sseEvents(try await request(path, "POST", "/v1/chat/completions", json: body).text)
      #expect(text.filter { $0.contains(#""content":"It ""#) || $0.contains(#""content":"rains""#) }.count == 2)
      #expect(text.contains { $0.contains(#""finish_reason":"stop""#) })
      #expect(!text.contains { $0.contains("tool_calls") })
    }
  }

  @Test func refusalsNameTheField() async throws {
    try await withServer { path, _, _ in
      func param(_ json: String) async throws -> String? {
        let r = try await request(path, "POST", "/v1/chat/completions", json: json)
        #expect(r.status == 400, "\(r.text)")
        return (try r.json()["error"] as? [String: Any])?["param"] as? String
      }
      let user = #""messages":[{"role":"user","content":"hi"}]"#
      let p1 = try await param(#"{\#(user),"response_format":{"type":"json_schema","json_schema":{"schema":{"type":"string","pattern":"a"}}}}"#)
      #expect(p1 == "response_format.json_schema.schema")
      let p2 = try await param(#"{\#(user),"grammar":"root ::= (\"a\""}"#)
      #expect(p2 == "grammar")
      let p3 = try await param(#"{\#(user),"tools":\#(Self.tools),"tool_choice":{"type":"function","function":{"name":"nope"}}}"#)
      #expect(p3 == "tool_choice")
      let p4 = try await param(#"{\#(user),"tool_choice":"required"}"#)
      #expect(p4 == "tool_choice")
      let p5 = try await param(#"{\#(user),"tools":[{"type":"function","function":{"name":"f","parameters":{"not":{}}}}],"tool_choice":"required"}"#)
      #expect(p5 == "tools[0].function.parameters")
      let p6 = try await param(#"{\#(user),"tools":\#(Self.tools),"tool_choice":"required","grammar":"root ::= \"a\""}"#)
      #expect(p6 == "grammar")
    }
  }
}
