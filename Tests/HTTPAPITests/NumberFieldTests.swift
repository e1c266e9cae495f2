// Numbers JSON can hold but a field's type cannot (2.5 or 1e20 as an integer, ±1e400 anywhere):
// a 400 that names the field in `param` and the message, for every numeric field of both
// generation routes, before anything reaches the backend.
import Foundation
import HTTPAPI
import Testing

struct NumberFieldCase: Sendable, CustomTestStringConvertible {
  var route: String
  /// The body's fields after the prompt, e.g. `"n": 2.5`.
  var fields: String
  var param: String
  var testDescription: String { "\(route) \(fields)" }
}

@Suite struct NumberFieldTests {
  /// Integer fields, then number fields, and where the number sits in the body when it is nested.
  static let integers = ["max_tokens", "max_completion_tokens", "top_k", "seed", "n"]
  static let numbers = [
    "temperature", "top_p", "min_p", "repeat_penalty", "presence_penalty", "frequency_penalty", "adapter_scale",
  ]

  static let cases: [NumberFieldCase] = {
    var cases: [NumberFieldCase] = []
    for route in ["/v1/chat/completions", "/v1/completions"] {
      let integers = integers + (route == "/v1/completions" ? ["logprobs", "best_of"] : ["top_logprobs"])
      for field in integers {
        for value in ["2.5", "1e20", "-1.5", "1e400"] {
          cases.append(.init(route: route, fields: #""\#(field)": \#(value)"#, param: field))
        }
      }
      for field in numbers {
        for value in ["1e400", "-1e400"] {
          cases.append(.init(route: route, fields: #""\#(field)": \#(value)"#, param: field))
        }
      }
      cases += [
        .init(route: route, fields: #""logit_bias": {"5": 1e400}"#, param: "logit_bias"),
        .init(route: route, fields: #""lora": [{"id": 0, "scale": 1e400}]"#, param: "lora[0].scale"),
        .init(route: route, fields: #""lora": [{"id": 0.5, "scale": 1}]"#, param: "lora[0].id"),
        .init(
          route: route, fields: #""response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "number", "maximum": 1e400}}}"#,
          param: "response_format.json_schema.schema.maximum"),
      ]
    }
    return cases
  }()

  @Test(arguments: cases) func unrepresentableNumbersNameTheirField(_ c: NumberFieldCase) async throws {
    try await withServer { path, backend, _ in
      let prompt = c.route == "/v1/completions" ? #""prompt": "x""# : #""messages": [{"role": "user", "content": "x"}]"#
      let r = try await request(path, "POST", c.route, json: "{\(prompt), \(c.fields)}")
      #expect(r.status == 400)
      let e = try errorObject(r)
      #expect(e["code"] as? String == "invalid_value")
      #expect(e["param"] as? String == c.param)
      let message = e["message"] as? String ?? ""
      #expect(message.hasPrefix(c.param + ":"), "\(message)")
      #expect(backend.snapshot.started == 0)
    }
  }

  @Test func wholeNumbersWrittenAsFloatsStillCount() async throws {
    try await withServer { path, backend, _ in
      let r = try await request(
        path, "POST", "/v1/chat/completions",
        json: #"{"messages": [{"role": "user", "content": "x"}], "max_tokens": 2.0, "n": 1e0, "seed": 7.0}"#)
      #expect(r.status == 200)
      #expect(backend.snapshot.lastChat?.sampling.maxTokens == 2)
      #expect(backend.snapshot.lastChat?.sampling.seed == 7)
    }
  }
}
