// A JSON document with object members in their written order (JSON Schema property order
// decides the order of generated properties, and Foundation's JSONSerialization loses it).
// Parsing is strict RFC 8259 with a depth limit; the input may be hostile.

public enum JSONValue: Sendable, Equatable {
  case null
  case bool(Bool)
  /// The number as written (kept exact for bounds and for `enum`/`const` output).
  case number(String)
  case string(String)
  case array([JSONValue])
  case object([(String, JSONValue)])

  public static func == (a: JSONValue, b: JSONValue) -> Bool {
    switch (a, b) {
    case (.null, .null): return true
    case (.bool(let x), .bool(let y)): return x == y
    case (.number(let x), .number(let y)): return x == y
    case (.string(let x), .string(let y)): return x == y
    case (.array(let x), .array(let y)): return x == y
    case (.object(let x), .object(let y)): return x.count == y.count && zip(x, y).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
    default: return false
    }
  }

  public subscript(key: String) -> JSONValue? {
    guard case .object(let members) = self else { return nil }
    return members.first { $0.0 == key }?.1
  }

  public var numberValue: Double? {
    if case .number(let s) = self { return Double(s) }
    return nil
  }

  /// Compact serialization (no spaces), strings escaped minimally.
  public var serialized: String {
    switch self {
    case .null: return "null"
    case .bool(let b): return b ? "true" : "false"
    case .number(let s): return s
    case .string(let s): return Self.quote(s)
    case .array(let items): return "[" + items.map(\.serialized).joined(separator: ",") + "]"
    case .object(let members): return "{" + members.map { Self.quote($0.0) + ":" + $0.1.serialized }.joined(separator: ",") + "}"
    }
  }

  static func quote(_ s: String) -> String {
    var out = "\""
    for scalar in s.unicodeScalars {
      switch scalar {
      case "\"": out += "\\\""
      case "\\": out += "\\\\"
      case "\n": out += "\\n"
      case "\r": out += "\\r"
      case "\t": out += "\\t"
      case _ where scalar.value < 0x20:
        let digits = Array("0123456789abcdef")
        out += "\\u00" + String([digits[Int(scalar.value >> 4)], digits[Int(scalar.value & 15)]])
      default: out.unicodeScalars.append(scalar)
      }
    }
    return out + "\""
  }

  /// Parses one JSON document (surrounding whitespace allowed).
  public init(parsing text: String) throws(JSONSchemaError) {
    var parser = JSONParser(bytes: Array(text.utf8))
    self = try parser.document()
  }
}

private struct JSONParser {
  let bytes: [UInt8]
  var pos = 0
  static let depthLimit = 128

  init(bytes: [UInt8]) { self.bytes = bytes }

  func fail(_ message: String) -> JSONSchemaError { .invalidJSON("\(message) at byte \(pos)") }

  mutating func document() throws(JSONSchemaError) -> JSONValue {
    let v = try value(depth: 0)
    skipSpace()
    guard pos == bytes.count else { throw fail("unexpected text after the document") }
    return v
  }

