// JSON Schema → Grammar. The generated text is compact-ish JSON with bounded optional
// whitespace, properties in the schema's order. Supported: type (and type lists, so
// ["x", "null"] is nullable; OpenAPI's `nullable` is not JSON Schema and is ignored), properties/required,
// additionalProperties, items/minItems/maxItems, enum, const, minLength/maxLength, format
// (date, time, date-time, uuid, email, ipv4, hostname), minimum/maximum and their exclusive
// forms, anyOf/oneOf as unions, single-schema allOf, $ref into $defs/definitions (and "#"),
// recursion included. Anything that constrains output in a way the grammar cannot express is
// refused with `JSONSchemaError.unsupported` naming the keyword.
//
// Choices (documented in the README):
// - Objects with declared `properties` produce exactly those (required always, optional ones
//   may be left out), whatever `additionalProperties` says: an object with no extra keys is
//   valid under true, absent, false or a schema. An object without `properties` is free-form:
//   any keys, values of the `additionalProperties` schema (any JSON when absent or true).
// - Bounds on `number` that are not integers are tightened to the nearest integer inside the
//   range (the output always validates; some values become unreachable). Bounded numbers
//   have no exponent.
// - `oneOf` is generated as `anyOf`: branches that overlap can produce text matching two.
// - `date` allows days 01-28 in February (no leap-year arithmetic in the grammar).

public enum JSONSchemaError: Error, Equatable, Sendable, CustomStringConvertible {
  /// A keyword (or keyword value) the compiler cannot enforce; `path` is a JSON pointer.
  case unsupported(keyword: String, path: String)
  /// The schema is not a valid schema (wrong type of a keyword, unresolvable $ref...).
  case invalidSchema(String, path: String)
  case invalidJSON(String)
  /// The grammar built from the schema was refused (e.g. a $ref cycle that consumes nothing).
  case grammar(GrammarError)

  public var description: String {
    switch self {
    case .unsupported(let keyword, let path):
      return "JSON Schema keyword '\(keyword)' is not supported (at \(path.isEmpty ? "#" : "#" + path))"
    case .invalidSchema(let message, let path): return "invalid JSON Schema at \(path.isEmpty ? "#" : "#" + path): \(message)"
    case .invalidJSON(let message): return "invalid JSON: \(message)"
    case .grammar(let error): return "\(error)"
    }
  }

  /// The keyword to name in an API error (`param`), when there is one.
  public var keyword: String? {
    if case .unsupported(let keyword, _) = self { return keyword }
    return nil
  }
}

public enum JSONSchemaCompiler {
  /// Keywords that restrict values in ways this compiler cannot express.
  public static let unsupportedKeywords: Set<String> = [
    "pattern", "patternProperties", "if", "then", "else", "not", "dependentRequired", "dependentSchemas",
    "dependencies", "propertyNames", "unevaluatedProperties", "unevaluatedItems", "contains", "minContains",
    "maxContains", "minProperties", "maxProperties", "multipleOf", "prefixItems", "$dynamicRef",
    "$recursiveRef", "contentSchema",
  ]

  /// A grammar for JSON text valid under `schema` (a JSON Schema document).
  public static func grammar(schema: String) throws(JSONSchemaError) -> Grammar {
    try grammar(schema: JSONValue(parsing: schema))
  }

  public static func grammar(schema: JSONValue) throws(JSONSchemaError) -> Grammar {
    var compiler = SchemaCompilation(root: schema)
    return try compiler.compile()
  }

  /// A grammar for any JSON object (OpenAI's `response_format: {"type": "json_object"}`).
  public static func anyObjectGrammar() -> Grammar {
    var compiler = SchemaCompilation(root: .object([]))
    compiler.builder = GrammarBuilder()
    do {
      try compiler.defineCommon()
      try compiler.builder.define("root", .reference("object", line: 0, column: 0))
      return try compiler.builder.build(root: "root")
    } catch {
      preconditionFailure("the fixed JSON object grammar failed to build: \(error)")
    }
  }
}

struct SchemaCompilation {
  let root: JSONValue
  var builder = GrammarBuilder()
  private var refRules: [String: String] = [:]
  var counter = 0  // shared across compilations into one builder (ToolCallGrammar), so names stay unique

  init(root: JSONValue) { self.root = root }

  static func ref(_ name: String) -> GrammarExpression { .reference(name, line: 0, column: 0) }
  static let ws = ref("ws")

