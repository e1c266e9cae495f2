// The metadata keys the tokenizer reads, and the small read-only interface it reads them
// through. `GGUFFile` conforms in `Vocabulary+GGUF.swift`; tests conform a tiny reader of
// their own. This file owns key names only; it knows nothing about the GGUF byte layout.

/// Typed, optional access to model metadata (GGUF key/value pairs).
/// Each accessor returns nil when the key is absent and throws when it has the wrong type.
public protocol TokenizerMetadata {
  func string(_ key: String) throws -> String?
  func int(_ key: String) throws -> Int?
  func bool(_ key: String) throws -> Bool?
  func stringArray(_ key: String) throws -> [String]?
  func intArray(_ key: String) throws -> [Int]?
  func floatArray(_ key: String) throws -> [Double]?
}

/// GGUF metadata keys used by the tokenizer, named once.
public enum TokenizerKey {
  public static let model = "tokenizer.ggml.model"
  public static let pre = "tokenizer.ggml.pre"
  public static let tokens = "tokenizer.ggml.tokens"
  public static let scores = "tokenizer.ggml.scores"
  public static let tokenType = "tokenizer.ggml.token_type"
  public static let merges = "tokenizer.ggml.merges"
  public static let bosID = "tokenizer.ggml.bos_token_id"
  public static let eosID = "tokenizer.ggml.eos_token_id"
  public static let eotID = "tokenizer.ggml.eot_token_id"
  public static let eomID = "tokenizer.ggml.eom_token_id"
  public static let unknownID = "tokenizer.ggml.unknown_token_id"
  public static let paddingID = "tokenizer.ggml.padding_token_id"
  public static let addBOS = "tokenizer.ggml.add_bos_token"
  public static let addEOS = "tokenizer.ggml.add_eos_token"
  public static let addSpacePrefix = "tokenizer.ggml.add_space_prefix"
  public static let chatTemplate = "tokenizer.chat_template"
  public static let generalName = "general.name"
  public static let generalArchitecture = "general.architecture"
}
