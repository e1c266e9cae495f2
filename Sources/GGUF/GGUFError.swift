// Every way opening, reading, querying or writing a GGUF file can fail. Each case carries what
// failed (offset, key or tensor) and the values involved, so the message alone is actionable.
#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

public enum GGUFError: Error, Equatable, CustomStringConvertible {
  // ---- the file as a whole
  /// A system call failed (`operation` is "open", "fstat", "mmap", "write", "rename", ...).
  case io(path: String, operation: String, errno: Int32)
  case notARegularFile(path: String)
  case badMagic(found: UInt32)
  case unsupportedVersion(UInt32)
  /// Fewer than `needed` bytes remain at `offset` (the file has `available` bytes from there).
  case truncated(offset: Int, needed: Int, available: Int, context: String)
  /// A key/value or tensor count cannot fit in what remains of the file.
  case countOutOfBounds(context: String, count: UInt64, maximum: Int)

  // ---- metadata
  case invalidValueType(key: String, type: UInt32)
  case stringLengthOutOfBounds(offset: Int, length: UInt64, available: Int, context: String)
  case invalidUTF8(offset: Int, length: Int, context: String)
  case invalidBool(key: String, offset: Int, byte: UInt8)
  case arrayCountOutOfBounds(key: String, offset: Int, count: UInt64, maximum: Int)
  case arrayNestingTooDeep(key: String, depth: Int)
  case duplicateKey(String)
  case invalidAlignment(Int)

  // ---- typed lookups
  case typeMismatch(key: String, expected: String, actual: String)
  case valueOutOfRange(key: String, value: String, target: String)

  // ---- tensor directory
  case duplicateTensor(String)
  case invalidDimensionCount(name: String, count: UInt32)
  case invalidDimension(name: String, index: Int, value: UInt64)
  case elementCountOverflow(name: String, dimensions: [UInt64])
  case unknownTensorType(name: String, type: UInt32)
  case rowNotBlockAligned(name: String, type: String, ne0: Int, blockSize: Int)
  case misalignedTensorOffset(name: String, offset: UInt64, alignment: Int)
  case tensorOutOfBounds(
    name: String, offset: UInt64, byteCount: Int, dataStart: Int, fileSize: Int)

  // ---- writer
  case tensorDataSizeMismatch(name: String, expected: Int, actual: Int)

  public var description: String {
    switch self {
    case .io(let path, let operation, let errno):
      return
        "\(operation) failed for '\(path)': \(String(cString: strerror(errno))) (errno \(errno))"
    case .notARegularFile(let path):
      return "'\(path)' is not a regular file"
    case .badMagic(let found):
      let hex = "0x" + String(found, radix: 16)
      return "not a GGUF file: magic is \(hex), expected 0x46554747 (\"GGUF\")"
    case .unsupportedVersion(let version):
      if version == 1 {
        return "GGUF version 1 is not supported (versions 2 and 3 are); re-convert the model"
      }
      if version > 0xFFFF && version.byteSwapped <= 3 {
        return
          "GGUF version \(version) looks byte-swapped (a big-endian file?); only little-endian versions 2 and 3 are supported"
      }
      return "unsupported GGUF version \(version) (versions 2 and 3 are supported)"
    case .truncated(let offset, let needed, let available, let context):
      return
        "file truncated: \(context) needs \(needed) bytes at offset \(offset), only \(available) remain"
    case .countOutOfBounds(let context, let count, let maximum):
      return "\(context) \(count) cannot fit in the file (at most \(maximum))"
    case .invalidValueType(let key, let type):
      return "metadata key '\(key)' has unknown value type id \(type)"
    case .stringLengthOutOfBounds(let offset, let length, let available, let context):
      return
        "\(context): string at offset \(offset) claims \(length) bytes, only \(available) remain"
    case .invalidUTF8(let offset, let length, let context):
      return "\(context): string of \(length) bytes at offset \(offset) is not valid UTF-8"
    case .invalidBool(let key, let offset, let byte):
      return "metadata key '\(key)': bool at offset \(offset) is \(byte), must be 0 or 1"
    case .arrayCountOutOfBounds(let key, let offset, let count, let maximum):
      return
        "metadata key '\(key)': array at offset \(offset) claims \(count) elements, at most \(maximum) fit in the rest of the file"
    case .arrayNestingTooDeep(let key, let depth):
      return "metadata key '\(key)': arrays nested deeper than \(depth) levels"
    case .duplicateKey(let key):
      return "metadata key '\(key)' appears more than once"
    case .invalidAlignment(let value):
      return "general.alignment is \(value), must be a non-zero power of two"
    case .typeMismatch(let key, let expected, let actual):
      return "metadata key '\(key)' is \(actual), expected \(expected)"
    case .valueOutOfRange(let key, let value, let target):
      return "metadata key '\(key)': value \(value) does not fit in \(target)"
    case .duplicateTensor(let name):
      return "tensor '\(name)' appears more than once"
    case .invalidDimensionCount(let name, let count):
      return "tensor '\(name)' has \(count) dimensions, must be 1 to 4"
    case .invalidDimension(let name, let index, let value):
      return
        "tensor '\(name)': dimension \(index) is \(value), must be at least 1 and at most \(Int.max)"
    case .elementCountOverflow(let name, let dimensions):
      return "tensor '\(name)': element count of dimensions \(dimensions) overflows"
    case .unknownTensorType(let name, let type):
      return "tensor '\(name)' has unknown ggml type id \(type)"
    case .rowNotBlockAligned(let name, let type, let ne0, let blockSize):
      return
        "tensor '\(name)' (\(type)): row length \(ne0) is not a multiple of the block size \(blockSize)"
    case .misalignedTensorOffset(let name, let offset, let alignment):
      return
        "tensor '\(name)': data offset \(offset) is not a multiple of the alignment \(alignment)"
    case .tensorOutOfBounds(let name, let offset, let byteCount, let dataStart, let fileSize):
      return
        "tensor '\(name)': \(byteCount) bytes at data offset \(offset) (data starts at \(dataStart)) run past the end of the file (\(fileSize) bytes)"
    case .tensorDataSizeMismatch(let name, let expected, let actual):
      return
        "tensor '\(name)': got \(actual) bytes of data, its type and dimensions need \(expected)"
    }
  }
}
