// Safetensors reading and writing: round trips in every dtype, and hostile files (truncated,
// header lies, offsets outside the data, sizes that do not match, unsupported dtypes) each
// refused with their own error.
import Adapters
import Foundation
import Testing

@Suite struct SafetensorsTests {
  func sample() -> SafetensorsWriter {
    var writer = SafetensorsWriter()
    writer.metadata = ["format": "pt"]
    writer.add(name: "b.weight", dtype: .f32, shape: [2, 3], values: [1, -2, 3.5, 0, 1e-3, -7])
    writer.add(name: "a.weight", dtype: .f16, shape: [4], values: [0.5, -0.25, 2, 65504])
    writer.add(name: "c.weight", dtype: .bf16, shape: [1, 2], values: [1.5, -3])
    return writer
  }

  /// A file from a JSON header and a data section, as hostile tests want them.
  func file(header: String, data: [UInt8], lengthOverride: UInt64? = nil) -> [UInt8] {
    let json = [UInt8](header.utf8)
    var out: [UInt8] = []
    withUnsafeBytes(of: (lengthOverride ?? UInt64(json.count)).littleEndian) { out += $0 }
    return out + json + data
  }

  @Test func roundTripInEveryDType() throws {
    let bytes = sample().serialized()
    let file = try SafetensorsFile(bytes: bytes)
    #expect(file.metadata == ["format": "pt"])
    #expect(file.tensors.map(\.name) == ["a.weight", "b.weight", "c.weight"])
    #expect(file.floats(of: file.tensor(named: "b.weight")!) == [1, -2, 3.5, 0, 1e-3, -7])
    #expect(file.floats(of: file.tensor(named: "a.weight")!) == [0.5, -0.25, 2, 65504])
    #expect(file.floats(of: file.tensor(named: "c.weight")!) == [1.5, -3])
    #expect(file.tensor(named: "a.weight")!.shape == [4])
    // Header padded to 8 bytes, as the reference writer does.
    let length = bytes[0..<8].enumerated().reduce(0) { $0 | Int($1.1) << (8 * $1.0) }
    #expect(length % 8 == 0)
    // Writing what was read gives the same bytes.
    var again = SafetensorsWriter()
    again.metadata = file.metadata
    for tensor in file.tensors {
      again.add(name: tensor.name, dtype: tensor.dtype, shape: tensor.shape, values: file.floats(of: tensor))
    }
    #expect(again.serialized() == bytes)
  }

  @Test func everyTruncationIsRefused() throws {
    let bytes = sample().serialized()
    for count in 0..<bytes.count {
      #expect(throws: AdapterError.self, "prefix of \(count) bytes parsed") {
        try SafetensorsFile(bytes: Array(bytes[..<count]))
      }
    }
  }

  @Test func seededCorruptionNeverEscapesTheFile() throws {
    let original = sample().serialized()
    var state: UInt64 = 12345
    for _ in 0..<2000 {
      var bytes = original
      state = state &* 6364136223846793005 &+ 1442695040888963407
      let position = Int(state >> 33) % bytes.count
      bytes[position] ^= UInt8(truncatingIfNeeded: state >> 20) | 1
      guard let file = try? SafetensorsFile(bytes: bytes) else { continue }
      for tensor in file.tensors {
        #expect(file.floats(of: tensor).count == tensor.elementCount)
      }
    }
  }

  @Test func headerLengthLies() {
    let bytes = file(header: "{}", data: [], lengthOverride: 1000)
    #expect(throws: AdapterError.self) { try SafetensorsFile(bytes: bytes) }
    let huge = file(header: "{}", data: [], lengthOverride: UInt64.max)
    #expect(throws: AdapterError.self) { try SafetensorsFile(bytes: huge) }
  }

  @Test func hostileHeadersAreRefusedWithTheirOwnError() throws {
    let data = [UInt8](repeating: 0, count: 16)
    func error(_ header: String) -> AdapterError? {
      do {
        _ = try SafetensorsFile(bytes: file(header: header, data: data), path: "x.safetensors")
        return nil
      } catch {
        return error
      }
    }
    // Offsets outside the data section.
    let outside = error(#"{"t":{"dtype":"F32","shape":[8],"data_offsets":[0,32]}}"#)
    #expect(outside == .safetensorsTensorOutOfBounds(path: "x.safetensors", tensor: "t", begin: 0, end: 32, dataSize: 16))
    // Shape and byte count disagree.
    let size = error(#"{"t":{"dtype":"F32","shape":[3],"data_offsets":[0,16]}}"#)
    #expect(size == .safetensorsSizeMismatch(path: "x.safetensors", tensor: "t", expected: 12, found: 16))
    // Unsupported dtype.
    let dtype = error(#"{"t":{"dtype":"I8","shape":[16],"data_offsets":[0,16]}}"#)
    #expect(dtype == .unsupportedDType(path: "x.safetensors", tensor: "t", dtype: "I8"))
    // Malformed headers.
    for header in [
      "not json", "[1,2]", #"{"t":1}"#, #"{"t":{"shape":[4],"data_offsets":[0,16]}}"#,
      #"{"t":{"dtype":"F32","shape":[-4],"data_offsets":[0,16]}}"#,
      #"{"t":{"dtype":"F32","shape":[4],"data_offsets":[16,0]}}"#,
      #"{"t":{"dtype":"F32","shape":[4.5],"data_offsets":[0,16]}}"#,
      #"{"t":{"dtype":"F32","shape":[4294967296,4294967296,4294967296],"data_offsets":[0,16]}}"#,
      #"{"__metadata__":{"a":1}}"#,
    ] {
      guard case .badSafetensorsHeader = error(header) else {
        Issue.record("header \(header) gave \(String(describing: error(header)))")
        continue
      }
    }
  }
}
