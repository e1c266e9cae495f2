// OpenAI-compatible request bodies (`/v1/chat/completions`, `/v1/completions`, `/v1/adapters`)
// decoded with their on-disk names, and validated so the backend sees only sane values.
// Unknown keys are ignored, as OpenAI clients send extras (`user`, `n: 1`, `logprobs: false`).
// Validation failures name the field in OpenAI's `param`.

/// Sampling knobs shared by both generation routes; `nil` means the daemon's configured default.
public struct SamplingParameters: Sendable, Equatable {
  public var maxTokens: Int?
  public var temperature: Double?
  public var topP: Double?
  public var topK: Int?
  public var minP: Double?
  public var repeatPenalty: Double?
  public var seed: UInt64?
  /// Stop strings; OpenAI accepts one string or an array.
  public var stop: [String]

  public init(
    maxTokens: Int? = nil, temperature: Double? = nil, topP: Double? = nil, topK: Int? = nil,
    minP: Double? = nil, repeatPenalty: Double? = nil, seed: UInt64? = nil, stop: [String] = []
  ) {
    self.maxTokens = maxTokens
    self.temperature = temperature
    self.topP = topP
    self.topK = topK
    self.minP = minP
    self.repeatPenalty = repeatPenalty
    self.seed = seed
    self.stop = stop
  }

  enum CodingKeys: String, CodingKey {
    case maxTokens = "max_tokens"
    case temperature
    case topP = "top_p"
    case topK = "top_k"
    case minP = "min_p"
    case repeatPenalty = "repeat_penalty"
    case seed, stop
  }

  init(from c: KeyedDecodingContainer<CodingKeys>) throws {
    maxTokens = try c.decodeIfPresent(Int.self, forKey: .maxTokens)
    temperature = try c.decodeIfPresent(Double.self, forKey: .temperature)
    topP = try c.decodeIfPresent(Double.self, forKey: .topP)
    topK = try c.decodeIfPresent(Int.self, forKey: .topK)
    minP = try c.decodeIfPresent(Double.self, forKey: .minP)
    repeatPenalty = try c.decodeIfPresent(Double.self, forKey: .repeatPenalty)
    // Decoded signed so a negative seed is a range error on `seed`, not an anonymous JSON failure.
    if let s = try c.decodeIfPresent(Int64.self, forKey: .seed) {
      guard s >= 0 else {
        throw DecodingError.dataCorruptedError(forKey: .seed, in: c, debugDescription: "must be 0 or positive, got \(s)")
      }
      seed = UInt64(s)
    } else {
      seed = nil
    }
    stop = try c.decodeIfPresent(OneOrMany.self, forKey: .stop)?.values ?? []
  }

  func encode(to c: inout KeyedEncodingContainer<CodingKeys>) throws {
    try c.encodeIfPresent(maxTokens, forKey: .maxTokens)
    try c.encodeIfPresent(temperature, forKey: .temperature)
    try c.encodeIfPresent(topP, forKey: .topP)
    try c.encodeIfPresent(topK, forKey: .topK)
    try c.encodeIfPresent(minP, forKey: .minP)
    try c.encodeIfPresent(repeatPenalty, forKey: .repeatPenalty)
    try c.encodeIfPresent(seed, forKey: .seed)
    if !stop.isEmpty { try c.encode(stop, forKey: .stop) }
  }

  /// Limits that keep a request from asking for nonsense; the daemon applies its own caps.
  static let maxStopStrings = 16
  static let maxStopLength = 256

  func validate() throws(APIError) {
    if let v = maxTokens, v < 1 { throw .invalidField("max_tokens", "must be at least 1, got \(v)") }
    if let v = temperature, !(v.isFinite && v >= 0 && v <= 100) {
      throw .invalidField("temperature", "must be between 0 and 100, got \(v)")
    }
    if let v = topP, !(v > 0 && v <= 1) { throw .invalidField("top_p", "must be in (0, 1], got \(v)") }
    if let v = topK, v < 0 { throw .invalidField("top_k", "must be 0 (off) or positive, got \(v)") }
    if let v = minP, !(v >= 0 && v <= 1) { throw .invalidField("min_p", "must be in [0, 1], got \(v)") }
    if let v = repeatPenalty, !(v.isFinite && v > 0) {
      throw .invalidField("repeat_penalty", "must be positive, got \(v)")
    }
    if stop.count > Self.maxStopStrings {
      throw .invalidField("stop", "at most \(Self.maxStopStrings) stop strings, got \(stop.count)")
    }
    for s in stop where s.isEmpty || s.utf8.count > Self.maxStopLength {
      throw .invalidField("stop", "each stop string must have 1 to \(Self.maxStopLength) bytes")
    }
  }
}

