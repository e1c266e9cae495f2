// Every error kind with the key path and the exact line and column it names, the YAML features
// the format refuses (anchors, aliases, tags, several documents), and hostile documents
// (too large, too deep, too many nodes) stopped by the limits before they cost much.
import Testing

import Settings

func decodeError(_ text: String, limits: YAMLLimits = YAMLLimits()) -> SettingsError? {
  do {
    _ = try SettingsLoader.decode(text, source: "t.yaml", limits: limits)
    return nil
  } catch {
    return error
  }
}

@Suite struct SettingsErrorTests {
  struct Case: CustomTestStringConvertible, Sendable {
    var text: String
    var kind: SettingsError.Kind
    var keyPath: String?
    var line: Int
    var column: Int
    var testDescription: String { "\(keyPath ?? "-") \(kind)" }
  }

  static let cases: [Case] = [
    Case(text: "model:\n  pathh: x\n", kind: .unknownKey, keyPath: "model.pathh", line: 2, column: 3),
    Case(text: "modle:\n  path: x\n", kind: .unknownKey, keyPath: "modle", line: 1, column: 1),
    Case(text: "model:\n  path:\n    deeper: 1\n", kind: .wrongType(expected: "a string", found: "a mapping"),
         keyPath: "model.path", line: 3, column: 5),
    Case(text: "model: 3\n", kind: .wrongType(expected: "a mapping", found: "\"3\""), keyPath: "model", line: 1, column: 8),
    Case(text: "- 1\n- 2\n", kind: .wrongType(expected: "a mapping", found: "a sequence"), keyPath: nil, line: 1, column: 1),
    Case(text: "model:\n  threads: 2\n  threads: 3\n", kind: .duplicateKey, keyPath: "model.threads", line: 3, column: 3),
    Case(text: "model:\n  threads: two\n", kind: .wrongType(expected: "an integer", found: "\"two\""),
         keyPath: "model.threads", line: 2, column: 12),
    Case(text: "model:\n  threads: \"2\"\n", kind: .wrongType(expected: "an integer", found: "\"2\""),
         keyPath: "model.threads", line: 2, column: 12),
    Case(text: "model:\n  threads: 2.5\n", kind: .wrongType(expected: "an integer", found: "\"2.5\""),
         keyPath: "model.threads", line: 2, column: 12),
    Case(text: "model:\n  threads: -1\n", kind: .outOfRange("-1 is not in 0...1024"),
         keyPath: "model.threads", line: 2, column: 12),
    Case(text: "model:\n  context_size: 99999999999999999999999\n",
         kind: .wrongType(expected: "an integer", found: "\"99999999999999999999999\""),
         keyPath: "model.context_size", line: 2, column: 17),
    Case(text: "generation:\n  top_p: 1.5\n", kind: .outOfRange("1.5 is not in 0.0...1.0"),
         keyPath: "generation.top_p", line: 2, column: 10),
    Case(text: "generation:\n  temperature: .nan\n", kind: .wrongType(expected: "a number", found: "\".nan\""),
         keyPath: "generation.temperature", line: 2, column: 16),
    Case(text: "generation:\n  temperature: nan\n", kind: .wrongType(expected: "a number", found: "\"nan\""),
         keyPath: "generation.temperature", line: 2, column: 16),
    Case(text: "generation:\n  temperature: [1]\n", kind: .wrongType(expected: "a number", found: "a sequence"),
         keyPath: "generation.temperature", line: 2, column: 16),
    Case(text: "model:\n  path: ~\n", kind: .wrongType(expected: "a string", found: "null"),
         keyPath: "model.path", line: 2, column: 9),
    Case(text: "model:\n  path: \"\"\n", kind: .invalidValue("must not be empty"), keyPath: "model.path", line: 2, column: 9),
    Case(text: "model:\n  kv_cache_type: q4_0\n", kind: .invalidValue("\"q4_0\" is not one of f32, f16"),
         keyPath: "model.kv_cache_type", line: 2, column: 18),
    Case(text: "training:\n  mask_granularity: batch\n",
         kind: .invalidValue("\"batch\" is not one of step, token"), keyPath: "training.mask_granularity", line: 2, column: 21),
    Case(text: "training:\n  pruning_rate: 1\n", kind: .outOfRange("1 is not in 0.0...0.99"),
         keyPath: "training.pruning_rate", line: 2, column: 17),
    Case(text: "server:\n  socket_mode: 0999\n", kind: .invalidValue("\"0999\" is not an octal file mode like 0660"),
         keyPath: "server.socket_mode", line: 2, column: 16),
    Case(text: "server:\n  socket_mode: 4755\n", kind: .outOfRange("4755 has bits above 0777"),
         keyPath: "server.socket_mode", line: 2, column: 16),
    Case(text: "server:\n  allowed_uids: [1000, bob]\n", kind: .wrongType(expected: "an integer", found: "\"bob\""),
         keyPath: "server.allowed_uids[1]", line: 2, column: 24),
    Case(text: "server:\n  allowed_uids: 1000\n", kind: .wrongType(expected: "a sequence", found: "\"1000\""),
         keyPath: "server.allowed_uids", line: 2, column: 17),
    Case(text: "server:\n  allowed_groups:\n    - wheel\n    - [x]\n",
         kind: .wrongType(expected: "a string", found: "a sequence"), keyPath: "server.allowed_groups[1]", line: 4, column: 7),
    Case(text: "generation:\n  max_tokens: 5000\n",
         kind: .outOfRange("generation.max_tokens (5000) is above limits.max_tokens (4096)"),
         keyPath: "generation.max_tokens", line: 2, column: 15),
    Case(text: "model:\n  path: [unclosed\n", kind: .syntax("did not find expected ',' or ']' while parsing a flow sequence"),
         keyPath: nil, line: 3, column: 1),
    Case(text: "model:\n\tpath: x\n", kind: .syntax("found character that cannot start any token while scanning for the next token"),
         keyPath: nil, line: 2, column: 1),
    // Refused YAML features.
    Case(text: "model: &m\n  threads: 1\n", kind: .unsupported("anchors (&name)"), keyPath: nil, line: 1, column: 8),
    Case(text: "a: &x 1\n", kind: .unsupported("anchors (&name)"), keyPath: nil, line: 1, column: 4),
    Case(text: "model:\n  threads: *t\n", kind: .unsupported("aliases (*name)"), keyPath: nil, line: 2, column: 12),
    Case(text: "model:\n  threads: !!int 3\n", kind: .unsupported("tags (tag:yaml.org,2002:int)"), keyPath: nil, line: 2, column: 12),
    Case(text: "log_level: info\n---\nlog_level: debug\n", kind: .unsupported("several documents"), keyPath: nil, line: 2, column: 1),
  ]

