// GGUFParser: turns untrusted bytes into header, metadata and tensor directory. The file is
// hostile: every count, length and offset is checked against the bytes that remain, and every
// product and sum for overflow, before it is used. Owns the format's layout; does not own the
// mapping (MappedRegion) or the public lookups (GGUFFile).
//
// Layout (little-endian): "GGUF" u32 version, u64 tensor count, u64 key/value count;
// key/value pairs (string key, u32 value type, value); tensor infos (string name, u32 n_dims,
// u64 ne[n_dims], u32 ggml type, u64 offset relative to the data section); padding to the
// alignment; the data section.

enum GGUFFormat {
  static let magic: UInt32 = 0x4655_4747  // "GGUF" read as a little-endian u32
  static let defaultAlignment = 32
  static let alignmentKey = "general.alignment"
  static let maxDimensions = 4
  /// Deeper nesting than this is refused (it also bounds the parser's recursion).
  static let maxArrayNesting = 8

  /// Element count and byte count of a tensor, from the C type table, with every product
  /// checked for overflow. Used by the reader and the writer alike.
  static func tensorSizes(
    name: String, type: GGMLType, dimensions: [UInt64]
  ) throws(GGUFError) -> (dimensions: [Int], elementCount: Int, byteCount: Int) {
    guard (1...maxDimensions).contains(dimensions.count) else {
      throw .invalidDimensionCount(name: name, count: UInt32(clamping: dimensions.count))
    }
    var dims: [Int] = []
    dims.reserveCapacity(dimensions.count)
    for (index, value) in dimensions.enumerated() {
      guard value >= 1, value <= UInt64(Int.max) else {
        throw .invalidDimension(name: name, index: index, value: value)
      }
      dims.append(Int(value))
    }
    guard let (blockSize, _) = type.blockLayout else {
      throw .unknownTensorType(name: name, type: type.rawValue)
    }
    var elementCount = 1
    for dim in dims {
      let (product, overflow) = elementCount.multipliedReportingOverflow(by: dim)
      guard !overflow else { throw .elementCountOverflow(name: name, dimensions: dimensions) }
      elementCount = product
    }
    guard let rowBytes = type.rowSize(dims[0]) else {
      throw .rowNotBlockAligned(name: name, type: type.name, ne0: dims[0], blockSize: blockSize)
    }
    let (byteCount, overflow) = rowBytes.multipliedReportingOverflow(by: elementCount / dims[0])
    guard !overflow else { throw .elementCountOverflow(name: name, dimensions: dimensions) }
    return (dims, elementCount, byteCount)
  }

  /// Capacity to reserve for `count` parsed items: counts are checked against the bytes left,
  /// but a hostile count could still reserve far more memory than the file holds, so large
  /// collections grow as they are actually read.
  static func reservation(_ count: UInt64) -> Int { Int(min(count, 4096)) }

  static func isValidAlignment(_ value: Int) -> Bool { value > 0 && value & (value - 1) == 0 }
}

struct ParsedGGUF {
  var version: UInt32 = 0
  var alignment = GGUFFormat.defaultAlignment
  var metadata: [String: GGUFValue] = [:]
  var metadataKeys: [String] = []
  var tensors: [GGUFTensorInfo] = []
  var tensorIndex: [String: Int] = [:]
  var dataOffset = 0
}

struct GGUFParser {
  private var reader: ByteReader

  static func parse(_ bytes: UnsafeRawBufferPointer) throws(GGUFError) -> ParsedGGUF {
    var parser = GGUFParser(reader: ByteReader(bytes))
    return try parser.parse()
  }

