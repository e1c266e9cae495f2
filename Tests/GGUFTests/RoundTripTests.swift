// Writer → reader: every value type, nested and empty arrays, tensors of several types and
// alignments, written atomically to disk and read back through the mapping.
import Foundation
import GGUF
import Testing

/// Every value type at least once, including empty and nested arrays.
let allValues: [(String, GGUFValue)] = [
  ("general.architecture", .string("llama")),
  ("v.uint8", .uint8(255)),
  ("v.int8", .int8(-128)),
  ("v.uint16", .uint16(65535)),
  ("v.int16", .int16(-32768)),
  ("v.uint32", .uint32(.max)),
  ("v.int32", .int32(.min)),
  ("v.uint64", .uint64(.max)),
  ("v.int64", .int64(.min)),
  ("v.float32", .float32(-0.125)),
  ("v.float64", .float64(.pi)),
  ("v.bool", .bool(true)),
  ("v.string", .string("ünïcødé ✓ \u{0}nul")),
  ("v.empty", .string("")),
  ("a.uint8", .array(.uint8([1, 2, 3]))),
  ("a.int8", .array(.int8([-1, 0, 1]))),
  ("a.uint16", .array(.uint16([7]))),
  ("a.int16", .array(.int16([-7, 7]))),
  ("a.uint32", .array(.uint32([0, .max]))),
  ("a.int32", .array(.int32([.min, .max]))),
  ("a.uint64", .array(.uint64([.max]))),
  ("a.int64", .array(.int64([.min, 0]))),
  ("a.float32", .array(.float32([1, -2.5, .infinity]))),
  ("a.float64", .array(.float64([1e-308, -1e308]))),
  ("a.bool", .array(.bool([false, true]))),
  ("a.string", .array(.string(["a", "", "Ġb"]))),
  ("a.empty", .array(.float32([]))),
  (
    "a.nested",
    .array(.array([.int32([1, 2]), .string(["x"]), .array([.bool([true])]), .uint8([])]))
  ),
  ("a.emptyNested", .array(.array([]))),
]

/// (name, type, dims) of tensors in several types; data is a byte pattern of the right size.
let tensorSpecs: [(String, GGMLType, [Int])] = [
  ("f32", .f32, [3, 5]),
  ("f16", .f16, [7]),
  ("bf16", .bf16, [2, 2, 2, 2]),
  ("q4_0", .q4_0, [64, 3]),
  ("q4_1", .q4_1, [32, 1, 2]),
  ("q8_0", .q8_0, [96, 2]),
  ("q4_K", .q4_K, [256, 2]),
  ("q6_K", .q6_K, [512]),
]

func makeWriter(alignment: Int?) throws -> GGUFWriter {
  var writer = GGUFWriter()
  for (key, value) in allValues { writer.set(key, value) }
  if let alignment { writer.set("general.alignment", .uint32(UInt32(alignment))) }
  for (index, (name, type, dims)) in tensorSpecs.enumerated() {
    let count = type.rowSize(dims[0])! * dims.dropFirst().reduce(1, *)
    let data = (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ index) }
    try writer.addTensor(name: name, type: type, dimensions: dims, data: data)
  }
  return writer
}

