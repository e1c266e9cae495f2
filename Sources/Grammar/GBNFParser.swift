// GBNF, llama.cpp's grammar format: `name ::= alternatives` rules; sequences of "literals",
// [character classes] (ranges, ^ negation, escapes), rule names, (groups), `.`, and the
// postfix operators ? * + {m} {m,} {m,n}; `#` comments. A rule ends at a newline outside
// parentheses (after `::=` or `|` a new line may follow). Errors carry line and column.

struct GBNFParser {
  private let bytes: [UInt8]
  private var pos = 0
  private var builder = GrammarBuilder()

  init(text: String) { bytes = Array(text.utf8) }

  mutating func parse(root: String) throws(GrammarError) -> Grammar {
    skipSpace(newlines: true)
    while pos < bytes.count {
      let (line, column) = location(pos)
      let name = try parseName()
      skipSpace(newlines: false)
      guard match("::=") else { throw error("expected '::=' after rule name '\(name)'") }
      skipSpace(newlines: true)
      let body = try parseAlternatives(nested: false)
      if builder.isDefined(name) {
        throw .syntax(line: line, column: column, message: "rule '\(name)' is defined twice")
      }
      try builder.define(name, body)
      skipSpace(newlines: false)
      if pos < bytes.count {
        guard bytes[pos] == 0x0A || bytes[pos] == 0x0D else { throw error("expected end of line after rule '\(name)'") }
      }
      skipSpace(newlines: true)
    }
    return try builder.build(root: root)
  }

  // MARK: - Lexing helpers

  private func location(_ offset: Int) -> (Int, Int) {
    var line = 1
    var column = 1
    for b in bytes[..<min(offset, bytes.count)] {
      if b == 0x0A {
        line += 1
        column = 1
      } else if b & 0xC0 != 0x80 {
        column += 1
      }
    }
    return (line, column)
  }

  private func error(_ message: String, at offset: Int? = nil) -> GrammarError {
    let (line, column) = location(offset ?? pos)
    return .syntax(line: line, column: column, message: message)
  }

  private mutating func skipSpace(newlines: Bool) {
    while pos < bytes.count {
      let b = bytes[pos]
      if b == 0x20 || b == 0x09 || (newlines && (b == 0x0A || b == 0x0D)) {
        pos += 1
      } else if b == UInt8(ascii: "#") {
        while pos < bytes.count && bytes[pos] != 0x0A && bytes[pos] != 0x0D { pos += 1 }
      } else {
        return
      }
    }
  }

  private mutating func match(_ s: String) -> Bool {
    let u = Array(s.utf8)
    guard pos + u.count <= bytes.count, Array(bytes[pos..<pos + u.count]) == u else { return false }
    pos += u.count
    return true
  }

  private static func isNameByte(_ b: UInt8) -> Bool {
    (b >= 0x61 && b <= 0x7A) || (b >= 0x41 && b <= 0x5A) || (b >= 0x30 && b <= 0x39) || b == 0x2D || b == 0x5F
  }

  private mutating func parseName() throws(GrammarError) -> String {
    let start = pos
    while pos < bytes.count && Self.isNameByte(bytes[pos]) { pos += 1 }
    guard pos > start else { throw error("expected a rule name") }
    return String(decoding: bytes[start..<pos], as: UTF8.self)
  }

  private mutating func parseInt() throws(GrammarError) -> Int {
    let start = pos
    var value = 0
    while pos < bytes.count, bytes[pos] >= 0x30, bytes[pos] <= 0x39 {
      value = value * 10 + Int(bytes[pos] - 0x30)
      if value > 1_000_000 { throw error("repetition count too large", at: start) }
      pos += 1
    }
    guard pos > start else { throw error("expected a number") }
    return value
  }

  // MARK: - Expressions

  private mutating func parseAlternatives(nested: Bool) throws(GrammarError) -> GrammarExpression {
    var options = [try parseSequence(nested: nested)]
    while pos < bytes.count && bytes[pos] == UInt8(ascii: "|") {
      pos += 1
      skipSpace(newlines: true)
      options.append(try parseSequence(nested: nested))
    }
    return options.count == 1 ? options[0] : .choice(options)
  }

