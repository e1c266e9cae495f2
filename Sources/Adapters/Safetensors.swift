// Safetensors files (Hugging Face): an 8-byte little-endian header length, a JSON header
// {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {string: string}}, then
// the data section. The reader treats the file as hostile: header length, every offset, shape
// product and byte count are checked before any tensor is touched. Only the float dtypes
// adapters use (F32, F16, BF16) are accepted. The writer emits the same layout (keys sorted,
// header padded with spaces to 8 bytes, as the reference implementation does).
import CKernels
import DurableFiles
import Foundation

public enum SafetensorsDType: String, Sendable, CaseIterable {
  case f32 = "F32"
  case f16 = "F16"
  case bf16 = "BF16"

  public var byteSize: Int { self == .f32 ? 4 : 2 }

  /// The ggml type id with the same element encoding (so CKernels converts rows).
  var ggmlType: UInt32 {
    switch self {
    case .f32: return UInt32(DQ_TYPE_F32)
    case .f16: return UInt32(DQ_TYPE_F16)
    case .bf16: return UInt32(DQ_TYPE_BF16)
    }
  }
}

public struct SafetensorsFile: Sendable {
  public struct Tensor: Sendable, Equatable {
    public let name: String
    public let dtype: SafetensorsDType
    public let shape: [Int]
    /// Byte range inside the data section (checked against it).
    public let range: Range<Int>
    public var elementCount: Int { shape.reduce(1, *) }
  }

  /// Headers larger than this are refused before they are parsed.
  public static let maxHeaderSize = 100 << 20

  public let path: String
  public let metadata: [String: String]
  /// Tensors sorted by name.
  public let tensors: [Tensor]
  private let index: [String: Int]
  private let data: [UInt8]

  public init(path: String) throws(AdapterError) {
    try AdapterFile.requireRegularFile(path)
    guard let contents = FileManager.default.contents(atPath: path) else {
      throw .io(path: path, reason: "cannot read the file (missing or unreadable)")
    }
    try self.init(bytes: [UInt8](contents), path: path)
  }

  public init(bytes: [UInt8], path: String = "<memory>") throws(AdapterError) {
    func bad(_ reason: String) -> AdapterError { .badSafetensorsHeader(path: path, reason: reason) }
    guard bytes.count >= 8 else { throw bad("the file has \(bytes.count) bytes, fewer than the 8-byte header length") }
    var length: UInt64 = 0
    for i in 0..<8 { length |= UInt64(bytes[i]) << (8 * UInt64(i)) }
    guard length <= UInt64(bytes.count - 8) else {
      throw bad("header length \(length) exceeds the \(bytes.count - 8) bytes after it (truncated file?)")
    }
    guard length <= UInt64(Self.maxHeaderSize) else {
      throw bad("header length \(length) exceeds the limit of \(Self.maxHeaderSize) bytes")
    }
    let headerEnd = 8 + Int(length)
    let json: Any
    do {
      json = try JSONSerialization.jsonObject(with: Data(bytes[8..<headerEnd]))
    } catch {
      throw bad("the header is not valid JSON")
    }
    guard let header = json as? [String: Any] else { throw bad("the header is not a JSON object") }
    let dataSize = bytes.count - headerEnd
    var metadata: [String: String] = [:]
    var tensors: [Tensor] = []
    for (name, value) in header {
      if name == "__metadata__" {
        guard let dictionary = value as? [String: Any] else { throw bad("__metadata__ is not an object") }
        for (key, item) in dictionary {
          guard let string = item as? String else { throw bad("__metadata__.\(key) is not a string") }
          metadata[key] = string
        }
        continue
      }
      guard let entry = value as? [String: Any] else { throw bad("entry '\(name)' is not an object") }
      guard let dtypeName = entry["dtype"] as? String else { throw bad("tensor '\(name)' has no dtype string") }
      guard let dtype = SafetensorsDType(rawValue: dtypeName) else {
        throw .unsupportedDType(path: path, tensor: name, dtype: dtypeName)
      }
      guard let shapeValues = entry["shape"] as? [Any], shapeValues.count <= 8 else {
        throw bad("tensor '\(name)' has no shape array of at most 8 dimensions")
      }
      var shape: [Int] = []
      var elements = 1
      for item in shapeValues {
        guard let dimension = Self.integer(item), dimension >= 0 else {
          throw bad("tensor '\(name)' has a shape entry that is not a non-negative integer")
        }
        let (product, overflow) = elements.multipliedReportingOverflow(by: dimension)
        guard !overflow else { throw bad("tensor '\(name)' shape \(shapeValues) overflows") }
        shape.append(dimension)
        elements = product
      }
      guard let offsets = entry["data_offsets"] as? [Any], offsets.count == 2,
        let begin = Self.integer(offsets[0]), let end = Self.integer(offsets[1]), begin >= 0,
        begin <= end
      else { throw bad("tensor '\(name)' has no valid data_offsets [begin, end]") }
      guard end <= dataSize else {
        throw .safetensorsTensorOutOfBounds(
          path: path, tensor: name, begin: begin, end: end, dataSize: dataSize)
      }
      let (needed, overflow) = elements.multipliedReportingOverflow(by: dtype.byteSize)
      guard !overflow, needed == end - begin else {
        throw .safetensorsSizeMismatch(
          path: path, tensor: name, expected: overflow ? Int.max : needed, found: end - begin)
      }
      tensors.append(Tensor(name: name, dtype: dtype, shape: shape, range: begin..<end))
    }
    tensors.sort { $0.name < $1.name }
    self.path = path
    self.metadata = metadata
    self.tensors = tensors
    index = Dictionary(uniqueKeysWithValues: tensors.enumerated().map { ($1.name, $0) })
    data = Array(bytes[headerEnd...])
  }

