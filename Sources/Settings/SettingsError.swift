// The one error type of the Settings module: what went wrong, the key path it concerns, and
// where (file, line, column). Its description is the message the daemon prints, e.g.
// `/etc/droplora/droplorad.yaml:12:3: server.threads: expected an integer, found "many"`.

public struct SettingsError: Error, Sendable, Equatable, CustomStringConvertible {
  public enum Kind: Sendable, Equatable {
    /// The file could not be read.
    case unreadable(String)
    /// libyaml refused the text (message from libyaml).
    case syntax(String)
    /// A YAML feature the config format does not accept (anchors, aliases, tags, several documents).
    case unsupported(String)
    /// Input past a size, depth or node-count bound.
    case tooLarge(String)
    case unknownKey
    case duplicateKey
    case wrongType(expected: String, found: String)
    case outOfRange(String)
    case invalidValue(String)
  }

  public var kind: Kind
  /// Dotted key path (`generation.top_p`, `server.allowed_uids[2]`); nil for document-level errors.
  public var keyPath: String?
  /// The file path, or "command line" for overrides; nil when parsing a string.
  public var source: String?
  public var mark: Mark?

  public init(_ kind: Kind, keyPath: String? = nil, source: String? = nil, mark: Mark? = nil) {
    self.kind = kind
    self.keyPath = keyPath
    self.source = source
    self.mark = mark
  }

  public var description: String {
    var prefix = ""
    if let source { prefix += source }
    if let mark { prefix += (prefix.isEmpty ? "line " : ":") + mark.description }
    if !prefix.isEmpty { prefix += ": " }
    if let keyPath { prefix += keyPath + ": " }
    switch kind {
    case let .unreadable(why): return prefix + "cannot read the configuration: " + why
    case let .syntax(why): return prefix + "YAML syntax error: " + why
    case let .unsupported(what): return prefix + what + " not supported in the configuration"
    case let .tooLarge(what): return prefix + what
    case .unknownKey: return prefix + "unknown key (see droplorad.yaml(5) for the keys)"
    case .duplicateKey: return prefix + "key given twice"
    case let .wrongType(expected, found): return prefix + "expected \(expected), found \(found)"
    case let .outOfRange(why): return prefix + "out of range: " + why
    case let .invalidValue(why): return prefix + why
    }
  }
}
