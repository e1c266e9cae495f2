// A test-only reader of GGUF metadata (the key/value section, nothing else), so the
// tokenizer tests can load real vocabularies before the GGUF module lands. It trusts its
// input: it reads only the files the tests fetched. Replace with GGUFFile when available.

import Foundation
import Tokenization

enum TestMetadataError: Error { case badMagic, truncated, unsupportedType(UInt32), wrongType(String) }

final class TestMetadataReader: TokenizerMetadata {
  enum Value {
    case int(Int)
    case float(Double)
    case bool(Bool)
    case string(String)
    case array([Value])
  }

  private(set) var values: [String: Value] = [:]

  init(path: String) throws {
    let data = try Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped)
    try data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
      var p = 0
      func need(_ n: Int) throws { if p + n > raw.count { throw TestMetadataError.truncated } }
      func u32() throws -> UInt32 {
        try need(4); defer { p += 4 }
        return raw.loadUnaligned(fromByteOffset: p, as: UInt32.self)
      }
      func u64() throws -> UInt64 {
        try need(8); defer { p += 8 }
        return raw.loadUnaligned(fromByteOffset: p, as: UInt64.self)
      }
      func str() throws -> String {
        let n = Int(try u64())
        try need(n); defer { p += n }
        return String(decoding: UnsafeRawBufferPointer(rebasing: raw[p..<(p + n)]), as: UTF8.self)
      }
      func value(_ type: UInt32) throws -> Value {
        switch type {
        case 0: try need(1); defer { p += 1 }; return .int(Int(raw[p]))
        case 1: try need(1); defer { p += 1 }; return .int(Int(Int8(bitPattern: raw[p])))
        case 2: try need(2); defer { p += 2 }; return .int(Int(raw.loadUnaligned(fromByteOffset: p, as: UInt16.self)))
        case 3: try need(2); defer { p += 2 }; return .int(Int(raw.loadUnaligned(fromByteOffset: p, as: Int16.self)))
        case 4: return .int(Int(try u32()))
        case 5: return .int(Int(Int32(bitPattern: try u32())))
        case 6: return .float(Double(Float(bitPattern: try u32())))
        case 7: try need(1); defer { p += 1 }; return .bool(raw[p] != 0)
        case 8: return .string(try str())
        case 9:
          let et = try u32()
          let n = Int(try u64())
          var items = [Value]()
          items.reserveCapacity(n)
          for _ in 0..<n { items.append(try value(et)) }
          return .array(items)
        case 10: return .int(Int(truncatingIfNeeded: try u64()))
        case 11: return .int(Int(Int64(bitPattern: try u64())))
        case 12: return .float(Double(bitPattern: try u64()))
        default: throw TestMetadataError.unsupportedType(type)
        }
      }
      guard try u32() == 0x4655_4747 else { throw TestMetadataError.badMagic }  // "GGUF"
      _ = try u32()  // version
      _ = try u64()  // tensor count
      let kvCount = try u64()
      for _ in 0..<kvCount {
        let key = try str()
        let type = try u32()
        values[key] = try value(type)
      }
    }
  }

  func string(_ key: String) throws -> String? {
    guard let v = values[key] else { return nil }
    guard case .string(let s) = v else { throw TestMetadataError.wrongType(key) }
    return s
  }
  func int(_ key: String) throws -> Int? {
    guard let v = values[key] else { return nil }
    guard case .int(let i) = v else { throw TestMetadataError.wrongType(key) }
    return i
  }
  func bool(_ key: String) throws -> Bool? {
    guard let v = values[key] else { return nil }
    guard case .bool(let b) = v else { throw TestMetadataError.wrongType(key) }
    return b
  }
  func stringArray(_ key: String) throws -> [String]? {
    guard let v = values[key] else { return nil }
    guard case .array(let a) = v else { throw TestMetadataError.wrongType(key) }
    return try a.map { guard case .string(let s) = $0 else { throw TestMetadataError.wrongType(key) }; return s }
  }
  func intArray(_ key: String) throws -> [Int]? {
    guard let v = values[key] else { return nil }
    guard case .array(let a) = v else { throw TestMetadataError.wrongType(key) }
    return try a.map { guard case .int(let i) = $0 else { throw TestMetadataError.wrongType(key) }; return i }
  }
  func floatArray(_ key: String) throws -> [Double]? {
    guard let v = values[key] else { return nil }
    guard case .array(let a) = v else { throw TestMetadataError.wrongType(key) }
    return try a.map { guard case .float(let f) = $0 else { throw TestMetadataError.wrongType(key) }; return f }
  }
}
