import Grammar

// OpenAI-compatible request bodies (`/v1/chat/completions`, `/v1/completions`, `/v1/adapters`,
// `/tokenize`, `/detokenize`) decoded with their on-disk names, and validated so the backend
// sees only sane values. Decoding is strict: a key the route does not know is a 400 naming it,
// and a known field this server cannot honour (e.g. `n: 2`) is a 400 naming it, never silence.
// `user`, `metadata` and `store` are accepted and ignored, as OpenAI documents them.

/// Sampling knobs shared by both generation routes; `nil` means the daemon's configured default.
public struct SamplingParameters: Sendable, Equatable {
  public var maxTokens: Int?
  public var temperature: Double?
  public var topP: Double?
  public var topK: Int?
  public var minP: Double?
  public var repeatPenalty: Double?
  /// OpenAI's penalties, −2…2, over the tokens generated so far (0 = off).
  public var presencePenalty: Double?
  public var frequencyPenalty: Double?
  /// Added to the logit of each token id, −100…100 (−100 bans, 100 all but forces).
  public var logitBias: [Int32: Double]
  /// llama-server's `ignore_eos`: end-of-generation tokens are never sampled.
  public var ignoreEOS: Bool
  public var seed: UInt64?
  /// Stop strings; OpenAI accepts one string or an array.
  public var stop: [String]
  /// Which name the request used for the token limit (`max_tokens` or `max_completion_tokens`),
  /// so an error about it names the field the client sent.
  public var maxTokensField: String

  public init(
    maxTokens: Int? = nil, temperature: Double? = nil, topP: Double? = nil, topK: Int? = nil,
    minP: Double? = nil, repeatPenalty: Double? = nil, seed: UInt64? = nil, stop: [String] = [],
    presencePenalty: Double? = nil, frequencyPenalty: Double? = nil, logitBias: [Int32: Double] = [:],
    ignoreEOS: Bool = false, maxTokensField: String = "max_tokens"
  ) {
    self.maxTokens = maxTokens
    self.temperature = temperature
    self.topP = topP
    self.topK = topK
    self.minP = minP
    self.repeatPenalty = repeatPenalty
    self.seed = seed
    self.stop = stop
    self.presencePenalty = presencePenalty
    self.frequencyPenalty = frequencyPenalty
    self.logitBias = logitBias
    self.ignoreEOS = ignoreEOS
    self.maxTokensField = maxTokensField
  }

  enum CodingKeys: String, CodingKey, CaseIterable {
    case maxTokens = "max_tokens"
    case maxCompletionTokens = "max_completion_tokens"
    case temperature
    case topP = "top_p"
    case topK = "top_k"
    case minP = "min_p"
    case repeatPenalty = "repeat_penalty"
    case presencePenalty = "presence_penalty"
    case frequencyPenalty = "frequency_penalty"
    case logitBias = "logit_bias"
    case ignoreEOS = "ignore_eos"
    case seed, stop
  }
  static let keys = Set(CodingKeys.allCases.map(\.rawValue))

