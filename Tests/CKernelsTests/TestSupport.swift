// Shared helpers for the CKernels tests: fixture loading, a seeded generator, and random
// quantized rows. Nothing here knows a block layout except where noted (K-quant scales).
import CKernels
import Foundation
import Testing

/// SplitMix64: a tiny seeded generator so every random test is reproducible.
struct SeededRNG: RandomNumberGenerator {
  var state: UInt64
  init(seed: UInt64) { state = seed }
  mutating func next() -> UInt64 {
    state &+= 0x9E37_79B9_7F4A_7C15
    var z = state
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
  }
  mutating func gaussian() -> Float {
    let u1 = Double.random(in: Double.ulpOfOne..<1, using: &self)
    let u2 = Double.random(in: 0..<1, using: &self)
    return Float((-2 * Foundation.log(u1)).squareRoot() * Foundation.cos(2 * Double.pi * u2))
  }
}

enum Fixtures {
  static func url(_ name: String) throws -> URL {
    let dot = name.lastIndex(of: ".")!
    let base = String(name[..<dot]), ext = String(name[name.index(after: dot)...])
    return try #require(
      Bundle.module.url(forResource: base, withExtension: ext, subdirectory: "Fixtures"),
      "missing fixture \(name): run make_quant_fixtures.py")
  }
  static func bytes(_ name: String) throws -> [UInt8] { [UInt8](try Data(contentsOf: url(name))) }
  static func floats(_ name: String) throws -> [Float] {
    let b = try bytes(name)
    return b.withUnsafeBytes { raw in
      (0..<(b.count / 4)).map { raw.loadUnaligned(fromByteOffset: $0 * 4, as: Float.self) }
    }
  }

  struct Entry: Decodable, Sendable {
    let type: UInt32
    let rows: Int
    let n: Int
    let has_input: Bool
    let has_deq: Bool
  }
  static func manifest() throws -> [String: Entry] {
    try JSONDecoder().decode([String: Entry].self, from: Data(contentsOf: url("manifest.json")))
  }
}

enum Quant {
  static func rowSize(_ type: UInt32, _ n: Int) -> Int {
    let s = dq_row_size(type, Int64(n))
    precondition(s >= 0, "bad row size for type \(type), n \(n)")
    return Int(s)
  }

  static func quantize(_ type: UInt32, _ x: [Float]) -> [UInt8] {
    var out = [UInt8](repeating: 0, count: rowSize(type, x.count))
    x.withUnsafeBufferPointer { src in
      out.withUnsafeMutableBytes { dq_quantize_row(type, src.baseAddress!, $0.baseAddress!, Int64(x.count)) }
    }
    return out
  }

  static func dequantize(_ type: UInt32, _ q: [UInt8], n: Int, ref: Bool = true) -> [Float] {
    var out = [Float](repeating: .nan, count: n)
    q.withUnsafeBytes { src in
      out.withUnsafeMutableBufferPointer { dst in
        if ref {
          dq_dequantize_row_ref(type, src.baseAddress!, dst.baseAddress!, Int64(n))
        } else {
          dq_dequantize_row(type, src.baseAddress!, dst.baseAddress!, Int64(n))
        }
      }
    }
    return out
  }

  static func dot(_ type: UInt32, n: Int, _ w: [UInt8], _ x: [UInt8], ref: Bool) -> Float {
    w.withUnsafeBytes { wp in
      x.withUnsafeBytes { xp in
        ref ? dq_vec_dot_ref(type, Int64(n), wp.baseAddress!, xp.baseAddress!)
          : dq_vec_dot(type, Int64(n), wp.baseAddress!, xp.baseAddress!)
      }
    }
  }

  /// Activation bytes for a weight type: F32 floats as bytes, or the quantized activation type.
  static func activation(for type: UInt32, _ x: [Float]) -> [UInt8] {
    quantize(dq_vec_dot_type(type), x)
  }

  /// One random weight row of `type`. Quantizable types quantize Gaussian floats (so int8 codes
  /// stay in [-127, 127] as every real file has); K-quants are random bytes with sane fp16
  /// super-block scales (random bytes there could be NaN or Inf). This is the one place the
  /// tests know where a K-quant block keeps d / dmin (the ggml layout, asserted in quants.h).
  static func randomRow(_ type: UInt32, n: Int, rng: inout SeededRNG) -> [UInt8] {
    if dq_quantize_supported(type) {
      let scale = Float.random(in: 0.01...2, using: &rng)
      return quantize(type, (0..<n).map { _ in rng.gaussian() * scale })
    }
    var bs: Int64 = 0, ts: Int64 = 0
    precondition(dq_type_info(type, &bs, &ts))
    var q = (0..<rowSize(type, n)).map { _ in UInt8.random(in: 0...255, using: &rng) }
    for b in 0..<(n / Int(bs)) {
      let o = b * Int(ts)
      let d = dq_fp32_to_fp16(Float.random(in: 1e-4...2e-2, using: &rng))
      let dmin = dq_fp32_to_fp16(Float.random(in: 1e-4...1e-2, using: &rng))
      let dOffset = type == UInt32(DQ_TYPE_Q6_K) ? o + 208 : o
      q[dOffset] = UInt8(d & 0xFF)
      q[dOffset + 1] = UInt8(d >> 8)
      if type != UInt32(DQ_TYPE_Q6_K) {
        q[o + 2] = UInt8(dmin & 0xFF)
        q[o + 3] = UInt8(dmin >> 8)
      }
    }
    return q
  }
}

/// Weight types this library computes with, with their block sizes.
let weightTypes: [(name: String, type: UInt32, block: Int)] = [
  ("F32", UInt32(DQ_TYPE_F32), 1), ("F16", UInt32(DQ_TYPE_F16), 1), ("BF16", UInt32(DQ_TYPE_BF16), 1),
  ("Q4_0", UInt32(DQ_TYPE_Q4_0), 32), ("Q4_1", UInt32(DQ_TYPE_Q4_1), 32),
  ("Q5_0", UInt32(DQ_TYPE_Q5_0), 32), ("Q5_1", UInt32(DQ_TYPE_Q5_1), 32),
  ("Q8_0", UInt32(DQ_TYPE_Q8_0), 32), ("Q4_K", UInt32(DQ_TYPE_Q4_K), 256),
  ("Q5_K", UInt32(DQ_TYPE_Q5_K), 256), ("Q6_K", UInt32(DQ_TYPE_Q6_K), 256),
]
let weightTypeNames = weightTypes.map(\.name)
func weightType(_ name: String) -> (type: UInt32, block: Int) {
  let t = weightTypes.first { $0.name == name }!
  return (t.type, t.block)
}
