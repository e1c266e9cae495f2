// The streamed-training routes' values: a push's outcome, an adapter's training state, its
// saved versions, and the control actions. The backend fills them; the router writes them as
// JSON with these (snake_case) names.

public struct SampleIngestResult: Sendable, Codable, Equatable {
  public struct Rejected: Sendable, Codable, Equatable {
    public var line: Int
    public var reason: String
    public init(line: Int, reason: String) {
      self.line = line
      self.reason = reason
    }
  }
  public var accepted: Int
  /// Lines whose `id` was already stored (a retried push).
  public var duplicates: Int
  public var rejected: [Rejected]

  public init(accepted: Int, duplicates: Int, rejected: [Rejected]) {
    self.accepted = accepted
    self.duplicates = duplicates
    self.rejected = rejected
  }
}

public struct TrainingStatusInfo: Sendable, Codable, Equatable {
  public var adapter: String
  /// idle, training, paused, stopped or failed.
  public var state: String
  public var reason: String?
  public var samplesReceived: Int
  public var samplesTrained: Int
  public var samplesPending: Int
  public var samplesHeldOut: Int
  public var step: Int
  /// Passes of the replay walk over the samples trained so far.
  public var replayEpoch: Int
  public var trainLoss: Double?
  public var evalLoss: Double?
  public var servingEvalLoss: Double?
  public var learningRate: Double?
  public var tokensPerSecond: Double?
  public var servingVersion: Int
  public var candidateVersion: Int?
  public var lastPublish: Double?
  public var lastDecision: String?

  public init(
    adapter: String, state: String, reason: String?, samplesReceived: Int, samplesTrained: Int,
    samplesPending: Int, samplesHeldOut: Int, step: Int, replayEpoch: Int = 0, trainLoss: Double?, evalLoss: Double?,
    servingEvalLoss: Double?, learningRate: Double?, tokensPerSecond: Double?, servingVersion: Int,
    candidateVersion: Int?, lastPublish: Double?, lastDecision: String?
  ) {
    self.adapter = adapter
    self.state = state
    self.reason = reason
    self.samplesReceived = samplesReceived
    self.samplesTrained = samplesTrained
    self.samplesPending = samplesPending
    self.samplesHeldOut = samplesHeldOut
    self.step = step
    self.replayEpoch = replayEpoch
    self.trainLoss = trainLoss
    self.evalLoss = evalLoss
    self.servingEvalLoss = servingEvalLoss
    self.learningRate = learningRate
    self.tokensPerSecond = tokensPerSecond
    self.servingVersion = servingVersion
    self.candidateVersion = candidateVersion
    self.lastPublish = lastPublish
    self.lastDecision = lastDecision
  }

  enum CodingKeys: String, CodingKey {
    case adapter, state, reason, step
    case samplesReceived = "samples_received"
    case samplesTrained = "samples_trained"
    case samplesPending = "samples_pending"
    case samplesHeldOut = "samples_held_out"
    case replayEpoch = "replay_epoch"
    case trainLoss = "train_loss"
    case evalLoss = "eval_loss"
    case servingEvalLoss = "serving_eval_loss"
    case learningRate = "learning_rate"
    case tokensPerSecond = "tokens_per_second"
    case servingVersion = "serving_version"
    case candidateVersion = "candidate_version"
    case lastPublish = "last_publish"
    case lastDecision = "last_decision"
  }
}

public struct TrainingVersionInfo: Sendable, Codable, Equatable {
  public var version: Int
  public var step: Int
  public var evalLoss: Double?
  public var trainLoss: Double?
  public var created: Double
  public var published: Bool
  public var serving: Bool

  public init(version: Int, step: Int, evalLoss: Double?, trainLoss: Double?, created: Double, published: Bool, serving: Bool) {
    self.version = version
    self.step = step
    self.evalLoss = evalLoss
    self.trainLoss = trainLoss
    self.created = created
    self.published = published
    self.serving = serving
  }

  enum CodingKeys: String, CodingKey {
    case version, step, created, published, serving
    case evalLoss = "eval_loss"
    case trainLoss = "train_loss"
  }
}

/// `POST /v1/adapters/{name}/training`.
public enum TrainingAction: String, Sendable, Codable, CaseIterable {
  case start, pause, resume, stop, publish
}

/// The body of `POST /v1/adapters/{name}/training`: an action, hyper-parameter changes, or both.
public struct TrainingControl: Sendable, Codable, Equatable {
  public var action: TrainingAction?
  public var learningRate: Double?
  public var batchSize: Int?
  public var publishEvery: Int?

  public init(action: TrainingAction? = nil, learningRate: Double? = nil, batchSize: Int? = nil, publishEvery: Int? = nil) {
    self.action = action
    self.learningRate = learningRate
    self.batchSize = batchSize
    self.publishEvery = publishEvery
  }

  enum CodingKeys: String, CodingKey {
    case action
    case learningRate = "learning_rate"
    case batchSize = "batch_size"
    case publishEvery = "publish_every"
  }

  func validate() throws(APIError) {
    if action == nil && learningRate == nil && batchSize == nil && publishEvery == nil {
      throw .invalidField("action", "give an action (start, pause, resume, stop, publish) or a hyper-parameter to change")
    }
    if let lr = learningRate, !(lr > 0 && lr <= 1) { throw .invalidField("learning_rate", "must be in (0, 1], got \(lr)") }
    if let b = batchSize, !(1...4096).contains(b) { throw .invalidField("batch_size", "must be 1 to 4096, got \(b)") }
    if let p = publishEvery, !(1...1_000_000).contains(p) {
      throw .invalidField("publish_every", "must be 1 to 1000000, got \(p)")
    }
  }
}

struct RollbackRequest: Codable {
  var version: Int
}

struct VersionList: Codable {
  var data: [TrainingVersionInfo]
  var object = "list"
}

/// Backends without streamed training answer these routes with a clear refusal.
extension InferenceBackend {
  public func pushSamples(adapter: String, jsonl: [UInt8]) async throws -> SampleIngestResult {
    throw BackendError.unavailable("this server does not train adapters")
  }
  public func trainingStatus(adapter: String) async throws -> TrainingStatusInfo {
    throw BackendError.unavailable("this server does not train adapters")
  }
  public func controlTraining(adapter: String, control: TrainingControl) async throws -> TrainingStatusInfo {
    throw BackendError.unavailable("this server does not train adapters")
  }
  public func trainingVersions(adapter: String) async throws -> [TrainingVersionInfo] {
    throw BackendError.unavailable("this server does not train adapters")
  }
  public func rollback(adapter: String, version: Int) async throws -> TrainingStatusInfo {
    throw BackendError.unavailable("this server does not train adapters")
  }
}
