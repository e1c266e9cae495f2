// Text → YAMLNode through libyaml's event parser. `YAMLEventParser` owns the `yaml_parser_t`
// (and the input bytes it points into) and frees both in deinit; `YAMLDocument.parse` turns the
// event stream into a tree with an explicit stack (no recursion), so hostile input is bounded by
// `YAMLLimits` (bytes, nesting depth, node count) before it can use much memory or stack.
// Anchors, aliases, explicit tags and a second document are refused with their position:
// aliases are how "billion laughs" documents grow, and the config never needs them.
import CYAML

/// Bounds on a config document; the defaults are far above any real config.
public struct YAMLLimits: Sendable, Equatable {
  public var maxBytes: Int
  public var maxDepth: Int
  public var maxNodes: Int
  public init(maxBytes: Int = 1 << 20, maxDepth: Int = 32, maxNodes: Int = 100_000) {
    self.maxBytes = maxBytes
    self.maxDepth = maxDepth
    self.maxNodes = maxNodes
  }
}

/// Owns one libyaml parser over a private copy of the input.
final class YAMLEventParser {
  private let parser: UnsafeMutablePointer<yaml_parser_t>
  private let input: UnsafeMutableBufferPointer<UInt8>

  init(bytes: [UInt8]) throws(SettingsError) {
    parser = .allocate(capacity: 1)
    input = .allocate(capacity: max(bytes.count, 1))
    _ = input.initialize(from: bytes)
    guard yaml_parser_initialize(parser) == 1 else {
      parser.deallocate()
      input.deallocate()
      throw SettingsError(.unreadable("libyaml could not allocate a parser"))
    }
    yaml_parser_set_input_string(parser, input.baseAddress, bytes.count)
    yaml_parser_set_encoding(parser, YAML_UTF8_ENCODING)
  }

  deinit {
    yaml_parser_delete(parser)
    parser.deallocate()
    input.deallocate()
  }

  /// The next event, copied out of libyaml's memory (which is freed before returning).
  func next() throws(SettingsError) -> YAMLEvent {
    var event = yaml_event_t()
    guard yaml_parser_parse(parser, &event) == 1 else { throw syntaxError() }
    defer { yaml_event_delete(&event) }
    let mark = Mark(line: Int(event.start_mark.line) + 1, column: Int(event.start_mark.column) + 1)
    switch event.type {
    case YAML_STREAM_START_EVENT: return YAMLEvent(kind: .streamStart, mark: mark)
    case YAML_STREAM_END_EVENT: return YAMLEvent(kind: .streamEnd, mark: mark)
    case YAML_DOCUMENT_START_EVENT: return YAMLEvent(kind: .documentStart, mark: mark)
    case YAML_DOCUMENT_END_EVENT: return YAMLEvent(kind: .documentEnd, mark: mark)
    case YAML_ALIAS_EVENT: return YAMLEvent(kind: .alias, mark: mark)
    case YAML_SCALAR_EVENT:
      let s = event.data.scalar
      let text = String(decoding: UnsafeBufferPointer(start: s.value, count: Int(s.length)), as: UTF8.self)
      return YAMLEvent(
        kind: .scalar(text, plain: s.style == YAML_PLAIN_SCALAR_STYLE), mark: mark,
        anchor: s.anchor != nil, tag: Self.string(s.tag))
    case YAML_SEQUENCE_START_EVENT:
      let s = event.data.sequence_start
      return YAMLEvent(kind: .sequenceStart, mark: mark, anchor: s.anchor != nil, tag: Self.string(s.tag))
    case YAML_SEQUENCE_END_EVENT: return YAMLEvent(kind: .sequenceEnd, mark: mark)
    case YAML_MAPPING_START_EVENT:
      let m = event.data.mapping_start
      return YAMLEvent(kind: .mappingStart, mark: mark, anchor: m.anchor != nil, tag: Self.string(m.tag))
    case YAML_MAPPING_END_EVENT: return YAMLEvent(kind: .mappingEnd, mark: mark)
    default: throw SettingsError(.syntax("unexpected parser event"), mark: mark)
    }
  }

