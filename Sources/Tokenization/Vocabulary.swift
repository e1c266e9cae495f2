// The vocabulary as plain data: token texts, scores, types, merges, special-token ids and
// the flags that steer encoding, with llama.cpp's defaults and its text-based detection of
// end-of-generation tokens applied once here. Building lookup tables for fast encoding is
// the tokenizer's job (Tokenizer.swift); reading a file is the GGUF module's.

/// Which tokenizer algorithm the vocabulary belongs to (`tokenizer.ggml.model`).
public enum VocabularyKind: String, Sendable, Equatable {
  /// Byte-level BPE with ranked merges and a pre-tokenizer regex (`gpt2`).
  case bytePairEncoding = "gpt2"
  /// SentencePiece with scored pieces and `<0xNN>` byte fallback (`llama`).
  case sentencePiece = "llama"
}

/// Per-token attributes, as llama.cpp derives them from `tokenizer.ggml.token_type`.
public struct TokenAttributes: OptionSet, Sendable, Hashable {
  public let rawValue: UInt16
  public init(rawValue: UInt16) { self.rawValue = rawValue }
  public static let undefined = TokenAttributes(rawValue: 1 << 0)
  public static let unknown = TokenAttributes(rawValue: 1 << 1)
  public static let unused = TokenAttributes(rawValue: 1 << 2)
  public static let normal = TokenAttributes(rawValue: 1 << 3)
  public static let control = TokenAttributes(rawValue: 1 << 4)
  public static let userDefined = TokenAttributes(rawValue: 1 << 5)
  public static let byte = TokenAttributes(rawValue: 1 << 6)
  /// Strip whitespace to the left of this special token when parsing special text.
  public static let lstrip = TokenAttributes(rawValue: 1 << 8)
  /// Strip whitespace to the right of this special token when parsing special text.
  public static let rstrip = TokenAttributes(rawValue: 1 << 9)

  /// The attributes of a GGUF token type (1 normal, 2 unknown, 3 control, 4 user-defined,
  /// 5 unused, 6 byte; anything else undefined).
  public init(tokenType: Int32) {
    switch tokenType {
    case 1: self = .normal
    case 2: self = .unknown
    case 3: self = .control
    case 4: self = .userDefined
    case 5: self = .unused
    case 6: self = .byte
    default: self = .undefined
    }
  }
}

public struct Vocabulary: Sendable, Equatable {
  public var kind: VocabularyKind
  /// `tokenizer.ggml.pre` as written in the file (nil when absent).
  public var preName: String?
  public var preTokenizer: PreTokenizer
  public var tokens: [String]
  public var scores: [Float]
  /// Raw `tokenizer.ggml.token_type` values (1 for every token when the key is absent).
  public var tokenTypes: [Int32]
  /// Attributes after llama.cpp's adjustments (EOG-looking tokens forced to control, etc.).
  public var attributes: [TokenAttributes]
  /// BPE merges in rank order, each "left right".
  public var merges: [String]

  public var bos: Int32?
  public var eos: Int32?
  public var eot: Int32?
  public var eom: Int32?
  public var unknown: Int32?
  public var padding: Int32?

  public var addBOS: Bool
  public var addEOS: Bool
  public var addSpacePrefix: Bool
  /// llama.cpp's `clean_spaces`: detokenize removes " ." style spaces (BPE default).
  public var cleanSpaces: Bool
  /// llama.cpp's `ignore_merges`: a pre-token that is already a token is emitted whole.
  public var ignoreMerges: Bool
  /// Every id that ends generation (eos, eot, eom, and the tokens named like them).
  public var endOfGeneration: Set<Int32>
  /// `tokenizer.chat_template`, the model's Jinja chat template.
  public var chatTemplate: String?
  /// `general.name`, used only for llama.cpp's per-model token attribute tweaks.
  public var modelName: String?
  /// `general.architecture`: picks the chat template of a family whose files carry none
  /// (Gemma 3).
  public var architecture: String?

  public var count: Int { tokens.count }

