// `droplora tokenize`: token ids of a text with the model's own tokenizer. Only the vocabulary
// is read, so it works for any GGUF whose tokenizer type is supported, whatever its
// architecture.
import ArgumentParser
import Tokenization

struct TokenizeCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "tokenize", abstract: "Print the token ids of TEXT.")

  @OptionGroup var modelOptions: ModelOptions
  @Flag(help: "Parse special-token text such as <|im_start|> (otherwise it is ordinary text).")
  var special = false
  @Flag(help: "Print {\"tokens\":[...]}.") var json = false
  @Flag(name: .customLong("no-bos"), help: "Don't add the BOS/EOS tokens the model asks for.")
  var noSpecialTokens = false
  @Argument(help: "The text, or - to read standard input.") var text: String

  func run() throws {
    let tokenizer = try loadTokenizer(modelOptions)
    let tokens = tokenizer.encode(
      readTextArgument(text), parseSpecial: special, addSpecial: !noSpecialTokens)
    if json {
      try printJSON(TokensOutput(tokens: tokens))
    } else {
      for token in tokens {
        let piece = String(decoding: tokenizer.tokenPiece(token, renderSpecial: true), as: UTF8.self)
        print("\(token)\t\(piece.debugDescription)")
      }
    }
  }
}

struct TokensOutput: Encodable { let tokens: [Int32] }

func loadTokenizer(_ options: ModelOptions) throws -> Tokenizer {
  let file = try options.open()
  do {
    return try Tokenizer(gguf: file)
  } catch {
    throw CommandFailure("\(file.path): \(error)")
  }
}
