// Options shared by the commands that load a model, and where the default model is found.
import ArgumentParser
import Foundation
import GGUF
import Llama
import Tokenization

struct ModelOptions: ParsableArguments {
  @Option(name: .long, help: "GGUF model file (default: models/\(ModelLocator.defaultFileName)).")
  var model: String?

  func resolvedPath() throws -> String {
    if let model { return model }
    if let found = ModelLocator.findDefault() { return found }
    throw CommandFailure(
      "no --model given and \(ModelLocator.defaultFileName) was not found in ./models or next to "
        + "the droplora executable; run scripts/fetch-model.sh or pass --model PATH")
  }

  /// The model, its tokenizer and the chat template samples are rendered with (`train`, `eval`).
  func openForTraining(chatTemplate: String?) throws -> (model: LlamaModel, tokenizer: Tokenizer, template: ChatTemplate) {
    let file = try open()
    do {
      let tokenizer = try Tokenizer(gguf: file)
      return (try LlamaModel(file: file), tokenizer, try tokenizer.chatTemplate(named: chatTemplate))
    } catch {
      throw CommandFailure("\(file.path): \(error)")
    }
  }

  func open() throws -> GGUFFile {
    let path = try resolvedPath()
    do {
      return try GGUFFile(path: path)
    } catch {
      throw CommandFailure("cannot load \(path): \(error)")
    }
  }
}

enum ModelLocator {
  static let defaultFileName = "SmolLM2-135M-Instruct.Q4_1.gguf"

  /// ./models/<default>, then models/<default> in each directory above the executable
  /// (so `.build/release/droplora` finds the checkout's models/ from anywhere).
  static func findDefault() -> String? {
    let manager = FileManager.default
    var candidates = [manager.currentDirectoryPath + "/models/" + defaultFileName]
    var directory = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
      .deletingLastPathComponent()
    for _ in 0..<6 {
      candidates.append(directory.appendingPathComponent("models/" + defaultFileName).path)
      directory.deleteLastPathComponent()
    }
    return candidates.first { manager.fileExists(atPath: $0) }
  }
}

/// A command that cannot go on (a file that doesn't load, a prompt that doesn't fit): printed
/// as "Error: <message>" without the usage text ArgumentParser adds to a ValidationError.
struct CommandFailure: Error, CustomStringConvertible {
  let description: String
  init(_ description: String) { self.description = description }
}

/// TEXT arguments accept `-` for standard input.
func readTextArgument(_ text: String) -> String {
  guard text == "-" else { return text }
  let data = FileHandle.standardInput.readDataToEndOfFile()
  return String(decoding: data, as: UTF8.self)
}

/// Writes a JSON value on one line to standard output.
func printJSON<T: Encodable>(_ value: T) throws {
  let encoder = JSONEncoder()
  encoder.outputFormatting = [.withoutEscapingSlashes]
  FileHandle.standardOutput.write(try encoder.encode(value))
  FileHandle.standardOutput.write(Data("\n".utf8))
}
