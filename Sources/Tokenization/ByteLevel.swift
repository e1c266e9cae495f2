// GPT-2's byte-level alphabet: every byte is shown as a printable Unicode scalar so BPE
// vocabularies can be stored as text ('Ġ' is the space byte 0x20). Bytes ! … ~, ¡ … ¬ and
// ® … ÿ stand for themselves; the other 68 bytes map to U+0100 onwards in byte order.

enum ByteLevel {
  /// The scalar that stands for each byte.
  static let scalarForByte: [Unicode.Scalar] = {
    var table = [UInt32](repeating: 0, count: 256)
    var assigned = [Bool](repeating: false, count: 256)
    for b in 0x21...0x7E { table[b] = UInt32(b); assigned[b] = true }
    for b in 0xA1...0xAC { table[b] = UInt32(b); assigned[b] = true }
    for b in 0xAE...0xFF { table[b] = UInt32(b); assigned[b] = true }
    var n: UInt32 = 0
    for b in 0..<256 where !assigned[b] {
      table[b] = 256 + n
      n += 1
    }
    return table.map { Unicode.Scalar($0)! }
  }()

  /// The byte each scalar stands for, indexed by scalar value (-1 when it stands for none).
  static let byteForScalar: [Int16] = {
    var table = [Int16](repeating: -1, count: 256 + 68)
    for (b, s) in scalarForByte.enumerated() { table[Int(s.value)] = Int16(b) }
    return table
  }()

  /// The byte-level text for raw bytes (what BPE vocabularies store).
  static func encode<S: Sequence>(_ bytes: S) -> String where S.Element == UInt8 {
    var s = String.UnicodeScalarView()
    for b in bytes { s.append(scalarForByte[Int(b)]) }
    return String(s)
  }

  /// The raw bytes a byte-level token text stands for, or nil if it contains a scalar
  /// outside the alphabet.
  static func decode(_ text: String) -> [UInt8]? {
    var out = [UInt8]()
    out.reserveCapacity(text.utf8.count)
    for s in text.unicodeScalars {
      guard s.value < UInt32(byteForScalar.count) else { return nil }
      let b = byteForScalar[Int(s.value)]
      guard b >= 0 else { return nil }
      out.append(UInt8(b))
    }
    return out
  }

  /// llama.cpp's `llama_decode_text`: like `decode`, but a scalar outside the alphabet
  /// becomes "[UNK_BYTE_0x<hex of its UTF-8>" + text + "]".
  static func decodeLenient(_ text: String) -> [UInt8] {
    if let bytes = decode(text) { return bytes }
    var out = [UInt8]()
    for s in text.unicodeScalars {
      if s.value < UInt32(byteForScalar.count), byteForScalar[Int(s.value)] >= 0 {
        out.append(UInt8(byteForScalar[Int(s.value)]))
      } else {
        out += Array("[UNK_BYTE_0x".utf8)
        for u in String(s).utf8 {
          let hex = Array("0123456789abcdef".utf8)
          out.append(hex[Int(u >> 4)])
          out.append(hex[Int(u & 15)])
        }
        out += Array(text.utf8)
        out += Array("]".utf8)
      }
    }
    return out
  }
}
