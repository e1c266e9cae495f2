// The tokenizer: an immutable vocabulary plus the lookup tables built from it once, with
// encode (text or prompt segments → ids) and decode (ids → text) matching llama.cpp's
// llama_tokenize / llama_detokenize. Per-call state lives on the stack, so one instance is
// shared freely across threads. Not here: chat templates (ChatTemplate.swift) and
// incremental decoding (StreamingDecoder.swift).

public final class Tokenizer: Sendable {
  public let vocabulary: Vocabulary
  private let bpe: BytePairEncoder?
  private let spm: SentencePieceEncoder?
  private let special: SpecialTokenMatcher
  /// Bytes of each token as llama.cpp's token_to_piece(special: true) gives them.
  private let pieces: [[UInt8]]

  public init(vocabulary: Vocabulary) {
    self.vocabulary = vocabulary
    switch vocabulary.kind {
    case .bytePairEncoding:
      bpe = BytePairEncoder(vocabulary: vocabulary)
      spm = nil
    case .sentencePiece:
      bpe = nil
      spm = SentencePieceEncoder(vocabulary: vocabulary)
    }
    special = SpecialTokenMatcher(vocabulary: vocabulary)
    pieces = vocabulary.tokens.indices.map { Self.piece(vocabulary, $0) }
  }

  public convenience init(metadata: some TokenizerMetadata) throws {
    self.init(vocabulary: try Vocabulary(metadata: metadata))
  }

  public var vocabularySize: Int { vocabulary.count }
  public var bos: Int32? { vocabulary.bos }
  public var eos: Int32? { vocabulary.eos }
  public var eot: Int32? { vocabulary.eot }
  public var eom: Int32? { vocabulary.eom }
  public var unknown: Int32? { vocabulary.unknown }
  public var padding: Int32? { vocabulary.padding }
  public var endOfGeneration: Set<Int32> { vocabulary.endOfGeneration }

  /// True for eos, eot, eom and the tokens llama.cpp treats as ending a turn.
  public func isEndOfGeneration(_ id: Int32) -> Bool { vocabulary.endOfGeneration.contains(id) }

  public func isControl(_ id: Int32) -> Bool { vocabulary.isControl(id) }

  /// The token's text as stored in the vocabulary (byte-level or '▁'-escaped), or nil for
  /// an id outside the vocabulary.
  public func tokenText(_ id: Int32) -> String? {
    id >= 0 && Int(id) < vocabulary.count ? vocabulary.tokens[Int(id)] : nil
  }

  /// The id of a token with exactly this vocabulary text.
  public func tokenID(forText text: String) -> Int32? {
    vocabulary.tokens.firstIndex(of: text).map { Int32($0) }
  }

  // MARK: Encoding

  /// Tokenizes `text`. With `parseSpecial`, special-token text such as `<|im_start|>` becomes
  /// that token; otherwise it is ordinary text (user-defined tokens match either way, as in
  /// llama.cpp). With `addSpecial`, BOS/EOS are added as the vocabulary asks.
  public func encode(_ text: String, parseSpecial: Bool = false, addSpecial: Bool = true) -> [Int32] {
    let buf = Array(text.utf8)
    var fragments: [Fragment] = buf.isEmpty ? [] : [.text(start: 0, end: buf.count)]
    special.partition(buf, &fragments, parseSpecial: parseSpecial)
    return tokenize(buf, fragments, addSpecial: addSpecial, skipDuplicateBOS: false)
  }

  /// Tokenizes a rendered prompt: markup segments are parsed for special tokens, content
  /// segments are not. Adjacent text is joined before pre-tokenization, so the result equals
  /// llama.cpp tokenizing the whole prompt with special parsing whenever the content holds no
  /// special-token text. BOS is added (when the vocabulary asks) unless the template already
  /// put one first.
  public func encode(_ segments: [PromptSegment], addSpecial: Bool = true) -> [Int32] {
    var buf = [UInt8]()
    var fragments = [Fragment]()
    for seg in segments {
      let start = buf.count
      buf += seg.text.utf8
      guard buf.count > start else { continue }
      var part: [Fragment] = [.text(start: start, end: buf.count)]
      if case .markup = seg {
        special.partition(buf, &part, parseSpecial: true)
      } else {
        special.partition(buf, &part, parseSpecial: false)
      }
      for f in part {
        if case .text(let s, let e) = f, case .text(let ps, let pe)? = fragments.last, pe == s {
          fragments[fragments.count - 1] = .text(start: ps, end: e)
        } else {
          fragments.append(f)
        }
      }
    }
    // A special token's lstrip/rstrip reaches into the neighbouring text even when that
    // text came from another segment, as it would in the whole prompt (Phi-3's tokens).
    for i in fragments.indices {
      guard case .token(let t) = fragments[i] else { continue }
      let attr = vocabulary.attributes[Int(t)]
      if attr.contains(.rstrip), i + 1 < fragments.count, case .text(var s, let e) = fragments[i + 1] {
        while s < e && Self.isCSpace(buf[s]) { s += 1 }
        fragments[i + 1] = .text(start: s, end: e)
      }
      if attr.contains(.lstrip), i > 0, case .text(let s, var e) = fragments[i - 1] {
        while e > s && Self.isCSpace(buf[e - 1]) { e -= 1 }
        fragments[i - 1] = .text(start: s, end: e)
      }
    }
    fragments.removeAll { if case .text(let s, let e) = $0 { return s == e } else { return false } }
    return tokenize(buf, fragments, addSpecial: addSpecial, skipDuplicateBOS: true)
  }

