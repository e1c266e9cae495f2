// Every way reading, validating, converting or merging an adapter can fail. Each case names
// the file, tensor or key that failed and the values involved, and says what to do.
import DurableFiles
import GGUF

public enum AdapterError: Error, Equatable, CustomStringConvertible {
  // ---- files
  case io(path: String, reason: String)
  /// Writing a file failed (`isDiskFull` when the disk is full); nothing was replaced.
  case storage(DurableWriteError)
  /// The safetensors header is malformed (`reason` says how).
  case badSafetensorsHeader(path: String, reason: String)
  case safetensorsTensorOutOfBounds(path: String, tensor: String, begin: Int, end: Int, dataSize: Int)
  case safetensorsSizeMismatch(path: String, tensor: String, expected: Int, found: Int)
  case unsupportedDType(path: String, tensor: String, dtype: String)
  case badConfig(path: String, reason: String)
  case gguf(path: String, error: GGUFError)
  case notAnAdapter(path: String, reason: String)

  // ---- contents
  case unknownTensorName(path: String, tensor: String)
  case missingFactor(target: String, factor: String)
  case wrongShape(tensor: String, expected: [Int], found: [Int])
  case inconsistentRank(target: String, rank: Int, expected: Int)
  case unsupportedOption(key: String, value: String)
  /// A factor holds NaN or ±Inf (`tensor` names it, `factor` says lora_A or lora_B).
  case nonFiniteFactor(tensor: String, factor: String)
  /// |s|·r·max|A|·max|B| bounds every entry of the adapter's ΔW; past `limit` no base weight
  /// survives it and every chat would come out empty.
  case factorsTooLarge(tensor: String, bound: Float, limit: Float)

  // ---- against the base model
  case architectureMismatch(adapter: String, model: String)
  case layerOutOfRange(tensor: String, layer: Int, layerCount: Int)
  case shapeMismatchWithBase(target: String, adapter: [Int], model: [Int])

  // ---- merge and registry
  case unsupportedMergeType(String)
  case unknownAdapter(String)

  public var description: String {
    switch self {
    case .io(let path, let reason): return "\(path): \(reason)"
    case .storage(let error): return error.description
    case .badSafetensorsHeader(let path, let reason):
      return "\(path): not a valid safetensors file: \(reason)"
    case .safetensorsTensorOutOfBounds(let path, let tensor, let begin, let end, let size):
      return "\(path): tensor '\(tensor)' claims bytes \(begin)..<\(end) but the data section "
        + "has \(size) bytes (truncated or corrupt file; re-save the adapter)"
    case .safetensorsSizeMismatch(let path, let tensor, let expected, let found):
      return "\(path): tensor '\(tensor)' has \(found) data bytes but its dtype and shape need "
        + "\(expected)"
    case .unsupportedDType(let path, let tensor, let dtype):
      return "\(path): tensor '\(tensor)' has dtype \(dtype); adapters must be F32, F16 or BF16 "
        + "(save it with torch_dtype float32/float16/bfloat16)"
    case .badConfig(let path, let reason): return "\(path): bad adapter_config.json: \(reason)"
    case .gguf(let path, let error): return "\(path): \(error)"
    case .notAnAdapter(let path, let reason): return "\(path): not a LoRA adapter: \(reason)"
    case .unknownTensorName(let path, let tensor):
      return "\(path): tensor '\(tensor)' is not a LoRA factor of a supported projection "
        + "(supported: q/k/v/o_proj, gate/up/down_proj of each layer)"
    case .missingFactor(let target, let factor):
      return "adapter has no \(factor) for \(target) (each target needs both lora_A and lora_B)"
    case .wrongShape(let tensor, let expected, let found):
      return "tensor '\(tensor)' has shape \(found), expected \(expected)"
    case .inconsistentRank(let target, let rank, let expected):
      return "\(target) has rank \(rank) but the adapter's rank is \(expected) "
        + "(per-module ranks are not supported)"
    case .unsupportedOption(let key, let value):
      return "adapter option \(key) = \(value) is not supported"
    case .nonFiniteFactor(let tensor, let factor):
      return "tensor '\(tensor)' \(factor) holds NaN or infinite values (a diverged or corrupt adapter)"
    case .factorsTooLarge(let tensor, let bound, let limit):
      return "tensor '\(tensor)' changes weights by up to \(bound) (lora_alpha/r times its largest "
        + "lora_A and lora_B entries), beyond the sane limit \(limit): a diverged or corrupt adapter"
    case .architectureMismatch(let adapter, let model):
      return "adapter is for architecture '\(adapter)' but the model is '\(model)'; "
        + "use an adapter trained on this base model"
    case .layerOutOfRange(let tensor, let layer, let count):
      return "tensor '\(tensor)' is for layer \(layer) but the model has \(count) layers; "
        + "the adapter was made for another base model"
    case .shapeMismatchWithBase(let target, let adapter, let model):
      return "\(target): adapter expects a \(adapter[0]) x \(adapter[1]) (out x in) weight but "
        + "the model's is \(model[0]) x \(model[1]); the adapter was made for another base model"
    case .unsupportedMergeType(let name):
      return "cannot merge into type '\(name)': choose q8_0, f16 or f32"
    case .unknownAdapter(let name):
      return "no adapter named '\(name)' is loaded; load it first or use 'base'"
    }
  }
}