  private mutating func parseSequence(nested: Bool) throws(GrammarError) -> GrammarExpression {
    var items: [GrammarExpression] = []
    while pos < bytes.count {
      let b = bytes[pos]
      let start = pos
      var item: GrammarExpression
      if b == UInt8(ascii: "\"") {
        pos += 1
        var literal: [UInt8] = []
        while true {
          guard pos < bytes.count, bytes[pos] != 0x0A else { throw error("unterminated string literal", at: start) }
          if bytes[pos] == UInt8(ascii: "\"") {
            pos += 1
            break
          }
          literal += UTF8Ranges.encode(try parseChar())
        }
        item = .literal(literal)
      } else if b == UInt8(ascii: "[") {
        pos += 1
        var negated = false
        if pos < bytes.count && bytes[pos] == UInt8(ascii: "^") {
          negated = true
          pos += 1
        }
        var ranges: [ClosedRange<UInt32>] = []
        while true {
          guard pos < bytes.count, bytes[pos] != 0x0A else { throw error("unterminated character class", at: start) }
          if bytes[pos] == UInt8(ascii: "]") {
            pos += 1
            break
          }
          let lowAt = pos
          let low = try parseChar()
          var high = low
          if pos + 1 < bytes.count && bytes[pos] == UInt8(ascii: "-") && bytes[pos + 1] != UInt8(ascii: "]") {
            pos += 1
            high = try parseChar()
            guard high >= low else { throw error("character range is reversed", at: lowAt) }
          }
          ranges.append(low...high)
        }
        item = .characters(ranges, negated: negated)
      } else if Self.isNameByte(b) {
        let (line, column) = location(pos)
        let name = try parseName()
        skipSpace(newlines: false)
        if match("::=") {
          // The next rule started on a line we thought continued this one.
          throw error("expected end of line before rule '\(name)'", at: start)
        }
        pos = start + name.utf8.count
        item = .reference(name, line: line, column: column)
      } else if b == UInt8(ascii: "(") {
        pos += 1
        skipSpace(newlines: true)
        item = try parseAlternatives(nested: true)
        skipSpace(newlines: true)
        guard pos < bytes.count && bytes[pos] == UInt8(ascii: ")") else { throw error("expected ')' to close the group opened", at: start) }
        pos += 1
      } else if b == UInt8(ascii: ".") {
        pos += 1
        item = .characters([], negated: true)
      } else {
        break
      }
      skipSpace(newlines: nested)
      // Postfix operators.
      while pos < bytes.count {
        let op = bytes[pos]
        if op == UInt8(ascii: "*") {
          item = .repeated(item, min: 0, max: nil)
          pos += 1
        } else if op == UInt8(ascii: "+") {
          item = .repeated(item, min: 1, max: nil)
          pos += 1
        } else if op == UInt8(ascii: "?") {
          item = .repeated(item, min: 0, max: 1)
          pos += 1
        } else if op == UInt8(ascii: "{") {
          let braceAt = pos
          pos += 1
          skipSpace(newlines: false)
          let low = try parseInt()
          skipSpace(newlines: false)
          var high: Int? = low
          if pos < bytes.count && bytes[pos] == UInt8(ascii: ",") {
            pos += 1
            skipSpace(newlines: false)
            high = pos < bytes.count && bytes[pos] == UInt8(ascii: "}") ? nil : try parseInt()
            skipSpace(newlines: false)
          }
          guard pos < bytes.count && bytes[pos] == UInt8(ascii: "}") else { throw error("expected '}' after repetition count") }
          pos += 1
          if let high, high < low { throw error("repetition {\(low),\(high)} has max below min", at: braceAt) }
          item = .repeated(item, min: low, max: high)
        } else {
          break
        }
        skipSpace(newlines: nested)
      }
      items.append(item)
    }
    return items.count == 1 ? items[0] : .sequence(items)
  }

  /// One character of a literal or class: a UTF-8 scalar or an escape.
  private mutating func parseChar() throws(GrammarError) -> UInt32 {
    let start = pos
    let b = bytes[pos]
    if b == UInt8(ascii: "\\") {
      guard pos + 1 < bytes.count else { throw error("unfinished escape") }
      let e = bytes[pos + 1]
      pos += 2
      switch e {
      case UInt8(ascii: "n"): return 0x0A
      case UInt8(ascii: "r"): return 0x0D
      case UInt8(ascii: "t"): return 0x09
      case UInt8(ascii: "\\"), UInt8(ascii: "\""), UInt8(ascii: "["), UInt8(ascii: "]"), UInt8(ascii: "-"),
        UInt8(ascii: "^"), UInt8(ascii: "/"):
        return UInt32(e)
      case UInt8(ascii: "x"): return try parseHex(2, start)
      case UInt8(ascii: "u"): return try parseHex(4, start)
      case UInt8(ascii: "U"): return try parseHex(8, start)
      default: throw error("unknown escape '\\\(String(decoding: [e], as: UTF8.self))'", at: start)
      }
    }
    // Decode one UTF-8 scalar.
    let length = b < 0x80 ? 1 : b >> 5 == 0x6 ? 2 : b >> 4 == 0xE ? 3 : b >> 3 == 0x1E ? 4 : 0
    guard length > 0, pos + length <= bytes.count else { throw error("invalid UTF-8") }
    var scalar = length == 1 ? UInt32(b) : UInt32(b) & (0xFF >> (length + 1))
    for i in 1..<max(length, 1) {
      let c = bytes[pos + i]
      guard c & 0xC0 == 0x80 else { throw error("invalid UTF-8") }
      scalar = scalar << 6 | UInt32(c & 0x3F)
    }
    pos += length
    return scalar
  }

  private mutating func parseHex(_ digits: Int, _ start: Int) throws(GrammarError) -> UInt32 {
    var value: UInt32 = 0
    for _ in 0..<digits {
      guard pos < bytes.count else { throw error("expected \(digits) hex digits", at: start) }
      let c = bytes[pos]
      let d: UInt32
      switch c {
      case 0x30...0x39: d = UInt32(c - 0x30)
      case 0x61...0x66: d = UInt32(c - 0x61 + 10)
      case 0x41...0x46: d = UInt32(c - 0x41 + 10)
      default: throw error("expected \(digits) hex digits", at: start)
      }
      value = value << 4 | d
      pos += 1
    }
    guard value <= UTF8Ranges.maxScalar else { throw error("code point out of range", at: start) }
    return value
  }
}