  private static func isCSpace(_ c: UInt8) -> Bool { c == 0x20 || (c >= 0x09 && c <= 0x0D) }

  private func tokenize(_ buf: [UInt8], _ fragments: [Fragment], addSpecial: Bool, skipDuplicateBOS: Bool)
    -> [Int32]
  {
    let v = vocabulary
    var out = [Int32]()
    out.reserveCapacity(buf.count / 3 + 2)
    var addBOS = addSpecial && v.addBOS && v.bos != nil
    if addBOS, skipDuplicateBOS, case .token(let t)? = fragments.first, t == v.bos { addBOS = false }
    if addBOS, let b = v.bos { out.append(b) }
    if let spm {
      var prevSpecial = true
      for f in fragments {
        switch f {
        case .token(let t):
          out.append(t)
          prevSpecial = true
        case .text(let s, let e):
          var text = [UInt8]()
          text.reserveCapacity((e - s) + 3)
          if v.addSpacePrefix && prevSpecial { text += [0xE2, 0x96, 0x81] }
          for b in buf[s..<e] {
            if b == 0x20 { text += [0xE2, 0x96, 0x81] } else { text.append(b) }
          }
          spm.encode(text, into: &out)
          prevSpecial = false
        }
      }
    } else if let bpe {
      var scratch = bpe.makeScratch()
      for f in fragments {
        switch f {
        case .token(let t):
          out.append(t)
        case .text(let s, let e):
          let (scalars, offsets) = decodeUTF8(buf, s, e)
          var wordStart = 0
          for wordEnd in v.preTokenizer.split(scalars) {
            bpe.encodeWord(buf[offsets[wordStart]..<offsets[wordEnd]], into: &out, scratch: &scratch)
            wordStart = wordEnd
          }
        }
      }
    }
    if addSpecial && v.addEOS, let e = v.eos { out.append(e) }
    return out
  }

  /// Scalars of valid UTF-8 `buf[s..<e]`, with the byte offset of each (plus the end).
  private func decodeUTF8(_ buf: [UInt8], _ s: Int, _ e: Int) -> ([Unicode.Scalar], [Int]) {
    var scalars = [Unicode.Scalar]()
    var offsets = [Int]()
    scalars.reserveCapacity(e - s)
    offsets.reserveCapacity(e - s + 1)
    var i = s
    while i < e {
      let b0 = UInt32(buf[i])
      var v: UInt32
      var n: Int
      if b0 < 0x80 {
        v = b0; n = 1
      } else if b0 < 0xE0 {
        v = b0 & 0x1F; n = 2
      } else if b0 < 0xF0 {
        v = b0 & 0x0F; n = 3
      } else {
        v = b0 & 0x07; n = 4
      }
      n = min(n, e - i)
      for k in 1..<max(n, 1) { v = v << 6 | UInt32(buf[i + k] & 0x3F) }
      offsets.append(i)
      scalars.append(Unicode.Scalar(v) ?? "\u{FFFD}")
      i += n
    }
    offsets.append(e)
    return (scalars, offsets)
  }

  // MARK: Decoding

  /// llama.cpp's token_to_piece(special: true) for one token.
  private static func piece(_ v: Vocabulary, _ i: Int) -> [UInt8] {
    let attr = v.attributes[i]
    let text = v.tokens[i]
    if !attr.isDisjoint(with: [.control, .unknown, .userDefined]) { return Array(text.utf8) }
    if attr.contains(.normal) {
      switch v.kind {
      case .bytePairEncoding: return ByteLevel.decodeLenient(text)
      case .sentencePiece: return unescapeSpaces(Array(text.utf8))
      }
    }
    if attr.contains(.byte) {
      let u = Array(text.utf8)
      if u.count == 6, let b = UInt8(String(decoding: u[3..<5], as: UTF8.self), radix: 16) { return [b] }
    }
    return []
  }

  /// '▁' (E2 96 81) back to ' '.
  private static func unescapeSpaces(_ u: [UInt8]) -> [UInt8] {
    var out = [UInt8]()
    out.reserveCapacity(u.count)
    var i = 0
    while i < u.count {
      if i + 2 < u.count && u[i] == 0xE2 && u[i + 1] == 0x96 && u[i + 2] == 0x81 {
        out.append(0x20)
        i += 3
      } else {
        out.append(u[i])
        i += 1
      }
    }
    return out
  }

