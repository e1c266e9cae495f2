// Splitting raw text around special-token text before any pre-tokenization, as llama.cpp's
// tokenizer_st_partition: special tokens are tried longest first, each splitting every
// remaining text fragment at all of its occurrences. Control and unknown tokens are only
// matched when parsing special text; user-defined tokens always are (as llama.cpp and HF
// tokenizers do). Text that must never become a special token is simply never given to
// this with `parseSpecial` (see PromptSegment).

enum Fragment: Equatable {
  /// Bytes `start..<end` of the shared buffer, still to be tokenized.
  case text(start: Int, end: Int)
  case token(Int32)
}

struct SpecialTokenMatcher: Sendable {
  private let ids: [Int32]
  private let texts: [[UInt8]]
  private let attributes: [TokenAttributes]

  init(vocabulary v: Vocabulary) {
    let special: TokenAttributes = [.control, .userDefined, .unknown]
    var ids = v.attributes.indices.filter { !v.attributes[$0].isDisjoint(with: special) }
    // Longest first; ties by id so the order is reproducible.
    ids.sort { a, b in
      let la = v.tokens[a].utf8.count, lb = v.tokens[b].utf8.count
      return la != lb ? la > lb : a < b
    }
    self.ids = ids.map { Int32($0) }
    self.texts = ids.map { Array(v.tokens[$0].utf8) }
    self.attributes = ids.map { v.attributes[$0] }
  }

  func partition(_ buf: [UInt8], _ fragments: inout [Fragment], parseSpecial: Bool) {
    buf.withUnsafeBufferPointer { b in
      for k in ids.indices {
        let attr = attributes[k]
        if !parseSpecial && !attr.isDisjoint(with: [.control, .unknown]) { continue }
        let needle = texts[k]
        guard !needle.isEmpty else { continue }
        var out = [Fragment]()
        out.reserveCapacity(fragments.count + 2)
        var changed = false
        for f in fragments {
          guard case .text(var base, let end) = f else {
            out.append(f)
            continue
          }
          while let match = find(needle, in: b, from: base, to: end) {
            changed = true
            var leftEnd = match
            if attr.contains(.lstrip) {
              while leftEnd > base && isSpace(b[leftEnd - 1]) { leftEnd -= 1 }
            }
            if leftEnd > base { out.append(.text(start: base, end: leftEnd)) }
            out.append(.token(ids[k]))
            base = match + needle.count
            if attr.contains(.rstrip) {
              while base < end && isSpace(b[base]) { base += 1 }
            }
          }
          if base < end { out.append(.text(start: base, end: end)) }
        }
        if changed { fragments = out }
      }
    }
  }

  private func isSpace(_ c: UInt8) -> Bool { c == 0x20 || (c >= 0x09 && c <= 0x0D) }

  private func find(_ needle: [UInt8], in b: UnsafeBufferPointer<UInt8>, from: Int, to: Int) -> Int? {
    let m = needle.count
    guard to - from >= m else { return nil }
    let first = needle[0]
    var i = from
    let last = to - m
    while i <= last {
      if b[i] == first {
        var j = 1
        while j < m && b[i + j] == needle[j] { j += 1 }
        if j == m { return i }
      }
      i += 1
    }
    return nil
  }
}
