// Helpers shared by the GGUF tests: fixture and model paths, a seeded generator, and RawGGUF,
// a byte builder for hand-made (often hostile) files that the writer would refuse to produce.
import Foundation
import GGUF

enum Fixtures {
  static func url(_ name: String) -> URL? {
    Bundle.module.url(forResource: name, withExtension: nil, subdirectory: "Fixtures")
  }

  static func bytes(_ name: String) throws -> [UInt8] {
    guard let url = url(name) else { throw FixtureMissing(name: name) }
    return [UInt8](try Data(contentsOf: url))
  }

  /// The source folder of the fixtures (for regenerating them), found from this file's path.
  static var sourceDirectory: URL {
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")
  }

  struct FixtureMissing: Error, CustomStringConvertible {
    let name: String
    var description: String { "fixture \(name) is not in the test bundle" }
  }
}

/// The package root: the first directory above this file that holds Package.swift.
let packageRoot: URL? = {
  var directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
  while directory.path != "/" {
    if FileManager.default.fileExists(
      atPath: directory.appendingPathComponent("Package.swift").path)
    {
      return directory
    }
    directory = directory.deletingLastPathComponent()
  }
  return nil
}()

let defaultModelPath: String? = {
  guard let root = packageRoot else { return nil }
  let path = root.appendingPathComponent("models/SmolLM2-135M-Instruct.Q4_1.gguf").path
  return FileManager.default.fileExists(atPath: path) ? path : nil
}()

/// A fresh temporary directory, removed by the caller.
func makeTemporaryDirectory() throws -> URL {
  let url = FileManager.default.temporaryDirectory.appendingPathComponent(
    "gguf-tests-\(UUID().uuidString)")
  try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
  return url
}

/// SplitMix64: small, seeded, reproducible.
struct SeededGenerator: RandomNumberGenerator {
  var state: UInt64
  init(seed: UInt64) { state = seed }
  mutating func next() -> UInt64 {
    state &+= 0x9E37_79B9_7F4A_7C15
    var z = state
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
  }
}

/// Little-endian GGUF bytes, field by field.
struct RawGGUF {
  var bytes: [UInt8] = []

  init() {}

  /// "GGUF", version, tensor count, key/value count.
  init(version: UInt32 = 3, tensorCount: UInt64, keyValueCount: UInt64) {
    u32(0x4655_4747)
    u32(version)
    u64(tensorCount)
    u64(keyValueCount)
  }

  mutating func u8(_ v: UInt8) { bytes.append(v) }
  mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
  mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
  mutating func string(_ s: String) {
    u64(UInt64(s.utf8.count))
    bytes += Array(s.utf8)
  }

  /// A key with a uint32 value.
  mutating func keyU32(_ key: String, _ value: UInt32) {
    string(key)
    u32(4)
    u32(value)
  }

  /// A tensor info (offset relative to the data section).
  mutating func tensor(_ name: String, dims: [UInt64], type: UInt32, offset: UInt64) {
    string(name)
    u32(UInt32(dims.count))
    for d in dims { u64(d) }
    u32(type)
    u64(offset)
  }

  /// Zero bytes up to the next multiple of `alignment`, then `count` data bytes.
  mutating func data(count: Int, alignment: Int = 32) {
    bytes += [UInt8](repeating: 0, count: (alignment - bytes.count % alignment) % alignment)
    bytes += (0..<count).map { UInt8(truncatingIfNeeded: $0) }
  }
}

/// The error `GGUFFile(bytes:)` throws, or nil when the bytes parse.
func parseError(_ bytes: [UInt8]) -> GGUFError? {
  do {
    _ = try GGUFFile(bytes: bytes)
    return nil
  } catch {
    return error
  }
}
