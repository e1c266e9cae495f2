// Reading one typed value out of a YAMLNode: integers, finite numbers, strings, enums, octal
// file modes and lists, each check failing with a SettingsError that names the key path and the
// node's mark. Numbers and nulls must be plain scalars (`"42"` in quotes is a string), so
// a value means what it looks like.

enum ScalarDecoding {
  static func wrongType(_ node: YAMLNode, _ path: String, expected: String) -> SettingsError {
    SettingsError(.wrongType(expected: expected, found: node.kindDescription), keyPath: path, mark: node.mark)
  }

  /// The text of a non-null scalar.
  static func text(_ node: YAMLNode, _ path: String, expected: String) throws(SettingsError) -> (String, plain: Bool) {
    guard !node.isNull, case let .scalar(text, plain) = node.value else {
      throw wrongType(node, path, expected: expected)
    }
    return (text, plain)
  }

  static func int(_ node: YAMLNode, _ path: String, _ range: ClosedRange<Int>) throws(SettingsError) -> Int {
    let (text, plain) = try text(node, path, expected: "an integer")
    guard plain, let value = Int(text) else { throw wrongType(node, path, expected: "an integer") }
    guard range.contains(value) else {
      throw SettingsError(
        .outOfRange("\(value) is not in \(range.lowerBound)...\(range.upperBound)"), keyPath: path, mark: node.mark)
    }
    return value
  }

  static func double(_ node: YAMLNode, _ path: String, _ range: ClosedRange<Double>) throws(SettingsError) -> Double {
    let (text, plain) = try text(node, path, expected: "a number")
    // Double("nan") and Double("inf") parse; YAML's .nan/.inf don't. Neither is a usable setting.
    guard plain, let value = Double(text), value.isFinite else { throw wrongType(node, path, expected: "a number") }
    guard range.contains(value) else {
      throw SettingsError(
        .outOfRange("\(text) is not in \(range.lowerBound)...\(range.upperBound)"), keyPath: path, mark: node.mark)
    }
    return value
  }

  static func string(_ node: YAMLNode, _ path: String, maxLength: Int = 4096) throws(SettingsError) -> String {
    let (text, _) = try text(node, path, expected: "a string")
    guard !text.isEmpty else { throw SettingsError(.invalidValue("must not be empty"), keyPath: path, mark: node.mark) }
    guard text.utf8.count <= maxLength else {
      throw SettingsError(.outOfRange("longer than \(maxLength) bytes"), keyPath: path, mark: node.mark)
    }
    guard !text.utf8.contains(0) else {
      throw SettingsError(.invalidValue("contains a NUL character"), keyPath: path, mark: node.mark)
    }
    return text
  }

  static func optionalString(_ node: YAMLNode, _ path: String) throws(SettingsError) -> String? {
    node.isNull ? nil : try string(node, path)
  }

  static func choice<E: RawRepresentable & CaseIterable>(_ node: YAMLNode, _ path: String, _: E.Type)
    throws(SettingsError) -> E where E.RawValue == String
  {
    let names = E.allCases.map(\.rawValue).joined(separator: ", ")
    let (text, _) = try text(node, path, expected: "one of \(names)")
    guard let value = E(rawValue: text) else {
      throw SettingsError(.invalidValue("\"\(text)\" is not one of \(names)"), keyPath: path, mark: node.mark)
    }
    return value
  }

  /// An octal file mode: `0660`, `660`, `0o660` or `"0660"` (always read as octal, whatever
  /// YAML 1.1 or 1.2 would make of the plain scalar).
  static func fileMode(_ node: YAMLNode, _ path: String) throws(SettingsError) -> UInt32 {
    var (text, _) = try text(node, path, expected: "an octal file mode")
    if text.hasPrefix("0o") { text.removeFirst(2) }
    guard (1...4).contains(text.count), let value = UInt32(text, radix: 8) else {
      throw SettingsError(
        .invalidValue("\"\(text)\" is not an octal file mode like 0660"), keyPath: path, mark: node.mark)
    }
    guard value <= 0o777 else {
      throw SettingsError(.outOfRange("\(text) has bits above 0777"), keyPath: path, mark: node.mark)
    }
    return value
  }

  /// A sequence (null = empty), each element read by `element` with `path[i]` as its key path.
  static func list<T>(
    _ node: YAMLNode, _ path: String, maxCount: Int = 1024,
    _ element: (YAMLNode, String) throws(SettingsError) -> T
  ) throws(SettingsError) -> [T] {
    if node.isNull { return [] }
    guard case let .sequence(items) = node.value else { throw wrongType(node, path, expected: "a sequence") }
    guard items.count <= maxCount else {
      throw SettingsError(.outOfRange("more than \(maxCount) entries"), keyPath: path, mark: node.mark)
    }
    var result: [T] = []
    for (i, item) in items.enumerated() { result.append(try element(item, "\(path)[\(i)]")) }
    return result
  }
}