  mutating func compile() throws(JSONSchemaError) -> Grammar {
    do {
      try defineCommon()
      let body = try expression(root, path: "")
      try builder.define("root", body)
      return try builder.build(root: "root")
    } catch let error as GrammarError {
      throw .grammar(error)
    } catch let error as JSONSchemaError {
      throw error
    } catch {
      throw .invalidSchema("\(error)", path: "")
    }
  }

  /// Shared rules: whitespace, strings, numbers, any value.
  mutating func defineCommon() throws(GrammarError) {
    let hex = GrammarExpression.characters([0x30...0x39, 0x41...0x46, 0x61...0x66], negated: false)
    // Bounded whitespace so a model cannot pad forever: nothing, a space, or a newline and indentation.
    try builder.define(
      "ws", .choice([.empty, .text(" "), .sequence([.text("\n"), .repeated(.text(" "), min: 0, max: 20)])]))
    // One JSON string character; \u escapes exclude surrogates so lengths count code points.
    let nonSurrogateHex = GrammarExpression.choice([
      .sequence([.characters([0x30...0x39, 0x41...0x43, 0x45...0x46, 0x61...0x63, 0x65...0x66], negated: false), hex, hex, hex]),
      .sequence([.characters([0x44...0x44, 0x64...0x64], negated: false), .characters([0x30...0x37], negated: false), hex, hex]),
    ])
    try builder.define(
      "char",
      .choice([
        .characters([0x22...0x22, 0x5C...0x5C, 0...0x1F], negated: true),
        .sequence([.text("\\"), .choice([.characters(Array("\"\\/bfnrt".unicodeScalars.map { $0.value...$0.value }), negated: false), .sequence([.text("u"), nonSurrogateHex])])]),
      ]))
    try builder.define("string", .sequence([.text("\""), .repeated(Self.ref("char"), min: 0, max: nil), .text("\"")]))
    let digit = GrammarExpression.characters([0x30...0x39], negated: false)
    let nonZero = GrammarExpression.characters([0x31...0x39], negated: false)
    try builder.define("integer", .sequence([.repeated(.text("-"), min: 0, max: 1), .choice([.text("0"), .sequence([nonZero, .repeated(digit, min: 0, max: 15)])])]))
    try builder.define("fraction", .sequence([.text("."), .repeated(digit, min: 1, max: 15)]))
    try builder.define(
      "number",
      .sequence([
        Self.ref("integer"), .repeated(Self.ref("fraction"), min: 0, max: 1),
        .repeated(.sequence([.characters([0x45...0x45, 0x65...0x65], negated: false), .repeated(.characters([0x2B...0x2B, 0x2D...0x2D], negated: false), min: 0, max: 1), .repeated(digit, min: 1, max: 2)]), min: 0, max: 1),
      ]))
    try builder.define("boolean", .choice([.text("true"), .text("false")]))
    try builder.define("null", .text("null"))
    try builder.define(
      "value",
      .choice([Self.ref("object"), Self.ref("array"), Self.ref("string"), Self.ref("number"), Self.ref("boolean"), Self.ref("null")]))
    let member = GrammarExpression.sequence([Self.ref("string"), Self.ws, .text(":"), Self.ws, Self.ref("value"), Self.ws])
    try builder.define(
      "object",
      .sequence([.text("{"), Self.ws, .repeated(.sequence([member, .repeated(.sequence([.text(","), Self.ws, member]), min: 0, max: nil)]), min: 0, max: 1), .text("}")]))
    let item = GrammarExpression.sequence([Self.ref("value"), Self.ws])
    try builder.define(
      "array",
      .sequence([.text("["), Self.ws, .repeated(.sequence([item, .repeated(.sequence([.text(","), Self.ws, item]), min: 0, max: nil)]), min: 0, max: 1), .text("]")]))
  }

  private mutating func fresh(_ base: String, _ body: GrammarExpression) throws(GrammarError) -> GrammarExpression {
    counter += 1
    let name = "\(base)-s\(counter)"
    try builder.define(name, body)
    return Self.ref(name)
  }

  // MARK: - Schemas

  mutating func expression(_ schema: JSONValue, path: String) throws(JSONSchemaError) -> GrammarExpression {
    do {
      return try compileSchema(schema, path: path)
    } catch let error as GrammarError {
      throw .grammar(error)
    } catch let error as JSONSchemaError {
      throw error
    } catch {
      throw .invalidSchema("\(error)", path: "")
    }
  }

