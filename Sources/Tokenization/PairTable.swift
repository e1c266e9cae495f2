// A fixed open-addressing hash table from a token-id pair (packed in a UInt64) to a packed
// (rank, merged id): the BPE merge lookup, probed for every adjacent pair of every word,
// without the general-purpose hashing of Dictionary.

struct PairTable: Sendable {
  private static let empty = UInt64.max  // never a key: ids are below Int32.max
  private let keys: [UInt64]
  private let values: [UInt64]
  private let shift: UInt64

  /// Keeps the first value given for a key (llama.cpp keeps the first rank of a merge).
  init(_ entries: [(key: UInt64, value: UInt64)]) {
    var bits: UInt64 = 4
    while (1 << bits) < entries.count * 2 { bits += 1 }
    let size = 1 << Int(bits)
    var keys = [UInt64](repeating: Self.empty, count: size)
    var values = [UInt64](repeating: 0, count: size)
    let shift = 64 - bits
    for (k, v) in entries {
      var s = Int(truncatingIfNeeded: (k &* 0x9E37_79B9_7F4A_7C15) >> shift)
      while keys[s] != Self.empty && keys[s] != k { s = (s + 1) & (size - 1) }
      if keys[s] == Self.empty {
        keys[s] = k
        values[s] = v
      }
    }
    self.keys = keys
    self.values = values
    self.shift = shift
  }

  @inline(__always)
  func find(_ k: UInt64) -> UInt64? {
    let mask = keys.count - 1
    var s = Int(truncatingIfNeeded: (k &* 0x9E37_79B9_7F4A_7C15) >> shift)
    while true {
      let stored = keys[s]
      if stored == k { return values[s] }
      if stored == Self.empty { return nil }
      s = (s + 1) & mask
    }
  }
}
