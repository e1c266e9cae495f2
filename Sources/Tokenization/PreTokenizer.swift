// Splitting text into words before BPE, by hand over Unicode scalars, one function per
// regex that llama.cpp recognises (unicode.cpp's custom splitters, ported branch for
// branch, and its std::regex fallbacks for the simple digit/punctuation patterns). A word
// never crosses the boundary of the piece it was split from; lookahead stops there too.
// Not here: byte-level encoding and merges (BytePairEncoder.swift).

/// The pre-tokenizer a BPE vocabulary names in `tokenizer.ggml.pre`.
public enum PreTokenizer: String, Sendable, Equatable, CaseIterable {
  /// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
  case gpt2
  /// `\p{N}` (every digit alone), then the gpt2 pattern.
  case smollm
  /// Same split as smollm (starcoder, refact, …) but llama.cpp keeps `clean_spaces` on.
  case starcoder
  /// `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
  case llama3
  /// As llama3 but `\p{N}` one digit at a time.
  case qwen2
  /// llama.cpp's fallback for an absent or "default" name: punctuation runs, gpt2,
  /// number runs, then groups of three ASCII digits.
  case `default`
  /// No pre-tokenization (SentencePiece vocabularies).
  case none

  static let namesByCase: [PreTokenizer: [String]] = [
    .gpt2: ["gpt-2", "gpt2", "phi-2", "mpt", "olmo", "jais"],
    .smollm: ["smollm"],
    .starcoder: ["starcoder", "refact", "codeshell", "exaone", "minerva-7b", "mellum2"],
    .llama3: [
      "llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2",
    ],
    .qwen2: ["qwen2", "deepseek-r1-qwen"],
    .default: ["default"],
  ]

  public static var supportedNames: [String] {
    allCases.flatMap { namesByCase[$0] ?? [] }
  }

  /// The pre-tokenizer for a `tokenizer.ggml.pre` value; nil or "" give `.default` as in
  /// llama.cpp; an unknown name gives nil.
  public init?(name: String?) {
    guard let name, !name.isEmpty else {
      self = .default
      return
    }
    guard let found = Self.namesByCase.first(where: { $0.value.contains(name) }) else { return nil }
    self = found.key
  }

  /// Splits `scalars` into words; returns the end index of each word in order.
  func split(_ scalars: [Unicode.Scalar]) -> [Int] {
    var classes = [CharacterClass]()
    classes.reserveCapacity(scalars.count)
    for s in scalars { classes.append(CharacterClass.of(s)) }
    let v = scalars.map(\.value)
    var ends = scalars.isEmpty ? [] : [scalars.count]
    switch self {
    case .none:
      break
    case .gpt2:
      ends = splitGPT2(v, classes, ends)
    case .smollm, .starcoder:
      ends = splitRuns(classes, ends, single: true) { $0.contains(.number) }
      ends = splitGPT2(v, classes, ends)
    case .llama3:
      ends = splitLlama3(v, classes, ends, maxDigits: 3)
    case .qwen2:
      ends = splitLlama3(v, classes, ends, maxDigits: 1)
    case .default:
      // "[\p{P}\$\+<=>\^~\|]+" over llama.cpp's collapsed text: ASCII punctuation and
      // symbols except the backtick, or any non-ASCII punctuation.
      ends = splitDefaultPunctuation(v, classes, ends)
      ends = splitGPT2(v, classes, ends)
      ends = splitRuns(classes, ends, single: false) { $0.contains(.number) }
      ends = splitASCIIDigitTriples(v, ends)
    }
    return ends
  }
}

private let outOfRange: UInt32 = 0xFFFF_FFFF

/// Collects word ends for one piece; empty words are dropped, as llama.cpp's `_add_token`.
private struct WordSink {
  var ends: [Int]
  var prevEnd: Int
  @discardableResult
  mutating func add(_ end: Int) -> Int {
    let len = end - prevEnd
    if len > 0 { ends.append(end) }
    prevEnd = end
    return len
  }
}

/// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
/// (unicode_regex_split_custom_gpt2).
private func splitGPT2(_ c: [UInt32], _ cls: [CharacterClass], _ pieces: [Int]) -> [Int] {
  var sink = WordSink(ends: [], prevEnd: 0)
  sink.ends.reserveCapacity(c.count / 3 + 1)
  var start = 0
  for end in pieces {
    let ini = start
    start = end
    sink.prevEnd = ini
    @inline(__always) func cp(_ p: Int) -> UInt32 { p >= ini && p < end ? c[p] : outOfRange }
    @inline(__always) func fl(_ p: Int) -> CharacterClass { p >= ini && p < end ? cls[p] : [] }
    var pos = ini
    while pos < end {
      let cpt = c[pos]
      let f = cls[pos]
      if cpt == 0x27 && pos + 1 < end {  // '
        let n = c[pos + 1]
        if n == 0x73 || n == 0x74 || n == 0x6D || n == 0x64 {  // s t m d
          pos += sink.add(pos + 2)
          continue
        }
        if pos + 2 < end {
          let nn = c[pos + 2]
          if (n == 0x72 && nn == 0x65) || (n == 0x76 && nn == 0x65) || (n == 0x6C && nn == 0x6C) {
            pos += sink.add(pos + 3)
            continue
          }
        }
      }
      var f2 = cpt == 0x20 ? fl(pos + 1) : f
      if f2.contains(.letter) {
        if cpt == 0x20 { pos += 1 }
        while f2.contains(.letter) { pos += 1; f2 = fl(pos) }
        sink.add(pos)
        continue
      }
      if f2.contains(.number) {
        if cpt == 0x20 { pos += 1 }
        while f2.contains(.number) { pos += 1; f2 = fl(pos) }
        sink.add(pos)
        continue
      }
      let lnw: CharacterClass = [.letter, .number, .whitespace]
      if f2.isDisjoint(with: lnw) && f2.contains(.inRange) {
        if cpt == 0x20 { pos += 1 }
        while f2.isDisjoint(with: lnw) && f2.contains(.inRange) { pos += 1; f2 = fl(pos) }
        sink.add(pos)
        continue
      }
      var nws = 0
      while fl(pos + nws).contains(.whitespace) { nws += 1 }
      if nws > 1 && cp(pos + nws) != outOfRange {
        pos += nws - 1
        sink.add(pos)
        continue
      }
      if nws > 0 {
        pos += nws
        sink.add(pos)
        continue
      }
      pos += 1
      sink.add(pos)
    }
  }
  return sink.ends
}

/// The llama3 pattern (`maxDigits` 3) and the qwen2 pattern (`maxDigits` 1)
/// (unicode_regex_split_custom_llama3 / _qwen2).
private func splitLlama3(_ c: [UInt32], _ cls: [CharacterClass], _ pieces: [Int], maxDigits: Int)
  -> [Int]
{
  var sink = WordSink(ends: [], prevEnd: 0)
  sink.ends.reserveCapacity(c.count / 3 + 1)
  var start = 0
  for end in pieces {
    let ini = start
    start = end
    sink.prevEnd = ini
    @inline(__always) func cp(_ p: Int) -> UInt32 { p >= ini && p < end ? c[p] : outOfRange }
    @inline(__always) func fl(_ p: Int) -> CharacterClass { p >= ini && p < end ? cls[p] : [] }
    @inline(__always) func lower(_ x: UInt32) -> UInt32 { x >= 0x41 && x <= 0x5A ? x + 32 : x }
    var pos = ini
    while pos < end {
      let cpt = c[pos]
      let f = cls[pos]
      if cpt == 0x27 && pos + 1 < end {
        let n = lower(c[pos + 1])
        if n == 0x73 || n == 0x74 || n == 0x6D || n == 0x64 {
          pos += sink.add(pos + 2)
          continue
        }
        if pos + 2 < end {
          let nn = lower(c[pos + 2])
          if (n == 0x72 && nn == 0x65) || (n == 0x76 && nn == 0x65) || (n == 0x6C && nn == 0x6C) {
            pos += sink.add(pos + 3)
            continue
          }
        }
      }
      // [^\r\n\p{L}\p{N}]?\p{L}+
      if !(cpt == 0x0D || cpt == 0x0A || f.contains(.number)) {
        if f.contains(.letter) || fl(pos + 1).contains(.letter) {
          pos += 1
          while fl(pos).contains(.letter) { pos += 1 }
          sink.add(pos)
          continue
        }
      }
      // \p{N}{1,maxDigits}
      if f.contains(.number) {
        var first = pos
        while fl(pos).contains(.number) {
          pos += 1
          if pos - first >= maxDigits {
            sink.add(pos)
            first = pos
          }
        }
        sink.add(pos)
        continue
      }
      // <space>?[^\s\p{L}\p{N}]+[\r\n]*
      let lnw: CharacterClass = [.letter, .number, .whitespace]
      var f2 = cpt == 0x20 ? fl(pos + 1) : f
      if f2.isDisjoint(with: lnw) {
        if cpt == 0x20 { pos += 1 }
        while f2.isDisjoint(with: lnw) && f2.contains(.inRange) { pos += 1; f2 = fl(pos) }
        var c2 = cp(pos)
        while c2 == 0x0D || c2 == 0x0A { pos += 1; c2 = cp(pos) }
        sink.add(pos)
        continue
      }
      var nws = 0
      var lastRN = 0
      while fl(pos + nws).contains(.whitespace) {
        let c2 = cp(pos + nws)
        if c2 == 0x0D || c2 == 0x0A { lastRN = pos + nws + 1 }
        nws += 1
      }
      if lastRN > 0 {  // \s*[\r\n]+
        pos = lastRN
        sink.add(pos)
        continue
      }
      if nws > 1 && cp(pos + nws) != outOfRange {  // \s+(?!\S)
        pos += nws - 1
        sink.add(pos)
        continue
      }
      if nws > 0 {  // \s+
        pos += nws
        sink.add(pos)
        continue
      }
      pos += 1
      sink.add(pos)
    }
  }
  return sink.ends
}

