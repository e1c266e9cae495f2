// Checkpoints: everything a resumed run needs to continue exactly as if it had never stopped.
// `<out>/checkpoint/` holds state.json (step, configuration, random state, data position),
// tensors.bin (A, B, PiSSA's frozen factors, AdamW moments; raw little-endian fp32) and the
// adapter in PEFT format (plus GGUF-LoRA on request). Each file is written durably; the
// directory is assembled as checkpoint.tmp and renamed into place, the previous one kept as
// checkpoint.old until then, so a crash at any moment leaves a complete checkpoint.
import Adapters
import DurableFiles
import Foundation
import Llama

public struct CheckpointState: Sendable, Codable, Equatable {
  public var formatVersion = 1
  public var step: Int
  public var config: TrainerConfig
  public var random: TrainingRandom
  public var dataPosition: DataPosition
}

public enum AdapterOutput {
  /// Writes adapter_config.json + adapter_model.safetensors into `directory` (PEFTFormat, the
  /// one PEFT writer) and `adapter.gguf` with `gguf`, each file durably.
  public static func write(
    _ adapter: LoRAAdapter, to directory: String, base hyper: LlamaHyperParameters, gguf: Bool
  ) throws(TrainingError) {
    do {
      try PEFTFormat.write(adapter, to: directory, base: hyper)
      if gguf { try GGUFLoRAFormat.write(adapter, to: directory + "/adapter.gguf", base: hyper) }
    } catch {
      throw TrainingError(error, path: directory)
    }
  }
}

extension Trainer {
  static let tensorsMagic: [UInt8] = Array("DLCK0001".utf8)

  /// Writes `<directory>/checkpoint` for the state after `stepCount` steps, with the data
  /// position the next step starts from.
  public func saveCheckpoint(to directory: String, dataPosition: DataPosition, gguf: Bool = false)
    throws(TrainingError)
  {
    let final = directory + "/checkpoint"
    let temporary = directory + "/checkpoint.tmp"
    let old = directory + "/checkpoint.old"
    let state = CheckpointState(
      step: stepCount, config: config, random: random, dataPosition: dataPosition)
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    let json: Data
    do { json = try encoder.encode(state) } catch { throw .io(path: temporary, reason: "\(error)") }
    do throws(DurableWriteError) {
      try DurableFile.removeTree(temporary)
      try DurableFile.makeDirectories(temporary)
      try DurableFile.write(json, to: temporary + "/state.json")
      try DurableFile.write(tensorBytes(), to: temporary + "/tensors.bin")
    } catch {
      throw .storage(error)
    }
    try AdapterOutput.write(snapshot(), to: temporary + "/adapter", base: model.hyper, gguf: gguf)
    do throws(DurableWriteError) {
      if FileManager.default.fileExists(atPath: final) {
        try DurableFile.removeTree(old)
        try DurableFile.rename(final, to: old)
      }
      try DurableFile.install(directory: temporary, at: final)
      try DurableFile.removeTree(old)
    } catch {
      throw .storage(error)
    }
  }

  /// Restores the state saved under `<directory>` (its checkpoint, or the previous one if a
  /// crash interrupted the swap) and returns the data position to continue from. The trainer
  /// must have been built with the same configuration.
  public func loadCheckpoint(from directory: String) throws(TrainingError) -> DataPosition {
    let manager = FileManager.default
    var path = directory + "/checkpoint"
    if !manager.fileExists(atPath: path + "/state.json") { path = directory + "/checkpoint.old" }
    guard let json = manager.contents(atPath: path + "/state.json") else {
      throw .badCheckpoint(path: directory, reason: "no checkpoint/state.json")
    }
    let state: CheckpointState
    do {
      state = try JSONDecoder().decode(CheckpointState.self, from: json)
    } catch {
      throw .badCheckpoint(path: path, reason: "state.json: \(error)")
    }
    guard state.config.lora == config.lora, state.config.seed == config.seed else {
      throw .badCheckpoint(
        path: path, reason: "it was made with another adapter configuration or seed; start a new --out")
    }
    guard let bytes = manager.contents(atPath: path + "/tensors.bin") else {
      throw .badCheckpoint(path: path, reason: "tensors.bin is missing")
    }
    try restoreTensors(bytes, path: path)
    random = state.random
    optimizer.step = state.step
    return state.dataPosition
  }

  /// Every fp32 buffer of the state, in a fixed order.
  private func stateBuffers(includeFrozen: Bool) -> [FloatBuffer] {
    var buffers: [FloatBuffer] = []
    for module in parameters.modules {
      buffers += [module.a, module.b]
      if includeFrozen, let fa = module.frozenA, let fb = module.frozenB { buffers += [fa, fb] }
    }
    for (m, v) in optimizer.moments { buffers += [m, v] }
    return buffers
  }

  private var hasFrozen: Bool { parameters.modules.contains { $0.frozenA != nil } }

  func tensorBytes() -> Data {
    var data = Data(Self.tensorsMagic)
    var flag: UInt8 = hasFrozen ? 1 : 0
    data.append(&flag, count: 1)
    for buffer in stateBuffers(includeFrozen: true) {
      data.append(UnsafeBufferPointer(start: buffer.pointer, count: buffer.count))
    }
    return data
  }

  func restoreTensors(_ data: Data, path: String) throws(TrainingError) {
    let buffers = stateBuffers(includeFrozen: true)
    let expected = Self.tensorsMagic.count + 1 + buffers.reduce(0) { $0 + 4 * $1.count }
    guard data.count == expected, data.prefix(Self.tensorsMagic.count).elementsEqual(Self.tensorsMagic),
      data[data.startIndex + Self.tensorsMagic.count] == (hasFrozen ? 1 : 0)
    else {
      throw .badCheckpoint(path: path, reason: "tensors.bin does not match this configuration")
    }
    var offset = Self.tensorsMagic.count + 1
    data.withUnsafeBytes { raw in
      for buffer in buffers {
        let bytes = 4 * buffer.count
        UnsafeMutableRawPointer(buffer.pointer).copyMemory(from: raw.baseAddress! + offset, byteCount: bytes)
        offset += bytes
      }
    }
  }
}
