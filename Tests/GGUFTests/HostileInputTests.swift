// Hostile and damaged files: every truncation, seeded random corruption, and one hand-made
// file per check the parser makes, each expected to fail with its own error.
import Foundation
import GGUF
import Testing

@Suite struct HostileInputTests {
  @Test(arguments: ["fixture.gguf.bin", "writer_output.gguf.bin"])
  func truncationAtEveryOffset(fixture: String) throws {
    let bytes = try Fixtures.bytes(fixture)
    let full = try GGUFFile(bytes: bytes)
    // Padding after the last tensor is optional: prefixes that keep every tensor parse.
    let end = full.tensors.map { $0.offset + $0.byteCount }.max() ?? full.dataOffset
    for count in 0..<bytes.count {
      let error = parseError(Array(bytes[..<count]))
      if count < end {
        #expect(error != nil, "prefix of \(count) bytes parsed")
      } else {
        #expect(error == nil, "prefix of \(count) bytes: \(error.map { "\($0)" } ?? "")")
      }
    }
  }

  @Test(arguments: ["fixture.gguf.bin", "writer_output.gguf.bin"])
  func seededRandomCorruption(fixture: String) throws {
    let original = try Fixtures.bytes(fixture)
    let headerEnd = try GGUFFile(bytes: original).dataOffset
    var random = SeededGenerator(seed: 0x6767_7566)
    var parsed = 0
    for iteration in 0..<2000 {
      var bytes = original
      for _ in 0..<Int.random(in: 1...4, using: &random) {
        // mostly in the header, where the parser's decisions are
        let limit = iteration % 4 == 0 ? bytes.count : headerEnd
        let position = Int.random(in: 0..<limit, using: &random)
        bytes[position] ^= UInt8.random(in: 1...255, using: &random)
      }
      guard let file = try? GGUFFile(bytes: bytes) else { continue }
      parsed += 1
      // a file that parses must only describe bytes inside itself
      var checksum = 0
      for tensor in file.tensors {
        #expect(tensor.offset >= file.dataOffset && tensor.offset + tensor.byteCount <= bytes.count)
        for byte in file.bytes(of: tensor) { checksum &+= Int(byte) }
      }
      _ = checksum
    }
    #expect(parsed > 0)  // some flips (in data, in float values) leave a valid file
  }

  // ---- one file per check

  @Test func badMagic() {
    var raw = RawGGUF(tensorCount: 0, keyValueCount: 0)
    raw.bytes.replaceSubrange(0..<4, with: Array("GGML".utf8))
    #expect(parseError(raw.bytes) == .badMagic(found: 0x4C4D_4747))
  }

  @Test(arguments: [0, 1, 4, 0x0300_0000] as [UInt32])
  func unsupportedVersion(version: UInt32) {
    let raw = RawGGUF(version: version, tensorCount: 0, keyValueCount: 0)
    #expect(parseError(raw.bytes) == .unsupportedVersion(version))
  }

