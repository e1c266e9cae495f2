// The streamed-training API's values: settings, states, status, versions, push reports, errors.
import Training

public struct BackgroundTrainingSettings: Sendable, Equatable {
  public var learningRate: Float = 3e-4
  public var pruningRate: Float = 0.5
  public var granularity: Training.MaskGranularity = .step
  /// Read when an adapter's trainer is made (the daemon asks for a restart to change it).
  public var computeType: ComputeType = .f32
  public var loraDropout: Float = 0.05
  public var batchSize = 8
  public var microBatch = 2
  public var maxSequenceLength = 512
  public var publishEvery = 50
  public var replayRatio = 0.25
  public var publishMargin = 0.02
  public var keepVersions = 5
  public var maxBacklog = 100_000
  /// Under sustained serving load, the least fraction of wall time training still gets.
  public var minComputeShare = 0.05
  public var threads = 1
  /// Held-out samples (the newest) a publish decision is measured on.
  public var evaluationSamples = 64
  public init() {}
}

/// `waiting`: samples are pending but serving has the cores (the reason says how many).
public enum TrainingState: String, Sendable, Codable { case idle, waiting, training, paused, stopped, failed }

public struct TrainingStatus: Sendable, Codable, Equatable {
  public var adapter: String
  public var state: TrainingState
  public var reason: String?
  public var samplesReceived: Int
  public var samplesTrained: Int
  public var samplesPending: Int
  public var samplesHeldOut: Int
  public var step: Int
  /// Passes of the replay walk over the samples trained so far.
  public var replayEpoch = 0
  /// Moving average of the training loss (nats per target token).
  public var trainLoss: Double?
  public var evalLoss: Double?
  public var servingEvalLoss: Double?
  public var learningRate: Double?
  public var tokensPerSecond: Double?
  public var servingVersion: Int
  public var candidateVersion: Int?
  /// Unix seconds.
  public var lastPublish: Double?
  public var lastDecision: String?
}

public struct TrainingVersion: Sendable, Codable, Equatable {
  public var version: Int
  public var step: Int
  public var evalLoss: Double?
  public var trainLoss: Double?
  /// Unix seconds.
  public var created: Double
  public var published: Bool

  public init(version: Int, step: Int, evalLoss: Double?, trainLoss: Double?, created: Double, published: Bool) {
    self.version = version
    self.step = step
    self.evalLoss = evalLoss
    self.trainLoss = trainLoss
    self.created = created
    self.published = published
  }
}

public struct IngestReport: Sendable, Equatable {
  public struct Rejection: Sendable, Equatable {
    public var line: Int
    public var reason: String
  }
  public var accepted: Int
  public var duplicates: Int
  public var rejected: [Rejection]
}

public enum TrainingControlError: Error, Sendable, Equatable, CustomStringConvertible {
  case unknownAdapter(String)
  case backlogFull(pending: Int, retryAfterSeconds: Int)
  case unknownVersion(Int)
  case invalid(String)
  case failed(String)

  public var description: String {
    switch self {
    case .unknownAdapter(let name): return "no adapter named '\(name)' is loaded"
    case .backlogFull(let pending, _): return "\(pending) samples are waiting to be trained; push again later"
    case .unknownVersion(let v): return "no saved version \(v)"
    case .invalid(let message), .failed(let message): return message
    }
  }
}