  private mutating func compileSchema(_ schema: JSONValue, path: String) throws -> GrammarExpression {
    switch schema {
    case .bool(true): return Self.ref("value")
    case .bool(false): throw JSONSchemaError.invalidSchema("the schema 'false' allows no value", path: path)
    case .object: break
    default: throw JSONSchemaError.invalidSchema("a schema must be an object or a boolean", path: path)
    }
    guard case .object(let members) = schema else { return Self.ref("value") }
    for (key, _) in members where JSONSchemaCompiler.unsupportedKeywords.contains(key) {
      throw JSONSchemaError.unsupported(keyword: key, path: path)
    }
    if case .bool(true) = schema["uniqueItems"] ?? .bool(false) {
      throw JSONSchemaError.unsupported(keyword: "uniqueItems", path: path)
    }
    if let ref = schema["$ref"] {
      guard case .string(let pointer) = ref else { throw JSONSchemaError.invalidSchema("$ref must be a string", path: path) }
      return try reference(pointer, path: path + "/$ref")
    }
    if let allOf = schema["allOf"] {
      guard case .array(let parts) = allOf, parts.count == 1 else {
        throw JSONSchemaError.unsupported(keyword: "allOf", path: path)
      }
      return try compileSchema(parts[0], path: path + "/allOf/0")
    }
    if let const = schema["const"] { return .text(const.serialized) }
    if let values = schema["enum"] {
      guard case .array(let items) = values, !items.isEmpty else {
        throw JSONSchemaError.invalidSchema("enum must be a non-empty array", path: path)
      }
      return .choice(items.map { .text($0.serialized) })
    }
    for keyword in ["anyOf", "oneOf"] {
      guard let union = schema[keyword] else { continue }
      guard case .array(let branches) = union, !branches.isEmpty else {
        throw JSONSchemaError.invalidSchema("\(keyword) must be a non-empty array", path: path)
      }
      // Sibling keywords apply to every branch: merge them in (a branch's own win).
      let siblings = members.filter { $0.0 != keyword }
      var options: [GrammarExpression] = []
      for (i, branch) in branches.enumerated() {
        var merged = branch
        if case .object(let own) = branch, !siblings.isEmpty {
          merged = .object(siblings.filter { s in !own.contains { $0.0 == s.0 } } + own)
        }
        options.append(try compileSchema(merged, path: path + "/\(keyword)/\(i)"))
      }
      return .choice(options)
    }
    var types: [String]
    switch schema["type"] {
    case nil: types = inferredTypes(schema)
    case .string(let t): types = [t]
    case .array(let list):
      types = []
      for t in list {
        guard case .string(let name) = t else { throw JSONSchemaError.invalidSchema("type entries must be strings", path: path) }
        types.append(name)
      }
    default: throw JSONSchemaError.invalidSchema("type must be a string or an array", path: path)
    }
    if types.isEmpty { return Self.ref("value") }
    var options: [GrammarExpression] = []
    for t in types {
      switch t {
      case "object": options.append(try object(schema, path: path))
      case "array": options.append(try array(schema, path: path))
      case "string": options.append(try string(schema, path: path))
      case "integer": options.append(try integer(schema, path: path))
      case "number": options.append(try number(schema, path: path))
      case "boolean": options.append(Self.ref("boolean"))
      case "null": options.append(Self.ref("null"))
      default: throw JSONSchemaError.invalidSchema("unknown type '\(t)'", path: path)
      }
    }
    return options.count == 1 ? options[0] : .choice(options)
  }

  /// Types implied by keywords when `type` is absent (e.g. `properties` means object).
  private func inferredTypes(_ schema: JSONValue) -> [String] {
    if schema["properties"] != nil || schema["required"] != nil || schema["additionalProperties"] != nil { return ["object"] }
    if schema["items"] != nil || schema["minItems"] != nil || schema["maxItems"] != nil { return ["array"] }
    if schema["minLength"] != nil || schema["maxLength"] != nil || schema["format"] != nil { return ["string"] }
    return []
  }

