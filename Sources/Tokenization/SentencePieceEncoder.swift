// SentencePiece-style encoding (tokenizer.ggml.model = llama), as llama.cpp's
// llm_tokenizer_spm_session: start from UTF-8 characters, repeatedly merge the adjacent
// pair whose concatenation is the highest-scoring token (leftmost on ties), and spell any
// character that never became a token as `<0xNN>` byte tokens (or the unknown token when
// the vocabulary has no byte tokens). The caller escapes spaces to '▁' and adds the space
// prefix (Tokenizer.swift).

struct SentencePieceEncoder: Sendable {
  let textToID: ByteStringTable
  let scores: [Float]
  /// Token for each byte: `<0xNN>`, else the one-byte token, else the unknown token, else -1.
  let byteToken: [Int32]

  init(vocabulary v: Vocabulary) {
    let textToID = ByteStringTable(v.tokens.map { Array($0.utf8) })
    let hex = Array("0123456789ABCDEF".utf8)
    var byteToken = [Int32](repeating: -1, count: 256)
    for b in 0..<256 {
      let name: [UInt8] = Array("<0x".utf8) + [hex[b >> 4], hex[b & 15], UInt8(ascii: ">")]
      byteToken[b] = textToID.find(name) ?? textToID.find([UInt8(b)]) ?? v.unknown ?? -1
    }
    self.textToID = textToID
    self.scores = v.scores
    self.byteToken = byteToken
  }

  private struct Bigram: Comparable {
    var score: Float
    var left: Int32
    var right: Int32
    var size: Int32
    static func < (a: Bigram, b: Bigram) -> Bool {
      a.score != b.score ? a.score > b.score : a.left < b.left
    }
  }

  /// Appends the tokens of `text` (spaces already escaped) to `output`.
  func encode(_ text: [UInt8], into output: inout [Int32]) {
    guard !text.isEmpty else { return }
    text.withUnsafeBufferPointer { encode($0, into: &output) }
  }

  private func encode(_ text: UnsafeBufferPointer<UInt8>, into output: inout [Int32]) {
    var start = [Int32](), len = [Int32](), prev = [Int32](), next = [Int32]()
    var offs = 0
    while offs < text.count {
      let lead = text[offs]
      let l = lead < 0xC0 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4
      let n = min(l, text.count - offs)
      start.append(Int32(offs))
      len.append(Int32(n))
      prev.append(Int32(start.count - 2))
      offs += n
      next.append(offs == text.count ? -1 : Int32(start.count))
    }
    var queue = BinaryHeap<Bigram>()
    func tryAdd(_ left: Int32, _ right: Int32) {
      guard left >= 0, right >= 0 else { return }
      let s = Int(start[Int(left)])
      let size = Int(len[Int(left)] + len[Int(right)])
      guard let id = textToID.find(UnsafeBufferPointer(rebasing: text[s..<(s + size)])), Int(id) < scores.count
      else { return }
      queue.push(Bigram(score: scores[Int(id)], left: left, right: right, size: Int32(size)))
    }
    for i in 1..<start.count { tryAdd(Int32(i - 1), Int32(i)) }
    while let bg = queue.pop() {
      let l = Int(bg.left), r = Int(bg.right)
      guard len[l] > 0, len[r] > 0, len[l] + len[r] == bg.size else { continue }
      len[l] += len[r]
      len[r] = 0
      next[l] = next[r]
      if next[r] >= 0 { prev[Int(next[r])] = bg.left }
      tryAdd(prev[l], bg.left)
      tryAdd(bg.left, next[l])
    }
    var i: Int32 = 0
    while i >= 0 {
      let s = Int(start[Int(i)]), n = Int(len[Int(i)])
      if let id = textToID.find(UnsafeBufferPointer(rebasing: text[s..<(s + n)])) {
        output.append(id)
      } else {
        for b in text[s..<(s + n)] where byteToken[Int(b)] >= 0 { output.append(byteToken[Int(b)]) }
      }
      i = next[Int(i)]
    }
  }
}
