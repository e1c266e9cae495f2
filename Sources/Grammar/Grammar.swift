// A compiled grammar: rules of alternatives of element sequences over bytes. Everything is
// byte-level (character classes are lowered to UTF-8 byte sequences by `GrammarBuilder`), so
// the matcher never decodes UTF-8 and tokens that end inside a character are handled for free.
// This file owns the representation and its checks; parsing GBNF and compiling JSON Schema
// live elsewhere and both produce a `Grammar` through `GrammarBuilder`.

/// A set of byte values (256 bits).
public struct ByteSet: Hashable, Sendable {
  private var words: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)

  public init() {}
  public init(_ byte: UInt8) { insert(byte...byte) }
  public init(_ range: ClosedRange<UInt8>) { insert(range) }

  public func contains(_ byte: UInt8) -> Bool {
    let bit = UInt64(1) << UInt64(byte & 63)
    switch byte >> 6 {
    case 0: return words.0 & bit != 0
    case 1: return words.1 & bit != 0
    case 2: return words.2 & bit != 0
    default: return words.3 & bit != 0
    }
  }

  public mutating func insert(_ range: ClosedRange<UInt8>) {
    for b in range {
      let bit = UInt64(1) << UInt64(b & 63)
      switch b >> 6 {
      case 0: words.0 |= bit
      case 1: words.1 |= bit
      case 2: words.2 |= bit
      default: words.3 |= bit
      }
    }
  }

  public var isEmpty: Bool { words == (0, 0, 0, 0) }

  public static func == (a: ByteSet, b: ByteSet) -> Bool { a.words == b.words }
  public func hash(into hasher: inout Hasher) {
    hasher.combine(words.0)
    hasher.combine(words.1)
    hasher.combine(words.2)
    hasher.combine(words.3)
  }
}

/// One element of an alternative in the flat element array.
enum GrammarElement: Hashable, Sendable {
  /// Matches one byte in `byteSets[index]`.
  case bytes(Int32)
  /// Matches any alternative of rule `index`.
  case rule(Int32)
  /// Ends an alternative.
  case end
}

public struct Grammar: Sendable, CustomStringConvertible {
  /// Rule names, indexed by rule id (synthesised rules get names like `value-3`).
  public let ruleNames: [String]
  public let root: Int
  /// Every alternative of every rule, each terminated by `.end`.
  let elements: [GrammarElement]
  /// Per rule, the index in `elements` where each alternative starts.
  let alternatives: [[Int32]]
  let byteSets: [ByteSet]

  init(ruleNames: [String], root: Int, elements: [GrammarElement], alternatives: [[Int32]], byteSets: [ByteSet]) {
    self.ruleNames = ruleNames
    self.root = root
    self.elements = elements
    self.alternatives = alternatives
    self.byteSets = byteSets
  }

  /// Parses GBNF (llama.cpp's grammar format); the start rule is `root`.
  public init(gbnf text: String, root: String = "root") throws(GrammarError) {
    var parser = GBNFParser(text: text)
    self = try parser.parse(root: root)
  }

  /// The rules as GBNF-like text over bytes (for debugging; not meant to be parsed back).
  public var description: String {
    var lines: [String] = []
    for (r, starts) in alternatives.enumerated() {
      let alts = starts.map { start -> String in
        var parts: [String] = []
        var i = Int(start)
        while true {
          switch elements[i] {
          case .end: return parts.isEmpty ? "\"\"" : parts.joined(separator: " ")
          case .rule(let id): parts.append(ruleNames[Int(id)])
          case .bytes(let set): parts.append(Self.describe(byteSets[Int(set)]))
          }
          i += 1
        }
      }
      lines.append("\(ruleNames[r]) ::= \(alts.joined(separator: " | "))")
    }
    return lines.joined(separator: "\n")
  }

  private static func hex(_ b: Int) -> String {
    let digits = Array("0123456789ABCDEF")
    return String([digits[b >> 4], digits[b & 15]])
  }

  private static func describe(_ set: ByteSet) -> String {
    var ranges: [String] = []
    var b = 0
    while b < 256 {
      guard set.contains(UInt8(b)) else { b += 1; continue }
      var e = b
      while e + 1 < 256 && set.contains(UInt8(e + 1)) { e += 1 }
      ranges.append(e == b ? hex(b) : hex(b) + "-" + hex(e))
      b = e + 1
    }
    return "[" + ranges.joined(separator: " ") + "]"
  }
}

public enum GrammarError: Error, Equatable, Sendable, CustomStringConvertible {
  /// GBNF syntax error at a 1-based line and column.
  case syntax(line: Int, column: Int, message: String)
  case undefinedRule(String, line: Int, column: Int)
  case missingRoot(String)
  case leftRecursion(String)
  /// The grammar would be too large to match (e.g. huge repetition counts).
  case tooLarge(String)

  public var description: String {
    switch self {
    case .syntax(let line, let column, let message): return "grammar line \(line), column \(column): \(message)"
    case .undefinedRule(let name, let line, let column):
      return "grammar line \(line), column \(column): rule '\(name)' is not defined"
    case .missingRoot(let name): return "grammar has no rule '\(name)' to start from"
    case .leftRecursion(let name): return "rule '\(name)' is left-recursive, which the matcher cannot follow"
    case .tooLarge(let what): return "grammar too large: \(what)"
    }
  }
}
