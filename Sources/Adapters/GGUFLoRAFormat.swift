// llama.cpp's GGUF-LoRA adapters, as its src/llama-adapter.cpp reads them and its
// convert_lora_to_gguf.py writes them: general.type = "adapter", adapter.type = "lora",
// adapter.lora.alpha (float32; llama.cpp scales by alpha / rank, rank = lora_a's ne[1]),
// general.architecture equal to the base's; tensors `blk.N.<proj>.weight.lora_a` with ggml dims
// [in, r] and `.lora_b` with dims [r, out] (row-major A: r x in, B: out x r), rows already in
// the GGUF base's order. rsLoRA has no key there, so the writer folds it into alpha
// (alpha·sqrt(r)); the PEFT configuration rides along under `droplora.peft_config` so
// conversions back to PEFT are exact.
import CKernels
import Foundation
import DurableFiles
import GGUF
import Llama

public enum GGUFLoRAFormat {
  static let typeKey = "general.type"
  static let adapterTypeKey = "adapter.type"
  static let alphaKey = "adapter.lora.alpha"
  static let peftConfigKey = "droplora.peft_config"

  public static func read(path: String, base hyper: LlamaHyperParameters) throws(AdapterError)
    -> LoRAAdapter
  {
    let file: GGUFFile
    do {
      file = try GGUFFile(path: path)
    } catch {
      throw .gguf(path: path, error: error)
    }
    return try read(file, base: hyper)
  }

  public static func read(_ file: GGUFFile, base hyper: LlamaHyperParameters) throws(AdapterError)
    -> LoRAAdapter
  {
    let path = file.path
    let generalType: String?
    let adapterType: String?
    let alpha: Double?
    let embedded: String?
    do {
      generalType = try file.string(typeKey)
      adapterType = try file.string(adapterTypeKey)
      alpha = try file.float(alphaKey)
      embedded = try file.string(peftConfigKey)
    } catch {
      throw .gguf(path: path, error: error)
    }
    guard generalType == "adapter" else {
      throw .notAnAdapter(path: path, reason: "general.type is '\(generalType ?? "(none)")', expected 'adapter'")
    }
    guard adapterType == "lora" else {
      throw .notAnAdapter(path: path, reason: "adapter.type is '\(adapterType ?? "(none)")', expected 'lora'")
    }
    var a: [LoRATarget: GGUFTensorInfo] = [:]
    var b: [LoRATarget: GGUFTensorInfo] = [:]
    var storage: SafetensorsDType?
    for tensor in file.tensors {
      guard let (target, factor) = GGUFLoRANames.parse(tensor.name) else {
        throw .unknownTensorName(path: path, tensor: tensor.name)
      }
      let dtype: SafetensorsDType
      switch tensor.type {
      case .f32: dtype = .f32
      case .f16: dtype = .f16
      case .bf16: dtype = .bf16
      default: throw .unsupportedDType(path: path, tensor: tensor.name, dtype: tensor.type.name)
      }
      storage = storage ?? dtype
      if factor == .a { a[target] = tensor } else { b[target] = tensor }
    }
    var factors: [LoRATarget: LoRAFactors] = [:]
    var rank: Int?
    for target in Set(a.keys).union(b.keys).sorted() {
      guard let ta = a[target] else { throw .missingFactor(target: target.ggufName, factor: "lora_a") }
      guard let tb = b[target] else { throw .missingFactor(target: target.ggufName, factor: "lora_b") }
      guard target.layer < hyper.layerCount else {
        throw .layerOutOfRange(tensor: ta.name, layer: target.layer, layerCount: hyper.layerCount)
      }
      let shape = target.projection.shape(hyper)
      let r = rank ?? (ta.dimensions.count == 2 ? ta.dimensions[1] : 0)
      guard r > 0, ta.dimensions == [shape.columns, r] else {
        throw .wrongShape(tensor: ta.name, expected: [shape.columns, max(r, 1)], found: ta.dimensions)
      }
      guard tb.dimensions == [r, shape.rows] else {
        throw .wrongShape(tensor: tb.name, expected: [r, shape.rows], found: tb.dimensions)
      }
      rank = r
      factors[target] = LoRAFactors(
        rank: r, rows: shape.rows, columns: shape.columns, a: floats(file, ta), b: floats(file, tb))
    }
    guard let rank else { throw .notAnAdapter(path: path, reason: "it holds no lora_a/lora_b tensors") }
    // llama.cpp: scale = alpha / rank, and alpha 0 (absent) means scale 1.
    let effectiveAlpha = (alpha ?? 0) == 0 ? Double(rank) : alpha!
    var config = AdapterConfig(
      r: rank, loraAlpha: effectiveAlpha,
      targetModules: Set(factors.keys.map { HFNames.module($0.projection).name }).sorted())
    var configJSON: [UInt8]?
    if let embedded, let decoded = try? AdapterConfig.decode(Data(embedded.utf8), path: path),
      decoded.r == rank,
      abs(decoded.scale - Float(effectiveAlpha / Double(rank))) <= 1e-6 * abs(decoded.scale) + 1e-12
    {
      // The embedded PEFT configuration agrees with the GGUF keys: keep it verbatim.
      config = decoded
      configJSON = [UInt8](embedded.utf8)
    }
    let adapter = LoRAAdapter(
      config: config, factors: factors, architecture: try? file.string("general.architecture"),
      storageType: storage ?? .f32, originalConfigJSON: configJSON)
    try adapter.validate(against: hyper)
    return adapter
  }