  private mutating func parse() throws(GGUFError) -> ParsedGGUF {
    var result = ParsedGGUF()
    let magic = try reader.read(UInt32.self, "magic")
    guard magic == GGUFFormat.magic else { throw .badMagic(found: magic) }
    let version = try reader.read(UInt32.self, "version")
    guard version == 2 || version == 3 else { throw .unsupportedVersion(version) }
    result.version = version
    let tensorCount = try reader.read(UInt64.self, "tensor count")
    let keyValueCount = try reader.read(UInt64.self, "metadata key/value count")

    // Each pair takes at least 13 bytes (key length, value type, one byte of value) and each
    // tensor info at least 32 (name length, n_dims, one dimension, type, offset).
    let maxPairs = reader.remaining / 13
    guard keyValueCount <= UInt64(maxPairs) else {
      throw .countOutOfBounds(
        context: "metadata key/value count", count: keyValueCount, maximum: maxPairs)
    }
    let maxTensors = reader.remaining / 32
    guard tensorCount <= UInt64(maxTensors) else {
      throw .countOutOfBounds(context: "tensor count", count: tensorCount, maximum: maxTensors)
    }

    result.metadata.reserveCapacity(GGUFFormat.reservation(keyValueCount))
    result.metadataKeys.reserveCapacity(GGUFFormat.reservation(keyValueCount))
    for index in 0..<Int(keyValueCount) {
      let key = try reader.readString("key of metadata pair #\(index)")
      guard result.metadata[key] == nil else { throw .duplicateKey(key) }
      let typeID = try reader.read(UInt32.self, "value type of metadata key '\(key)'")
      guard let type = GGUFValueType(rawValue: typeID) else {
        throw .invalidValueType(key: key, type: typeID)
      }
      result.metadata[key] = try readValue(type, key: key)
      result.metadataKeys.append(key)
    }

    if let value = result.metadata[GGUFFormat.alignmentKey] {
      guard let alignment = try GGUFFile.integer(value, key: GGUFFormat.alignmentKey) else {
        throw .typeMismatch(
          key: GGUFFormat.alignmentKey, expected: "an integer", actual: value.typeDescription)
      }
      guard GGUFFormat.isValidAlignment(alignment) else { throw .invalidAlignment(alignment) }
      result.alignment = alignment
    }

    // Tensor infos, with offsets relative to the data section (checked once it is known).
    var relativeOffsets: [UInt64] = []
    var infos: [(name: String, type: GGMLType, dimensions: [UInt64])] = []
    relativeOffsets.reserveCapacity(GGUFFormat.reservation(tensorCount))
    infos.reserveCapacity(GGUFFormat.reservation(tensorCount))
    result.tensorIndex.reserveCapacity(GGUFFormat.reservation(tensorCount))
    for index in 0..<Int(tensorCount) {
      let name = try reader.readString("name of tensor #\(index)")
      guard result.tensorIndex[name] == nil else { throw .duplicateTensor(name) }
      result.tensorIndex[name] = index
      let dimensionCount = try reader.read(UInt32.self, "dimension count of tensor '\(name)'")
      guard (1...UInt32(GGUFFormat.maxDimensions)).contains(dimensionCount) else {
        throw .invalidDimensionCount(name: name, count: dimensionCount)
      }
      var dimensions: [UInt64] = []
      for axis in 0..<Int(dimensionCount) {
        dimensions.append(try reader.read(UInt64.self, "dimension \(axis) of tensor '\(name)'"))
      }
      let type = GGMLType(rawValue: try reader.read(UInt32.self, "type of tensor '\(name)'"))
      relativeOffsets.append(try reader.read(UInt64.self, "data offset of tensor '\(name)'"))
      infos.append((name, type, dimensions))
    }

    // The data section starts at the next multiple of the alignment (no overflow: the offset
    // is at most the file size and the alignment was checked to be a power of two).
    let fileSize = reader.bytes.count
    let headerEnd = reader.offset
    let alignment = result.alignment
    let (paddedEnd, overflow) = headerEnd.addingReportingOverflow(alignment - 1)
    guard !overflow else { throw .invalidAlignment(alignment) }
    let dataOffset = paddedEnd / alignment * alignment
    result.dataOffset = dataOffset

    result.tensors.reserveCapacity(infos.count)
    for (info, relative) in zip(infos, relativeOffsets) {
      let sizes = try GGUFFormat.tensorSizes(
        name: info.name, type: info.type, dimensions: info.dimensions)
      guard relative % UInt64(alignment) == 0 else {
        throw .misalignedTensorOffset(name: info.name, offset: relative, alignment: alignment)
      }
      let outOfBounds = GGUFError.tensorOutOfBounds(
        name: info.name, offset: relative, byteCount: sizes.byteCount, dataStart: dataOffset,
        fileSize: fileSize)
      guard dataOffset <= fileSize, relative <= UInt64(fileSize - dataOffset) else {
        throw outOfBounds
      }
      let start = dataOffset + Int(relative)
      guard sizes.byteCount <= fileSize - start else { throw outOfBounds }
      result.tensors.append(
        GGUFTensorInfo(
          name: info.name, type: info.type, dimensions: sizes.dimensions,
          elementCount: sizes.elementCount, byteCount: sizes.byteCount, offset: start))
    }
    return result
  }