  init(from c: KeyedDecodingContainer<CodingKeys>) throws {
    let legacy = try c.decodeNumberIfPresent(Int.self, forKey: .maxTokens)
    let current = try c.decodeNumberIfPresent(Int.self, forKey: .maxCompletionTokens)
    if let legacy, let current, legacy != current {
      throw APIError.invalidField(
        "max_completion_tokens", "max_tokens (\(legacy)) and max_completion_tokens (\(current)) disagree; send one")
    }
    maxTokens = current ?? legacy
    maxTokensField = current != nil ? "max_completion_tokens" : "max_tokens"
    temperature = try c.decodeNumberIfPresent(Double.self, forKey: .temperature)
    topP = try c.decodeNumberIfPresent(Double.self, forKey: .topP)
    topK = try c.decodeNumberIfPresent(Int.self, forKey: .topK)
    minP = try c.decodeNumberIfPresent(Double.self, forKey: .minP)
    repeatPenalty = try c.decodeNumberIfPresent(Double.self, forKey: .repeatPenalty)
    presencePenalty = try c.decodeNumberIfPresent(Double.self, forKey: .presencePenalty)
    frequencyPenalty = try c.decodeNumberIfPresent(Double.self, forKey: .frequencyPenalty)
    ignoreEOS = try c.decodeIfPresent(Bool.self, forKey: .ignoreEOS) ?? false
    // OpenAI's logit_bias is an object keyed by token ids written as strings.
    var bias: [Int32: Double] = [:]
    if try c.contains(.logitBias) && !c.decodeNil(forKey: .logitBias) {
      let entries = try c.nestedContainer(keyedBy: AnyCodingKey.self, forKey: .logitBias)
      for key in entries.allKeys.sorted(by: { $0.stringValue < $1.stringValue }) {
        guard let id = Int32(key.stringValue), id >= 0 else {
          throw APIError.invalidField(
            "logit_bias", "keys must be token ids (non-negative integers), got '\(key.stringValue.prefix(40))'")
        }
        bias[id] = try entries.decodeNumber(Double.self, forKey: key, field: "logit_bias")
      }
    }
    logitBias = bias
    // Decoded signed so a negative seed is a range error on `seed`, not an anonymous JSON failure.
    if let s = try c.decodeNumberIfPresent(Int64.self, forKey: .seed) {
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
    try c.encodeIfPresent(maxTokens, forKey: maxTokensField == "max_tokens" ? .maxTokens : .maxCompletionTokens)
    try c.encodeIfPresent(temperature, forKey: .temperature)
    try c.encodeIfPresent(topP, forKey: .topP)
    try c.encodeIfPresent(topK, forKey: .topK)
    try c.encodeIfPresent(minP, forKey: .minP)
    try c.encodeIfPresent(repeatPenalty, forKey: .repeatPenalty)
    try c.encodeIfPresent(presencePenalty, forKey: .presencePenalty)
    try c.encodeIfPresent(frequencyPenalty, forKey: .frequencyPenalty)
    if !logitBias.isEmpty {
      try c.encode(Dictionary(uniqueKeysWithValues: logitBias.map { (String($0.key), $0.value) }), forKey: .logitBias)
    }
    if ignoreEOS { try c.encode(true, forKey: .ignoreEOS) }
    try c.encodeIfPresent(seed, forKey: .seed)
    if !stop.isEmpty { try c.encode(stop, forKey: .stop) }
  }

  /// OpenAI's limits: up to 4 stop sequences; the length cap is this server's.
  static let maxStopStrings = 4
  static let maxStopLength = 256
  static let maxLogitBiasEntries = 1024

  /// Checks every value in the request's own precision (Double), naming the field; the backend
  /// converts to its own types only after this.
  func validate() throws(APIError) {
    if let v = maxTokens, v < 1 { throw .invalidField(maxTokensField, "must be at least 1, got \(v)") }
    if let v = temperature, !(v.isFinite && v >= 0 && v <= 100) {
      throw .invalidField("temperature", "must be between 0 and 100, got \(v)")
    }
    if let v = topP, !(v > 0 && v <= 1) { throw .invalidField("top_p", "must be in (0, 1], got \(v)") }
    if let v = topK, v < 0 { throw .invalidField("top_k", "must be 0 (off) or positive, got \(v)") }
    if let v = minP, !(v >= 0 && v <= 1) { throw .invalidField("min_p", "must be in [0, 1], got \(v)") }
    if let v = repeatPenalty, !(v.isFinite && v > 0) {
      throw .invalidField("repeat_penalty", "must be positive, got \(v)")
    }
    if let v = presencePenalty, !(v >= -2 && v <= 2) {
      throw .invalidField("presence_penalty", "must be between -2 and 2, got \(v)")
    }
    if let v = frequencyPenalty, !(v >= -2 && v <= 2) {
      throw .invalidField("frequency_penalty", "must be between -2 and 2, got \(v)")
    }
    if logitBias.count > Self.maxLogitBiasEntries {
      throw .invalidField("logit_bias", "at most \(Self.maxLogitBiasEntries) entries, got \(logitBias.count)")
    }
    for (id, v) in logitBias.sorted(by: { $0.key < $1.key }) where !(v >= -100 && v <= 100) {
      throw .invalidField("logit_bias", "token \(id): bias must be between -100 and 100, got \(v)")
    }
    if stop.count > Self.maxStopStrings {
      throw .invalidField("stop", "at most \(Self.maxStopStrings) stop strings, got \(stop.count)")
    }
    for s in stop where s.isEmpty || s.utf8.count > Self.maxStopLength {
      throw .invalidField("stop", "each stop string must have 1 to \(Self.maxStopLength) bytes")
    }
  }

  /// Choice `index`'s sampling (OpenAI's `n`): choice i > 0 samples with seed + i when a seed was
  /// given, so the choices are independent samples and the request is still reproducible.
  public func forChoice(_ index: Int) -> SamplingParameters {
    var choice = self
    if let seed, index > 0 { choice.seed = seed &+ UInt64(index) }
    return choice
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

/// Fields OpenAI documents as stored or logged on their side; accepted and ignored here.
enum IgnoredFields {
  static let keys: Set<String> = ["user", "metadata", "store"]

  /// Still type-checked, so a malformed value is an error rather than ignored blindly.
  static func check(_ decoder: any Decoder) throws {
    enum K: String, CodingKey { case user, metadata, store }
    let c = try decoder.container(keyedBy: K.self)
    _ = try c.decodeIfPresent(String.self, forKey: .user)
    _ = try c.decodeIfPresent([String: String].self, forKey: .metadata)
    _ = try c.decodeIfPresent(Bool.self, forKey: .store)
  }
}

/// A call the assistant made, as OpenAI writes it: `{"id", "type": "function", "function":
/// {"name", "arguments"}}` with the arguments as a JSON string.
public struct ToolCall: Sendable, Equatable, Codable {
  public var id: String
  public var name: String
  public var arguments: String

  public init(id: String, name: String, arguments: String) {
    self.id = id
    self.name = name
    self.arguments = arguments
  }

  enum CodingKeys: String, CodingKey { case id, type, function }
  struct Function: Codable {
    var name: String
    var arguments: String
  }

  public init(from decoder: any Decoder) throws {
    try refuseUnknownKeys(decoder, known: ["id", "type", "function"])
    let c = try decoder.container(keyedBy: CodingKeys.self)
    id = try c.decode(String.self, forKey: .id)
    let type = try c.decodeIfPresent(String.self, forKey: .type) ?? "function"
    guard type == "function" else {
      throw APIError.invalidField(fieldPath(decoder.codingPath + [CodingKeys.type]), "only \"function\" tool calls exist")
    }
    let f = try c.decode(Function.self, forKey: .function)
    name = f.name
    arguments = f.arguments
  }

  public func encode(to encoder: any Encoder) throws {
    var c = encoder.container(keyedBy: CodingKeys.self)
    try c.encode(id, forKey: .id)
    try c.encode("function", forKey: .type)
    try c.encode(Function(name: name, arguments: arguments), forKey: .function)
  }
}

public struct ChatMessage: Sendable, Codable, Equatable {
  /// OpenAI's `developer` role is read as `system`, as OpenAI does for models without it.
  public enum Role: String, Sendable, Codable { case system, user, assistant, tool }
  public var role: Role
  public var content: String
  /// An assistant turn's calls (its content may then be null, read as "").
  public var toolCalls: [ToolCall]
  /// A `tool` message answers this call.
  public var toolCallID: String?

  public init(role: Role, content: String, toolCalls: [ToolCall] = [], toolCallID: String? = nil) {
    self.role = role
    self.content = content
    self.toolCalls = toolCalls
    self.toolCallID = toolCallID
  }

  enum CodingKeys: String, CodingKey {
    case role, content, name
    case toolCalls = "tool_calls"
    case toolCallID = "tool_call_id"
  }
  private struct Part: Decodable {
    var type: String
    var text: String?
  }

  public init(from decoder: any Decoder) throws {
    try refuseUnknownKeys(decoder, known: ["role", "content", "name", "tool_calls", "tool_call_id"])
    let c = try decoder.container(keyedBy: CodingKeys.self)
    let roleName = try c.decode(String.self, forKey: .role)
    switch roleName {
    case "developer": role = .system
    case let r:
      guard let known = Role(rawValue: r) else {
        throw APIError.invalidField(
          fieldPath(decoder.codingPath + [CodingKeys.role]),
          "must be one of system, developer, user, assistant, tool; got '\(r.prefix(40))'")
      }
      role = known
    }
    // `name` (a participant's name) has no place in the chat templates; read and ignored.
    _ = try c.decodeIfPresent(String.self, forKey: .name)
    toolCalls = try c.decodeIfPresent([ToolCall].self, forKey: .toolCalls) ?? []
    if !toolCalls.isEmpty, role != .assistant {
      throw APIError.invalidField(fieldPath(decoder.codingPath + [CodingKeys.toolCalls]), "only assistant messages carry tool calls")
    }
    toolCallID = try c.decodeIfPresent(String.self, forKey: .toolCallID)
    if role == .tool, toolCallID == nil {
      throw APIError.invalidField(
        fieldPath(decoder.codingPath + [CodingKeys.toolCallID]), "a tool message needs the id of the call it answers")
    }
    // Newer clients send content as an array of typed parts; only text parts mean anything here.
    if try !c.contains(.content) || c.decodeNil(forKey: .content) {
      guard role == .assistant else {
        throw APIError.invalidField(fieldPath(decoder.codingPath + [CodingKeys.content]), "required for \(roleName) messages")
      }
      content = ""
    } else if let s = try? c.decode(String.self, forKey: .content) {
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

  public func encode(to encoder: any Encoder) throws {
    var c = encoder.container(keyedBy: CodingKeys.self)
    try c.encode(role, forKey: .role)
    // OpenAI writes a tool-calling answer's content as null.
    if content.isEmpty && !toolCalls.isEmpty { try c.encodeNil(forKey: .content) } else { try c.encode(content, forKey: .content) }
    if !toolCalls.isEmpty { try c.encode(toolCalls, forKey: .toolCalls) }
    try c.encodeIfPresent(toolCallID, forKey: .toolCallID)
  }
}

/// `stream_options`: `include_usage` adds a final chunk with `usage`.
struct StreamOptions: Codable {
  var includeUsage: Bool?
  enum CodingKeys: String, CodingKey { case includeUsage = "include_usage" }
  init(includeUsage: Bool?) { self.includeUsage = includeUsage }
  init(from decoder: any Decoder) throws {
    try refuseUnknownKeys(decoder, known: ["include_usage"])
    includeUsage = try decoder.container(keyedBy: CodingKeys.self).decodeIfPresent(Bool.self, forKey: .includeUsage)
  }
}

/// Fields both generation routes know but that only some values of are served; kept raw so
/// `validate` can refuse what is not served, naming the field.
public struct RequestedFeatures: Sendable, Equatable {
  /// `n`: choices per request.
  public var n: Int?
  /// Chat: `logprobs: true`; completions: the integer `logprobs`.
  public var logprobs: Bool
  /// Chat's `top_logprobs` or completions' integer `logprobs`.
  public var topLogprobs: Int?
  public var responseFormat: JSONValue?
  public var tools: [JSONValue]?
  public var toolChoice: JSONValue?
  public var parallelToolCalls: Bool?
  /// llama.cpp's GBNF `grammar` extension.
  public var grammar: String?
  /// Completions only.
  public var echo: Bool?
  public var bestOf: Int?
  public var suffix: String?
  /// `response_format` and `tools` with object keys in the order the client wrote them.
  public var orderedResponseFormat: OrderedJSON?
  public var orderedTools: [OrderedJSON]?

  public init() { logprobs = false }
}

public struct ChatCompletionRequest: Sendable, Equatable, Codable {
  /// An adapter name or the base model's id; `nil` uses the default adapter.
  public var model: String?
  public var messages: [ChatMessage]
  public var sampling: SamplingParameters
  public var stream: Bool
  /// `stream_options.include_usage`: one extra chunk with `usage` before `[DONE]`.
  public var includeUsageInStream: Bool
  public var features: RequestedFeatures
  /// `adapter_scale`, or what the router resolved `lora` to (the backend sees `lora` empty).
  public var adapterScaling: AdapterScaling?
  /// llama-server's per-request adapters, as sent.
  public var lora: [LoRAScaleEntry]?
  /// `chat_template_kwargs.enable_thinking` (vLLM's and llama-server's field; the only kwarg served).
  public var enableThinking: Bool?

  public init(
    model: String? = nil, messages: [ChatMessage], sampling: SamplingParameters = .init(),
    stream: Bool = false, includeUsageInStream: Bool = false, features: RequestedFeatures = .init(),
    adapterScaling: AdapterScaling? = nil, lora: [LoRAScaleEntry]? = nil, enableThinking: Bool? = nil
  ) {
    self.model = model
    self.messages = messages
    self.sampling = sampling
    self.stream = stream
    self.includeUsageInStream = includeUsageInStream
    self.features = features
    self.adapterScaling = adapterScaling
    self.lora = lora
    self.enableThinking = enableThinking
  }

  enum CodingKeys: String, CodingKey, CaseIterable {
    case model, messages, stream, n, logprobs, tools, grammar, lora
    case streamOptions = "stream_options"
    case topLogprobs = "top_logprobs"
    case responseFormat = "response_format"
    case toolChoice = "tool_choice"
    case parallelToolCalls = "parallel_tool_calls"
    case adapterScale = "adapter_scale"
    case chatTemplateKwargs = "chat_template_kwargs"
  }
  static let keys = Set(CodingKeys.allCases.map(\.rawValue)).union(SamplingParameters.keys).union(IgnoredFields.keys)

  public init(from decoder: any Decoder) throws {
    try refuseUnknownKeys(decoder, known: Self.keys)
    try IgnoredFields.check(decoder)
    let c = try decoder.container(keyedBy: CodingKeys.self)
    model = try c.decodeIfPresent(String.self, forKey: .model)
    messages = try c.decode([ChatMessage].self, forKey: .messages)
    stream = try c.decodeIfPresent(Bool.self, forKey: .stream) ?? false
    includeUsageInStream = try c.decodeIfPresent(StreamOptions.self, forKey: .streamOptions)?.includeUsage ?? false
    sampling = try SamplingParameters(from: decoder.container(keyedBy: SamplingParameters.CodingKeys.self))
    features = RequestedFeatures()
    features.n = try c.decodeNumberIfPresent(Int.self, forKey: .n)
    features.logprobs = try c.decodeIfPresent(Bool.self, forKey: .logprobs) ?? false
    features.topLogprobs = try c.decodeNumberIfPresent(Int.self, forKey: .topLogprobs)
    features.responseFormat = try c.decodeIfPresent(JSONValue.self, forKey: .responseFormat)
    features.tools = try c.decodeIfPresent([JSONValue].self, forKey: .tools)
    features.toolChoice = try c.decodeIfPresent(JSONValue.self, forKey: .toolChoice)
    features.parallelToolCalls = try c.decodeIfPresent(Bool.self, forKey: .parallelToolCalls)
    features.grammar = try c.decodeIfPresent(String.self, forKey: .grammar)
    features.keepOrder(decoder)
    adapterScaling = try c.decodeNumberIfPresent(Double.self, forKey: .adapterScale).map {
      AdapterScaling(scale: $0, field: "adapter_scale")
    }
    lora = try c.decodeIfPresent([LoRAScaleEntry].self, forKey: .lora)
    enableThinking = try c.decodeIfPresent(ChatTemplateKwargs.self, forKey: .chatTemplateKwargs)?.enableThinking
  }

  public func encode(to encoder: any Encoder) throws {
    var c = encoder.container(keyedBy: CodingKeys.self)
    try c.encodeIfPresent(model, forKey: .model)
    try c.encodeIfPresent(adapterScaling?.scale, forKey: .adapterScale)
    try c.encodeIfPresent(lora, forKey: .lora)
    if let enableThinking { try c.encode(ChatTemplateKwargs(enableThinking: enableThinking), forKey: .chatTemplateKwargs) }
    try c.encode(messages, forKey: .messages)
    try c.encode(stream, forKey: .stream)
    if includeUsageInStream { try c.encode(StreamOptions(includeUsage: true), forKey: .streamOptions) }
    try c.encodeIfPresent(features.n, forKey: .n)
    if features.logprobs { try c.encode(true, forKey: .logprobs) }
    try c.encodeIfPresent(features.topLogprobs, forKey: .topLogprobs)
    try c.encodeIfPresent(features.responseFormat, forKey: .responseFormat)
    try c.encodeIfPresent(features.tools, forKey: .tools)
    try c.encodeIfPresent(features.toolChoice, forKey: .toolChoice)
    try c.encodeIfPresent(features.parallelToolCalls, forKey: .parallelToolCalls)
    try c.encodeIfPresent(features.grammar, forKey: .grammar)
    var s = encoder.container(keyedBy: SamplingParameters.CodingKeys.self)
    try sampling.encode(to: &s)
  }

  func validate() throws(APIError) {
    if messages.isEmpty { throw .invalidField("messages", "must hold at least one message") }
    try validateModelField(model)
    try AdapterScaleFields.validate(adapterScaling, lora)
    try sampling.validate()
    try features.validate(logprobsField: "top_logprobs")
  }
}

/// A completions prompt: text (its special-token text parsed, as llama-server does), or token
/// ids taken as they are, the two forms OpenAI's API takes for one prompt.
public enum CompletionPrompt: Sendable, Equatable, ExpressibleByStringLiteral {
  case text(String)
  case tokens([Int])

  public init(stringLiteral text: String) { self = .text(text) }

  /// One prompt in any of OpenAI's spellings: `"text"`, `["text"]`, `[1, 2]` or `[[1, 2]]`. A
  /// batch of several prompts is refused (one prompt per request here), and so is a token id
  /// that is not an integer, naming it (`prompt[3]`).
  init(_ value: JSONValue) throws(APIError) {
    switch value {
    case .string(let text):
      self = .text(text)
    case .array(let items):
      if items.count == 1, case .string(let text) = items[0] {
        self = .text(text)
      } else if items.count == 1, case .array(let ids) = items[0] {
        self = .tokens(try Self.tokenIDs(ids, field: "prompt[0]"))
      } else if !items.isEmpty, items.allSatisfy(Self.isNumber) {
        self = .tokens(try Self.tokenIDs(items, field: "prompt"))
      } else {
        throw .invalidField("prompt", "must be one prompt (a string or an array of token ids), got \(items.count) prompts")
      }
    default:
      throw .invalidField("prompt", "must be a string or an array of token ids")
    }
  }

  private static func isNumber(_ value: JSONValue) -> Bool {
    if case .number = value { return true }
    return false
  }

  private static func tokenIDs(_ items: [JSONValue], field: String) throws(APIError) -> [Int] {
    var ids: [Int] = []
    for (index, item) in items.enumerated() {
      guard case .number(let number) = item, let id = Int(exactly: number) else {
        throw .invalidField("\(field)[\(index)]", "must be an integer token id")
      }
      ids.append(id)
    }
    return ids
  }
}

public struct CompletionRequest: Sendable, Equatable, Codable {
  public var model: String?
  public var prompt: CompletionPrompt
  public var sampling: SamplingParameters
  public var stream: Bool
  public var includeUsageInStream: Bool
  public var features: RequestedFeatures
  /// As in `ChatCompletionRequest`.
  public var adapterScaling: AdapterScaling?
  public var lora: [LoRAScaleEntry]?

  public init(
    model: String? = nil, prompt: CompletionPrompt, sampling: SamplingParameters = .init(), stream: Bool = false,
    includeUsageInStream: Bool = false, features: RequestedFeatures = .init(), adapterScaling: AdapterScaling? = nil,
    lora: [LoRAScaleEntry]? = nil
  ) {
    self.model = model
    self.prompt = prompt
    self.sampling = sampling
    self.stream = stream
    self.includeUsageInStream = includeUsageInStream
    self.features = features
    self.adapterScaling = adapterScaling
    self.lora = lora
  }

  enum CodingKeys: String, CodingKey, CaseIterable {
    case model, prompt, stream, n, logprobs, echo, suffix, grammar, lora
    case adapterScale = "adapter_scale"
    case bestOf = "best_of"
    case streamOptions = "stream_options"
    case responseFormat = "response_format"
  }
  static let keys = Set(CodingKeys.allCases.map(\.rawValue)).union(SamplingParameters.keys).union(IgnoredFields.keys)

  public init(from decoder: any Decoder) throws {
    try refuseUnknownKeys(decoder, known: Self.keys)
    try IgnoredFields.check(decoder)
    let c = try decoder.container(keyedBy: CodingKeys.self)
    model = try c.decodeIfPresent(String.self, forKey: .model)
    prompt = try CompletionPrompt(c.decode(JSONValue.self, forKey: .prompt))
    stream = try c.decodeIfPresent(Bool.self, forKey: .stream) ?? false
    includeUsageInStream = try c.decodeIfPresent(StreamOptions.self, forKey: .streamOptions)?.includeUsage ?? false
    sampling = try SamplingParameters(from: decoder.container(keyedBy: SamplingParameters.CodingKeys.self))
    features = RequestedFeatures()
    features.n = try c.decodeNumberIfPresent(Int.self, forKey: .n)
    // The legacy route's `logprobs` is the number of alternatives (0 = the chosen token only).
    features.topLogprobs = try c.decodeNumberIfPresent(Int.self, forKey: .logprobs)
    features.logprobs = features.topLogprobs != nil
    features.echo = try c.decodeIfPresent(Bool.self, forKey: .echo)
    features.bestOf = try c.decodeNumberIfPresent(Int.self, forKey: .bestOf)
    features.suffix = try c.decodeIfPresent(String.self, forKey: .suffix)
    features.responseFormat = try c.decodeIfPresent(JSONValue.self, forKey: .responseFormat)
    features.grammar = try c.decodeIfPresent(String.self, forKey: .grammar)
    features.keepOrder(decoder)
    adapterScaling = try c.decodeNumberIfPresent(Double.self, forKey: .adapterScale).map {
      AdapterScaling(scale: $0, field: "adapter_scale")
    }
    lora = try c.decodeIfPresent([LoRAScaleEntry].self, forKey: .lora)
  }

  public func encode(to encoder: any Encoder) throws {
    var c = encoder.container(keyedBy: CodingKeys.self)
    try c.encodeIfPresent(model, forKey: .model)
    try c.encodeIfPresent(adapterScaling?.scale, forKey: .adapterScale)
    try c.encodeIfPresent(lora, forKey: .lora)
    switch prompt {
    case .text(let text): try c.encode(text, forKey: .prompt)
    case .tokens(let ids): try c.encode(ids, forKey: .prompt)
    }
    try c.encode(stream, forKey: .stream)
    if includeUsageInStream { try c.encode(StreamOptions(includeUsage: true), forKey: .streamOptions) }
    try c.encodeIfPresent(features.n, forKey: .n)
    if features.logprobs { try c.encode(features.topLogprobs ?? 0, forKey: .logprobs) }
    try c.encodeIfPresent(features.echo, forKey: .echo)
    try c.encodeIfPresent(features.bestOf, forKey: .bestOf)
    try c.encodeIfPresent(features.suffix, forKey: .suffix)
    try c.encodeIfPresent(features.responseFormat, forKey: .responseFormat)
    try c.encodeIfPresent(features.grammar, forKey: .grammar)
    var s = encoder.container(keyedBy: SamplingParameters.CodingKeys.self)
    try sampling.encode(to: &s)
  }

  func validate() throws(APIError) {
    try validateModelField(model)
    try AdapterScaleFields.validate(adapterScaling, lora)
    try sampling.validate()
    try features.validate(logprobsField: "logprobs")
  }
}

extension RequestedFeatures {
  /// Refuses, naming the field, every value this server does not serve (yet).
  func validate(logprobsField: String) throws(APIError) {
    if let n, n < 1 { throw .invalidField("n", "must be at least 1, got \(n)") }
    if let k = topLogprobs {
      // OpenAI: top_logprobs 0–20 on chat; the legacy integer logprobs (5 there) gets the same 20 here.
      guard (0...20).contains(k) else { throw .invalidField(logprobsField, "must be 0 to 20, got \(k)") }
      if !logprobs { throw .invalidField("top_logprobs", "needs logprobs: true") }
    }
    // The output grammar compiles (its errors name the field), so a backend sees only requests
    // it can serve; it compiles it again for itself (well under a millisecond for usual schemas).
    _ = try outputGrammar()
    if echo == true { throw .invalidField("echo", "echoing the prompt is not served") }
    if let b = bestOf, b != 1 { throw .invalidField("best_of", "only best_of = 1 is served") }
    if let s = suffix, !s.isEmpty { throw .invalidField("suffix", "insertion (suffix) is not served") }
  }
}

/// `chat_template_kwargs`: the chat templates are re-implemented, not interpreted, so the only
/// variable they read is Qwen 3's `enable_thinking`; any other key is refused by name.
struct ChatTemplateKwargs: Codable {
  var enableThinking: Bool?
  enum CodingKeys: String, CodingKey { case enableThinking = "enable_thinking" }
  init(enableThinking: Bool?) { self.enableThinking = enableThinking }
  init(from decoder: any Decoder) throws {
    try refuseUnknownKeys(decoder, known: ["enable_thinking"])
    enableThinking = try decoder.container(keyedBy: CodingKeys.self).decodeIfPresent(Bool.self, forKey: .enableThinking)
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
