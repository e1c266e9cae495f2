// ByteReader: a cursor over untrusted bytes. Every read first checks that the bytes it needs
// remain, so no read can leave the buffer; lengths and counts are checked by the caller
// against `remaining` before anything is allocated for them.

#if _endian(big)
  #error("the GGUF reader and writer assume a little-endian host (GGUF files are little-endian)")
#endif

struct ByteReader {
  let bytes: UnsafeRawBufferPointer
  private(set) var offset: Int = 0

  init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

  var remaining: Int { bytes.count - offset }

  func require(_ count: Int, _ context: @autoclosure () -> String) throws(GGUFError) {
    guard count >= 0, count <= remaining else {
      throw .truncated(offset: offset, needed: count, available: remaining, context: context())
    }
  }

  mutating func read<T: FixedWidthInteger>(
    _: T.Type, _ context: @autoclosure () -> String
  ) throws(GGUFError) -> T {
    try require(MemoryLayout<T>.size, context())
    let value = T(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: T.self))
    offset += MemoryLayout<T>.size
    return value
  }

  /// A length-prefixed (uint64) UTF-8 string; the length is checked against what remains.
  mutating func readString(_ context: @autoclosure () -> String) throws(GGUFError) -> String {
    let start = offset
    let length = try read(UInt64.self, context())
    guard length <= UInt64(remaining) else {
      throw .stringLengthOutOfBounds(
        offset: start, length: length, available: remaining, context: context())
    }
    let count = Int(length)
    let raw = UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + count])
    let string = raw.withMemoryRebound(to: UInt8.self) { String(validating: $0, as: UTF8.self) }
    guard let string else { throw .invalidUTF8(offset: offset, length: count, context: context()) }
    offset += count
    return string
  }

  /// `count` trivially-copyable little-endian values; the caller has checked that
  /// `count * MemoryLayout<T>.size` bytes remain (checked again here).
  mutating func readArray<T: BitwiseCopyable>(
    _: T.Type, count: Int, _ context: @autoclosure () -> String
  ) throws(GGUFError) -> [T] {
    let (byteCount, overflow) = count.multipliedReportingOverflow(by: MemoryLayout<T>.stride)
    guard !overflow else {
      throw .truncated(offset: offset, needed: Int.max, available: remaining, context: context())
    }
    try require(byteCount, context())
    let source = UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + byteCount])
    let values = [T](unsafeUninitializedCapacity: count) { buffer, initialized in
      UnsafeMutableRawBufferPointer(buffer).copyMemory(from: source)
      initialized = count
    }
    offset += byteCount
    return values
  }

  mutating func skip(_ count: Int, _ context: @autoclosure () -> String) throws(GGUFError) {
    try require(count, context())
    offset += count
  }
}