/// A JSON value that is either one string or an array of strings.
struct OneOrMany: Decodable {
  var values: [String]
  init(from decoder: any Decoder) throws {
    let c = try decoder.singleValueContainer()
    if let one = try? c.decode(String.self) {
      values = [one]
    } else {
      values = try c.decode([String].self)
    }
  }
}

public struct ChatMessage: Sendable, Codable, Equatable {
  public enum Role: String, Sendable, Codable { case system, user, assistant }
  public var role: Role
  public var content: String

  public init(role: Role, content: String) {
    self.role = role
    self.content = content
  }

  enum CodingKeys: String, CodingKey { case role, content }
  private struct Part: Decodable {
    var type: String
    var text: String?
  }

  public init(from decoder: any Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    role = try c.decode(Role.self, forKey: .role)
    // Newer clients send content as an array of typed parts; only text parts mean anything here.
    if let s = try? c.decode(String.self, forKey: .content) {
      content = s
    } else {
      let parts = try c.decode([Part].self, forKey: .content)
      guard parts.allSatisfy({ $0.type == "text" && $0.text != nil }) else {
        throw DecodingError.dataCorruptedError(
          forKey: .content, in: c, debugDescription: "only text content parts are supported")
      }
      content = parts.compactMap(\.text).joined()
    }
  }
}

public struct ChatCompletionRequest: Sendable, Equatable, Codable {
  /// An adapter name or the base model's id; `nil` uses the default adapter.
  public var model: String?
  public var messages: [ChatMessage]
  public var sampling: SamplingParameters
  public var stream: Bool
  /// `stream_options.include_usage`: one extra chunk with `usage` before `[DONE]`.
  public var includeUsageInStream: Bool

  public init(
    model: String? = nil, messages: [ChatMessage], sampling: SamplingParameters = .init(),
    stream: Bool = false, includeUsageInStream: Bool = false
  ) {
    self.model = model
    self.messages = messages
    self.sampling = sampling
    self.stream = stream
    self.includeUsageInStream = includeUsageInStream
  }

  enum CodingKeys: String, CodingKey {
    case model, messages, stream
    case streamOptions = "stream_options"
  }
  struct StreamOptions: Codable { var includeUsage: Bool?
    enum CodingKeys: String, CodingKey { case includeUsage = "include_usage" }
  }

  public init(from decoder: any Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    model = try c.decodeIfPresent(String.self, forKey: .model)
    messages = try c.decode([ChatMessage].self, forKey: .messages)
    stream = try c.decodeIfPresent(Bool.self, forKey: .stream) ?? false
    includeUsageInStream =
      try c.decodeIfPresent(StreamOptions.self, forKey: .streamOptions)?.includeUsage ?? false
    sampling = try SamplingParameters(from: decoder.container(keyedBy: SamplingParameters.CodingKeys.self))
  }

  public func encode(to encoder: any Encoder) throws {
    var c = encoder.container(keyedBy: CodingKeys.self)
    try c.encodeIfPresent(model, forKey: .model)
    try c.encode(messages, forKey: .messages)
    try c.encode(stream, forKey: .stream)
    if includeUsageInStream { try c.encode(StreamOptions(includeUsage: true), forKey: .streamOptions) }
    var s = encoder.container(keyedBy: SamplingParameters.CodingKeys.self)
    try sampling.encode(to: &s)
  }

  func validate() throws(APIError) {
    if messages.isEmpty { throw .invalidField("messages", "must hold at least one message") }
    try validateModelField(model)
    try sampling.validate()
  }
}

public struct CompletionRequest: Sendable, Equatable, Codable {
  public var model: String?
  public var prompt: String
  public var sampling: SamplingParameters
  public var stream: Bool
  public var includeUsageInStream: Bool

  public init(
    model: String? = nil, prompt: String, sampling: SamplingParameters = .init(), stream: Bool = false,
    includeUsageInStream: Bool = false
  ) {
    self.model = model
    self.prompt = prompt
    self.sampling = sampling
    self.stream = stream
    self.includeUsageInStream = includeUsageInStream
  }

  enum CodingKeys: String, CodingKey {
    case model, prompt, stream
    case streamOptions = "stream_options"
  }