  private mutating func reference(_ pointer: String, path: String) throws -> GrammarExpression {
    if let name = refRules[pointer] { return Self.ref(name) }
    guard pointer.hasPrefix("#") else {
      throw JSONSchemaError.unsupported(keyword: "$ref", path: path)  // remote references
    }
    var target = root
    var tokens = pointer.dropFirst().split(separator: "/", omittingEmptySubsequences: false).map(String.init)
    if tokens.first == "" { tokens.removeFirst() }
    for raw in tokens {
      let token = (raw.removingPercentEncodingLite ?? raw).replacingOccurrences("~1", "/").replacingOccurrences("~0", "~")
      switch target {
      case .object: 
        guard let next = target[token] else { throw JSONSchemaError.invalidSchema("$ref '\(pointer)' points nowhere", path: path) }
        target = next
      case .array(let items):
        guard let i = Int(token), i >= 0, i < items.count else { throw JSONSchemaError.invalidSchema("$ref '\(pointer)' points nowhere", path: path) }
        target = items[i]
      default: throw JSONSchemaError.invalidSchema("$ref '\(pointer)' points nowhere", path: path)
      }
    }
    counter += 1
    let name = "ref-\(counter)"
    refRules[pointer] = name  // before compiling the target, so recursion finds it
    let body = try compileSchema(target, path: String(pointer.dropFirst()))
    try builder.define(name, body)
    return Self.ref(name)
  }

  private func integerKeyword(_ schema: JSONValue, _ key: String, path: String) throws -> Int? {
    guard let v = schema[key] else { return nil }
    guard case .number(let s) = v, let i = Int(s), i >= 0 else {
      throw JSONSchemaError.invalidSchema("\(key) must be a non-negative integer", path: path)
    }
    return i
  }

  // MARK: Objects and arrays

  private mutating func object(_ schema: JSONValue, path: String) throws -> GrammarExpression {
    var properties: [(String, JSONValue)] = []
    if let p = schema["properties"] {
      guard case .object(let members) = p else { throw JSONSchemaError.invalidSchema("properties must be an object", path: path) }
      properties = members
    }
    var required: [String] = []
    if let r = schema["required"] {
      guard case .array(let names) = r else { throw JSONSchemaError.invalidSchema("required must be an array", path: path) }
      for n in names {
        guard case .string(let s) = n else { throw JSONSchemaError.invalidSchema("required must list strings", path: path) }
        required.append(s)
      }
    }
    // Required names without a declared schema take any value.
    for name in required where !properties.contains(where: { $0.0 == name }) { properties.append((name, .bool(true))) }
    if properties.isEmpty {
      // Free-form object: any keys, values from additionalProperties (any JSON when absent or true).
      switch schema["additionalProperties"] {
      case nil, .bool(true)?: return Self.ref("object")
      case .bool(false)?: return .text("{}")
      case let value?:
        let valueRule = try fresh("additional", try compileSchema(value, path: path + "/additionalProperties"))
        let member = GrammarExpression.sequence([Self.ref("string"), Self.ws, .text(":"), Self.ws, valueRule, Self.ws])
        return .sequence([.text("{"), Self.ws, .repeated(.sequence([member, .repeated(.sequence([.text(","), Self.ws, member]), min: 0, max: nil)]), min: 0, max: 1), .text("}")])
      }
    }
    var members: [(GrammarExpression, Bool)] = []
    for (name, propertySchema) in properties {
      let escapedPath = path + "/properties/" + name.replacingOccurrences("~", "~0").replacingOccurrences("/", "~1")
      let value = try compileSchema(propertySchema, path: escapedPath)
      let member = try fresh("property", .sequence([.text(JSONValue.quote(name)), Self.ws, .text(":"), Self.ws, value, Self.ws]))
      members.append((member, required.contains(name)))
    }
    // after(i): members i... each preceded by a comma; first(i): the same when none came yet.
    var after: [GrammarExpression] = [.empty]
    for (member, isRequired) in members.reversed() {
      let withComma = GrammarExpression.sequence([.text(","), Self.ws, member])
      after.insert(try fresh("after", .sequence([isRequired ? withComma : .repeated(withComma, min: 0, max: 1), after[0]])), at: 0)
    }
    var first: GrammarExpression = .empty
    for (i, (member, isRequired)) in members.enumerated().reversed() {
      let present = GrammarExpression.sequence([member, after[i + 1]])
      first = try fresh("first", isRequired ? present : .choice([present, first]))
    }
    return .sequence([.text("{"), Self.ws, first, .text("}")])
  }