@Suite struct RoundTripTests {
  @Test(arguments: [nil, 1, 8, 32, 64, 4096] as [Int?])
  func roundTrip(alignment: Int?) throws {
    let writer = try makeWriter(alignment: alignment)
    let directory = try makeTemporaryDirectory()
    defer { try? FileManager.default.removeItem(at: directory) }
    let path = directory.appendingPathComponent("model.gguf").path
    try writer.write(to: path)

    // the file on disk is exactly serialized(), and no temporary file is left behind
    #expect([UInt8](try Data(contentsOf: URL(fileURLWithPath: path))) == (try writer.serialized()))
    #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path) == ["model.gguf"])

    let file = try GGUFFile(path: path)
    let expectedAlignment = alignment ?? 32
    #expect(file.version == 3)
    #expect(file.alignment == expectedAlignment)
    var expectedKeys = allValues.map(\.0)
    if alignment != nil { expectedKeys.append("general.alignment") }
    #expect(file.metadataKeys == expectedKeys)
    for (key, value) in allValues {
      #expect(file.metadata[key] == value, "\(key)")
    }
    #expect(file.dataOffset % expectedAlignment == 0)
    #expect(file.tensors.map(\.name) == tensorSpecs.map(\.0))
    for (index, (name, type, dims)) in tensorSpecs.enumerated() {
      let tensor = try #require(file.tensor(named: name))
      #expect(tensor.type == type)
      #expect(tensor.dimensions == dims)
      #expect(tensor.elementCount == dims.reduce(1, *))
      #expect(tensor.offset % expectedAlignment == 0)
      let expected = (0..<tensor.byteCount).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ index) }
      #expect(Array(file.bytes(of: tensor)) == expected)
    }
  }

  @Test func overwritingKeyKeepsPositionAndReplacingFileIsAtomic() throws {
    var writer = GGUFWriter()
    writer.set("a", .uint8(1))
    writer.set("b", .uint8(2))
    writer.set("a", .string("again"))
    let directory = try makeTemporaryDirectory()
    defer { try? FileManager.default.removeItem(at: directory) }
    let path = directory.appendingPathComponent("x.gguf").path
    try writer.write(to: path)
    let first = try GGUFFile(path: path)  // stays mapped while the file is replaced
    writer.removeValue(forKey: "b")
    try writer.write(to: path)
    let second = try GGUFFile(path: path)
    #expect(first.metadataKeys == ["a", "b"])
    #expect(first.metadata["a"] == .string("again"))
    #expect(second.metadataKeys == ["a"])
  }

  @Test func writerRefusesBadTensors() throws {
    var writer = GGUFWriter()
    #expect(throws: GGUFError.tensorDataSizeMismatch(name: "t", expected: 36, actual: 35)) {
      try writer.addTensor(
        name: "t", type: .q4_0, dimensions: [32, 2], data: [UInt8](repeating: 0, count: 35))
    }
    #expect(throws: GGUFError.rowNotBlockAligned(name: "t", type: "Q8_0", ne0: 33, blockSize: 32)) {
      try writer.addTensor(name: "t", type: .q8_0, dimensions: [33], data: [])
    }
    #expect(throws: GGUFError.unknownTensorType(name: "t", type: 99)) {
      try writer.addTensor(name: "t", type: GGMLType(rawValue: 99), dimensions: [1], data: [0])
    }
    #expect(throws: GGUFError.invalidDimensionCount(name: "t", count: 5)) {
      try writer.addTensor(name: "t", type: .f32, dimensions: [1, 1, 1, 1, 1], data: [0, 0, 0, 0])
    }
    #expect(throws: GGUFError.invalidDimension(name: "t", index: 1, value: 0)) {
      try writer.addTensor(name: "t", type: .f32, dimensions: [1, 0], data: [])
    }
    try writer.addTensor(name: "t", type: .f32, dimensions: [1], data: [0, 0, 0, 0])
    #expect(throws: GGUFError.duplicateTensor("t")) {
      try writer.addTensor(name: "t", type: .f32, dimensions: [1], data: [0, 0, 0, 0])
    }
    writer.set("general.alignment", .uint32(24))
    #expect(throws: GGUFError.invalidAlignment(24)) { try writer.serialized() }
    writer.set("general.alignment", .string("32"))
    #expect(
      throws: GGUFError.typeMismatch(
        key: "general.alignment", expected: "an integer", actual: "string")
    ) {
      try writer.serialized()
    }
    #expect(throws: GGUFError.self) { try writer.write(to: "/nonexistent-dir/x.gguf") }
  }

  @Test func typeTable() {
    #expect(GGMLType.q4_1.name == "Q4_1")
    #expect(GGMLType.q4_K.description == "Q4_K")
    #expect(GGMLType(rawValue: 99).name == "type 99")
    #expect(GGMLType.q8_0.isSupported)
    #expect(!GGMLType(rawValue: 99).isSupported)
    #expect(GGMLType.q8_0.rowSize(64) == 68)
    #expect(GGMLType.q8_0.rowSize(65) == nil)
    #expect(
      GGMLType.f32.rawValue == 0 && GGMLType.bf16.rawValue == 30 && GGMLType.q6_K.rawValue == 14)
  }
}

/// The writer's output, byte for byte, is the committed `writer_output.gguf.bin`, which
/// `Fixtures/check_writer_output.py` reads with gguf-py's GGUFReader. Regenerate with
/// `GGUF_UPDATE_FIXTURES=1 swift test --filter GGUFTests`, then run the script.
@Test func writerOutputMatchesFileCheckedByGGUFPy() throws {
  let bytes = try makeWriter(alignment: 64).serialized()
  if ProcessInfo.processInfo.environment["GGUF_UPDATE_FIXTURES"] == "1" {
    let url = Fixtures.sourceDirectory.appendingPathComponent("writer_output.gguf.bin")
    try Data(bytes).write(to: url)
  }
  #expect(bytes == (try Fixtures.bytes("writer_output.gguf.bin")))
}
