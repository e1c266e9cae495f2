// Unicode character classes as llama.cpp's pre-tokenizers see them: letter (\p{L}),
// number (\p{N}), punctuation (\p{P}) from the general category, and whitespace from
// llama.cpp's own list (which, unlike Python's \s, leaves out U+001C…U+001F). Only what the
// pre-tokenizers need; no normalisation, no case mapping.

struct CharacterClass: OptionSet {
  let rawValue: UInt8
  static let letter = CharacterClass(rawValue: 1)
  static let number = CharacterClass(rawValue: 2)
  static let whitespace = CharacterClass(rawValue: 4)
  static let punctuation = CharacterClass(rawValue: 8)
  /// Set for every scalar inside the piece being split; clear outside it (llama.cpp's
  /// `flags.as_uint() == 0` for an out-of-range position).
  static let inRange = CharacterClass(rawValue: 128)

  private static let ascii: [CharacterClass] = (0..<128).map { compute(Unicode.Scalar(UInt8($0))) }

  static func of(_ s: Unicode.Scalar) -> CharacterClass {
    s.value < 128 ? ascii[Int(s.value)] : compute(s)
  }

  private static func compute(_ s: Unicode.Scalar) -> CharacterClass {
    var c: CharacterClass = .inRange
    switch s.value {
    case 0x09...0x0D, 0x20, 0x85, 0xA0, 0x1680, 0x2000...0x200A, 0x2028, 0x2029, 0x202F, 0x205F,
      0x3000:
      c.insert(.whitespace)
    default: break
    }
    switch s.properties.generalCategory {
    case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter:
      c.insert(.letter)
    case .decimalNumber, .letterNumber, .otherNumber:
      c.insert(.number)
    case .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation,
      .initialPunctuation, .finalPunctuation, .otherPunctuation:
      c.insert(.punctuation)
    default: break
    }
    return c
  }
}
