// JSON Schema → grammar, checked from outside: random walks over the real vocabulary (uniform
// among the allowed tokens until the grammar is complete) must always give JSON that Python's
// jsonschema accepts, for schemas covering every supported keyword; unsupported keywords are
// refused by name; the trie-walk mask equals a token-by-token check.
import Foundation
import Testing

import Grammar

/// One schema per feature family; each is walked `walksPerSchema` times.
let featureSchemas: [(name: String, schema: String)] = [
  ("required and optional properties, additionalProperties false",
   #"{"type":"object","properties":{"name":{"type":"string","maxLength":12},"age":{"type":"integer","minimum":0,"maximum":150},"nick":{"type":"string","maxLength":6},"admin":{"type":"boolean"}},"required":["name","age"],"additionalProperties":false}"#),
  ("only optional properties", #"{"type":"object","properties":{"a":{"type":"null"},"b":{"type":"boolean"},"c":{"type":"integer","maximum":3,"minimum":1}},"additionalProperties":false}"#),
  ("arrays with min and max items", #"{"type":"array","items":{"type":"integer","minimum":-5,"maximum":5},"minItems":2,"maxItems":4}"#),
  ("nested arrays, no max", #"{"type":"array","items":{"type":"array","items":{"type":"boolean"},"maxItems":3},"minItems":1}"#),
  ("enum and const", #"{"type":"object","properties":{"kind":{"const":"point"},"color":{"enum":["red","green",null,3,{"a":[1,"x\"y"]}]}},"required":["kind","color"],"additionalProperties":false}"#),
  ("string lengths", #"{"type":"object","properties":{"short":{"type":"string","minLength":3,"maxLength":5},"exact":{"type":"string","minLength":2,"maxLength":2},"long":{"type":"string","minLength":4}},"required":["short","exact","long"],"additionalProperties":false}"#),
  ("string formats", #"{"type":"object","properties":{"d":{"type":"string","format":"date"},"t":{"type":"string","format":"time"},"dt":{"type":"string","format":"date-time"},"u":{"type":"string","format":"uuid"},"e":{"type":"string","format":"email"},"ip":{"type":"string","format":"ipv4"}},"required":["d","t","dt","u","e","ip"],"additionalProperties":false}"#),
  ("integer bounds", #"{"type":"object","properties":{"a":{"type":"integer","minimum":95,"maximum":1234},"b":{"type":"integer","maximum":-17},"c":{"type":"integer","exclusiveMinimum":3,"exclusiveMaximum":7},"d":{"type":"integer","minimum":-120,"maximum":45},"e":{"type":"integer","minimum":1000}},"required":["a","b","c","d","e"],"additionalProperties":false}"#),
  ("number bounds", #"{"type":"object","properties":{"p":{"type":"number","minimum":0,"maximum":1},"q":{"type":"number","exclusiveMinimum":0,"exclusiveMaximum":1},"r":{"type":"number","exclusiveMinimum":-10,"maximum":-2.5},"s":{"type":"number","minimum":2},"t":{"type":"number","exclusiveMaximum":0},"u":{"type":"number"}},"required":["p","q","r","s","t","u"],"additionalProperties":false}"#),
  ("anyOf and oneOf unions", #"{"type":"array","items":{"anyOf":[{"type":"string","maxLength":4},{"type":"integer"},{"type":"null"}]},"maxItems":5,"minItems":1}"#),
  ("oneOf of disjoint objects", #"{"oneOf":[{"type":"object","properties":{"cat":{"const":true}},"required":["cat"],"additionalProperties":false},{"type":"object","properties":{"dog":{"type":"integer"}},"required":["dog"],"additionalProperties":false}]}"#),
  ("$ref and $defs with recursion", ##"{"$defs":{"node":{"type":"object","properties":{"value":{"type":"integer","minimum":0,"maximum":9},"children":{"type":"array","items":{"$ref":"#/$defs/node"},"maxItems":2}},"required":["value","children"],"additionalProperties":false}},"$ref":"#/$defs/node"}"##),
  ("nullable types", #"{"type":"object","properties":{"a":{"type":["string","null"],"maxLength":3},"b":{"type":["integer","null"],"minimum":0,"maximum":3},"c":{"type":["boolean","null"]}},"required":["a","b","c"],"additionalProperties":false}"#),
  ("free-form values", #"{"type":"object","properties":{"any":{},"map":{"type":"object","additionalProperties":{"type":"integer","minimum":0,"maximum":9}}},"required":["any","map"],"additionalProperties":false}"#),
  ("json_object mode", #"{"type":"object"}"#),
]

struct JSONSchemaTests {
  static let walksPerSchema = 100

  func grammar(_ name: String, _ schema: String) throws -> Grammar {
    name == "json_object mode" ? JSONSchemaCompiler.anyObjectGrammar() : try JSONSchemaCompiler.grammar(schema: schema)
  }

  @Test(.enabled(if: defaultModelIsPresent, "needs models/SmolLM2-135M-Instruct.Q4_1.gguf"))
  func randomWalksValidate() throws {
    var random = SplitMix64(state: 17)
    var batches: [(schema: String, outputs: [String])] = []
    for (name, schema) in featureSchemas {
      let matcher = GrammarMatcher(grammar: try grammar(name, schema), vocabulary: defaultVocabulary)
      var outputs: [String] = []
      var unfinished = 0
      for _ in 0..<Self.walksPerSchema {
        guard let bytes = randomWalk(matcher, &random) else {
          unfinished += 1
          continue
        }
        // Every walk ends on whole characters: the grammar is byte-level but only allows UTF-8.
        guard let text = String(validating: bytes, as: UTF8.self) else {
          Issue.record("\(name): a walk produced invalid UTF-8: \(bytes)")
          continue
        }
        outputs.append(text)
      }
      // A uniform walk in free-form JSON (any value) often nests past the budget; in schemas
      // with bounded structure nearly all finish.
      #expect(unfinished * (schema.contains("{}") || name == "json_object mode" ? 2 : 10) <= Self.walksPerSchema, "\(name): \(unfinished) walks did not finish")
      batches.append((schema, outputs))
    }
    let (ok, report) = try validateWithJSONSchema(batches)
    #expect(ok, "\(report)")
    #expect(report.contains("checked"), "the validator did not run: \(report)")
  }

  @Test func acceptsAndRejectsTexts() throws {
    let g = try JSONSchemaCompiler.grammar(schema: featureSchemas[0].schema)
    let m = GrammarMatcher(grammar: g, vocabulary: TokenVocabulary(pieces: [], endTokens: []))
    #expect(m.matches(Array(#"{"name":"Ann","age":37}"#.utf8)))
    #expect(m.matches(Array(#"{ "name": "Ann", "age": 37, "admin": true }"#.utf8)))
    #expect(m.matches(Array("{\n  \"name\": \"A\\u00e9\",\n  \"age\": 0,\n  \"nick\": \"x\"\n}".utf8)))
    #expect(!m.matches(Array(#"{"age":37,"name":"Ann"}"#.utf8)), "properties come in schema order")
    #expect(!m.matches(Array(#"{"name":"Ann"}"#.utf8)), "age is required")
    #expect(!m.matches(Array(#"{"name":"Ann","age":151}"#.utf8)))
    #expect(!m.matches(Array(#"{"name":"Ann","age":37,"x":1}"#.utf8)))
    #expect(!m.matches(Array(#"{"name":"Ann","age":037}"#.utf8)))
    #expect(!m.matches(Array(#"{"name":"1234567890123","age":1}"#.utf8)), "maxLength 12")
  }

  @Test(arguments: [
    (#"{"type":"string","pattern":"^a+$"}"#, "pattern"),
    (#"{"type":"object","patternProperties":{"^x":{}}}"#, "patternProperties"),
    (#"{"if":{"type":"string"},"then":{"maxLength":3}}"#, "if"),
    (#"{"not":{"type":"null"}}"#, "not"),
    (#"{"type":"array","items":{"type":"integer"},"uniqueItems":true}"#, "uniqueItems"),
    (#"{"type":"object","properties":{"a":{"type":"number","multipleOf":0.5}}}"#, "multipleOf"),
    (#"{"allOf":[{"type":"string"},{"maxLength":2}]}"#, "allOf"),
    (#"{"type":"string","format":"iri"}"#, "format: \"iri\""),
    (#"{"$ref":"https://example.com/schema.json"}"#, "$ref"),
    (#"{"type":"object","minProperties":1}"#, "minProperties"),
  ])
  func unsupportedKeywordsAreNamed(schema: String, keyword: String) {
    do {
      _ = try JSONSchemaCompiler.grammar(schema: schema)
      Issue.record("\(schema) compiled")
    } catch {
      #expect(error.keyword == keyword, "\(error)")
    }
  }

  @Test func invalidSchemasAreRefused() {
    #expect(throws: JSONSchemaError.self) { try JSONSchemaCompiler.grammar(schema: #"{"type":"strng"}"#) }
    #expect(throws: JSONSchemaError.self) { try JSONSchemaCompiler.grammar(schema: ##"{"$ref":"#/$defs/missing"}"##) }
    #expect(throws: JSONSchemaError.self) { try JSONSchemaCompiler.grammar(schema: #"{"type":"object""#) }
    #expect(throws: JSONSchemaError.self) { try JSONSchemaCompiler.grammar(schema: #"{"type":"integer","minimum":5,"maximum":4}"#) }
  }

  /// The trie scan must allow exactly the tokens a token-by-token check allows, at states along
  /// random walks (the scan's subtree skipping and caches are the optimisation under test).
  @Test(.enabled(if: defaultModelIsPresent, "needs models/SmolLM2-135M-Instruct.Q4_1.gguf"))
  func maskEqualsTokenByTokenCheck() throws {
    var random = SplitMix64(state: 5)
    for (name, schema) in [featureSchemas[0], featureSchemas[6], featureSchemas[11]] {
      let matcher = GrammarMatcher(grammar: try grammar(name, schema), vocabulary: defaultVocabulary)
      for _ in 0..<12 {
        let mask = matcher.allowedTokens()
        for id in 0..<Int32(defaultVocabulary.count) {
          let piece = defaultVocabulary.piece(id)
          let expected =
            defaultVocabulary.endTokens.contains(id) ? matcher.canEnd : !piece.isEmpty && matcher.canAccept(bytes: piece)
          if mask.contains(id) != expected {
            Issue.record("\(name): token \(id) \(piece) mask \(mask.contains(id)) check \(expected)")
            return
          }
        }
        if matcher.isComplete { break }
        let allowed = mask.allowed.filter { !defaultVocabulary.endTokens.contains($0) }
        matcher.accept(allowed[Int(random.next() % UInt64(allowed.count))])
      }
    }
  }
}