  private mutating func array(_ schema: JSONValue, path: String) throws -> GrammarExpression {
    let minItems = try integerKeyword(schema, "minItems", path: path) ?? 0
    let maxItems = try integerKeyword(schema, "maxItems", path: path)
    if let maxItems, maxItems < minItems { throw JSONSchemaError.invalidSchema("maxItems is below minItems", path: path) }
    let itemValue: GrammarExpression
    switch schema["items"] {
    case nil: itemValue = Self.ref("value")
    case .bool(false)?:
      guard minItems == 0 else { throw JSONSchemaError.invalidSchema("items: false with minItems > 0", path: path) }
      return .text("[]")
    case let items?: itemValue = try compileSchema(items, path: path + "/items")
    }
    let item = try fresh("item", .sequence([itemValue, Self.ws]))
    if maxItems == 0 { return .sequence([.text("["), Self.ws, .text("]")]) }
    let rest = GrammarExpression.repeated(
      .sequence([.text(","), Self.ws, item]), min: max(minItems - 1, 0), max: maxItems.map { $0 - 1 })
    let list = GrammarExpression.sequence([item, rest])
    return .sequence([.text("["), Self.ws, minItems == 0 ? .repeated(list, min: 0, max: 1) : list, .text("]")])
  }

  // MARK: Strings

  private mutating func string(_ schema: JSONValue, path: String) throws -> GrammarExpression {
    let minLength = try integerKeyword(schema, "minLength", path: path)
    let maxLength = try integerKeyword(schema, "maxLength", path: path)
    if let format = schema["format"] {
      guard case .string(let name) = format, let body = Self.format(name) else {
        throw JSONSchemaError.unsupported(keyword: "format: \(format.serialized)", path: path)
      }
      if minLength != nil || maxLength != nil {
        throw JSONSchemaError.unsupported(keyword: "minLength/maxLength with format", path: path)
      }
      return .sequence([.text("\""), body, .text("\"")])
    }
    guard minLength != nil || maxLength != nil else { return Self.ref("string") }
    if let minLength, let maxLength, maxLength < minLength {
      throw JSONSchemaError.invalidSchema("maxLength is below minLength", path: path)
    }
    return .sequence([.text("\""), .repeated(Self.ref("char"), min: minLength ?? 0, max: maxLength), .text("\"")])
  }

  private static func chars(_ s: String) -> GrammarExpression {
    .characters(s.unicodeScalars.map { $0.value...$0.value }, negated: false)
  }

  static func format(_ name: String) -> GrammarExpression? {
    let digit = GrammarExpression.characters([0x30...0x39], negated: false)
    let hex = GrammarExpression.characters([0x30...0x39, 0x61...0x66, 0x41...0x46], negated: false)
    func digits(_ n: Int) -> GrammarExpression { .repeated(digit, min: n, max: n) }
    func hexes(_ n: Int) -> GrammarExpression { .repeated(hex, min: n, max: n) }
    let month31 = GrammarExpression.choice(["01", "03", "05", "07", "08", "10", "12"].map { .text($0) })
    let month30 = GrammarExpression.choice(["04", "06", "09", "11"].map { .text($0) })
    let day28 = GrammarExpression.choice([.sequence([.text("0"), .characters([0x31...0x39], negated: false)]), .sequence([.characters([0x31...0x31], negated: false), digit]), .sequence([.text("2"), .characters([0x30...0x38], negated: false)])])
    let day30 = GrammarExpression.choice([day28, .text("29"), .text("30")])
    let day31 = GrammarExpression.choice([day30, .text("31")])
    let date = GrammarExpression.sequence([
      .characters([0x31...0x39], negated: false), digits(3), .text("-"),  // years 1000-9999 (validators refuse 0000)
      .choice([.sequence([month31, .text("-"), day31]), .sequence([month30, .text("-"), day30]), .sequence([.text("02-"), day28])]),
    ])
    let hour = GrammarExpression.choice([.sequence([chars("01"), digit]), .sequence([.text("2"), chars("0123")])])
    let minute = GrammarExpression.sequence([chars("012345"), digit])
    let offset = GrammarExpression.choice([chars("Zz"), .sequence([chars("+-"), hour, .text(":"), minute])])
    let time = GrammarExpression.sequence([
      hour, .text(":"), minute, .text(":"), minute, .repeated(.sequence([.text("."), .repeated(digit, min: 1, max: 6)]), min: 0, max: 1), offset,
    ])
    let label = GrammarExpression.sequence([
      .characters([0x30...0x39, 0x41...0x5A, 0x61...0x7A], negated: false),
      .repeated(.sequence([.repeated(.characters([0x2D...0x2D, 0x30...0x39, 0x41...0x5A, 0x61...0x7A], negated: false), min: 0, max: 61), .characters([0x30...0x39, 0x41...0x5A, 0x61...0x7A], negated: false)]), min: 0, max: 1),
    ])
    switch name {
    case "date": return date
    case "time": return time
    case "date-time": return .sequence([date, chars("Tt"), time])
    case "uuid": return .sequence([hexes(8), .text("-"), hexes(4), .text("-"), hexes(4), .text("-"), hexes(4), .text("-"), hexes(12)])
    case "email":
      let local = GrammarExpression.characters([0x30...0x39, 0x41...0x5A, 0x61...0x7A, 0x5F...0x5F, 0x25...0x25, 0x2B...0x2B, 0x2D...0x2D], negated: false)
      return .sequence([
        local, .repeated(.choice([local, .text(".")]), min: 0, max: 63), .text("@"), label,
        .repeated(.sequence([.text("."), label]), min: 1, max: 4),
      ])
    case "hostname": return .sequence([label, .repeated(.sequence([.text("."), label]), min: 0, max: 4)])
    case "ipv4":
      let octet = GrammarExpression.choice([
        digit, .sequence([.characters([0x31...0x39], negated: false), digit]), .sequence([.text("1"), digit, digit]),
        .sequence([.text("2"), chars("01234"), digit]), .sequence([.text("25"), chars("012345")]),
      ])
      return .sequence([octet, .text("."), octet, .text("."), octet, .text("."), octet])
    default: return nil
    }
  }