  /// The bytes one token decodes to. Control and unknown tokens give nothing unless
  /// `renderSpecial`; ids outside the vocabulary give nothing.
  public func tokenPiece(_ id: Int32, renderSpecial: Bool = false) -> [UInt8] {
    guard id >= 0, Int(id) < pieces.count else { return [] }
    if !renderSpecial && !vocabulary.attributes[Int(id)].isDisjoint(with: [.control, .unknown]) {
      return []
    }
    return pieces[Int(id)]
  }

  /// The bytes `tokens` decode to, as llama_detokenize(remove_special: false,
  /// unparse_special: renderSpecial) minus the clean-up of spaces.
  func decodeBytes(_ tokens: [Int32], renderSpecial: Bool) -> [UInt8] {
    var out = [UInt8]()
    var removeSpace = vocabulary.addSpacePrefix
    for t in tokens {
      var p = tokenPiece(t, renderSpecial: renderSpecial)
      if removeSpace, p.first == 0x20 { p.removeFirst() }
      removeSpace = false
      out += p
    }
    return out
  }

  /// The text of `tokens`, as llama.cpp's llama_detokenize with remove_special false:
  /// control tokens vanish unless `renderSpecial`, SPM drops the leading space of the first
  /// token, and BPE vocabularies with `cleanSpaces` get llama.cpp's space clean-up. Bytes
  /// that do not form valid UTF-8 become U+FFFD.
  public func decode(_ tokens: [Int32], renderSpecial: Bool = false) -> String {
    var bytes = decodeBytes(tokens, renderSpecial: renderSpecial)
    if vocabulary.cleanSpaces { bytes = Self.cleanUpSpaces(bytes) }
    return String(decoding: bytes, as: UTF8.self)
  }

  /// llama.cpp's clean_spaces passes: " ?", " !", " .", " ," lose the space; " ' " loses
  /// both; " 's", " 'm", " 're", " 've" lose the space.
  static func cleanUpSpaces(_ input: [UInt8]) -> [UInt8] {
    var t = input
    let q = UInt8(ascii: "'"), sp = UInt8(ascii: " ")
    // pass 1
    var total = t.isEmpty ? 0 : 1
    for i in t.indices.dropFirst() {
      let x = t[i]
      if t[i - 1] == sp && (x == UInt8(ascii: "?") || x == UInt8(ascii: "!") || x == UInt8(ascii: ".") || x == UInt8(ascii: ",")) {
        total -= 1
      }
      t[total] = x
      total += 1
    }
    t.removeSubrange(total...)
    // pass 2
    let total2 = t.count
    total = total2 > 0 ? 1 : 0
    var i = 1
    while i < total2 {
      let x = t[i]
      if x == q && i + 1 < total2 && t[i - 1] == sp && t[i + 1] == sp {
        total -= 1
        i += 1
        t[i] = 0
      }
      t[total] = x
      total += 1
      i += 1
    }
    t.removeSubrange(total...)
    // pass 3
    let total3 = t.count
    total = total3 > 0 ? 1 : 0
    for i in t.indices.dropFirst() {
      let x = t[i]
      if t[i - 1] == sp && x == q && i + 1 < total3 {
        let x1 = t[i + 1]
        if x1 == UInt8(ascii: "s") || x1 == UInt8(ascii: "m") {
          total -= 1
        } else if i + 2 < total3 {
          let x2 = t[i + 2]
          if (x1 == UInt8(ascii: "r") && x2 == UInt8(ascii: "e")) || (x1 == UInt8(ascii: "v") && x2 == UInt8(ascii: "e")) {
            total -= 1
          }
        }
      }
      t[total] = x
      total += 1
    }
    t.removeSubrange(total...)
    return t
  }

  /// The chat template to use: the one named (the CLI's `--chat-template NAME`), else the
  /// model's own `tokenizer.chat_template` recognised by family, else its architecture's
  /// (`ChatTemplate(architecture:)`). Its `bos_token` and
  /// `eos_token` render as this vocabulary's texts.
  public func chatTemplate(named name: String? = nil) throws -> ChatTemplate {
    let bosText = bos.flatMap(tokenText) ?? ""
    let eosText = eos.flatMap(tokenText) ?? ""
    if let name { return try ChatTemplate(named: name, bosToken: bosText, eosToken: eosText) }
    guard let jinja = vocabulary.chatTemplate, !jinja.isEmpty else {
      if let architecture = vocabulary.architecture,
        let template = ChatTemplate(architecture: architecture, bosToken: bosText, eosToken: eosText)
      {
        return template
      }
      throw TokenizationError.noChatTemplate
    }
    return try ChatTemplate(jinja: jinja, bosToken: bosText, eosToken: eosText)
  }

  /// A decoder for tokens arriving one at a time.
  public func streamingDecoder(renderSpecial: Bool = false) -> StreamingDecoder {
    StreamingDecoder(tokenizer: self, renderSpecial: renderSpecial)
  }
}
