// Reads Fixtures/fixture.gguf.bin, written by the reference writer (gguf-py 0.19.0, see
// Fixtures/make_fixture.py), and checks literally every value and tensor the script defines.
import Foundation
import GGUF
import Testing

@Suite struct ForeignFixtureTests {
  let file: GGUFFile

  init() throws {
    guard let url = Fixtures.url("fixture.gguf.bin") else {
      throw Fixtures.FixtureMissing(name: "fixture.gguf.bin")
    }
    file = try GGUFFile(path: url.path)
  }

  @Test func header() {
    #expect(file.version == 3)
    #expect(file.alignment == 32)
    #expect(file.architecture == "fixture")
    #expect(file.metadataKeys.count == 29)
    #expect(file.metadataKeys.first == "general.architecture")
    #expect(
      Array(file.metadataKeys.suffix(3)) == [
        "test.array.string", "test.array.nested", "test.array.nested2",
      ])
  }

  @Test func scalars() throws {
    let m = file.metadata
    #expect(m["test.uint8"] == .uint8(200))
    #expect(m["test.int8"] == .int8(-100))
    #expect(m["test.uint16"] == .uint16(60000))
    #expect(m["test.int16"] == .int16(-30000))
    #expect(m["test.uint32"] == .uint32(4_000_000_000))
    #expect(m["test.int32"] == .int32(-2_000_000_000))
    #expect(m["test.uint64"] == .uint64(9_223_372_036_854_775_813))
    #expect(m["test.int64"] == .int64(-4_611_686_018_427_387_911))
    #expect(m["test.float32"] == .float32(1.5))
    #expect(m["test.float64"] == .float64(-2.25e100))
    #expect(m["test.bool_true"] == .bool(true))
    #expect(m["test.bool_false"] == .bool(false))
    #expect(m["test.string"] == .string("héllo, GGUF ✓"))
    #expect(m["test.empty_string"] == .string(""))
  }

  @Test func typedLookups() throws {
    #expect(try file.int("test.uint8") == 200)
    #expect(try file.int("test.int16") == -30000)
    #expect(try file.int("test.uint32") == 4_000_000_000)
    #expect(try file.int("test.int64") == -4_611_686_018_427_387_911)
    #expect(
      throws: GGUFError.valueOutOfRange(
        key: "test.uint64", value: "9223372036854775813", target: "Int")
    ) {
      try file.int("test.uint64")
    }
    #expect(try file.float("test.float32") == 1.5)
    #expect(try file.float("test.float64") == -2.25e100)
    #expect(try file.float("test.int8") == -100)
    #expect(try file.bool("test.bool_true") == true)
    #expect(try file.string("test.string") == "héllo, GGUF ✓")
    #expect(try file.stringArray("test.array.string") == ["<s>", "", "Ġthe", "日本"])
    #expect(try file.intArray("test.array.int32") == [-1, 2, -3, 4])
    #expect(try file.intArray("test.array.uint16") == [0, 65535])
    #expect(try file.floatArray("test.array.float32") == [0.5, -1.25, 3.0])
    #expect(try file.float32Array("test.array.float32") == [0.5, -1.25, 3.0])
    #expect(try file.floatArray("test.array.int8") == [-128, 0, 127])
    #expect(
      throws: GGUFError.valueOutOfRange(
        key: "test.array.uint64", value: "18446744073709551615 (element 1)", target: "Int")
    ) {
      try file.intArray("test.array.uint64")
    }
    // absent keys are nil, keys of another type throw
    #expect(try file.string("no.such.key") == nil)
    #expect(try file.intArray("no.such.key") == nil)
    #expect(
      throws: GGUFError.typeMismatch(key: "test.string", expected: "an integer", actual: "string")
    ) {
      try file.int("test.string")
    }
    #expect(
      throws: GGUFError.typeMismatch(key: "test.float32", expected: "a string", actual: "float32")
    ) {
      try file.string("test.float32")
    }
    #expect(throws: GGUFError.typeMismatch(key: "test.uint8", expected: "a bool", actual: "uint8"))
    {
      try file.bool("test.uint8")
    }
    #expect(
      throws: GGUFError.typeMismatch(
        key: "test.array.int32", expected: "an array of string", actual: "array of int32")
    ) {
      try file.stringArray("test.array.int32")
    }
    #expect(
      throws: GGUFError.typeMismatch(
        key: "test.array.string", expected: "an array of integers", actual: "array of string")
    ) {
      try file.intArray("test.array.string")
    }
    #expect(
      throws: GGUFError.typeMismatch(key: "test.string", expected: "a number", actual: "string")
    ) {
      try file.float("test.string")
    }
  }

  @Test func arrays() {
    let m = file.metadata
    #expect(m["test.array.uint8"] == .array(.uint8([0, 1, 255])))
    #expect(m["test.array.int8"] == .array(.int8([-128, 0, 127])))
    #expect(m["test.array.uint16"] == .array(.uint16([0, 65535])))
    #expect(m["test.array.int16"] == .array(.int16([-32768, 32767])))
    #expect(m["test.array.uint32"] == .array(.uint32([1, 4_294_967_295])))
    #expect(m["test.array.int32"] == .array(.int32([-1, 2, -3, 4])))
    #expect(m["test.array.uint64"] == .array(.uint64([0, UInt64.max])))
    #expect(m["test.array.int64"] == .array(.int64([Int64.min, Int64.max])))
    #expect(m["test.array.float32"] == .array(.float32([0.5, -1.25, 3.0])))
    #expect(m["test.array.float64"] == .array(.float64([1e-300, -0.1])))
    #expect(m["test.array.bool"] == .array(.bool([true, false, true])))
    #expect(m["test.array.string"] == .array(.string(["<s>", "", "Ġthe", "日本"])))
    #expect(m["test.array.nested"] == .array(.array([.int32([1, 2]), .int32([3])])))
    #expect(
      m["test.array.nested2"]
        == .array(
          .array([.array([.string(["a"]), .string(["b", "c"])]), .array([.string(["d"])])])))
  }

  @Test func tensorDirectory() throws {
    let expected: [(String, GGMLType, [Int], Int, Int)] = [
      ("token_embd.weight", .f32, [4, 3], 48, 1728),
      ("output_norm.weight", .f16, [8], 16, 1792),
      ("cube", .f32, [4, 3, 2], 96, 1824),
      ("blk.0.attn_q.weight", .q8_0, [64, 2], 136, 1920),
      ("blk.0.ffn_up.weight", .q4_1, [64, 3], 120, 2080),
      ("blk.0.ffn_down.weight", .q4_K, [256, 1], 144, 2208),
      ("blk.0.bf16", .bf16, [4, 2], 16, 2368),
    ]
    #expect(file.tensors.count == expected.count)
    for ((name, type, dims, byteCount, offset), tensor) in zip(expected, file.tensors) {
      #expect(tensor.name == name)
      #expect(tensor.type == type)
      #expect(tensor.dimensions == dims)
      #expect(tensor.elementCount == dims.reduce(1, *))
      #expect(tensor.byteCount == byteCount)
      #expect(tensor.offset == offset)
      #expect(file.tensor(named: name) == tensor)
    }
    #expect(file.tensor(named: "missing") == nil)
    #expect(file.dataOffset == 1728)
  }

  @Test func tensorBytes() throws {
    func floats(_ name: String) throws -> [Float] {
      let tensor = try #require(file.tensor(named: name))
      return Array(file.bytes(of: tensor).bindMemory(to: Float.self))
    }
    #expect(try floats("token_embd.weight") == (0..<12).map { Float($0) * 0.25 - 1 })
    #expect(try floats("cube") == (0..<24).map { Float($0) })

    let norm = try #require(file.tensor(named: "output_norm.weight"))
    let halves = file.bytes(of: norm).bindMemory(to: UInt16.self).map {
      Float(Float16(bitPattern: $0))
    }
    #expect(halves == (0..<8).map { Float($0) * 0.5 - 2 })

    // Q8_0: blocks of (fp16 scale 0.5, 32 int8 quants); q[i] = 8i - 127, rows [q, -q], [-q, q]
    let q8 = try #require(file.tensor(named: "blk.0.attn_q.weight"))
    let q = (0..<32).map { Int8($0 * 8 - 127) }
    var expectedQ8: [UInt8] = []
    for block in [q, q.map { -$0 }, q.map { -$0 }, q] {
      expectedQ8 += [0x00, 0x38] + block.map { UInt8(bitPattern: $0) }
    }
    #expect(Array(file.bytes(of: q8)) == expectedQ8)

    // raw tensors: byte i is (7 i) mod 256
    for name in ["blk.0.ffn_up.weight", "blk.0.ffn_down.weight", "blk.0.bf16"] {
      let tensor = try #require(file.tensor(named: name))
      #expect(
        Array(file.bytes(of: tensor))
          == (0..<tensor.byteCount).map { UInt8(truncatingIfNeeded: $0 * 7) })
    }
  }
}
