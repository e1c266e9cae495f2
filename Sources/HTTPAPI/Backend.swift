// The contract between the HTTP layer and whatever serves the model (the daemon wires the
// Engine to it). Owns the backend protocol, the value types it speaks and the typed errors it
// throws. Deliberately knows nothing of HTTP, JSON layout or NIO: the backend sees decoded,
// validated requests and answers with plain values; the HTTP layer does every mapping.

/// What the daemon implements for the HTTP layer.
///
/// Cancellation: `chat` and `complete` return a stream the HTTP layer iterates from the
/// connection's task. When the client disconnects, that task is cancelled, the iteration ends
/// and the stream's `onTermination` runs — a backend must stop generating there (cancel its
/// producer task), so a gone client never keeps compute busy.
public protocol InferenceBackend: Sendable {
  /// The base model and every adapter, for `GET /v1/models`.
  func models() async -> [ModelInfo]
  /// Starts `choices` generations of one chat (OpenAI's `n`, at most `maxChoices()`), one stream
  /// each, in order; choice i samples with `request.sampling.forChoice(i)`. A backend evaluates
  /// the prompt once for all of them. Throws before any stream exists for what is known up
  /// front (unknown model → `.modelNotFound`, queue full → `.saturated`), refusing every choice;
  /// later failures finish a stream with an error.
  func chat(
    _ request: ChatCompletionRequest, choices: Int
  ) async throws -> [AsyncThrowingStream<GenerationEvent, any Error>]
  /// Starts raw-prompt generations; same contract as `chat`.
  func complete(
    _ request: CompletionRequest, choices: Int
  ) async throws -> [AsyncThrowingStream<GenerationEvent, any Error>]

  func adapters() async -> [AdapterInfo]
  /// Loads an adapter file; `path` is relative to the adapters directory, which the backend
  /// enforces (a path that resolves outside it is `.invalidRequest(field: "path", …)`).
  func loadAdapter(name: String, path: String) async throws -> AdapterInfo
  /// Creates an empty adapter for training.
  func createAdapter(_ spec: AdapterSpec) async throws -> AdapterInfo
  func unloadAdapter(name: String) async throws
  /// `nil` serves the plain base model by default.
  func setDefaultAdapter(name: String?) async throws

  /// Streamed training (defaults in TrainingAPI.swift refuse): a JSONL push, durable on return.
  /// The body's bytes as sent: a line that is not UTF-8 is the backend's to reject by number.
  func pushSamples(adapter: String, jsonl: [UInt8]) async throws -> SampleIngestResult
  func trainingStatus(adapter: String) async throws -> TrainingStatusInfo
  func controlTraining(adapter: String, control: TrainingControl) async throws -> TrainingStatusInfo
  func trainingVersions(adapter: String) async throws -> [TrainingVersionInfo]
  func rollback(adapter: String, version: Int) async throws -> TrainingStatusInfo

  /// `POST /tokenize`: the text's token ids with each token's bytes.
  func tokenize(_ text: String, addSpecial: Bool, parseSpecial: Bool) async throws -> [TokenPiece]
  /// `POST /detokenize`: the text of these ids (special tokens rendered); an id outside the
  /// vocabulary is `.invalidRequest(field: "tokens", …)`.
  func detokenize(_ tokens: [Int32]) async throws -> String

  /// Every error answer (4xx/5xx), by OpenAI `code` (e.g. `server_busy` for a full queue), for
  /// metrics. Called before the answer is written.
  func requestRefused(status: Int, code: String)
  /// The most choices (`n`) one generation request may ask for.
  func maxChoices() async -> Int

  func health() async -> HealthReport
  /// Prometheus text exposition, passed through unchanged.
  func metricsText() async -> String
}

/// One step of a generation. A well-formed stream is zero or more `.text` then one `.finished`.
public enum GenerationEvent: Sendable, Equatable {
  /// Newly decoded text, whole UTF-8 characters, any length (empty pieces are skipped).
  case text(String)
  /// Log probabilities of the tokens generated since the last event (only when asked for);
  /// they precede the text those tokens made.
  case logprobs([TokenLogprobInfo])
  case finished(FinishReason, Usage)
}

/// One generated token's log probability (natural log, of the model's own distribution at that
/// step) and the most likely alternatives there.
public struct TokenLogprobInfo: Sendable, Equatable {
  public struct Alternative: Sendable, Equatable {
    public var token: String
    public var bytes: [UInt8]
    public var logprob: Double
    public init(token: String, bytes: [UInt8], logprob: Double) {
      self.token = token
      self.bytes = bytes
      self.logprob = logprob
    }
  }
  public var chosen: Alternative
  public var top: [Alternative]
  public init(chosen: Alternative, top: [Alternative]) {
    self.chosen = chosen
    self.top = top
  }
}

/// OpenAI's finish reasons that this server can produce.
public enum FinishReason: String, Sendable, Codable, Equatable {
  /// End-of-turn token or a stop string.
  case stop
  /// `max_tokens` or the context ran out.
  case length
  /// The answer is tool calls (set by the chat route when it finds them, never by a backend).
  case toolCalls = "tool_calls"
}

public struct Usage: Sendable, Codable, Equatable {
  public var promptTokens: Int
  public var completionTokens: Int
  public var totalTokens: Int { promptTokens + completionTokens }

  public init(promptTokens: Int, completionTokens: Int) {
    self.promptTokens = promptTokens
    self.completionTokens = completionTokens
  }

