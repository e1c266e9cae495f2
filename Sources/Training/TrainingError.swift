// Errors of the Training module, each with the detail a user needs to fix the input.
import Adapters
import DurableFiles

public enum TrainingError: Error, Sendable, Equatable, CustomStringConvertible {
  case invalidConfig(String)
  /// A JSONL line that is not a sample (1-based line number).
  case badSample(path: String, line: Int, reason: String)
  case noSamples(path: String)
  case io(path: String, reason: String)
  /// Writing a checkpoint or adapter file failed (`isDiskFull` when the disk is full).
  case storage(DurableWriteError)
  case badCheckpoint(path: String, reason: String)
  case numerics(String)

  public var description: String {
    switch self {
    case .invalidConfig(let reason): return "invalid training configuration: \(reason)"
    case .badSample(let path, let line, let reason): return "\(path):\(line): \(reason)"
    case .noSamples(let path): return "\(path): no usable samples"
    case .io(let path, let reason): return "\(path): \(reason)"
    case .storage(let error): return error.description
    case .badCheckpoint(let path, let reason): return "checkpoint \(path): \(reason)"
    case .numerics(let reason): return reason
    }
  }

  /// An adapter writer's error: a failed write keeps its errno, the rest becomes `.io`.
  init(_ error: AdapterError, path: String) {
    if case .storage(let failure) = error { self = .storage(failure) } else { self = .io(path: path, reason: "\(error)") }
  }
}