  public init(from decoder: any Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    model = try c.decodeIfPresent(String.self, forKey: .model)
    // OpenAI allows a batch of prompts; one generation per request here, so exactly one.
    let prompts = try c.decode(OneOrMany.self, forKey: .prompt).values
    guard prompts.count == 1 else {
      throw DecodingError.dataCorruptedError(
        forKey: .prompt, in: c, debugDescription: "exactly one prompt per request, got \(prompts.count)")
    }
    prompt = prompts[0]
    stream = try c.decodeIfPresent(Bool.self, forKey: .stream) ?? false
    includeUsageInStream =
      try c.decodeIfPresent(ChatCompletionRequest.StreamOptions.self, forKey: .streamOptions)?.includeUsage
      ?? false
    sampling = try SamplingParameters(from: decoder.container(keyedBy: SamplingParameters.CodingKeys.self))
  }

  public func encode(to encoder: any Encoder) throws {
    var c = encoder.container(keyedBy: CodingKeys.self)
    try c.encodeIfPresent(model, forKey: .model)
    try c.encode(prompt, forKey: .prompt)
    try c.encode(stream, forKey: .stream)
    if includeUsageInStream {
      try c.encode(ChatCompletionRequest.StreamOptions(includeUsage: true), forKey: .streamOptions)
    }
    var s = encoder.container(keyedBy: SamplingParameters.CodingKeys.self)
    try sampling.encode(to: &s)
  }

  func validate() throws(APIError) {
    try validateModelField(model)
    try sampling.validate()
  }
}

/// `model` is an adapter name or the base id; either way a short, printable name.
func validateModelField(_ model: String?) throws(APIError) {
  guard let model else { return }
  if model.isEmpty || model.utf8.count > 256 || model.unicodeScalars.contains(where: { $0.value < 0x20 }) {
    throw .invalidField("model", "must be 1 to 256 printable bytes")
  }
}

/// `POST /v1/adapters`: with `path`, load that file; without, create an empty adapter.
public struct AdapterPostRequest: Sendable, Equatable, Codable {
  public var name: String
  public var path: String?
  public var rank: Int?
  public var alpha: Double?
  public var targets: [String]?
  public var pruningRate: Double?

  public init(
    name: String, path: String? = nil, rank: Int? = nil, alpha: Double? = nil, targets: [String]? = nil,
    pruningRate: Double? = nil
  ) {
    self.name = name
    self.path = path
    self.rank = rank
    self.alpha = alpha
    self.targets = targets
    self.pruningRate = pruningRate
  }

  enum CodingKeys: String, CodingKey {
    case name, path, rank, alpha, targets
    case pruningRate = "pruning_rate"
  }

  enum Action: Equatable {
    case load(name: String, path: String)
    case create(AdapterSpec)
  }

  func validated() throws(APIError) -> Action {
    try AdapterName.validate(name, field: "name")
    if let path {
      if rank != nil || alpha != nil || targets != nil || pruningRate != nil {
        throw .invalidField("path", "give either a path to load or rank/alpha/targets/pruning_rate to create")
      }
      // Lexical check only; the backend resolves against the adapters directory.
      let components = path.split(separator: "/", omittingEmptySubsequences: false)
      if path.isEmpty || path.hasPrefix("/") || path.utf8.count > 4096 || path.utf8.contains(0)
        || components.contains("..")
      {
        throw .invalidField("path", "must be a relative path inside the adapters directory, without '..'")
      }
      return .load(name: name, path: path)
    }
    if let r = rank, !(1...1024).contains(r) { throw .invalidField("rank", "must be 1 to 1024, got \(r)") }
    if let a = alpha, !(a.isFinite && a > 0) { throw .invalidField("alpha", "must be positive, got \(a)") }
    if let t = targets, t.isEmpty || t.count > 64 || !t.allSatisfy({ AdapterName.isValid($0) }) {
      throw .invalidField("targets", "must list 1 to 64 projection names such as q, k, v, up, down")
    }
    if let p = pruningRate, !(p >= 0 && p < 1) { throw .invalidField("pruning_rate", "must be in [0, 1), got \(p)") }
    return .create(AdapterSpec(name: name, rank: rank, alpha: alpha, targets: targets, pruningRate: pruningRate))
  }
}

/// `POST /v1/adapters/default` body: `{"name": "x"}` or `{"name": null}` for the base model.
struct DefaultAdapterRequest: Codable {
  var name: String?
}