  enum CodingKeys: String, CodingKey {
    case promptTokens = "prompt_tokens"
    case completionTokens = "completion_tokens"
    case totalTokens = "total_tokens"
  }

  public init(from decoder: any Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    promptTokens = try c.decode(Int.self, forKey: .promptTokens)
    completionTokens = try c.decode(Int.self, forKey: .completionTokens)
  }

  public func encode(to encoder: any Encoder) throws {
    var c = encoder.container(keyedBy: CodingKeys.self)
    try c.encode(promptTokens, forKey: .promptTokens)
    try c.encode(completionTokens, forKey: .completionTokens)
    try c.encode(totalTokens, forKey: .totalTokens)
  }
}

/// One token of a tokenized text: its id and the bytes it stands for.
public struct TokenPiece: Sendable, Equatable {
  public var id: Int32
  public var bytes: [UInt8]
  public init(id: Int32, bytes: [UInt8]) {
    self.id = id
    self.bytes = bytes
  }
}

extension InferenceBackend {
  /// The most choices (`n`) a request may ask for.
  public func maxChoices() async -> Int { 1 }
  /// Backends without metrics need not count refusals.
  public func requestRefused(status: Int, code: String) {}
  public func tokenize(_ text: String, addSpecial: Bool, parseSpecial: Bool) async throws -> [TokenPiece] {
    throw BackendError.unavailable("this backend does not tokenize")
  }
  public func detokenize(_ tokens: [Int32]) async throws -> String {
    throw BackendError.unavailable("this backend does not detokenize")
  }
}

public struct ModelInfo: Sendable, Equatable {
  public enum Kind: String, Sendable, Codable { case base, adapter }
  public var id: String
  public var kind: Kind
  /// Unix seconds.
  public var created: Int
  public var ownedBy: String

  public init(id: String, kind: Kind, created: Int = 0, ownedBy: String = "droplorad") {
    self.id = id
    self.kind = kind
    self.created = created
    self.ownedBy = ownedBy
  }
}

public struct AdapterInfo: Sendable, Codable, Equatable {
  public var name: String
  public var rank: Int
  public var alpha: Double
  public var targets: [String]
  /// DropLoRA pruning rate p; 0 is plain LoRA.
  public var pruningRate: Double
  public var isDefault: Bool
  /// Published version; grows as training publishes snapshots.
  public var version: Int

  public init(
    name: String, rank: Int, alpha: Double, targets: [String], pruningRate: Double = 0,
    isDefault: Bool = false, version: Int = 0
  ) {
    self.name = name
    self.rank = rank
    self.alpha = alpha
    self.targets = targets
    self.pruningRate = pruningRate
    self.isDefault = isDefault
    self.version = version
  }

  enum CodingKeys: String, CodingKey {
    case name, rank, alpha, targets, version
    case pruningRate = "pruning_rate"
    case isDefault = "default"
  }
}

/// A new, untrained adapter. Values the client left out are nil: the backend fills them from
/// its own defaults (the daemon's `training` settings) with `resolved`.
public struct AdapterSpec: Sendable, Equatable {
  public var name: String
  public var rank: Int?
  public var alpha: Double?
  public var targets: [String]?
  public var pruningRate: Double?

  public init(name: String, rank: Int? = nil, alpha: Double? = nil, targets: [String]? = nil, pruningRate: Double? = nil) {
    self.name = name
    self.rank = rank
    self.alpha = alpha
    self.targets = targets
    self.pruningRate = pruningRate
  }

  public struct Resolved: Sendable, Equatable {
    public var name: String
    public var rank: Int
    public var alpha: Double
    public var targets: [String]
    public var pruningRate: Double
  }

  /// The spec with defaults filled in. Without an alpha, the default scale alpha/r is kept
  /// (alpha = rank · defaultAlpha / defaultRank), so a smaller rank is not a stronger update.
  public func resolved(
    defaultRank: Int, defaultAlpha: Double, defaultTargets: [String], defaultPruningRate: Double
  ) -> Resolved {
    let r = rank ?? defaultRank
    return Resolved(
      name: name, rank: r, alpha: alpha ?? Double(r) * defaultAlpha / Double(max(1, defaultRank)),
      targets: targets ?? defaultTargets, pruningRate: pruningRate ?? defaultPruningRate)
  }
}

public struct HealthReport: Sendable, Equatable {
  /// False while the model is still mapping or the daemon is stopping; `/health` is then 503.
  public var ready: Bool
  /// One line, e.g. "serving", "loading model".
  public var status: String

  public init(ready: Bool, status: String) {
    self.ready = ready
    self.status = status
  }
}

/// What a backend throws; the HTTP layer maps each case to a status in `APIError.response`.
public enum BackendError: Error, Sendable, Equatable {
  case modelNotFound(String)
  case adapterNotFound(String)
  case adapterExists(String)
  /// A field the HTTP layer could not judge (e.g. a path outside the adapters directory).
  case invalidRequest(field: String?, message: String)
  /// Too many generations queued: 503 with `Retry-After`.
  case saturated(retryAfterSeconds: Int)
  /// This client asks too often: 429 with `Retry-After`.
  case rateLimited(retryAfterSeconds: Int)
  /// Not serving right now (loading, stopping).
  case unavailable(String)
  /// The disk is full: 507, nothing was changed.
  case insufficientStorage(String)
  case internalFailure(String)
}
