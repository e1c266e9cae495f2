// Reading and writing an adapter whatever its format: a path ending in .gguf (or a file that
// starts with the GGUF magic) is llama.cpp's GGUF-LoRA; a directory or a .safetensors file is
// PEFT. Every read is validated against the base model it will be applied to.
import Foundation
import Llama

public enum AdapterFormat: String, Sendable {
  case peft
  case ggufLoRA = "gguf"

  /// The format of an existing adapter at `path`.
  public static func detect(path: String) -> AdapterFormat {
    if path.hasSuffix(".gguf") { return .ggufLoRA }
    if AdapterFile.kind(path) == .regular, let handle = FileHandle(forReadingAtPath: path) {
      defer { try? handle.close() }
      if let magic = try? handle.read(upToCount: 4), magic == Data("GGUF".utf8) { return .ggufLoRA }
    }
    return .peft
  }

  /// The format to write to `path`: .gguf files are GGUF-LoRA, anything else a PEFT directory.
  public static func forOutput(path: String) -> AdapterFormat {
    path.hasSuffix(".gguf") ? .ggufLoRA : .peft
  }
}

public enum AdapterFile {
  enum Kind { case regular, directory, missing, other }

  /// What is at `path` (following symlinks), found without opening it: opening a FIFO would
  /// wait for a writer forever.
  static func kind(_ path: String) -> Kind {
    var info = stat()
    guard stat(path, &info) == 0 else { return .missing }
    switch info.st_mode & S_IFMT {
    case S_IFREG: return .regular
    case S_IFDIR: return .directory
    default: return .other
    }
  }

  /// Refuses a FIFO, socket or device before anything opens it.
  static func requireRegularFile(_ path: String) throws(AdapterError) {
    if kind(path) == .other { throw .io(path: path, reason: "not a regular file (a FIFO, socket or device?)") }
  }

  public static func read(path: String, base hyper: LlamaHyperParameters) throws(AdapterError)
    -> LoRAAdapter
  {
    try requireRegularFile(path)
    switch AdapterFormat.detect(path: path) {
    case .ggufLoRA: return try GGUFLoRAFormat.read(path: path, base: hyper)
    case .peft: return try PEFTFormat.read(path: path, base: hyper)
    }
  }

  public static func write(
    _ adapter: LoRAAdapter, to path: String, format: AdapterFormat? = nil,
    base hyper: LlamaHyperParameters
  ) throws(AdapterError) {
    switch format ?? AdapterFormat.forOutput(path: path) {
    case .ggufLoRA: try GGUFLoRAFormat.write(adapter, to: path, base: hyper)
    case .peft: try PEFTFormat.write(adapter, to: path, base: hyper)
    }
  }
}
