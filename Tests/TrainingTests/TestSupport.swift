import Foundation

/// The package root, found from this file's path (Tests/TrainingTests/TestSupport.swift).
let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
  .deletingLastPathComponent().deletingLastPathComponent()

/// The default model, fetched by scripts/fetch-model.sh (the test command runs it first).
let defaultModelPath = packageRoot.appendingPathComponent(
  "models/SmolLM2-135M-Instruct.Q4_1.gguf"
).path

var defaultModelIsPresent: Bool { FileManager.default.fileExists(atPath: defaultModelPath) }

func fixtureData(_ name: String) throws -> Data {
  guard let url = Bundle.module.url(forResource: name, withExtension: nil, subdirectory: "Fixtures")
  else { throw CocoaError(.fileNoSuchFile) }
  return try Data(contentsOf: url)
}