/// A std::regex character class `X` (with `single`) or `X+` (without), splitting every piece
/// into matches and the gaps between them.
private func splitRuns(
  _ cls: [CharacterClass], _ pieces: [Int], single: Bool, _ match: (CharacterClass) -> Bool
) -> [Int] {
  var out = [Int]()
  out.reserveCapacity(pieces.count)
  var start = 0
  for end in pieces {
    var pos = start
    var gapStart = start
    while pos < end {
      if match(cls[pos]) {
        if gapStart < pos { out.append(pos) }
        pos += 1
        if !single { while pos < end && match(cls[pos]) { pos += 1 } }
        out.append(pos)
        gapStart = pos
      } else {
        pos += 1
      }
    }
    if gapStart < end { out.append(end) }
    start = end
  }
  return out
}

private func isDefaultPunctuation(_ v: UInt32, _ cls: CharacterClass) -> Bool {
  if v < 128 {
    switch UInt8(v) {
    case UInt8(ascii: "!")...UInt8(ascii: "/"), UInt8(ascii: ":")...UInt8(ascii: "@"),
      UInt8(ascii: "[")...UInt8(ascii: "^"), UInt8(ascii: "_"), UInt8(ascii: "{")...UInt8(ascii: "~"):
      return true
    default: return false
    }
  }
  return cls.contains(.punctuation) && !cls.contains(.whitespace)
}

private func splitDefaultPunctuation(_ c: [UInt32], _ cls: [CharacterClass], _ pieces: [Int]) -> [Int] {
  var marks = [CharacterClass]()
  marks.reserveCapacity(c.count)
  for i in c.indices { marks.append(isDefaultPunctuation(c[i], cls[i]) ? .punctuation : []) }
  return splitRuns(marks, pieces, single: false) { $0.contains(.punctuation) }
}

/// `[0-9][0-9][0-9]`: non-overlapping groups of three ASCII digits, left to right.
private func splitASCIIDigitTriples(_ c: [UInt32], _ pieces: [Int]) -> [Int] {
  @inline(__always) func digit(_ x: UInt32) -> Bool { x >= 0x30 && x <= 0x39 }
  var out = [Int]()
  var start = 0
  for end in pieces {
    var pos = start
    var gapStart = start
    while pos + 3 <= end {
      if digit(c[pos]) && digit(c[pos + 1]) && digit(c[pos + 2]) {
        if gapStart < pos { out.append(pos) }
        pos += 3
        out.append(pos)
        gapStart = pos
      } else {
        pos += 1
      }
    }
    if gapStart < end { out.append(end) }
    start = end
  }
  return out
}
