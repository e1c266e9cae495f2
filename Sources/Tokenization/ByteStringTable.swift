// An exact-match table from byte strings to token ids that looks up a slice of a buffer
// without allocating: open addressing over FNV-1a hashes, keys kept in one byte blob.
// Used where the encoder probes many candidate substrings (SentencePiece bigrams).

struct ByteStringTable: Sendable {
  private let blob: [UInt8]
  private let starts: [Int]  // key i is blob[starts[i]..<starts[i + 1]]
  private let ids: [Int32]
  private let slots: [Int32]  // index into ids, -1 when empty
  private let mask: Int

  /// Later duplicates win, as in llama.cpp's token_to_id map.
  init(_ keys: [[UInt8]]) {
    var blob = [UInt8]()
    var starts = [0]
    for k in keys {
      blob += k
      starts.append(blob.count)
    }
    var size = 16
    while size < keys.count * 2 { size <<= 1 }
    var slots = [Int32](repeating: -1, count: size)
    let mask = size - 1
    blob.withUnsafeBufferPointer { b in
      for i in keys.indices {
        let key = UnsafeBufferPointer(rebasing: b[starts[i]..<starts[i + 1]])
        var s = Int(truncatingIfNeeded: Self.hash(key)) & mask
        while slots[s] >= 0 {
          let j = Int(slots[s])
          if UnsafeBufferPointer(rebasing: b[starts[j]..<starts[j + 1]]).elementsEqual(key) { break }
          s = (s + 1) & mask
        }
        slots[s] = Int32(i)
      }
    }
    self.blob = blob
    self.starts = starts
    self.ids = keys.indices.map { Int32($0) }
    self.slots = slots
    self.mask = mask
  }

  static func hash(_ bytes: UnsafeBufferPointer<UInt8>) -> UInt64 {
    var h: UInt64 = 0xcbf2_9ce4_8422_2325
    for b in bytes { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
    return h
  }

  func find(_ key: UnsafeBufferPointer<UInt8>) -> Int32? {
    var s = Int(truncatingIfNeeded: Self.hash(key)) & mask
    return blob.withUnsafeBufferPointer { b in
      while true {
        let j = Int(slots[s])
        if j < 0 { return nil }
        let start = starts[j], end = starts[j + 1]
        if end - start == key.count && UnsafeBufferPointer(rebasing: b[start..<end]).elementsEqual(key) {
          return ids[j]
        }
        s = (s + 1) & mask
      }
    }
  }

  func find(_ key: [UInt8]) -> Int32? { key.withUnsafeBufferPointer { find($0) } }
}
