// GGUFWriter: builds a GGUF v3 file — metadata in insertion order, tensors with sizes checked
// against the C type table, data aligned to `general.alignment` (default 32) and zero-padded —
// and writes it durably (DurableFile: temporary file in the same directory, fsync, rename, fsync
// of the directory). Holds tensor data in memory: meant for adapters, fixtures and small models.
import DurableFiles

public struct GGUFWriter: Sendable {
  private struct Tensor: Sendable {
    let name: String
    let type: GGMLType
    let dimensions: [Int]
    let data: [UInt8]
  }

  private var keys: [String] = []
  private var values: [String: GGUFValue] = [:]
  private var tensors: [Tensor] = []
  private var tensorNames: Set<String> = []

  public init() {}

  /// Sets `key`; a new key goes last, an existing one keeps its position.
  public mutating func set(_ key: String, _ value: GGUFValue) {
    if values.updateValue(value, forKey: key) == nil { keys.append(key) }
  }

  public mutating func removeValue(forKey key: String) {
    guard values.removeValue(forKey: key) != nil else { return }
    keys.removeAll { $0 == key }
  }

  /// Adds a tensor (`dimensions` in ggml order, ne[0] first); `data` must hold exactly the
  /// bytes its type and dimensions need.
  public mutating func addTensor(
    name: String, type: GGMLType, dimensions: [Int], data: [UInt8]
  ) throws(GGUFError) {
    guard !tensorNames.contains(name) else { throw .duplicateTensor(name) }
    var rawDimensions: [UInt64] = []
    for (index, dimension) in dimensions.enumerated() {
      guard dimension >= 1 else {
        throw .invalidDimension(
          name: name, index: index, value: UInt64(bitPattern: Int64(dimension)))
      }
      rawDimensions.append(UInt64(dimension))
    }
    let sizes = try GGUFFormat.tensorSizes(name: name, type: type, dimensions: rawDimensions)
    guard sizes.byteCount == data.count else {
      throw .tensorDataSizeMismatch(name: name, expected: sizes.byteCount, actual: data.count)
    }
    tensors.append(Tensor(name: name, type: type, dimensions: dimensions, data: data))
    tensorNames.insert(name)
  }

  public mutating func addTensor(
    name: String, type: GGMLType, dimensions: [Int], data: UnsafeRawBufferPointer
  ) throws(GGUFError) {
    try addTensor(name: name, type: type, dimensions: dimensions, data: [UInt8](data))
  }

  /// The whole file as bytes.
  public func serialized() throws(GGUFError) -> [UInt8] {
    var bytes = try header()
    for tensor in tensors {
      bytes += tensor.data
      bytes += [UInt8](repeating: 0, count: padding(bytes.count, try alignment()))
    }
    return bytes
  }

  /// Writes the file durably (DurableFile): a crash leaves either the old file or the complete
  /// new one, and a failure (a full disk among others) leaves no temporary behind.
  public func write(to path: String) throws(GGUFError) {
    let header = try header()
    let alignment = try alignment()
    do {
      try DurableFile.write(to: path) { (sink) throws(DurableWriteError) in
        try sink.write(header)
        let zeros = [UInt8](repeating: 0, count: alignment)
        var written = header.count
        for tensor in tensors {
          try sink.write(tensor.data)
          written += tensor.data.count
          let pad = padding(written, alignment)
          try sink.write(zeros[0..<pad])
          written += pad
        }
      }
    } catch {
      throw .io(path: error.path, operation: error.operation, errno: error.errno)
    }
  }

  // ---- encoding

  private func alignment() throws(GGUFError) -> Int {
    guard let value = values[GGUFFormat.alignmentKey] else { return GGUFFormat.defaultAlignment }
    guard let alignment = try GGUFFile.integer(value, key: GGUFFormat.alignmentKey) else {
      throw .typeMismatch(
        key: GGUFFormat.alignmentKey, expected: "an integer", actual: value.typeDescription)
    }
    guard GGUFFormat.isValidAlignment(alignment) else { throw .invalidAlignment(alignment) }
    return alignment
  }

  private func padding(_ offset: Int, _ alignment: Int) -> Int {
    (alignment - offset % alignment) % alignment
  }

  /// Everything before the data section, including the padding that aligns it.
  private func header() throws(GGUFError) -> [UInt8] {
    let alignment = try alignment()
    var out: [UInt8] = []
    append(GGUFFormat.magic, to: &out)
    append(UInt32(3), to: &out)
    append(UInt64(tensors.count), to: &out)
    append(UInt64(keys.count), to: &out)
    for key in keys {
      guard let value = values[key] else { continue }  // keys and values change together
      appendString(key, to: &out)
      append(value.type.rawValue, to: &out)
      appendValue(value, to: &out)
    }
    var offset = 0
    for tensor in tensors {
      appendString(tensor.name, to: &out)
      append(UInt32(tensor.dimensions.count), to: &out)
      for dimension in tensor.dimensions { append(UInt64(dimension), to: &out) }
      append(tensor.type.rawValue, to: &out)
      append(UInt64(offset), to: &out)
      offset += tensor.data.count
      offset += padding(offset, alignment)
    }
    out += [UInt8](repeating: 0, count: padding(out.count, alignment))
    return out
  }

  private func append<T: FixedWidthInteger>(_ value: T, to out: inout [UInt8]) {
    withUnsafeBytes(of: value.littleEndian) { out += $0 }
  }

  private func appendString(_ string: String, to out: inout [UInt8]) {
    let utf8 = Array(string.utf8)
    append(UInt64(utf8.count), to: &out)
    out += utf8
  }

  private func appendValue(_ value: GGUFValue, to out: inout [UInt8]) {
    switch value {
    case .uint8(let v): append(v, to: &out)
    case .int8(let v): append(v, to: &out)
    case .uint16(let v): append(v, to: &out)
    case .int16(let v): append(v, to: &out)
    case .uint32(let v): append(v, to: &out)
    case .int32(let v): append(v, to: &out)
    case .uint64(let v): append(v, to: &out)
    case .int64(let v): append(v, to: &out)
    case .float32(let v): append(v.bitPattern, to: &out)
    case .float64(let v): append(v.bitPattern, to: &out)
    case .bool(let v): append(UInt8(v ? 1 : 0), to: &out)
    case .string(let v): appendString(v, to: &out)
    case .array(let v): appendArray(v, to: &out)
    }
  }

  private func appendArray(_ array: GGUFArray, to out: inout [UInt8]) {
    append(array.elementType.rawValue, to: &out)
    append(UInt64(array.count), to: &out)
    switch array {
    case .uint8(let v): out += v
    case .int8(let v): v.withUnsafeBytes { out += $0 }
    case .uint16(let v): v.withUnsafeBytes { out += $0 }
    case .int16(let v): v.withUnsafeBytes { out += $0 }
    case .uint32(let v): v.withUnsafeBytes { out += $0 }
    case .int32(let v): v.withUnsafeBytes { out += $0 }
    case .uint64(let v): v.withUnsafeBytes { out += $0 }
    case .int64(let v): v.withUnsafeBytes { out += $0 }
    case .float32(let v): v.withUnsafeBytes { out += $0 }
    case .float64(let v): v.withUnsafeBytes { out += $0 }
    case .bool(let v): out += v.map { $0 ? 1 : 0 }
    case .string(let v): for string in v { appendString(string, to: &out) }
    case .array(let v): for inner in v { appendArray(inner, to: &out) }
    }
  }
}
