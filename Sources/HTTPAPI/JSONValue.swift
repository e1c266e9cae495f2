// Any JSON value, for the request fields whose shape is the client's (tool parameters, JSON
// schemas, metadata), and the strict-keys check every request body goes through.

public enum JSONValue: Sendable, Equatable, Codable {
  case null
  case bool(Bool)
  case number(Double)
  case string(String)
  case array([JSONValue])
  case object([String: JSONValue])

  public init(from decoder: any Decoder) throws {
    let c = try decoder.singleValueContainer()
    if c.decodeNil() {
      self = .null
    } else if let b = try? c.decode(Bool.self) {
      self = .bool(b)
    } else if let d = try Self.number(c) {
      self = .number(d)
    } else if let s = try? c.decode(String.self) {
      self = .string(s)
    } else if let a = try Self.array(c) {
      self = .array(a)
    } else {
      self = .object(try c.decode([String: JSONValue].self))
    }
  }

  /// The number here; nil when the value is no number. A number beyond Double's range (1e400 in
  /// a schema) is refused naming where it is.
  private static func number(_ c: any SingleValueDecodingContainer) throws -> Double? {
    do {
      return try c.decode(Double.self)
    } catch is DecodingError {
      return nil
    } catch {
      throw APIError.invalidField(fieldPath(c.codingPath), "must be \(Double.expected), got a number beyond that range")
    }
  }

  /// The array here; nil when the value is no array (an error inside one still counts).
  private static func array(_ c: any SingleValueDecodingContainer) throws -> [JSONValue]? {
    do {
      return try c.decode([JSONValue].self)
    } catch let error as APIError {
      throw error
    } catch {
      return nil
    }
  }

  public func encode(to encoder: any Encoder) throws {
    var c = encoder.singleValueContainer()
    switch self {
    case .null: try c.encodeNil()
    case .bool(let b): try c.encode(b)
    case .number(let d):
      if d == d.rounded(), abs(d) < 1e15 { try c.encode(Int64(d)) } else { try c.encode(d) }
    case .string(let s): try c.encode(s)
    case .array(let a): try c.encode(a)
    case .object(let o): try c.encode(o)
    }
  }
}

/// A coding key for any name, to list the keys a body actually has.
struct AnyCodingKey: CodingKey {
  var stringValue: String
  var intValue: Int? { nil }
  init(stringValue: String) { self.stringValue = stringValue }
  init?(intValue: Int) { nil }
}

/// The dotted/indexed path of a decoder position, as `param` names it (`messages[0].name`).
func fieldPath(_ keys: [any CodingKey]) -> String {
  var out = ""
  for k in keys {
    if let i = k.intValue { out += "[\(i)]" } else { out += out.isEmpty ? k.stringValue : ".\(k.stringValue)" }
  }
  return out
}

/// Refuses any key of the object at `decoder` that is not in `known`: a field this server does
/// not implement must be an error naming it, never silently ignored.
func refuseUnknownKeys(_ decoder: any Decoder, known: Set<String>) throws {
  let c = try decoder.container(keyedBy: AnyCodingKey.self)
  // Sorted so the error names the same field every time.
  for key in c.allKeys.map(\.stringValue).sorted() where !known.contains(key) {
    throw APIError.invalidField(
      fieldPath(decoder.codingPath + [AnyCodingKey(stringValue: key)]), "unknown field; this server does not implement it")
  }
}
