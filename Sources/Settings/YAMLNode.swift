// The small YAML tree the config is decoded from: scalars, sequences and mappings, each with the
// line and column where it starts. Deliberately no anchors, aliases, tags or multiple
// documents (the parser refuses them), so a node is exactly what the file spells at that spot.

/// A 1-based line and column in the parsed text.
public struct Mark: Sendable, Equatable, CustomStringConvertible {
  public var line: Int
  public var column: Int
  public init(line: Int, column: Int) {
    self.line = line
    self.column = column
  }
  public var description: String { "\(line):\(column)" }
}

public struct YAMLNode: Sendable, Equatable {
  public enum Value: Sendable, Equatable {
    /// `plain` is false for quoted and block scalars: only plain scalars can be null,
    /// numbers or booleans.
    case scalar(String, plain: Bool)
    case sequence([YAMLNode])
    /// Keys in file order (duplicates are refused when decoding).
    case mapping([(key: YAMLNode, value: YAMLNode)])

    public static func == (a: Value, b: Value) -> Bool {
      switch (a, b) {
      case let (.scalar(x, px), .scalar(y, py)): return x == y && px == py
      case let (.sequence(x), .sequence(y)): return x == y
      case let (.mapping(x), .mapping(y)):
        return x.count == y.count && zip(x, y).allSatisfy { $0.key == $1.key && $0.value == $1.value }
      default: return false
      }
    }
  }

  public var value: Value
  /// Where the node starts; nil for values that did not come from a file (command-line overrides).
  public var mark: Mark?

  public init(_ value: Value, mark: Mark?) {
    self.value = value
    self.mark = mark
  }

  /// A plain `~`, `null` (any case in YAML's spellings) or an empty plain scalar.
  public var isNull: Bool {
    guard case let .scalar(text, plain: true) = value else { return false }
    return ["", "~", "null", "Null", "NULL"].contains(text)
  }

  /// What the node is, for "expected X, found Y" messages.
  public var kindDescription: String {
    if isNull { return "null" }
    switch value {
    case let .scalar(text, _):
      let shown = text.count > 40 ? String(text.prefix(40)) + "…" : text
      return "\"\(shown)\""
    case .sequence: return "a sequence"
    case .mapping: return "a mapping"
    }
  }
}
