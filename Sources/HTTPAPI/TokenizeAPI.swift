// `POST /tokenize` and `POST /detokenize` in llama-server's shapes, so tokens can be inspected
// over the socket: `{"content", "add_special", "parse_special", "with_pieces"}` →
// `{"tokens": [ids]}` or, with pieces, `{"tokens": [{"id", "piece"}]}` where a piece is a
// string when its bytes are valid UTF-8 and an array of byte values otherwise.

struct TokenizeRequest: Decodable {
  var content: String
  /// Add the model's BOS (llama-server's default: false).
  var addSpecial: Bool
  /// Read special-token text such as `<|im_start|>` as those tokens (llama-server's default: true).
  var parseSpecial: Bool
  var withPieces: Bool

  enum CodingKeys: String, CodingKey, CaseIterable {
    case content
    case addSpecial = "add_special"
    case parseSpecial = "parse_special"
    case withPieces = "with_pieces"
  }

  init(from decoder: any Decoder) throws {
    try refuseUnknownKeys(decoder, known: Set(CodingKeys.allCases.map(\.rawValue)))
    let c = try decoder.container(keyedBy: CodingKeys.self)
    content = try c.decode(String.self, forKey: .content)
    addSpecial = try c.decodeIfPresent(Bool.self, forKey: .addSpecial) ?? false
    parseSpecial = try c.decodeIfPresent(Bool.self, forKey: .parseSpecial) ?? true
    withPieces = try c.decodeIfPresent(Bool.self, forKey: .withPieces) ?? false
  }
}

struct TokenizeResponse: Encodable {
  var pieces: [TokenPiece]
  var withPieces: Bool

  private enum Piece: Encodable {
    case text(String)
    case bytes([UInt8])
    func encode(to encoder: any Encoder) throws {
      var c = encoder.singleValueContainer()
      switch self {
      case .text(let s): try c.encode(s)
      case .bytes(let b): try c.encode(b)
      }
    }
  }
  private struct Entry: Encodable {
    var id: Int32
    var piece: Piece
  }
  enum CodingKeys: String, CodingKey { case tokens }

  func encode(to encoder: any Encoder) throws {
    var c = encoder.container(keyedBy: CodingKeys.self)
    if withPieces {
      try c.encode(
        pieces.map { p in
          Entry(id: p.id, piece: String(validating: p.bytes, as: UTF8.self).map(Piece.text) ?? .bytes(p.bytes))
        }, forKey: .tokens)
    } else {
      try c.encode(pieces.map(\.id), forKey: .tokens)
    }
  }
}

struct DetokenizeRequest: Decodable {
  var tokens: [Int32]
  enum CodingKeys: String, CodingKey { case tokens }
  init(from decoder: any Decoder) throws {
    try refuseUnknownKeys(decoder, known: ["tokens"])
    tokens = try decoder.container(keyedBy: CodingKeys.self).decode([Int32].self, forKey: .tokens)
  }
}

struct DetokenizeResponse: Encodable {
  var content: String
}