  // MARK: Numbers

  private func bound(_ schema: JSONValue, _ key: String, path: String) throws -> Double? {
    guard let v = schema[key] else { return nil }
    if case .bool = v { return nil }  // draft-4 exclusive flags, read by the caller
    guard let d = v.numberValue, d.isFinite else { throw JSONSchemaError.invalidSchema("\(key) must be a number", path: path) }
    return d
  }

  /// Integer bounds [low, high] (nil = unbounded) from minimum/maximum and their exclusive forms.
  private func integerBounds(_ schema: JSONValue, path: String) throws -> (Int?, Int?) {
    var low: Double? = nil
    var high: Double? = nil
    let draft4Low = schema["exclusiveMinimum"] == .bool(true)
    let draft4High = schema["exclusiveMaximum"] == .bool(true)
    if let m = try bound(schema, "minimum", path: path) { low = draft4Low ? m.rounded(.down) + 1 : m.rounded(.up) }
    if let m = try bound(schema, "maximum", path: path) { high = draft4High ? m.rounded(.up) - 1 : m.rounded(.down) }
    if let e = try bound(schema, "exclusiveMinimum", path: path) { low = max(low ?? -.infinity, e.rounded(.down) + 1) }
    if let e = try bound(schema, "exclusiveMaximum", path: path) { high = min(high ?? .infinity, e.rounded(.up) - 1) }
    let limit = 1e15
    if let l = low, abs(l) > limit { throw JSONSchemaError.unsupported(keyword: "minimum beyond ±1e15", path: path) }
    if let h = high, abs(h) > limit { throw JSONSchemaError.unsupported(keyword: "maximum beyond ±1e15", path: path) }
    if let l = low, let h = high, l > h { throw JSONSchemaError.invalidSchema("the bounds leave no integer", path: path) }
    return (low.map { Int($0) }, high.map { Int($0) })
  }

  private func integer(_ schema: JSONValue, path: String) throws -> GrammarExpression {
    let (low, high) = try integerBounds(schema, path: path)
    if low == nil && high == nil { return Self.ref("integer") }
    return IntegerRange.expression(low: low, high: high)
  }