  /// JSON numbers as exact integers (JSONSerialization hands out NSNumber).
  private static func integer(_ value: Any) -> Int? {
    if let number = value as? NSNumber {
      let double = number.doubleValue
      guard double.rounded() == double, abs(double) < 9.0e15 else { return nil }
      return number.intValue
    }
    return nil
  }

  public func tensor(named name: String) -> Tensor? { index[name].map { tensors[$0] } }

  /// The tensor's raw bytes.
  public func bytes(of tensor: Tensor) -> ArraySlice<UInt8> { data[tensor.range] }

  /// The tensor's elements converted to fp32, row-major as stored.
  public func floats(of tensor: Tensor) -> [Float] {
    let count = tensor.elementCount
    guard count > 0 else { return [] }
    return [Float](unsafeUninitializedCapacity: count) { out, initialized in
      data.withUnsafeBytes { raw in
        // The range was checked against the data section when the header was parsed.
        dq_dequantize_row(
          tensor.dtype.ggmlType, raw.baseAddress! + tensor.range.lowerBound, out.baseAddress!,
          Int64(count))
      }
      initialized = count
    }
  }
}

/// Builds a safetensors file in memory and writes it.
public struct SafetensorsWriter: Sendable {
  private var entries: [(name: String, dtype: SafetensorsDType, shape: [Int], data: [UInt8])] = []
  public var metadata: [String: String] = [:]

  public init() {}

  /// Adds `values` (row-major, `shape`) converted to `dtype`.
  public mutating func add(name: String, dtype: SafetensorsDType, shape: [Int], values: [Float]) {
    precondition(shape.reduce(1, *) == values.count, "shape \(shape) does not hold \(values.count) values")
    var data = [UInt8](repeating: 0, count: values.count * dtype.byteSize)
    if !values.isEmpty {
      data.withUnsafeMutableBytes { out in
        dq_quantize_row(dtype.ggmlType, values, out.baseAddress!, Int64(values.count))
      }
    }
    entries.append((name, dtype, shape, data))
  }

  public func serialized() -> [UInt8] {
    let sorted = entries.sorted { $0.name < $1.name }
    var header: [String: Any] = [:]
    var offset = 0
    for entry in sorted {
      header[entry.name] = [
        "dtype": entry.dtype.rawValue, "shape": entry.shape,
        "data_offsets": [offset, offset + entry.data.count],
      ] as [String: Any]
      offset += entry.data.count
    }
    if !metadata.isEmpty { header["__metadata__"] = metadata }
    // Serialising dictionaries of strings, ints and arrays cannot fail.
    var json = [UInt8](
      (try? JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])) ?? Data("{}".utf8))
    while json.count % 8 != 0 { json.append(0x20) }
    var out: [UInt8] = []
    out.reserveCapacity(8 + json.count + offset)
    withUnsafeBytes(of: UInt64(json.count).littleEndian) { out += $0 }
    out += json
    for entry in sorted { out += entry.data }
    return out
  }

  public func write(to path: String) throws(AdapterError) {
    do {
      try DurableFile.write(serialized(), to: path)
    } catch {
      throw .storage(error)
    }
  }
}
