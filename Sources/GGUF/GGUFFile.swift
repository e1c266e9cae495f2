// GGUFFile: a GGUF file mapped read-only, with its metadata and tensor directory parsed and
// validated up front, typed metadata lookups and zero-copy tensor views. Parsing lives in
// GGUFParser.swift; this file owns the public surface. Immutable after init, so Sendable.

public final class GGUFFile: Sendable {
  public let path: String
  public let version: UInt32
  /// Alignment of tensor data (`general.alignment`, default 32), a non-zero power of two.
  public let alignment: Int
  public let metadata: [String: GGUFValue]
  /// Metadata keys in file order.
  public let metadataKeys: [String]
  /// Tensor directory in file order.
  public let tensors: [GGUFTensorInfo]
  /// Size of the file in bytes.
  public let fileSize: Int
  /// Absolute offset of the data section (tensor offsets in the file are relative to it).
  public let dataOffset: Int

  private let tensorIndex: [String: Int]
  private let region: MappedRegion

  /// Maps `path` read-only and parses it; the mapping lives as long as this object.
  public convenience init(path: String) throws(GGUFError) {
    let region = try MappedRegion(path: path)
    try self.init(region: region, path: path)
  }

  /// Parses a private copy of `bytes` (files built in memory, tests).
  public convenience init(bytes: [UInt8], path: String = "<memory>") throws(GGUFError) {
    try self.init(region: MappedRegion(copying: bytes), path: path)
  }

  private init(region: MappedRegion, path: String) throws(GGUFError) {
    let parsed = try GGUFParser.parse(region.bytes)
    self.path = path
    self.region = region
    version = parsed.version
    alignment = parsed.alignment
    metadata = parsed.metadata
    metadataKeys = parsed.metadataKeys
    tensors = parsed.tensors
    tensorIndex = parsed.tensorIndex
    fileSize = region.count
    dataOffset = parsed.dataOffset
    // The parse copied everything the header holds (token strings and merges: 1.7 MiB on
    // SmolLM2), so its pages are given back; nothing reads them again.
    if let base = region.bytes.baseAddress { region.releasePages(base, count: dataOffset) }
  }

  public func tensor(named name: String) -> GGUFTensorInfo? {
    tensorIndex[name].map { tensors[$0] }
  }

  /// The tensor's bytes, a view into the mapping (valid while this GGUFFile lives). The tensor
  /// must come from this file; its range was checked against the file when it was parsed.
  public func bytes(of tensor: GGUFTensorInfo) -> UnsafeRawBufferPointer {
    precondition(
      tensor.offset >= 0 && tensor.byteCount >= 0 && tensor.offset <= fileSize
        && tensor.byteCount <= fileSize - tensor.offset,
      "tensor '\(tensor.name)' does not belong to \(path)")
    return UnsafeRawBufferPointer(
      rebasing: region.bytes[tensor.offset..<tensor.offset + tensor.byteCount])
  }

  // ---- typed metadata lookups: nil when absent, a typeMismatch error when of another type

  /// Releases the pages of `count` bytes at `start` (inside this file's bytes) when the file is
  /// mapped from disk: they cost no memory until read again, when they come back unchanged.
  /// Files built in memory keep their bytes.
  public func releasePages(_ start: UnsafeRawPointer, count: Int) {
    region.releasePages(start, count: count)
  }

  public var architecture: String? { try? string("general.architecture") }

  public func string(_ key: String) throws(GGUFError) -> String? {
    guard let value = metadata[key] else { return nil }
    guard case .string(let string) = value else { throw mismatch(key, "a string", value) }
    return string
  }

  /// Any integer type, range-checked into Int.
  public func int(_ key: String) throws(GGUFError) -> Int? {
    guard let value = metadata[key] else { return nil }
    guard let int = try Self.integer(value, key: key) else {
      throw mismatch(key, "an integer", value)
    }
    return int
  }

  /// float32, float64 or any integer type.
  public func float(_ key: String) throws(GGUFError) -> Double? {
    guard let value = metadata[key] else { return nil }
    switch value {
    case .float32(let v): return Double(v)
    case .float64(let v): return v
    case .uint8(let v): return Double(v)
    case .int8(let v): return Double(v)
    case .uint16(let v): return Double(v)
    case .int16(let v): return Double(v)
    case .uint32(let v): return Double(v)
    case .int32(let v): return Double(v)
    case .uint64(let v): return Double(v)
    case .int64(let v): return Double(v)
    default: throw mismatch(key, "a number", value)
    }
  }

