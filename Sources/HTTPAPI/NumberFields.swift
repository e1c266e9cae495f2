// Numeric request fields. JSON holds numbers a field's type cannot (2.5 or 1e20 as an integer,
// 1e400 anywhere); Foundation's JSONDecoder then throws an error that names neither the field
// nor the value, which would reach the client as "not valid JSON" without `param`. Every
// numeric field of the generation routes is decoded here instead, so the 400 names it.

/// A JSON number type a request field may have.
protocol JSONNumberField: Decodable {
  /// "an integer from -9223372036854775808 to 9223372036854775807", "a finite number".
  static var expected: String { get }
}

extension Int: JSONNumberField {
  static var expected: String { "an integer from \(Int.min) to \(Int.max)" }
}

extension Int64: JSONNumberField {
  static var expected: String { "an integer from \(Int64.min) to \(Int64.max)" }
}

extension Double: JSONNumberField {
  static var expected: String { "a number within ±\(Double.greatestFiniteMagnitude)" }
}

extension KeyedDecodingContainer {
  /// The number at `key` as `T`, nil when absent or null. A number `T` cannot hold is
  /// `APIError.invalidField` naming the field (`field`, or the key's path) and the value.
  func decodeNumberIfPresent<T: JSONNumberField>(_ type: T.Type, forKey key: Key, field: String? = nil) throws -> T? {
    guard contains(key), try !decodeNil(forKey: key) else { return nil }
    return try decodeNumber(T.self, forKey: key, field: field)
  }

  /// As `decodeNumberIfPresent`, for a required field.
  func decodeNumber<T: JSONNumberField>(_ type: T.Type, forKey key: Key, field: String? = nil) throws -> T {
    do {
      return try decode(T.self, forKey: key)
    } catch let error as DecodingError {
      throw error  // not a number at all (a string, an object): the usual mapping names the field
    } catch {
      // Foundation's "number is not representable": say which field and, when it has one, the value.
      let name = field ?? fieldPath(codingPath + [key])
      guard let value = try? decode(Double.self, forKey: key) else {
        throw APIError.invalidField(name, "must be \(T.expected), got a number beyond that range")
      }
      if T.self != Double.self && value != value.rounded() {
        throw APIError.invalidField(name, "must be an integer, got \(value)")
      }
      throw APIError.invalidField(name, "must be \(T.expected), got \(value)")
    }
  }
}
