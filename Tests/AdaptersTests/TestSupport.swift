// Shared by the adapter tests: the default model, a scratch directory, logits helpers.
import Adapters
import Foundation
import Llama
import Testing

let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
  .deletingLastPathComponent().deletingLastPathComponent()

let defaultModelPath = packageRoot.appendingPathComponent(
  "models/SmolLM2-135M-Instruct.Q4_1.gguf"
).path

var defaultModelIsPresent: Bool { FileManager.default.fileExists(atPath: defaultModelPath) }
let needsModel: Comment = "needs models/SmolLM2-135M-Instruct.Q4_1.gguf (scripts/fetch-model.sh)"

/// The default model, mapped once for all tests.
let sharedModel: LlamaModel? = try? LlamaModel(path: defaultModelPath)

func requireModel() throws -> LlamaModel {
  guard let model = sharedModel else { throw AdapterTestError.noModel }
  return model
}

enum AdapterTestError: Error { case noModel, noFixture(String) }

/// A fresh empty directory under the system's temporary directory.
func scratchDirectory(_ name: String) throws -> String {
  let path = NSTemporaryDirectory() + "droplora-adapters-\(name)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
  try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
  return path
}

func fixtureURL(_ name: String) -> URL? {
  Bundle.module.url(forResource: name, withExtension: nil, subdirectory: "Fixtures")
}

/// Logits of every token of `tokens` on `model`, optionally with an unmerged adapter.
func allLogits(_ model: LlamaModel, _ tokens: [Int32], hook: LlamaProjectionHook? = nil) throws -> [Float] {
  let context = LlamaContext(model: model, contextLength: tokens.count + 1, threads: 2)
  context.projectionHook = hook
  return try context.evaluateAll(tokens)
}

func maxAbsDifference(_ a: [Float], _ b: [Float]) -> Float {
  zip(a, b).reduce(0) { max($0, abs($1.0 - $1.1)) }
}

func meanAbsDifference(_ a: [Float], _ b: [Float]) -> Float {
  zip(a, b).reduce(0) { $0 + abs($1.0 - $1.1) } / Float(max(1, a.count))
}

/// A prompt of token ids that exist in the default vocabulary (a chat-ish sentence).
let testPrompt: [Int32] = [1, 9690, 198, 2683, 359, 253, 5356, 5646, 11173, 3365, 3511, 28, 4447, 429, 1399, 30]