  public func bool(_ key: String) throws(GGUFError) -> Bool? {
    guard let value = metadata[key] else { return nil }
    guard case .bool(let bool) = value else { throw mismatch(key, "a bool", value) }
    return bool
  }

  public func array(_ key: String) throws(GGUFError) -> GGUFArray? {
    guard let value = metadata[key] else { return nil }
    guard case .array(let array) = value else { throw mismatch(key, "an array", value) }
    return array
  }

  public func stringArray(_ key: String) throws(GGUFError) -> [String]? {
    guard let array = try array(key) else { return nil }
    guard case .string(let strings) = array else {
      throw mismatch(key, "an array of string", .array(array))
    }
    return strings
  }

  /// An array of any integer type, each element range-checked into Int.
  public func intArray(_ key: String) throws(GGUFError) -> [Int]? {
    guard let array = try array(key) else { return nil }
    func convert<T: BinaryInteger>(_ values: [T]) throws(GGUFError) -> [Int] {
      var result: [Int] = []
      result.reserveCapacity(values.count)
      for (index, value) in values.enumerated() {
        guard let int = Int(exactly: value) else {
          throw .valueOutOfRange(key: key, value: "\(value) (element \(index))", target: "Int")
        }
        result.append(int)
      }
      return result
    }
    switch array {
    case .uint8(let v): return try convert(v)
    case .int8(let v): return try convert(v)
    case .uint16(let v): return try convert(v)
    case .int16(let v): return try convert(v)
    case .uint32(let v): return try convert(v)
    case .int32(let v): return try convert(v)
    case .uint64(let v): return try convert(v)
    case .int64(let v): return try convert(v)
    default: throw mismatch(key, "an array of integers", .array(array))
    }
  }

  /// An array of float32, float64 or any integer type, as Double.
  public func floatArray(_ key: String) throws(GGUFError) -> [Double]? {
    guard let array = try array(key) else { return nil }
    switch array {
    case .float32(let v): return v.map(Double.init)
    case .float64(let v): return v
    case .uint8(let v): return v.map(Double.init)
    case .int8(let v): return v.map(Double.init)
    case .uint16(let v): return v.map(Double.init)
    case .int16(let v): return v.map(Double.init)
    case .uint32(let v): return v.map(Double.init)
    case .int32(let v): return v.map(Double.init)
    case .uint64(let v): return v.map(Double.init)
    case .int64(let v): return v.map(Double.init)
    default: throw mismatch(key, "an array of numbers", .array(array))
    }
  }

  /// Like `floatArray` but as Float (no copy for float32 arrays, e.g. vocabulary scores).
  public func float32Array(_ key: String) throws(GGUFError) -> [Float]? {
    guard let array = try array(key) else { return nil }
    if case .float32(let values) = array { return values }
    guard let doubles = try floatArray(key) else { return nil }
    return doubles.map(Float.init)
  }

  private func mismatch(_ key: String, _ expected: String, _ value: GGUFValue) -> GGUFError {
    .typeMismatch(key: key, expected: expected, actual: value.typeDescription)
  }

  /// The value as Int when it is of an integer type (nil for other types); throws when an
  /// integer does not fit.
  static func integer(_ value: GGUFValue, key: String) throws(GGUFError) -> Int? {
    switch value {
    case .uint8(let v): return Int(v)
    case .int8(let v): return Int(v)
    case .uint16(let v): return Int(v)
    case .int16(let v): return Int(v)
    case .uint32(let v):
      guard let int = Int(exactly: v) else {
        throw .valueOutOfRange(key: key, value: "\(v)", target: "Int")
      }
      return int
    case .int32(let v): return Int(v)
    case .uint64(let v):
      guard let int = Int(exactly: v) else {
        throw .valueOutOfRange(key: key, value: "\(v)", target: "Int")
      }
      return int
    case .int64(let v):
      guard let int = Int(exactly: v) else {
        throw .valueOutOfRange(key: key, value: "\(v)", target: "Int")
      }
      return int
    default: return nil
    }
  }
}
