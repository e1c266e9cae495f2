// Byte-level BPE (tokenizer.ggml.model = gpt2): merges applied lowest rank first to the
// bytes of one pre-tokenized word, as llama.cpp's llm_tokenizer_bpe_session. Symbols carry
// token ids, so a merge is one table lookup on an id pair, never a string concatenation.
// Not here: the pre-tokenizer (PreTokenizer.swift) and special tokens (SpecialTokens.swift).
//
// Deliberate difference: a merge whose parts or result are not tokens of the vocabulary is
// dropped at load (llama.cpp would merge the text and fall back to bytes later); converted
// vocabularies never contain such merges.

struct BytePairEncoder: Sendable {
  /// Token id of each single byte's byte-level text (-1 when the vocabulary lacks it).
  let byteToken: [Int32]
  /// (left id << 32 | right id) → (rank << 32 | merged id).
  let merges: PairTable
  /// Byte-level token text → id, for `ignoreMerges`.
  let textToID: [String: Int32]
  let ignoreMerges: Bool

  init(vocabulary v: Vocabulary) {
    var textToID = [String: Int32](minimumCapacity: v.count)
    for (i, t) in v.tokens.enumerated() { textToID[t] = Int32(i) }
    var byteToken = [Int32](repeating: -1, count: 256)
    for b in 0..<256 {
      byteToken[b] = textToID[String(ByteLevel.scalarForByte[b])] ?? -1
    }
    var merges = [(key: UInt64, value: UInt64)]()
    merges.reserveCapacity(v.merges.count)
    for (rank, m) in v.merges.enumerated() {
      // Split at the first space after the first character, as llama.cpp (find(' ', 1)).
      let u = m.utf8
      guard u.count > 1,
        let space = u.dropFirst().firstIndex(of: UInt8(ascii: " "))
      else { continue }
      let left = String(m[m.startIndex..<space])
      let right = String(m[m.index(after: space)...])
      guard let l = textToID[left], let r = textToID[right], let res = textToID[left + right] else {
        continue
      }
      let key = UInt64(UInt32(bitPattern: l)) << 32 | UInt64(UInt32(bitPattern: r))
      merges.append((key, UInt64(rank) << 32 | UInt64(UInt32(bitPattern: res))))
    }
    self.byteToken = byteToken
    self.merges = PairTable(merges)
    self.textToID = textToID
    self.ignoreMerges = v.ignoreMerges
  }

  struct Bigram: Comparable {
    var rank: UInt32
    var left: Int32
    var right: Int32
    var leftID: Int32
    var rightID: Int32
    var merged: Int32
    static func < (a: Bigram, b: Bigram) -> Bool {
      a.rank != b.rank ? a.rank < b.rank : a.left < b.left
    }
  }

  /// Scratch space reused across the words of one encode call.
  struct Scratch {
    var ids: [Int32] = []
    var prev: [Int32] = []
    var next: [Int32] = []
    var queue = BinaryHeap<Bigram>()
  }

  func makeScratch() -> Scratch { Scratch() }

  /// Appends the tokens of one word (its raw bytes) to `output`.
  func encodeWord(_ word: ArraySlice<UInt8>, into output: inout [Int32], scratch s: inout Scratch) {
    let n = word.count
    guard n > 0 else { return }
    if n == 1 {
      let id = byteToken[Int(word[word.startIndex])]
      if id >= 0 { output.append(id) }
      return
    }
    if ignoreMerges, let id = textToID[ByteLevel.encode(word)] {
      output.append(id)
      return
    }
    s.ids.removeAll(keepingCapacity: true)
    s.prev.removeAll(keepingCapacity: true)
    s.next.removeAll(keepingCapacity: true)
    for (i, b) in word.enumerated() {
      s.ids.append(byteToken[Int(b)])
      s.prev.append(Int32(i - 1))
      s.next.append(i + 1 < n ? Int32(i + 1) : -1)
    }
    s.queue.removeAll()
    for i in 1..<n { addBigram(Int32(i - 1), Int32(i), &s) }
    while let bg = s.queue.pop() {
      let l = Int(bg.left), r = Int(bg.right)
      // Outdated if either side has changed since the bigram was queued (llama.cpp compares
      // texts; ids are equivalent because text → id is one to one).
      guard s.ids[l] == bg.leftID, s.ids[r] == bg.rightID, s.next[l] == bg.right else { continue }
      s.ids[l] = bg.merged
      s.ids[r] = -2  // merged away
      let after = s.next[r]
      s.next[l] = after
      if after >= 0 { s.prev[Int(after)] = bg.left }
      addBigram(s.prev[l], bg.left, &s)
      addBigram(bg.left, after, &s)
    }
    var i: Int32 = 0
    while i >= 0 {
      let id = s.ids[Int(i)]
      // A byte the vocabulary lacks is dropped, as llama.cpp's fallback finds no token.
      if id >= 0 { output.append(id) }
      i = s.next[Int(i)]
    }
  }

  private func addBigram(_ left: Int32, _ right: Int32, _ s: inout Scratch) {
    guard left >= 0, right >= 0 else { return }
    let l = s.ids[Int(left)], r = s.ids[Int(right)]
    guard l >= 0, r >= 0 else { return }
    let key = UInt64(UInt32(bitPattern: l)) << 32 | UInt64(UInt32(bitPattern: r))
    guard let m = merges.find(key) else { return }
    s.queue.push(
      Bigram(
        rank: UInt32(m >> 32), left: left, right: right, leftID: l, rightID: r,
        merged: Int32(bitPattern: UInt32(truncatingIfNeeded: m))))
  }
}
