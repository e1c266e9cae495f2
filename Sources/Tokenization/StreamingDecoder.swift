// Incremental decoding for generation: each pushed token yields the text that is complete
// so far, holding back the bytes of a UTF-8 sequence that later tokens may finish (a
// byte-level BPE token or an SPM `<0xNN>` token can end mid-character). Everything it
// emits, concatenated, equals `Tokenizer.decode` of the same tokens for vocabularies
// without `cleanSpaces` (that clean-up looks across tokens and is not applied here).

public struct StreamingDecoder: Sendable {
  private let tokenizer: Tokenizer
  private let renderSpecial: Bool
  private var pending: [UInt8] = []
  private var isFirst = true

  init(tokenizer: Tokenizer, renderSpecial: Bool) {
    self.tokenizer = tokenizer
    self.renderSpecial = renderSpecial
  }

  /// Adds one token; returns the newly completed text (possibly empty).
  public mutating func push(_ token: Int32) -> String {
    var piece = tokenizer.tokenPiece(token, renderSpecial: renderSpecial)
    if isFirst {
      if tokenizer.vocabulary.addSpacePrefix, piece.first == 0x20 { piece.removeFirst() }
      isFirst = false
    }
    pending += piece
    let cut = Self.completePrefixLength(pending)
    guard cut > 0 else { return "" }
    let text = String(decoding: pending[..<cut], as: UTF8.self)
    pending.removeFirst(cut)
    return text
  }

  /// Flushes whatever is held back (an unfinished sequence becomes U+FFFD).
  public mutating func finish() -> String {
    defer { pending.removeAll() }
    return String(decoding: pending, as: UTF8.self)
  }

  /// The length of the longest prefix that does not end inside a UTF-8 sequence which more
  /// bytes could still complete. Splitting there never changes how the whole decodes: the
  /// held-back part starts at a lead byte, where any decoder starts a new scalar.
  static func completePrefixLength(_ b: [UInt8]) -> Int {
    let n = b.count
    var i = n - 1
    // Walk back over at most three continuation bytes to the lead byte.
    while i >= 0 && i >= n - 4 {
      let c = b[i]
      if c & 0xC0 == 0x80 {
        i -= 1
        continue
      }
      let need: Int
      switch c {
      case 0xC2...0xDF: need = 2
      case 0xE0...0xEF: need = 3
      case 0xF0...0xF4: need = 4
      default: return n  // ASCII or an invalid lead: nothing to wait for
      }
      if n - i >= need { return n }
      // Check that what follows could still be a valid sequence (second-byte ranges).
      if n - i >= 2 {
        let s = b[i + 1]
        let ok: Bool
        switch c {
        case 0xE0: ok = s >= 0xA0
        case 0xED: ok = s <= 0x9F
        case 0xF0: ok = s >= 0x90
        case 0xF4: ok = s <= 0x8F
        default: ok = true
        }
        if !ok { return n }
      }
      return i
    }
    return n
  }
}
