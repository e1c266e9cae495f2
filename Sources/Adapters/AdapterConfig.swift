// PEFT's adapter_config.json as a value type. Keys keep their on-disk names (CodingKeys);
// fields PEFT writes that do not change the math here are kept when present and omitted when
// absent. `checkSupported` refuses the options this project cannot apply (DoRA, trained
// biases, per-module ranks, extra saved modules) with a message naming the option.
import Foundation
import Llama

public struct AdapterConfig: Codable, Sendable, Equatable {
  /// `target_modules` is a list of module names or one regular expression.
  public enum TargetModules: Codable, Sendable, Equatable {
    case names([String])
    case pattern(String)

    public init(from decoder: Decoder) throws {
      let container = try decoder.singleValueContainer()
      if let names = try? container.decode([String].self) {
        self = .names(names)
      } else {
        self = .pattern(try container.decode(String.self))
      }
    }

    public func encode(to encoder: Encoder) throws {
      var container = encoder.singleValueContainer()
      switch self {
      case .names(let names): try container.encode(names)
      case .pattern(let pattern): try container.encode(pattern)
      }
    }
  }

  public var peftType: String?
  public var r: Int
  public var loraAlpha: Double
  public var targetModules: TargetModules?
  public var useRSLoRA: Bool?
  public var bias: String?
  public var fanInFanOut: Bool?
  public var baseModelNameOrPath: String?
  public var taskType: String?
  public var loraDropout: Double?
  public var inferenceMode: Bool?
  public var useDoRA: Bool?
  public var loraBias: Bool?
  public var modulesToSave: [String]?
  public var rankPattern: [String: Double]?
  public var alphaPattern: [String: Double]?

  enum CodingKeys: String, CodingKey {
    case peftType = "peft_type"
    case r
    case loraAlpha = "lora_alpha"
    case targetModules = "target_modules"
    case useRSLoRA = "use_rslora"
    case bias
    case fanInFanOut = "fan_in_fan_out"
    case baseModelNameOrPath = "base_model_name_or_path"
    case taskType = "task_type"
    case loraDropout = "lora_dropout"
    case inferenceMode = "inference_mode"
    case useDoRA = "use_dora"
    case loraBias = "lora_bias"
    case modulesToSave = "modules_to_save"
    case rankPattern = "rank_pattern"
    case alphaPattern = "alpha_pattern"
  }

  public init(
    r: Int, loraAlpha: Double, targetModules: [String], useRSLoRA: Bool = false,
    baseModelNameOrPath: String? = nil
  ) {
    peftType = "LORA"
    self.r = r
    self.loraAlpha = loraAlpha
    self.targetModules = .names(targetModules)
    self.useRSLoRA = useRSLoRA
    bias = "none"
    fanInFanOut = false
    self.baseModelNameOrPath = baseModelNameOrPath
    taskType = "CAUSAL_LM"
    loraDropout = 0
    inferenceMode = true
  }

  /// The LoRA scale s in W' = W + s·B·A.
  public var scale: Float {
    useRSLoRA == true ? Float(loraAlpha / Double(r).squareRoot()) : Float(loraAlpha / Double(r))
  }

  public static func decode(_ data: Data, path: String) throws(AdapterError) -> AdapterConfig {
    let config: AdapterConfig
    do {
      config = try JSONDecoder().decode(AdapterConfig.self, from: data)
    } catch let DecodingError.keyNotFound(key, _) {
      throw .badConfig(path: path, reason: "missing key '\(key.stringValue)'")
    } catch let DecodingError.typeMismatch(_, context) {
      let key = context.codingPath.map(\.stringValue).joined(separator: ".")
      throw .badConfig(path: path, reason: "key '\(key)' has the wrong type")
    } catch {
      throw .badConfig(path: path, reason: "not a JSON object with r and lora_alpha")
    }
    try config.checkSupported(path: path)
    return config
  }

  public func encoded() -> Data {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    // Encoding strings, numbers and arrays cannot fail.
    return (try? encoder.encode(self)) ?? Data()
  }

  /// The module names a target_modules entry may end in (PEFT matches full paths by suffix).
  static let knownModules = Set(LlamaProjection.allCases.map(\.huggingFaceName))

  /// The projection a target_modules entry names (`q_proj`, `model.layers.3.self_attn.q_proj`).
  static func module(_ entry: String) -> String? {
    let last = entry.split(separator: ".").last.map(String.init) ?? entry
    return knownModules.contains(last) ? last : nil
  }

  /// A list of known projections; a string is a regular expression to PEFT, which this
  /// project does not evaluate, so it is refused rather than silently matching nothing.
  func checkTargetModules(path: String) throws(AdapterError) {
    switch targetModules {
    case nil: return  // optional in old PEFT files: the tensors name the targets
    case .pattern(let pattern):
      throw .badConfig(
        path: path,
        reason: "target_modules is the string '\(pattern)'; list the modules instead, e.g. [\"q_proj\", \"v_proj\"]")
    case .names(let names):
      guard !names.isEmpty else { throw .badConfig(path: path, reason: "target_modules is empty") }
      if let unknown = names.first(where: { Self.module($0) == nil }) {
        throw .badConfig(
          path: path,
          reason: "target_modules names '\(unknown)', not a projection of this model "
            + "(known: \(Self.knownModules.sorted().joined(separator: ", ")))")
      }
    }
  }

  func checkSupported(path: String) throws(AdapterError) {
    if let type = peftType, type != "LORA" {
      throw .unsupportedOption(key: "peft_type", value: "\(type) (only LORA adapters)")
    }
    guard r > 0, r <= 65536 else { throw .badConfig(path: path, reason: "r = \(r) must be in 1...65536") }
    guard loraAlpha.isFinite else { throw .badConfig(path: path, reason: "lora_alpha is not finite") }
    guard loraAlpha >= 0 else { throw .badConfig(path: path, reason: "lora_alpha = \(loraAlpha) must not be negative") }
    try checkTargetModules(path: path)
    if useDoRA == true { throw .unsupportedOption(key: "use_dora", value: "true (DoRA adapters)") }
    if loraBias == true { throw .unsupportedOption(key: "lora_bias", value: "true (a bias on lora_B)") }
    if fanInFanOut == true {
      throw .unsupportedOption(key: "fan_in_fan_out", value: "true (Conv1D layers; Llama uses Linear)")
    }
    if let bias, bias != "none" {
      throw .unsupportedOption(key: "bias", value: "\(bias) (trained biases; use bias=\"none\")")
    }
    if let modules = modulesToSave, !modules.isEmpty {
      throw .unsupportedOption(key: "modules_to_save", value: "\(modules) (fully trained modules)")
    }
    if let pattern = rankPattern, !pattern.isEmpty {
      throw .unsupportedOption(key: "rank_pattern", value: "\(pattern) (per-module ranks)")
    }
    if let pattern = alphaPattern, !pattern.isEmpty {
      throw .unsupportedOption(key: "alpha_pattern", value: "\(pattern) (per-module alphas)")
    }
  }
}