  @Test(arguments: cases)
  func errorNamesKeyLineAndColumn(_ c: Case) {
    let error = decodeError(c.text)
    #expect(error == SettingsError(c.kind, keyPath: c.keyPath, source: "t.yaml", mark: Mark(line: c.line, column: c.column)))
  }

  @Test func messageIsReadable() {
    let error = decodeError("model:\n  pathh: x\n")
    #expect(error?.description == "t.yaml:2:3: model.pathh: unknown key (see droplorad.yaml(5) for the keys)")
  }

  // MARK: hostile input

  @Test func tooManyBytes() {
    let text = String(repeating: "# padding\n", count: 200)
    #expect(decodeError(text, limits: YAMLLimits(maxBytes: 1000))?.kind == .tooLarge("document is 2000 bytes; the limit is 1000"))
    // The default limit (1 MiB) stops a 2 MiB document before libyaml sees it.
    let big = String(repeating: "#", count: 2 << 20)
    if case .tooLarge = decodeError(big)?.kind {} else { Issue.record("2 MiB document accepted") }
  }

  @Test func deepNestingIsBounded() {
    let depth = 100_000
    let text = String(repeating: "[", count: depth) + String(repeating: "]", count: depth)
    let error = decodeError(text)
    #expect(error?.kind == .tooLarge("nested deeper than 32 levels"))
    #expect(error?.mark == Mark(line: 1, column: 33))
    let mappings = (0..<40).map { String(repeating: "  ", count: $0) + "k\($0):" }.joined(separator: "\n") + " 1\n"
    #expect(decodeError(mappings)?.kind == .tooLarge("nested deeper than 32 levels"))
  }

  @Test func nodeCountIsBounded() {
    let text = "model:\n  path: [" + Array(repeating: "1", count: 200_000).joined(separator: ",") + "]\n"
    #expect(decodeError(text)?.kind == .tooLarge("more than 100000 nodes"))
  }

  @Test func manyAliasesNeverExpand() {
    // "Billion laughs": refused at the first anchor, before any alias could be expanded.
    let text = """
      a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
      b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
      c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
      """
    #expect(decodeError(text)?.kind == .unsupported("anchors (&name)"))
  }

  @Test func invalidUTF8IsAnError() {
    let bytes: [UInt8] = Array("log_level: ".utf8) + [0xff, 0xfe, 0x0a]
    #expect(throws: SettingsError.self) { try SettingsLoader.decode(bytes, source: nil) }
  }
}