  private static func floats(_ file: GGUFFile, _ tensor: GGUFTensorInfo) -> [Float] {
    let bytes = file.bytes(of: tensor)
    let count = tensor.elementCount
    return [Float](unsafeUninitializedCapacity: count) { out, initialized in
      // The parser checked the tensor's byte range against the file.
      dq_dequantize_row(tensor.type.rawValue, bytes.baseAddress!, out.baseAddress!, Int64(count))
      initialized = count
    }
  }

  /// The GGUF-LoRA file of `adapter` for a base of architecture `hyper.architecture`.
  public static func writer(_ adapter: LoRAAdapter, base hyper: LlamaHyperParameters)
    throws(AdapterError) -> GGUFWriter
  {
    var writer = GGUFWriter()
    writer.set("general.architecture", .string(adapter.architecture ?? hyper.architecture))
    writer.set(typeKey, .string("adapter"))
    writer.set(adapterTypeKey, .string("lora"))
    // llama.cpp computes alpha / rank; fold rsLoRA's sqrt(r) into alpha.
    writer.set(alphaKey, .float32(adapter.scale * Float(adapter.rank)))
    if let base = adapter.config.baseModelNameOrPath {
      writer.set("general.base_model.count", .uint32(1))
      writer.set("general.base_model.0.name", .string(base))
    }
    writer.set(peftConfigKey, .string(String(decoding: PEFTFormat.configJSON(adapter), as: UTF8.self)))
    let type: GGMLType
    switch adapter.storageType {
    case .f32: type = .f32
    case .f16: type = .f16
    case .bf16: type = .bf16
    }
    for target in adapter.targets {
      let f = adapter.factors[target]!  // a key of the dictionary
      do {
        try writer.addTensor(
          name: GGUFLoRANames.tensorName(target, factor: .a), type: type,
          dimensions: [f.columns, f.rank], data: encode(f.a, type))
        try writer.addTensor(
          name: GGUFLoRANames.tensorName(target, factor: .b), type: type,
          dimensions: [f.rank, f.rows], data: encode(f.b, type))
      } catch {
        throw .gguf(path: "<adapter>", error: error)
      }
    }
    return writer
  }

  public static func write(
    _ adapter: LoRAAdapter, to path: String, base hyper: LlamaHyperParameters
  ) throws(AdapterError) {
    do {
      try writer(adapter, base: hyper).write(to: path)
    } catch let error as AdapterError {
      throw error
    } catch GGUFError.io(let failed, let operation, let errno) {
      throw .storage(DurableWriteError(path: failed, operation: operation, errno: errno))
    } catch let error as GGUFError {
      throw .gguf(path: path, error: error)
    } catch {
      throw .io(path: path, reason: "\(error)")
    }
  }

  static func encode(_ values: [Float], _ type: GGMLType) -> [UInt8] {
    let size = type.rowSize(values.count) ?? 0
    var out = [UInt8](repeating: 0, count: size)
    out.withUnsafeMutableBytes { raw in
      dq_quantize_row(type.rawValue, values, raw.baseAddress!, Int64(values.count))
    }
    return out
  }
}