  /// Builds a vocabulary from metadata values, applying llama.cpp's defaults for anything
  /// absent: SPM adds BOS (id 1), EOS is 2, unknown 0 and a space prefix; BPE adds nothing
  /// unless the pre-tokenizer says so (llama3 adds BOS) or the metadata does.
  public init(
    model: String, pre: String? = nil, tokens rawTokens: [String], scores: [Float]? = nil,
    tokenTypes: [Int32]? = nil, merges: [String] = [],
    bos: Int? = nil, eos: Int? = nil, eot: Int? = nil, eom: Int? = nil, unknown: Int? = nil,
    padding: Int? = nil, addBOS: Bool? = nil, addEOS: Bool? = nil, addSpacePrefix: Bool? = nil,
    chatTemplate: String? = nil, modelName: String? = nil, architecture: String? = nil
  ) throws {
    guard let kind = VocabularyKind(rawValue: model) else {
      throw TokenizationError.unsupportedModel(model)
    }
    guard !rawTokens.isEmpty else { throw TokenizationError.emptyVocabulary }
    let n = rawTokens.count
    guard n < Int(Int32.max) else { throw TokenizationError.tooManyTokens(n) }
    self.kind = kind
    self.preName = pre
    self.tokens = rawTokens.enumerated().map { $0.element.isEmpty ? "[EMPTY_\($0.offset)]" : $0.element }
    if let scores, scores.count < n {
      throw TokenizationError.arrayTooShort(key: TokenizerKey.scores, count: scores.count, expected: n)
    }
    if let tokenTypes, tokenTypes.count < n {
      throw TokenizationError.arrayTooShort(key: TokenizerKey.tokenType, count: tokenTypes.count, expected: n)
    }
    self.scores = scores.map { Array($0.prefix(n)) } ?? [Float](repeating: 0, count: n)
    self.tokenTypes = tokenTypes.map { Array($0.prefix(n)) } ?? [Int32](repeating: 1, count: n)
    self.attributes = self.tokenTypes.map(TokenAttributes.init(tokenType:))
    self.merges = merges
    self.chatTemplate = chatTemplate
    self.modelName = modelName
    self.architecture = architecture

    // Defaults per model family (llama_vocab::impl::load).
    var defBOS: Int?, defEOS: Int?, defUNK: Int?
    var dAddBOS = false, dAddSpace = false, dClean = false, dIgnoreMerges = false
    switch kind {
    case .sentencePiece:
      defBOS = 1; defEOS = 2; defUNK = 0
      dAddBOS = true; dAddSpace = true
      self.preTokenizer = .none
    case .bytePairEncoding:
      defBOS = 11; defEOS = 11; defUNK = nil
      dClean = true
      guard let p = PreTokenizer(name: pre) else {
        throw TokenizationError.unsupportedPreTokenizer(pre ?? "")
      }
      self.preTokenizer = p
      switch p {
      case .llama3: dIgnoreMerges = true; dAddBOS = true
      case .smollm, .qwen2: dClean = false
      default: break
      }
    }
    func checked(_ value: Int?, _ fallback: Int?) -> Int32? {
      // A default outside the vocabulary is disabled; a bad key falls back to the default.
      let def = fallback.flatMap { $0 >= 0 && $0 < n ? Int32($0) : nil }
      guard let value else { return def }
      return value >= 0 && value < n ? Int32(value) : def
    }
    self.bos = checked(bos, defBOS)
    self.eos = checked(eos, defEOS)
    self.eot = checked(eot, nil)
    self.eom = checked(eom, nil)
    self.unknown = checked(unknown, defUNK)
    self.padding = checked(padding, nil)
    self.addBOS = addBOS ?? dAddBOS
    self.addEOS = addEOS ?? false
    self.addSpacePrefix = addSpacePrefix ?? dAddSpace
    self.cleanSpaces = dClean
    self.ignoreMerges = dIgnoreMerges
    self.endOfGeneration = []
    detectSpecialTokens()
  }

  /// Reads the tokenizer keys from model metadata (GGUF) and builds the vocabulary.
  public init(metadata m: some TokenizerMetadata) throws {
    guard let model = try m.string(TokenizerKey.model) else {
      throw TokenizationError.missingKey(TokenizerKey.model)
    }
    guard let tokens = try m.stringArray(TokenizerKey.tokens) else {
      throw TokenizationError.missingKey(TokenizerKey.tokens)
    }
    let merges = try m.stringArray(TokenizerKey.merges)
    if model == VocabularyKind.bytePairEncoding.rawValue && merges == nil {
      throw TokenizationError.missingKey(TokenizerKey.merges)
    }
    try self.init(
      model: model, pre: try m.string(TokenizerKey.pre), tokens: tokens,
      scores: try m.floatArray(TokenizerKey.scores)?.map { Float($0) },
      tokenTypes: try m.intArray(TokenizerKey.tokenType)?.map { Int32(truncatingIfNeeded: $0) },
      merges: merges ?? [],
      bos: try m.int(TokenizerKey.bosID), eos: try m.int(TokenizerKey.eosID),
      eot: try m.int(TokenizerKey.eotID), eom: try m.int(TokenizerKey.eomID),
      unknown: try m.int(TokenizerKey.unknownID), padding: try m.int(TokenizerKey.paddingID),
      addBOS: try m.bool(TokenizerKey.addBOS), addEOS: try m.bool(TokenizerKey.addEOS),
      addSpacePrefix: try m.bool(TokenizerKey.addSpacePrefix),
      chatTemplate: try m.string(TokenizerKey.chatTemplate),
      modelName: try m.string(TokenizerKey.generalName),
      architecture: try m.string(TokenizerKey.generalArchitecture))
  }

