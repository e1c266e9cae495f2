import Foundation

/// The package root, found from this file's path (Tests/TinyModelSupport/PackageRoot.swift).
public let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
  .deletingLastPathComponent().deletingLastPathComponent()

/// The default model, fetched by scripts/fetch-model.sh (the test command runs it first).
public let defaultModelPath = packageRoot.appendingPathComponent(
  "models/SmolLM2-135M-Instruct.Q4_1.gguf"
).path

public var defaultModelIsPresent: Bool { FileManager.default.fileExists(atPath: defaultModelPath) }