  private static func string(_ p: UnsafeMutablePointer<yaml_char_t>?) -> String? {
    guard let p else { return nil }
    return String(cString: UnsafePointer(p))
  }

  private func syntaxError() -> SettingsError {
    let p = parser.pointee
    var message = p.problem.map { String(cString: $0) } ?? "malformed YAML"
    if let context = p.context { message += " " + String(cString: context) }
    let mark = Mark(line: Int(p.problem_mark.line) + 1, column: Int(p.problem_mark.column) + 1)
    return SettingsError(.syntax(message), mark: mark)
  }
}

struct YAMLEvent {
  enum Kind {
    case streamStart, streamEnd, documentStart, documentEnd, alias
    case scalar(String, plain: Bool)
    case sequenceStart, sequenceEnd, mappingStart, mappingEnd
  }
  var kind: Kind
  var mark: Mark
  var anchor = false
  var tag: String? = nil
}

public enum YAMLDocument {
  /// Parses one YAML document; nil for an empty stream (no document, or only comments).
  public static func parse(_ bytes: [UInt8], limits: YAMLLimits = YAMLLimits()) throws(SettingsError)
    -> YAMLNode?
  {
    guard bytes.count <= limits.maxBytes else {
      throw SettingsError(.tooLarge("document is \(bytes.count) bytes; the limit is \(limits.maxBytes)"))
    }
    let parser = try YAMLEventParser(bytes: bytes)

    /// An open collection: its start mark and the children read so far.
    struct Open {
      var isMapping: Bool
      var mark: Mark
      var items: [YAMLNode] = []
    }
    var stack: [Open] = []
    var root: YAMLNode?
    var documents = 0
    var nodes = 0

    func attach(_ node: YAMLNode) {
      if stack.isEmpty { root = node } else { stack[stack.count - 1].items.append(node) }
    }

    while true {
      let event = try parser.next()
      if event.anchor { throw SettingsError(.unsupported("anchors (&name)"), mark: event.mark) }
      if let tag = event.tag { throw SettingsError(.unsupported("tags (\(tag))"), mark: event.mark) }
      switch event.kind {
      case .streamStart, .documentEnd: continue
      case .streamEnd: return root
      case .documentStart:
        documents += 1
        if documents > 1 { throw SettingsError(.unsupported("several documents"), mark: event.mark) }
      case .alias: throw SettingsError(.unsupported("aliases (*name)"), mark: event.mark)
      case .scalar(let text, let plain):
        nodes += 1
        guard nodes <= limits.maxNodes else {
          throw SettingsError(.tooLarge("more than \(limits.maxNodes) nodes"), mark: event.mark)
        }
        attach(YAMLNode(.scalar(text, plain: plain), mark: event.mark))
      case .sequenceStart, .mappingStart:
        nodes += 1
        guard nodes <= limits.maxNodes else {
          throw SettingsError(.tooLarge("more than \(limits.maxNodes) nodes"), mark: event.mark)
        }
        guard stack.count < limits.maxDepth else {
          throw SettingsError(.tooLarge("nested deeper than \(limits.maxDepth) levels"), mark: event.mark)
        }
        var isMapping = false
        if case .mappingStart = event.kind { isMapping = true }
        stack.append(Open(isMapping: isMapping, mark: event.mark))
      case .sequenceEnd, .mappingEnd:
        let open = stack.removeLast()
        if open.isMapping {
          // libyaml guarantees mapping events come in key/value pairs.
          var pairs: [(key: YAMLNode, value: YAMLNode)] = []
          pairs.reserveCapacity(open.items.count / 2)
          var i = 0
          while i + 1 < open.items.count {
            pairs.append((open.items[i], open.items[i + 1]))
            i += 2
          }
          attach(YAMLNode(.mapping(pairs), mark: open.mark))
        } else {
          attach(YAMLNode(.sequence(open.items), mark: open.mark))
        }
      }
    }
  }

  public static func parse(_ text: String, limits: YAMLLimits = YAMLLimits()) throws(SettingsError)
    -> YAMLNode?
  {
    try parse(Array(text.utf8), limits: limits)
  }
}