  public func isControl(_ id: Int32) -> Bool {
    id >= 0 && Int(id) < count && attributes[Int(id)].contains(.control)
  }

  // Texts llama.cpp uses to find tokens the converter did not label (llama-vocab.cpp).
  static let eotTexts: Set<String> = [
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|end_of_text|>",
    "<EOT>", "_<EOT>", "[EOT]", "<｜end▁of▁sentence｜>", "<end_of_utterance>",
  ]
  static let eogTexts: Set<String> = [
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>", "<|calls|>",
    "<end_of_turn>", "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]", "[EOS]",
    "<|end_of_text|>", "<end_of_utterance>", "<eos>", "<turn|>", "<|tool_response>",
    "<｜end▁of▁sentence｜>", "[e~[",
  ]
  static let fimTexts: Set<String> = [
    "<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<｜fim▁begin｜>", "<PRE>", "▁<PRE>",
    "<|code_prefix|>", "<|prefix|>",
    "<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>", "<｜fim▁hole｜>", "<SUF>", "▁<SUF>",
    "<|code_suffix|>", "<|suffix|>",
    "<|fim_middle|>", "<fim-middle>", "<fim_middle>", "<｜fim▁end｜>", "<MID>", "▁<MID>",
    "<|code_middle|>", "<|middle|>",
  ]
  // FIM pad, repo and file-separator tokens also end generation in llama.cpp.
  static let fimEOGTexts: Set<String> = [
    "<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]",
    "<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>", "<|file_sep|>",
  ]

  /// llama.cpp's detection by text: EOT/EOM/FIM tokens, the end-of-generation set, and the
  /// per-model strip attributes. Tokens recognised by text become control tokens.
  private mutating func detectSpecialTokens() {
    var fimEOG = Set<Int32>()
    for (i, text) in tokens.enumerated() {
      let id = Int32(i)
      if eot == nil && Self.eotTexts.contains(text) {
        eot = id
        attributes[i].insert(.control)
      }
      if eom == nil && text == "<|eom_id|>" {
        eom = id
        attributes[i].insert(.control)
      }
      if Self.fimTexts.contains(text) { attributes[i].insert(.control) }
      if Self.fimEOGTexts.contains(text) {
        attributes[i].insert(.control)
        fimEOG.insert(id)
      }
    }
    for i in attributes.indices where attributes[i].contains(.control) {
      if tokens[i].contains("unused") { attributes[i].insert(.unused) }
    }
    var eog = fimEOG
    for (i, text) in tokens.enumerated() where Self.eogTexts.contains(text) {
      eog.insert(Int32(i))
      attributes[i].insert(.control)
    }
    for id in [eos, eot, eom].compactMap({ $0 }) { eog.insert(id) }
    // gpt-oss / solar-open: "<|end|>" is not EOG when "<|return|>" and "<|call|>" exist.
    let eogTextsPresent = Set(eog.map { tokens[Int($0)] })
    if let end = eog.first(where: { tokens[Int($0)] == "<|end|>" }),
      (eogTextsPresent.contains("<|return|>") && eogTextsPresent.contains("<|call|>"))
        || (eogTextsPresent.contains("<|calls|>") && eogTextsPresent.contains("<|flush|>"))
    {
      eog.remove(end)
      attributes[Int(end)] = .userDefined
    }
    // gemma4 / plamo: "</s>" is a normal token there.
    if let s = eog.first(where: { tokens[Int($0)] == "</s>" }),
      eogTextsPresent.contains("<|tool_response>") || eogTextsPresent.contains("<|plamo:eos|>")
    {
      eog.remove(s)
      attributes[Int(s)] = .normal
    }
    endOfGeneration = eog

    // Phi-3 strips whitespace after its special tokens (llama.cpp, by general.name).
    let name = (modelName ?? "").lowercased()
    if name.contains("phi-3") || name.contains("phi3") {
      let special: TokenAttributes = [.control, .userDefined, .unknown]
      for i in attributes.indices where !attributes[i].isDisjoint(with: special) {
        attributes[i].insert(.rstrip)
      }
      for (i, text) in tokens.enumerated() {
        if text == "</s>" { attributes[i].insert(.rstrip) }
        if text == "<unk>" || text == "<s>" || text == "<|endoftext|>" { attributes[i].remove(.rstrip) }
      }
    }
  }
}