  @Test func emptyAndTinyFiles() throws {
    #expect(parseError([]) == .truncated(offset: 0, needed: 4, available: 0, context: "magic"))
    #expect(
      parseError(Array("GGU".utf8))
        == .truncated(offset: 0, needed: 4, available: 3, context: "magic"))
    #expect(
      parseError(Array(RawGGUF(tensorCount: 0, keyValueCount: 0).bytes.prefix(20)))
        == .truncated(offset: 16, needed: 8, available: 4, context: "metadata key/value count"))
    // a valid empty file
    let empty = try GGUFFile(bytes: RawGGUF(tensorCount: 0, keyValueCount: 0).bytes)
    #expect(empty.metadataKeys.isEmpty && empty.tensors.isEmpty && empty.architecture == nil)

    let directory = try makeTemporaryDirectory()
    defer { try? FileManager.default.removeItem(at: directory) }
    let path = directory.appendingPathComponent("empty.gguf").path
    #expect(FileManager.default.createFile(atPath: path, contents: Data()))
    #expect(throws: GGUFError.truncated(offset: 0, needed: 4, available: 0, context: "magic")) {
      try GGUFFile(path: path)
    }
    #expect(throws: GGUFError.notARegularFile(path: directory.path)) {
      try GGUFFile(path: directory.path)
    }
    // A FIFO as the model used to block in open() until a writer came (forever).
    let fifo = directory.appendingPathComponent("model.fifo").path
    #expect(mkfifo(fifo, 0o600) == 0)
    #expect(throws: GGUFError.notARegularFile(path: fifo)) {
      try GGUFFile(path: fifo)
    }
    let missing = directory.appendingPathComponent("missing.gguf").path
    #expect(throws: GGUFError.io(path: missing, operation: "open", errno: ENOENT)) {
      try GGUFFile(path: missing)
    }
  }

  @Test func hugeCounts() {
    let pairs = RawGGUF(tensorCount: 0, keyValueCount: 1 << 40)
    #expect(
      parseError(pairs.bytes)
        == .countOutOfBounds(context: "metadata key/value count", count: 1 << 40, maximum: 0))
    let tensors = RawGGUF(tensorCount: .max, keyValueCount: 0)
    #expect(
      parseError(tensors.bytes)
        == .countOutOfBounds(context: "tensor count", count: .max, maximum: 0))

    var array = RawGGUF(tensorCount: 0, keyValueCount: 1)
    array.string("a")
    array.u32(9)  // array
    array.u32(4)  // of uint32
    array.u64(1 << 60)  // count, at offset 24 + 9 + 4 + 4 = 41
    array.u64(0)  // 8 bytes remain: at most 2 uint32
    #expect(
      parseError(array.bytes)
        == .arrayCountOutOfBounds(key: "a", offset: 41, count: 1 << 60, maximum: 2))

    var strings = RawGGUF(tensorCount: 0, keyValueCount: 1)
    strings.string("s")
    strings.u32(9)
    strings.u32(8)  // of string: each needs at least its 8-byte length
    strings.u64(3)
    strings.u64(0)
    strings.u64(0)
    #expect(
      parseError(strings.bytes)
        == .arrayCountOutOfBounds(key: "s", offset: 41, count: 3, maximum: 2))
  }

  @Test func stringLengthBeyondFile() {
    var key = RawGGUF(tensorCount: 0, keyValueCount: 1)
    key.u64(1000)
    key.bytes += Array("abcdefghijklm".utf8)  // 13 bytes: room for one pair
    #expect(
      parseError(key.bytes)
        == .stringLengthOutOfBounds(
          offset: 24, length: 1000, available: 13, context: "key of metadata pair #0"))

    var value = RawGGUF(tensorCount: 0, keyValueCount: 1)
    value.string("k")
    value.u32(8)
    value.u64(.max)  // at offset 24 + 9 + 4 = 37
    value.u8(0)
    #expect(
      parseError(value.bytes)
        == .stringLengthOutOfBounds(offset: 37, length: .max, available: 1, context: "value of 'k'")
    )
  }

  @Test func invalidValues() {
    var bool = RawGGUF(tensorCount: 0, keyValueCount: 1)
    bool.string("b")
    bool.u32(7)
    bool.u8(2)
    #expect(parseError(bool.bytes) == .invalidBool(key: "b", offset: 37, byte: 2))

    var utf8 = RawGGUF(tensorCount: 0, keyValueCount: 1)
    utf8.string("s")
    utf8.u32(8)
    utf8.u64(2)
    utf8.bytes += [0xFF, 0xFE]
    #expect(parseError(utf8.bytes) == .invalidUTF8(offset: 45, length: 2, context: "value of 's'"))

    var type = RawGGUF(tensorCount: 0, keyValueCount: 1)
    type.string("x")
    type.u32(13)
    type.u64(0)
    #expect(parseError(type.bytes) == .invalidValueType(key: "x", type: 13))

    var elementType = RawGGUF(tensorCount: 0, keyValueCount: 1)
    elementType.string("x")
    elementType.u32(9)
    elementType.u32(0xFFFF_FFFF)
    elementType.u64(0)
    #expect(parseError(elementType.bytes) == .invalidValueType(key: "x", type: 0xFFFF_FFFF))

    var nested = RawGGUF(tensorCount: 0, keyValueCount: 1)
    nested.string("n")
    nested.u32(9)
    for _ in 0..<20 {
      nested.u32(9)
      nested.u64(1)
    }
    nested.u32(4)
    nested.u64(0)
    #expect(parseError(nested.bytes) == .arrayNestingTooDeep(key: "n", depth: 8))

    var duplicate = RawGGUF(tensorCount: 0, keyValueCount: 2)
    duplicate.keyU32("k", 1)
    duplicate.keyU32("k", 2)
    #expect(parseError(duplicate.bytes) == .duplicateKey("k"))
  }

  @Test(arguments: [0, 3, 48] as [UInt32])
  func invalidAlignment(alignment: UInt32) {
    var raw = RawGGUF(tensorCount: 0, keyValueCount: 1)
    raw.keyU32("general.alignment", alignment)
    #expect(parseError(raw.bytes) == .invalidAlignment(Int(alignment)))
  }

  @Test func alignmentOfWrongType() {
    var raw = RawGGUF(tensorCount: 0, keyValueCount: 1)
    raw.string("general.alignment")
    raw.u32(8)
    raw.string("32")
    #expect(
      parseError(raw.bytes)
        == .typeMismatch(key: "general.alignment", expected: "an integer", actual: "string"))
  }

  /// One tensor "t" with the given fields, then 16 data bytes at the default alignment.
  func oneTensor(dims: [UInt64], type: UInt32 = 0, offset: UInt64 = 0) -> [UInt8] {
    var raw = RawGGUF(tensorCount: 1, keyValueCount: 0)
    raw.tensor("t", dims: dims, type: type, offset: offset)
    raw.data(count: 16)
    return raw.bytes
  }

  @Test func tensorChecks() {
    #expect(parseError(oneTensor(dims: [4])) == nil)
    #expect(
      parseError(oneTensor(dims: [1 << 32, 1 << 32, 1 << 32]))
        == .elementCountOverflow(name: "t", dimensions: [1 << 32, 1 << 32, 1 << 32]))
    #expect(parseError(oneTensor(dims: [4], type: 99)) == .unknownTensorType(name: "t", type: 99))
    #expect(parseError(oneTensor(dims: [4], type: 4)) == .unknownTensorType(name: "t", type: 4))  // retired Q4_2
    #expect(
      parseError(oneTensor(dims: [4], offset: 4))
        == .misalignedTensorOffset(name: "t", offset: 4, alignment: 32))
    // header 24 + info 8+1+4+8+4+8 = 57 bytes, data at 64, file of 80 bytes
    #expect(
      parseError(oneTensor(dims: [4], offset: 1 << 40))
        == .tensorOutOfBounds(
          name: "t", offset: 1 << 40, byteCount: 16, dataStart: 64, fileSize: 80))
    #expect(
      parseError(oneTensor(dims: [4], offset: 32))
        == .tensorOutOfBounds(name: "t", offset: 32, byteCount: 16, dataStart: 64, fileSize: 80))
    #expect(
      parseError(oneTensor(dims: [5]))
        == .tensorOutOfBounds(name: "t", offset: 0, byteCount: 20, dataStart: 64, fileSize: 80))
    #expect(
      parseError(oneTensor(dims: [33], type: 8))
        == .rowNotBlockAligned(name: "t", type: "Q8_0", ne0: 33, blockSize: 32))
    #expect(
      parseError(oneTensor(dims: [4, 0])) == .invalidDimension(name: "t", index: 1, value: 0))
    #expect(
      parseError(oneTensor(dims: [.max])) == .invalidDimension(name: "t", index: 0, value: .max))
    #expect(parseError(oneTensor(dims: [])) == .invalidDimensionCount(name: "t", count: 0))
    #expect(
      parseError(oneTensor(dims: [1, 1, 1, 1, 1])) == .invalidDimensionCount(name: "t", count: 5))

    var duplicate = RawGGUF(tensorCount: 2, keyValueCount: 0)
    duplicate.tensor("t", dims: [4], type: 0, offset: 0)
    duplicate.tensor("t", dims: [4], type: 0, offset: 0)
    duplicate.data(count: 16)
    #expect(parseError(duplicate.bytes) == .duplicateTensor("t"))
  }

  @Test func messagesNameWhatFailed() {
    let cases: [(GGUFError, [String])] = [
      (.unknownTensorType(name: "blk.0.attn_q.weight", type: 99), ["blk.0.attn_q.weight", "99"]),
      (
        .tensorOutOfBounds(name: "t", offset: 64, byteCount: 16, dataStart: 64, fileSize: 80),
        ["'t'", "64", "16", "80"]
      ),
      (
        .arrayCountOutOfBounds(
          key: "tokenizer.ggml.tokens", offset: 41, count: 1 << 60, maximum: 2),
        ["tokenizer.ggml.tokens", "41", "\(1 << 60)"]
      ),
      (
        .truncated(offset: 16, needed: 8, available: 4, context: "tensor count"),
        ["16", "8", "4", "tensor count"]
      ),
      (.unsupportedVersion(1), ["version 1"]),
      (.unsupportedVersion(0x0300_0000), ["big-endian"]),
      (.badMagic(found: 0x4C4D_4747), ["0x4c4d4747"]),
      (.io(path: "/x", operation: "open", errno: ENOENT), ["/x", "open", "No such file"]),
    ]
    for (error, fragments) in cases {
      for fragment in fragments {
        #expect(error.description.contains(fragment), "\(error.description) lacks \(fragment)")
      }
    }
  }
}