  /// Number bounds as integers, each with whether the bound itself is excluded. Non-integer
  /// bounds are tightened to the nearest integer inside (then inclusive).
  private func numberBounds(_ schema: JSONValue, path: String) throws -> (low: Int?, lowStrict: Bool, high: Int?, highStrict: Bool) {
    var low: (Double, Bool)? = nil
    var high: (Double, Bool)? = nil
    func tighten(_ current: (Double, Bool)?, _ value: Double, strict: Bool, up: Bool) -> (Double, Bool) {
      let rounded = up ? value.rounded(.up) : value.rounded(.down)
      let candidate = (rounded, rounded == value && strict)
      guard let current else { return candidate }
      if up { return candidate.0 > current.0 || (candidate.0 == current.0 && candidate.1) ? candidate : current }
      return candidate.0 < current.0 || (candidate.0 == current.0 && candidate.1) ? candidate : current
    }
    let draft4Low = schema["exclusiveMinimum"] == .bool(true)
    let draft4High = schema["exclusiveMaximum"] == .bool(true)
    if let m = try bound(schema, "minimum", path: path) { low = tighten(low, m, strict: draft4Low, up: true) }
    if let m = try bound(schema, "maximum", path: path) { high = tighten(high, m, strict: draft4High, up: false) }
    if let e = try bound(schema, "exclusiveMinimum", path: path) { low = tighten(low, e, strict: true, up: true) }
    if let e = try bound(schema, "exclusiveMaximum", path: path) { high = tighten(high, e, strict: true, up: false) }
    for (b, key) in [(low, "minimum"), (high, "maximum")] {
      if let b, abs(b.0) > 1e15 { throw JSONSchemaError.unsupported(keyword: "\(key) beyond ±1e15", path: path) }
    }
    if let l = low, let h = high, l.0 > h.0 || (l.0 == h.0 && (l.1 || h.1)) {
      throw JSONSchemaError.invalidSchema("the bounds leave no number", path: path)
    }
    return (low.map { Int($0.0) }, low?.1 ?? false, high.map { Int($0.0) }, high?.1 ?? false)
  }

  private func number(_ schema: JSONValue, path: String) throws -> GrammarExpression {
    let keys = ["minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"]
    guard keys.contains(where: { schema[$0] != nil }) else { return Self.ref("number") }
    let (low, lowStrict, high, highStrict) = try numberBounds(schema, path: path)
    let fraction = Self.ref("fraction")
    let optionalFraction = GrammarExpression.repeated(fraction, min: 0, max: 1)
    // A fraction that is not zero (so n.f is strictly above n).
    let nonZeroFraction = GrammarExpression.sequence([.text("."), .repeated(IntegerRange.digit, min: 0, max: 14), .characters([0x31...0x39], negated: false)])
    var options: [GrammarExpression] = []
    // Nonnegative values n.f: n + 1 <= high (so any fraction stays below), n >= low.
    let nLow = max(low ?? 0, 0)
    let nHigh = high.map { $0 - 1 }
    if lowStrict, let low, low >= 0 {
      // n == low needs a nonzero fraction; n > low takes any.
      if nHigh.map({ $0 >= low }) ?? true { options.append(.sequence([.literal(Array(String(low).utf8)), nonZeroFraction])) }
      if nHigh.map({ $0 >= low + 1 }) ?? true { options.append(.sequence([IntegerRange.expression(low: low + 1, high: nHigh), optionalFraction])) }
    } else if nHigh.map({ $0 >= nLow }) ?? true {
      options.append(.sequence([IntegerRange.expression(low: nLow, high: nHigh), optionalFraction]))
    }
    // The top bound itself, when allowed and nonnegative (the loop above stops below it).
    if let high, high >= 0, !highStrict, high >= (low ?? Int.min), !(lowStrict && high == low) {
      options.append(.literal(Array(String(high).utf8)))
    }
    // Negative values -(m.f): m + f <= -low means m <= -low - 1 (also right for a strict low);
    // m + f >= -high means m >= -high, and m == -high needs a nonzero fraction when high is strict.
    let mHigh = low.map { -$0 - 1 }
    var mLow = max(-(high ?? 0), 0)
    if mLow == 0 || (highStrict && (high ?? 0) < 0) {
      // m == mLow only with a nonzero fraction ("-0.x", or just below a strict bound).
      if mHigh.map({ $0 >= mLow }) ?? true { options.append(.sequence([.literal(Array("-\(mLow)".utf8)), nonZeroFraction])) }
      mLow += 1
    }
    if mHigh.map({ $0 >= mLow }) ?? true {
      options.append(.sequence([.text("-"), IntegerRange.expression(low: mLow, high: mHigh), optionalFraction]))
    }
    guard !options.isEmpty else { throw JSONSchemaError.invalidSchema("the bounds leave no number", path: path) }
    return options.count == 1 ? options[0] : .choice(options)
  }
}

