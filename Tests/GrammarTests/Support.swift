// Shared by the grammar tests: the default model's vocabulary (the real 49 152 byte strings a
// mask walks), a seeded generator, and the call to the independent JSON Schema validator
// (Python's jsonschema via scripts/validate_json_outputs.py).
import Foundation
import GGUF
import Grammar
import Tokenization

let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
  .deletingLastPathComponent().deletingLastPathComponent()
let defaultModelPath = packageRoot.appendingPathComponent("models/SmolLM2-135M-Instruct.Q4_1.gguf").path
let defaultModelIsPresent = FileManager.default.fileExists(atPath: defaultModelPath)

/// The default model's vocabulary as the matcher sees it, built once.
let defaultVocabulary: TokenVocabulary = {
  let tokenizer = try! Tokenizer(gguf: try! GGUFFile(path: defaultModelPath))
  let pieces = (0..<Int32(tokenizer.vocabularySize)).map { tokenizer.tokenPiece($0) }
  return TokenVocabulary(pieces: pieces, endTokens: tokenizer.endOfGeneration)
}()

struct SplitMix64 {
  var state: UInt64
  mutating func next() -> UInt64 {
    state &+= 0x9E37_79B9_7F4A_7C15
    var z = state
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
  }
}

/// Samples uniformly among the allowed tokens until the grammar is complete (or an end token
/// is drawn); nil when `budget` tokens were not enough.
func randomWalk(_ matcher: GrammarMatcher, _ random: inout SplitMix64, budget: Int = 3000) -> [UInt8]? {
  matcher.reset()
  var out: [UInt8] = []
  for _ in 0..<budget {
    if matcher.isComplete { return out }
    let allowed = matcher.allowedTokens().allowed
    guard !allowed.isEmpty else { return nil }
    let token = allowed[Int(random.next() % UInt64(allowed.count))]
    if matcher.vocabulary.endTokens.contains(token) { return out }
    guard matcher.accept(token) else { return nil }
    out += matcher.vocabulary.piece(token)
  }
  return nil
}

struct ValidationFailure: Error, CustomStringConvertible {
  let description: String
}

/// Runs the independent validator once over every (schema, outputs) batch; returns its report.
func validateWithJSONSchema(_ batches: [(schema: String, outputs: [String])]) throws -> (ok: Bool, report: String) {
  let file = FileManager.default.temporaryDirectory.appendingPathComponent("grammar-outputs-\(UUID().uuidString).jsonl")
  defer { try? FileManager.default.removeItem(at: file) }
  var lines = ""
  for batch in batches {
    let outputs = try JSONSerialization.data(withJSONObject: batch.outputs)
    lines += "{\"schema\": \(batch.schema), \"outputs\": \(String(decoding: outputs, as: UTF8.self))}\n"
  }
  try lines.write(to: file, atomically: true, encoding: .utf8)
  let process = Process()
  process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
  process.arguments = ["python3", packageRoot.appendingPathComponent("scripts/validate_json_outputs.py").path, file.path]
  let pipe = Pipe()
  process.standardOutput = pipe
  process.standardError = pipe
  try process.run()
  let data = pipe.fileHandleForReading.readDataToEndOfFile()
  process.waitUntilExit()
  return (process.terminationStatus == 0, String(decoding: data, as: UTF8.self))
}
