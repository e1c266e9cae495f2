// Hugging Face PEFT adapters: a directory with adapter_config.json and
// adapter_model.safetensors (tensors `base_model.model.model.layers.N.self_attn.q_proj.lora_A.weight`,
// A as [r, in], B as [out, r], rows in HF order). Reading permutes the rows of q/k lora_B into
// the GGUF base's order and checks everything against the base; writing does the reverse.
import DurableFiles
import Foundation
import Llama

public enum PEFTFormat {
  public static let configFileName = "adapter_config.json"
  public static let weightsFileName = "adapter_model.safetensors"

  /// Reads a PEFT adapter from its directory (or from the .safetensors file, with the config
  /// next to it) for a base with `hyper`.
  public static func read(path: String, base hyper: LlamaHyperParameters) throws(AdapterError)
    -> LoRAAdapter
  {
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
      throw .io(path: path, reason: "no such file or directory")
    }
    let directory = isDirectory.boolValue ? path : (path as NSString).deletingLastPathComponent
    let weightsPath = isDirectory.boolValue ? directory + "/" + weightsFileName : path
    let configPath = (directory.isEmpty ? "." : directory) + "/" + configFileName
    try AdapterFile.requireRegularFile(configPath)
    guard let configData = FileManager.default.contents(atPath: configPath) else {
      throw .io(path: configPath, reason: "cannot read the adapter configuration (missing?)")
    }
    let config = try AdapterConfig.decode(configData, path: configPath)
    let file = try SafetensorsFile(path: weightsPath)
    return try adapter(from: file, config: config, configJSON: [UInt8](configData), base: hyper)
  }

  static func adapter(
    from file: SafetensorsFile, config: AdapterConfig, configJSON: [UInt8]?,
    base hyper: LlamaHyperParameters
  ) throws(AdapterError) -> LoRAAdapter {
    var a: [LoRATarget: (SafetensorsFile.Tensor, [Float])] = [:]
    var b: [LoRATarget: (SafetensorsFile.Tensor, [Float])] = [:]
    var storage: SafetensorsDType?
    for tensor in file.tensors {
      guard let (target, factor) = HFNames.parse(tensor.name) else {
        throw .unknownTensorName(path: file.path, tensor: tensor.name)
      }
      storage = storage ?? tensor.dtype
      guard target.layer < hyper.layerCount else {
        throw .layerOutOfRange(tensor: tensor.name, layer: target.layer, layerCount: hyper.layerCount)
      }
      let shape = target.projection.shape(hyper)
      let expected = factor == .a ? [config.r, shape.columns] : [shape.rows, config.r]
      guard tensor.shape == expected else {
        throw .wrongShape(tensor: tensor.name, expected: expected, found: tensor.shape)
      }
      if factor == .a { a[target] = (tensor, file.floats(of: tensor)) } else { b[target] = (tensor, file.floats(of: tensor)) }
    }
    var factors: [LoRATarget: LoRAFactors] = [:]
    for target in Set(a.keys).union(b.keys).sorted() {
      guard let (_, aValues) = a[target] else {
        throw .missingFactor(target: HFNames.tensorName(target, factor: .b), factor: "lora_A")
      }
      guard let (_, bValues) = b[target] else {
        throw .missingFactor(target: HFNames.tensorName(target, factor: .a), factor: "lora_B")
      }
      let shape = target.projection.shape(hyper)
      var bOrdered = bValues
      if let heads = RowOrder.permutedHeads(target.projection, hyper) {
        bOrdered = RowOrder.permute(bValues, rows: shape.rows, width: config.r, heads: heads, toGGUF: true)
      }
      factors[target] = LoRAFactors(
        rank: config.r, rows: shape.rows, columns: shape.columns, a: aValues, b: bOrdered)
    }
    guard !factors.isEmpty else {
      throw .notAnAdapter(path: file.path, reason: "it holds no lora_A/lora_B tensors")
    }
    let adapter = LoRAAdapter(
      config: config, factors: factors, architecture: nil, storageType: storage ?? .f32,
      originalConfigJSON: configJSON)
    try adapter.validate(against: hyper)
    return adapter
  }

  /// The safetensors file of `adapter` (lora_B rows of q/k back in HF order).
  public static func safetensors(_ adapter: LoRAAdapter, base hyper: LlamaHyperParameters)
    -> SafetensorsWriter
  {
    var writer = SafetensorsWriter()
    writer.metadata = ["format": "pt"]
    for target in adapter.targets {
      let f = adapter.factors[target]!  // a key of the dictionary
      var b = f.b
      if let heads = RowOrder.permutedHeads(target.projection, hyper) {
        b = RowOrder.permute(b, rows: f.rows, width: f.rank, heads: heads, toGGUF: false)
      }
      writer.add(
        name: HFNames.tensorName(target, factor: .a), dtype: adapter.storageType,
        shape: [f.rank, f.columns], values: f.a)
      writer.add(
        name: HFNames.tensorName(target, factor: .b), dtype: adapter.storageType,
        shape: [f.rows, f.rank], values: b)
    }
    return writer
  }

  /// The configuration PEFT will read: the original text when there is one.
  public static func configJSON(_ adapter: LoRAAdapter) -> [UInt8] {
    adapter.originalConfigJSON ?? [UInt8](adapter.config.encoded())
  }

  /// `json` (an adapter_config.json) with `base_model_name_or_path` set, every other key kept.
  static func configJSON(_ json: [UInt8], baseModel: String, path: String) throws(AdapterError) -> [UInt8] {
    guard var object = (try? JSONSerialization.jsonObject(with: Data(json))) as? [String: Any] else {
      throw .badConfig(path: path, reason: "not a JSON object")
    }
    object["base_model_name_or_path"] = baseModel
    guard let data = try? JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys]) else {
      throw .badConfig(path: path, reason: "cannot be written back as JSON")
    }
    return [UInt8](data)
  }

  /// Writes `directory`/adapter_config.json and adapter_model.safetensors, each durably
  /// (DurableFile); `baseModel` (a Hugging Face id) becomes `base_model_name_or_path`. The one
  /// writer of PEFT directories: saved adapters, checkpoints, published versions and exports.
  public static func write(
    _ adapter: LoRAAdapter, to directory: String, base hyper: LlamaHyperParameters, baseModel: String? = nil
  ) throws(AdapterError) {
    let original = configJSON(adapter)
    let config = try baseModel.map { (id) throws(AdapterError) in try configJSON(original, baseModel: id, path: configFileName) }
    let weights = safetensors(adapter, base: hyper).serialized()
    do {
      try DurableFile.makeDirectories(directory)
      try DurableFile.write(config ?? original, to: directory + "/" + configFileName)
      try DurableFile.write(weights, to: directory + "/" + weightsFileName)
    } catch {
      throw .storage(error)
    }
  }

  /// Copies the PEFT directory `source` to `target` (created), the weights byte for byte and
  /// the configuration with `base_model_name_or_path` set to `baseModel` when given.
  public static func copy(from source: String, to target: String, baseModel: String?) throws(AdapterError) {
    let configPath = source + "/" + configFileName
    let weightsPath = source + "/" + weightsFileName
    try AdapterFile.requireRegularFile(configPath)
    try AdapterFile.requireRegularFile(weightsPath)
    guard let config = FileManager.default.contents(atPath: configPath) else {
      throw .io(path: configPath, reason: "cannot read the adapter configuration")
    }
    guard let weights = FileManager.default.contents(atPath: weightsPath) else {
      throw .io(path: weightsPath, reason: "cannot read the adapter weights")
    }
    let json = try baseModel.map { (id) throws(AdapterError) in try configJSON([UInt8](config), baseModel: id, path: configPath) }
    do {
      try DurableFile.makeDirectories(target)
      try DurableFile.write(json ?? [UInt8](config), to: target + "/" + configFileName)
      try DurableFile.write(weights, to: target + "/" + weightsFileName)
    } catch {
      throw .storage(error)
    }
  }
}