/// Decimal integers in a range as grammar (no leading zeros, no "-0").
enum IntegerRange {
  static func expression(low: Int?, high: Int?) -> GrammarExpression {
    var options: [GrammarExpression] = []
    // Nonnegative part.
    if high.map({ $0 >= 0 }) ?? true {
      options.append(nonNegative(max(low ?? 0, 0), high))
    }
    // Negative part as "-" and a magnitude in [max(1, -high), -low].
    if low.map({ $0 < 0 }) ?? true {
      let magnitudeLow = max(1, -(min(high ?? -1, -1)))
      options.append(.sequence([.text("-"), nonNegative(magnitudeLow, low.map { -$0 })]))
    }
    return options.count == 1 ? options[0] : .choice(options)
  }

  static let maxDigits = 16

  /// Integers in [low, high] (high nil = up to `maxDigits` digits), low >= 0.
  static func nonNegative(_ low: Int, _ high: Int?) -> GrammarExpression {
    var options: [GrammarExpression] = []
    let lowDigits = String(low).count
    let highDigits = high.map { String($0).count } ?? maxDigits
    for n in lowDigits...max(lowDigits, highDigits) {
      let start = n == lowDigits ? low : power(n - 1)
      let end = n == highDigits ? (high ?? power(n) - 1) : power(n) - 1
      guard start <= end else { continue }
      if high == nil && n > lowDigits {
        // Every number with n.. digits: [1-9][0-9]{n-1, maxDigits-1}.
        options.append(.sequence([.characters([0x31...0x39], negated: false), .repeated(digit, min: n - 1, max: maxDigits - 1)]))
        break
      }
      options.append(sameLength(Array(String(start).utf8), Array(String(end).utf8)))
    }
    return options.count == 1 ? options[0] : .choice(options)
  }

  static let digit = GrammarExpression.characters([0x30...0x39], negated: false)

  static func power(_ n: Int) -> Int {
    var p = 1
    for _ in 0..<n { p *= 10 }
    return p
  }

  static func range(_ a: UInt8, _ b: UInt8) -> GrammarExpression {
    .characters([UInt32(a)...UInt32(b)], negated: false)
  }

  /// Digit strings of equal length between lo and hi (inclusive), leading zeros allowed inside.
  static func sameLength(_ lo: [UInt8], _ hi: [UInt8]) -> GrammarExpression {
    if lo.isEmpty { return .empty }
    if lo == hi { return .literal(lo) }
    if lo[0] == hi[0] { return .sequence([.literal([lo[0]]), sameLength(Array(lo.dropFirst()), Array(hi.dropFirst()))]) }
    let rest = lo.count - 1
    let allZero = lo.dropFirst().allSatisfy { $0 == 0x30 }
    let allNine = hi.dropFirst().allSatisfy { $0 == 0x39 }
    var options: [GrammarExpression] = []
    var firstFull = lo[0] + 1
    var lastFull = hi[0] - 1
    if allZero { firstFull = lo[0] } else {
      options.append(.sequence([.literal([lo[0]]), sameLength(Array(lo.dropFirst()), [UInt8](repeating: 0x39, count: rest))]))
    }
    if allNine { lastFull = hi[0] }
    if firstFull <= lastFull {
      options.append(.sequence([range(firstFull, lastFull), .repeated(digit, min: rest, max: rest)]))
    }
    if !allNine {
      options.append(.sequence([.literal([hi[0]]), sameLength([UInt8](repeating: 0x30, count: rest), Array(hi.dropFirst()))]))
    }
    return options.count == 1 ? options[0] : .choice(options)
  }
}

extension String {
  fileprivate func replacingOccurrences(_ target: String, _ replacement: String) -> String {
    split(separator: target, omittingEmptySubsequences: false).joined(separator: replacement)
  }

  /// %XX decoding for JSON pointers in URI fragments (ASCII only; nil when malformed).
  fileprivate var removingPercentEncodingLite: String? {
    guard contains("%") else { return self }
    var out: [UInt8] = []
    var bytes = Array(utf8)[...]
    while let b = bytes.popFirst() {
      guard b == UInt8(ascii: "%") else {
        out.append(b)
        continue
      }
      guard bytes.count >= 2, let v = UInt8(String(decoding: bytes.prefix(2), as: UTF8.self), radix: 16) else { return nil }
      out.append(v)
      bytes = bytes.dropFirst(2)
    }
    return String(decoding: out, as: UTF8.self)
  }
}
