// Errors of loading and running a Llama-family model; each names what failed and the values.
import GGUF

public enum LlamaError: Error, Equatable, CustomStringConvertible {
  case unsupportedArchitecture(String?)
  case missingMetadata(key: String)
  case invalidMetadata(key: String, reason: String)
  case missingTensor(name: String)
  case wrongShape(name: String, expected: [Int], found: [Int])
  case unsupportedTensorType(name: String, type: String)
  case tokenOutOfRange(token: Int32, vocabularySize: Int)
  case contextFull(needed: Int, capacity: Int)
  case emptyInput
  /// A tensor or metadata key that changes the computation in a way this build does not
  /// implement: refused, never silently ignored.
  case unsupportedFeature(name: String, reason: String)

  public var description: String {
    switch self {
    case .unsupportedArchitecture(let arch):
      return "unsupported model architecture '\(arch ?? "(none)")': supported are "
        + ModelFamily.all.keys.sorted().joined(separator: ", ")
    case .missingMetadata(let key): return "model metadata lacks '\(key)'"
    case .invalidMetadata(let key, let reason): return "model metadata '\(key)': \(reason)"
    case .missingTensor(let name): return "model lacks tensor '\(name)'"
    case .wrongShape(let name, let expected, let found):
      return "tensor '\(name)' has shape \(found), expected \(expected)"
    case .unsupportedTensorType(let name, let type):
      return "tensor '\(name)' has type \(type), which this build cannot compute with"
    case .tokenOutOfRange(let token, let size):
      return "token id \(token) is outside the vocabulary (size \(size))"
    case .contextFull(let needed, let capacity):
      return "sequence needs \(needed) positions but the context holds \(capacity)"
    case .emptyInput: return "no tokens to evaluate"
    case .unsupportedFeature(let name, let reason):
      return "model '\(name)' \(reason); refusing to run with different math"
    }
  }
}
