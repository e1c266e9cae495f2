// Errors of the Tokenization module. Each case names the key or value that failed and,
// where the user can do something about it, says what.

public enum TokenizationError: Error, Equatable, CustomStringConvertible {
  /// A required metadata key is missing.
  case missingKey(String)
  /// `tokenizer.ggml.model` names a tokenizer this module does not implement.
  case unsupportedModel(String)
  /// `tokenizer.ggml.pre` names a pre-tokenizer this module does not implement.
  case unsupportedPreTokenizer(String)
  /// An array has fewer entries than the token list.
  case arrayTooShort(key: String, count: Int, expected: Int)
  /// A special-token id is outside the vocabulary.
  case tokenIDOutOfRange(key: String, id: Int, vocabularySize: Int)
  /// The vocabulary is empty.
  case emptyVocabulary
  /// The model's chat template matches none of the known families.
  case unrecognizedChatTemplate(excerpt: String)
  /// The model has no `tokenizer.chat_template` and no template was named.
  case noChatTemplate
  /// More tokens than an Int32 id can address.
  case tooManyTokens(Int)
  /// `ChatTemplate(named:)` got a name it does not know.
  case unknownChatTemplateName(String)
  /// The conversation has a shape the template family cannot express.
  case invalidConversation(String)

  public var description: String {
    switch self {
    case .missingKey(let key):
      return "tokenizer metadata key '\(key)' is missing"
    case .unsupportedModel(let name):
      return "tokenizer model '\(name)' is not supported (supported: gpt2, llama)"
    case .unsupportedPreTokenizer(let name):
      return "pre-tokenizer '\(name)' is not supported (supported: \(PreTokenizer.supportedNames.joined(separator: ", ")))"
    case .arrayTooShort(let key, let count, let expected):
      return "metadata array '\(key)' has \(count) entries, expected at least \(expected)"
    case .tokenIDOutOfRange(let key, let id, let size):
      return "'\(key)' = \(id) is outside the vocabulary of \(size) tokens"
    case .emptyVocabulary:
      return "the vocabulary has no tokens"
    case .unrecognizedChatTemplate(let excerpt):
      return "the model's chat template is not recognised (it starts with \"\(excerpt)\"); "
        + "choose one with --chat-template NAME, where NAME is one of: "
        + ChatTemplate.names.joined(separator: ", ")
    case .noChatTemplate:
      return "the model has no chat template; choose one with --chat-template NAME, where NAME is one of: "
        + ChatTemplate.names.joined(separator: ", ")
    case .tooManyTokens(let n):
      return "the vocabulary has \(n) tokens, more than 32-bit token ids can address"
    case .unknownChatTemplateName(let name):
      return "unknown chat template '\(name)'; known names: " + ChatTemplate.names.joined(separator: ", ")
    case .invalidConversation(let why):
      return "invalid conversation: \(why)"
    }
  }
}
