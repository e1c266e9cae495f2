// The one place the tokenizer meets the GGUF reader: GGUFFile already has the typed
// accessors TokenizerMetadata asks for, so conformance is declared and nothing else.

import GGUF

extension GGUFFile: TokenizerMetadata {}

extension Vocabulary {
  /// Reads the tokenizer keys of a GGUF model file.
  public init(gguf: GGUFFile) throws {
    try self.init(metadata: gguf)
  }
}

extension Tokenizer {
  /// The tokenizer of a GGUF model file.
  public convenience init(gguf: GGUFFile) throws {
    self.init(vocabulary: try Vocabulary(gguf: gguf))
  }
}