  private mutating func readValue(_ type: GGUFValueType, key: String) throws(GGUFError) -> GGUFValue
  {
    switch type {
    case .uint8: return .uint8(try reader.read(UInt8.self, "value of '\(key)'"))
    case .int8: return .int8(try reader.read(Int8.self, "value of '\(key)'"))
    case .uint16: return .uint16(try reader.read(UInt16.self, "value of '\(key)'"))
    case .int16: return .int16(try reader.read(Int16.self, "value of '\(key)'"))
    case .uint32: return .uint32(try reader.read(UInt32.self, "value of '\(key)'"))
    case .int32: return .int32(try reader.read(Int32.self, "value of '\(key)'"))
    case .uint64: return .uint64(try reader.read(UInt64.self, "value of '\(key)'"))
    case .int64: return .int64(try reader.read(Int64.self, "value of '\(key)'"))
    case .float32:
      return .float32(Float(bitPattern: try reader.read(UInt32.self, "value of '\(key)'")))
    case .float64:
      return .float64(Double(bitPattern: try reader.read(UInt64.self, "value of '\(key)'")))
    case .bool: return .bool(try readBool(key: key))
    case .string: return .string(try reader.readString("value of '\(key)'"))
    case .array: return .array(try readArray(key: key, depth: 1))
    }
  }

  private mutating func readBool(key: String) throws(GGUFError) -> Bool {
    let offset = reader.offset
    let byte = try reader.read(UInt8.self, "value of '\(key)'")
    guard byte <= 1 else { throw .invalidBool(key: key, offset: offset, byte: byte) }
    return byte == 1
  }

  private mutating func readArray(key: String, depth: Int) throws(GGUFError) -> GGUFArray {
    guard depth <= GGUFFormat.maxArrayNesting else {
      throw .arrayNestingTooDeep(key: key, depth: GGUFFormat.maxArrayNesting)
    }
    let typeID = try reader.read(UInt32.self, "array element type of '\(key)'")
    guard let type = GGUFValueType(rawValue: typeID) else {
      throw .invalidValueType(key: key, type: typeID)
    }
    let countOffset = reader.offset
    let rawCount = try reader.read(UInt64.self, "array count of '\(key)'")
    let maximum = reader.remaining / type.minimumEncodedSize
    guard rawCount <= UInt64(maximum) else {
      throw .arrayCountOutOfBounds(key: key, offset: countOffset, count: rawCount, maximum: maximum)
    }
    let count = Int(rawCount)
    let context = "elements of array '\(key)'"
    switch type {
    case .uint8: return .uint8(try reader.readArray(UInt8.self, count: count, context))
    case .int8: return .int8(try reader.readArray(Int8.self, count: count, context))
    case .uint16: return .uint16(try reader.readArray(UInt16.self, count: count, context))
    case .int16: return .int16(try reader.readArray(Int16.self, count: count, context))
    case .uint32: return .uint32(try reader.readArray(UInt32.self, count: count, context))
    case .int32: return .int32(try reader.readArray(Int32.self, count: count, context))
    case .uint64: return .uint64(try reader.readArray(UInt64.self, count: count, context))
    case .int64: return .int64(try reader.readArray(Int64.self, count: count, context))
    case .float32: return .float32(try reader.readArray(Float.self, count: count, context))
    case .float64: return .float64(try reader.readArray(Double.self, count: count, context))
    case .bool:
      var values: [Bool] = []
      values.reserveCapacity(count)
      for _ in 0..<count { values.append(try readBool(key: key)) }
      return .bool(values)
    case .string:
      var values: [String] = []
      values.reserveCapacity(GGUFFormat.reservation(UInt64(count)))
      for index in 0..<count {
        values.append(try reader.readString("element \(index) of array '\(key)'"))
      }
      return .string(values)
    case .array:
      var values: [GGUFArray] = []
      values.reserveCapacity(GGUFFormat.reservation(UInt64(count)))
      for _ in 0..<count { values.append(try readArray(key: key, depth: depth + 1)) }
      return .array(values)
    }
  }
}