  mutating func skipSpace() {
    while pos < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[pos]) { pos += 1 }
  }

  mutating func literal(_ word: String) -> Bool {
    let w = Array(word.utf8)
    guard pos + w.count <= bytes.count, Array(bytes[pos..<pos + w.count]) == w else { return false }
    pos += w.count
    return true
  }

  mutating func value(depth: Int) throws(JSONSchemaError) -> JSONValue {
    guard depth < Self.depthLimit else { throw fail("nesting deeper than \(Self.depthLimit)") }
    skipSpace()
    guard pos < bytes.count else { throw fail("unexpected end") }
    switch bytes[pos] {
    case UInt8(ascii: "{"):
      pos += 1
      var members: [(String, JSONValue)] = []
      skipSpace()
      if pos < bytes.count && bytes[pos] == UInt8(ascii: "}") {
        pos += 1
        return .object(members)
      }
      while true {
        skipSpace()
        guard pos < bytes.count, bytes[pos] == UInt8(ascii: "\"") else { throw fail("expected a key") }
        let key = try string()
        skipSpace()
        guard pos < bytes.count, bytes[pos] == UInt8(ascii: ":") else { throw fail("expected ':'") }
        pos += 1
        members.append((key, try value(depth: depth + 1)))
        skipSpace()
        guard pos < bytes.count else { throw fail("unexpected end") }
        if bytes[pos] == UInt8(ascii: ",") {
          pos += 1
        } else if bytes[pos] == UInt8(ascii: "}") {
          pos += 1
          return .object(members)
        } else {
          throw fail("expected ',' or '}'")
        }
      }
    case UInt8(ascii: "["):
      pos += 1
      var items: [JSONValue] = []
      skipSpace()
      if pos < bytes.count && bytes[pos] == UInt8(ascii: "]") {
        pos += 1
        return .array(items)
      }
      while true {
        items.append(try value(depth: depth + 1))
        skipSpace()
        guard pos < bytes.count else { throw fail("unexpected end") }
        if bytes[pos] == UInt8(ascii: ",") {
          pos += 1
        } else if bytes[pos] == UInt8(ascii: "]") {
          pos += 1
          return .array(items)
        } else {
          throw fail("expected ',' or ']'")
        }
      }
    case UInt8(ascii: "\""): return .string(try string())
    case UInt8(ascii: "t"): if literal("true") { return .bool(true) }
    case UInt8(ascii: "f"): if literal("false") { return .bool(false) }
    case UInt8(ascii: "n"): if literal("null") { return .null }
    default: return .number(try number())
    }
    throw fail("unexpected text")
  }

  mutating func number() throws(JSONSchemaError) -> String {
    let start = pos
    func digits() -> Int {
      let s = pos
      while pos < bytes.count, bytes[pos] >= 0x30, bytes[pos] <= 0x39 { pos += 1 }
      return pos - s
    }
    if pos < bytes.count && bytes[pos] == UInt8(ascii: "-") { pos += 1 }
    let intStart = pos
    let n = digits()
    guard n > 0, !(n > 1 && bytes[intStart] == 0x30) else { throw fail("invalid number") }
    if pos < bytes.count && bytes[pos] == UInt8(ascii: ".") {
      pos += 1
      guard digits() > 0 else { throw fail("invalid number") }
    }
    if pos < bytes.count && (bytes[pos] == UInt8(ascii: "e") || bytes[pos] == UInt8(ascii: "E")) {
      pos += 1
      if pos < bytes.count && (bytes[pos] == UInt8(ascii: "+") || bytes[pos] == UInt8(ascii: "-")) { pos += 1 }
      guard digits() > 0 else { throw fail("invalid number") }
    }
    return String(decoding: bytes[start..<pos], as: UTF8.self)
  }

  mutating func string() throws(JSONSchemaError) -> String {
    pos += 1  // opening quote
    var scalars = String.UnicodeScalarView()
    var raw: [UInt8] = []
    func flush() {
      scalars.append(contentsOf: String(decoding: raw, as: UTF8.self).unicodeScalars)
      raw.removeAll()
    }
    while true {
      guard pos < bytes.count else { throw fail("unterminated string") }
      let b = bytes[pos]
      pos += 1
      if b == UInt8(ascii: "\"") { break }
      guard b >= 0x20 else { throw fail("control character in string") }
      guard b == UInt8(ascii: "\\") else {
        raw.append(b)
        continue
      }
      guard pos < bytes.count else { throw fail("unterminated escape") }
      let e = bytes[pos]
      pos += 1
      switch e {
      case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): raw.append(e)
      case UInt8(ascii: "b"): raw.append(0x08)
      case UInt8(ascii: "f"): raw.append(0x0C)
      case UInt8(ascii: "n"): raw.append(0x0A)
      case UInt8(ascii: "r"): raw.append(0x0D)
      case UInt8(ascii: "t"): raw.append(0x09)
      case UInt8(ascii: "u"):
        var code = try hex4()
        if (0xD800..<0xDC00).contains(code), pos + 1 < bytes.count, bytes[pos] == UInt8(ascii: "\\"),
          bytes[pos + 1] == UInt8(ascii: "u")
        {
          pos += 2
          let low = try hex4()
          guard (0xDC00..<0xE000).contains(low) else { throw fail("invalid surrogate pair") }
          code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
        }
        guard let scalar = Unicode.Scalar(code) else { throw fail("invalid \\u escape") }
        flush()
        scalars.append(scalar)
      default: throw fail("invalid escape")
      }
    }
    flush()
    return String(scalars)
  }

  mutating func hex4() throws(JSONSchemaError) -> UInt32 {
    guard pos + 4 <= bytes.count else { throw fail("invalid \\u escape") }
    var v: UInt32 = 0
    for _ in 0..<4 {
      let c = bytes[pos]
      let d: UInt32
      switch c {
      case 0x30...0x39: d = UInt32(c - 0x30)
      case 0x61...0x66: d = UInt32(c - 0x61 + 10)
      case 0x41...0x46: d = UInt32(c - 0x41 + 10)
      default: throw fail("invalid \\u escape")
      }
      v = v << 4 | d
      pos += 1
    }
    return v
  }
}

/// The same type under a name that cannot clash with other modules' `JSONValue` (the module
/// and its `Grammar` type share a name, so `Grammar.JSONValue` does not resolve outside).
public typealias OrderedJSON = JSONValue
