// Metadata values of a GGUF file: the on-disk value type ids, one scalar enum, and typed
// arrays (a 49k-entry vocabulary is one `[String]`, not 49k boxed enum values). Parsing and
// writing live in GGUFFile.swift and GGUFWriter.swift; this file only defines the values.

/// Value type ids exactly as stored in GGUF files.
public enum GGUFValueType: UInt32, Sendable, CaseIterable, CustomStringConvertible {
  case uint8 = 0
  case int8 = 1
  case uint16 = 2
  case int16 = 3
  case uint32 = 4
  case int32 = 5
  case float32 = 6
  case bool = 7
  case string = 8
  case array = 9
  case uint64 = 10
  case int64 = 11
  case float64 = 12

  public var description: String {
    switch self {
    case .uint8: "uint8"
    case .int8: "int8"
    case .uint16: "uint16"
    case .int16: "int16"
    case .uint32: "uint32"
    case .int32: "int32"
    case .float32: "float32"
    case .bool: "bool"
    case .string: "string"
    case .array: "array"
    case .uint64: "uint64"
    case .int64: "int64"
    case .float64: "float64"
    }
  }

  /// Smallest number of bytes one value of this type occupies in a file (a string is at least
  /// its 8-byte length, an array its 4-byte element type and 8-byte count).
  var minimumEncodedSize: Int {
    switch self {
    case .uint8, .int8, .bool: 1
    case .uint16, .int16: 2
    case .uint32, .int32, .float32: 4
    case .uint64, .int64, .float64, .string: 8
    case .array: 12
    }
  }
}

/// One metadata value.
public enum GGUFValue: Sendable, Equatable {
  case uint8(UInt8)
  case int8(Int8)
  case uint16(UInt16)
  case int16(Int16)
  case uint32(UInt32)
  case int32(Int32)
  case uint64(UInt64)
  case int64(Int64)
  case float32(Float)
  case float64(Double)
  case bool(Bool)
  case string(String)
  case array(GGUFArray)

  public var type: GGUFValueType {
    switch self {
    case .uint8: .uint8
    case .int8: .int8
    case .uint16: .uint16
    case .int16: .int16
    case .uint32: .uint32
    case .int32: .int32
    case .uint64: .uint64
    case .int64: .int64
    case .float32: .float32
    case .float64: .float64
    case .bool: .bool
    case .string: .string
    case .array: .array
    }
  }

  /// "uint32", "array of string", "array of array", ... for error messages.
  public var typeDescription: String {
    if case .array(let array) = self { return "array of \(array.elementType)" }
    return type.description
  }
}

/// A homogeneous metadata array, stored as one typed Swift array. Nested arrays are arrays of
/// `GGUFArray`, each with its own element type (as the format allows).
public enum GGUFArray: Sendable, Equatable {
  case uint8([UInt8])
  case int8([Int8])
  case uint16([UInt16])
  case int16([Int16])
  case uint32([UInt32])
  case int32([Int32])
  case uint64([UInt64])
  case int64([Int64])
  case float32([Float])
  case float64([Double])
  case bool([Bool])
  case string([String])
  case array([GGUFArray])

  public var elementType: GGUFValueType {
    switch self {
    case .uint8: .uint8
    case .int8: .int8
    case .uint16: .uint16
    case .int16: .int16
    case .uint32: .uint32
    case .int32: .int32
    case .uint64: .uint64
    case .int64: .int64
    case .float32: .float32
    case .float64: .float64
    case .bool: .bool
    case .string: .string
    case .array: .array
    }
  }

  public var count: Int {
    switch self {
    case .uint8(let a): a.count
    case .int8(let a): a.count
    case .uint16(let a): a.count
    case .int16(let a): a.count
    case .uint32(let a): a.count
    case .int32(let a): a.count
    case .uint64(let a): a.count
    case .int64(let a): a.count
    case .float32(let a): a.count
    case .float64(let a): a.count
    case .bool(let a): a.count
    case .string(let a): a.count
    case .array(let a): a.count
    }
  }
}
