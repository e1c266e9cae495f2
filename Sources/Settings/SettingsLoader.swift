// Config file or text → validated DaemonSettings, and command-line overrides on top. Walks the
// YAML mapping against SettingsKeys (unknown and duplicate keys are errors at their mark),
// applies each value over the defaults, then checks the rules that span keys. Every error
// carries the source (file path or "command line"), the key path and the line and column.
import Foundation

public enum SettingsLoader {
  /// Reads and decodes a config file; keys it leaves out keep their defaults.
  public static func load(path: String, limits: YAMLLimits = YAMLLimits()) throws(SettingsError) -> DaemonSettings {
    guard let handle = FileHandle(forReadingAtPath: path) else {
      throw SettingsError(.unreadable("cannot open the file"), source: path)
    }
    defer { try? handle.close() }
    let data: Data
    do {
      // One byte past the limit is enough to tell the file is too large.
      data = try handle.read(upToCount: limits.maxBytes + 1) ?? Data()
    } catch {
      throw SettingsError(.unreadable("\(error)"), source: path)
    }
    return try decode(Array(data), source: path, limits: limits)
  }

  /// Decodes config text; `source` names it in errors.
  public static func decode(_ text: String, source: String? = nil, limits: YAMLLimits = YAMLLimits())
    throws(SettingsError) -> DaemonSettings
  {
    try decode(Array(text.utf8), source: source, limits: limits)
  }

  public static func decode(_ bytes: [UInt8], source: String?, limits: YAMLLimits = YAMLLimits())
    throws(SettingsError) -> DaemonSettings
  {
    do {
      var settings = DaemonSettings()
      var marks: [String: Mark] = [:]
      if let root = try YAMLDocument.parse(bytes, limits: limits), !root.isNull {
        try walk(root, prefix: "", keys: keyTable, into: &settings, marks: &marks)
      }
      try checkRelations(settings, marks: marks)
      return settings
    } catch {
      var error = error
      error.source = source
      throw error
    }
  }

  static var keyTable: [String: SettingKey] {
    Dictionary(uniqueKeysWithValues: SettingsKeys.all.map { ($0.path, $0) })
  }

  /// Every key path the file accepts, in the shipped file's order.
  public static var keyPaths: [String] { SettingsKeys.all.map(\.path) }

  private static func walk(
    _ node: YAMLNode, prefix: String, keys: [String: SettingKey], into settings: inout DaemonSettings,
    marks: inout [String: Mark]
  ) throws(SettingsError) {
    guard case let .mapping(pairs) = node.value else {
      throw SettingsError(
        .wrongType(expected: "a mapping", found: node.kindDescription), keyPath: prefix.isEmpty ? nil : prefix,
        mark: node.mark)
    }
    var seen = Set<String>()
    for (keyNode, value) in pairs {
      guard case let .scalar(name, _) = keyNode.value, !keyNode.isNull else {
        throw SettingsError(
          .wrongType(expected: "a key name", found: keyNode.kindDescription), keyPath: prefix.isEmpty ? nil : prefix,
          mark: keyNode.mark)
      }
      let path = prefix.isEmpty ? name : prefix + "." + name
      guard seen.insert(name).inserted else { throw SettingsError(.duplicateKey, keyPath: path, mark: keyNode.mark) }
      if let key = keys[path] {
        try key.apply(&settings, value)
        marks[path] = value.mark
      } else if keys.keys.contains(where: { $0.hasPrefix(path + ".") }) {
        try walk(value, prefix: path, keys: keys, into: &settings, marks: &marks)
      } else {
        throw SettingsError(.unknownKey, keyPath: path, mark: keyNode.mark)
      }
    }
  }

  /// Rules between keys.
  static func checkRelations(_ s: DaemonSettings, marks: [String: Mark]) throws(SettingsError) {
    if s.generation.maxTokens > s.limits.maxTokens {
      let path = marks["generation.max_tokens"] != nil ? "generation.max_tokens" : "limits.max_tokens"
      throw SettingsError(
        .outOfRange(
          "generation.max_tokens (\(s.generation.maxTokens)) is above limits.max_tokens (\(s.limits.maxTokens))"),
        keyPath: path, mark: marks[path])
    }
    if s.limits.reservedConnections >= s.limits.maxConnections {
      let path = "limits.reserved_connections"
      throw SettingsError(
        .outOfRange(
          "limits.reserved_connections (\(s.limits.reservedConnections)) leaves no place of limits.max_connections (\(s.limits.maxConnections)) for other users"),
        keyPath: path, mark: marks[path])
    }
  }
}

extension DaemonSettings {
  /// The source name errors from overrides carry.
  public static let overrideSource = "command line"

  /// Applies command-line overrides, key path → value text (`"generation.top_k": "20"`,
  /// `"server.allowed_uids": "[1000, 1001]"`). Each value is read as a one-line YAML value and
  /// checked exactly like the same value in the file; keys are applied in sorted order.
  public mutating func apply(overrides: [String: String]) throws(SettingsError) {
    let keys = SettingsLoader.keyTable
    var updated = self
    for (path, text) in overrides.sorted(by: { $0.key < $1.key }) {
      guard let key = keys[path] else {
        throw SettingsError(.unknownKey, keyPath: path, source: Self.overrideSource)
      }
      do {
        let node = try YAMLDocument.parse(text) ?? YAMLNode(.scalar("", plain: true), mark: nil)
        try key.apply(&updated, node)
      } catch {
        // Lines and columns inside a one-line value say nothing; the key path does.
        var error = error
        error.keyPath = error.keyPath ?? path
        error.source = Self.overrideSource
        error.mark = nil
        throw error
      }
    }
    do {
      try SettingsLoader.checkRelations(updated, marks: [:])
    } catch {
      var error = error
      error.source = Self.overrideSource
      throw error
    }
    self = updated
  }

  public func applying(overrides: [String: String]) throws(SettingsError) -> DaemonSettings {
    var copy = self
    try copy.apply(overrides: overrides)
    return copy
  }
}
