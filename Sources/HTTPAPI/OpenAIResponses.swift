// OpenAI-compatible response bodies with their on-disk names: chat completions and their
// stream chunks, text completions, the model list, and this daemon's adapter list.
// `finish_reason` and `logprobs` are written as explicit nulls, as OpenAI does.

/// Chat's `logprobs`: `{"content": [{"token", "logprob", "bytes", "top_logprobs": [...]}], "refusal": null}`.
struct ChatLogprobs: Codable, Equatable {
  struct Entry: Codable, Equatable {
    var token: String
    var logprob: Double
    var bytes: [UInt8]
    var topLogprobs: [Alternative]
    enum CodingKeys: String, CodingKey {
      case token, logprob, bytes
      case topLogprobs = "top_logprobs"
    }
  }
  struct Alternative: Codable, Equatable {
    var token: String
    var logprob: Double
    var bytes: [UInt8]
  }
  var content: [Entry]

  init(_ infos: [TokenLogprobInfo]) {
    content = infos.map { i in
      Entry(
        token: i.chosen.token, logprob: i.chosen.logprob, bytes: i.chosen.bytes,
        topLogprobs: i.top.map { Alternative(token: $0.token, logprob: $0.logprob, bytes: $0.bytes) })
    }
  }
  enum CodingKeys: String, CodingKey { case content, refusal }
  init(from decoder: any Decoder) throws {
    content = try decoder.container(keyedBy: CodingKeys.self).decode([Entry].self, forKey: .content)
  }
  func encode(to encoder: any Encoder) throws {
    var c = encoder.container(keyedBy: CodingKeys.self)
    try c.encode(content, forKey: .content)
    try c.encodeNil(forKey: .refusal)
  }
}

/// The legacy completions' `logprobs`: parallel arrays, alternatives as `{token: logprob}` maps.
struct TextLogprobs: Codable, Equatable {
  var tokens: [String]
  var tokenLogprobs: [Double]
  var topLogprobs: [[String: Double]]
  var textOffset: [Int]
  enum CodingKeys: String, CodingKey {
    case tokens
    case tokenLogprobs = "token_logprobs"
    case topLogprobs = "top_logprobs"
    case textOffset = "text_offset"
  }

  /// `offset`: characters of completion text before the first of these tokens.
  init(_ infos: [TokenLogprobInfo], offset: Int) {
    tokens = infos.map(\.chosen.token)
    tokenLogprobs = infos.map(\.chosen.logprob)
    topLogprobs = infos.map { Dictionary($0.top.map { ($0.token, $0.logprob) }, uniquingKeysWith: max) }
    var at = offset
    textOffset = tokens.map { t in
      defer { at += t.count }
      return at
    }
  }
}

struct ChatCompletionResponse: Codable, Equatable {
  struct Choice: Codable, Equatable {
    var index: Int
    var message: ChatMessage
    var finishReason: FinishReason
    var logprobs: ChatLogprobs?
    enum CodingKeys: String, CodingKey {
      case index, message, logprobs
      case finishReason = "finish_reason"
    }
    init(index: Int, message: ChatMessage, finishReason: FinishReason, logprobs: ChatLogprobs? = nil) {
      self.index = index
      self.message = message
      self.finishReason = finishReason
      self.logprobs = logprobs
    }
    func encode(to encoder: any Encoder) throws {
      var c = encoder.container(keyedBy: CodingKeys.self)
      try c.encode(index, forKey: .index)
      try c.encode(message, forKey: .message)
      try c.encode(logprobs, forKey: .logprobs)
      try c.encode(finishReason, forKey: .finishReason)
    }
  }
  var id: String
  var object = "chat.completion"
  var created: Int
  var model: String
  var choices: [Choice]
  var usage: Usage
}

struct ChatCompletionChunk: Codable, Equatable {
  struct Delta: Codable, Equatable {
    var role: ChatMessage.Role?
    var content: String?
    var toolCalls: [ToolCallDelta]?
    enum CodingKeys: String, CodingKey {
      case role, content
      case toolCalls = "tool_calls"
    }
  }
  /// One call in a streamed answer: sent whole, in one delta (OpenAI's clients concatenate
  /// `arguments` over deltas of the same `index`, so one piece is a valid stream).
  struct ToolCallDelta: Codable, Equatable {
    struct Function: Codable, Equatable {
      var name: String
      var arguments: String
    }
    var index: Int
    var id: String
    var type = "function"
    var function: Function
  }
  struct Choice: Codable, Equatable {
    var index: Int
    var delta: Delta
    var finishReason: FinishReason?
    var logprobs: ChatLogprobs?
    enum CodingKeys: String, CodingKey {
      case index, delta, logprobs
      case finishReason = "finish_reason"
    }
    init(index: Int, delta: Delta, finishReason: FinishReason?, logprobs: ChatLogprobs? = nil) {
      self.index = index
      self.delta = delta
      self.finishReason = finishReason
      self.logprobs = logprobs
    }
    func encode(to encoder: any Encoder) throws {
      var c = encoder.container(keyedBy: CodingKeys.self)
      try c.encode(index, forKey: .index)
      try c.encode(delta, forKey: .delta)
      try c.encode(logprobs, forKey: .logprobs)
      try c.encode(finishReason, forKey: .finishReason)
    }
  }
  var id: String
  var object = "chat.completion.chunk"
  var created: Int
  var model: String
  var choices: [Choice]
  /// Only on the extra final chunk asked for with `stream_options.include_usage`.
  var usage: Usage?
}

struct TextCompletionResponse: Codable, Equatable {
  struct Choice: Codable, Equatable {
    var text: String
    var index: Int
    var finishReason: FinishReason?
    var logprobs: TextLogprobs?
    enum CodingKeys: String, CodingKey {
      case text, index, logprobs
      case finishReason = "finish_reason"
    }
    init(text: String, index: Int, finishReason: FinishReason?, logprobs: TextLogprobs? = nil) {
      self.text = text
      self.index = index
      self.finishReason = finishReason
      self.logprobs = logprobs
    }
    init(from decoder: any Decoder) throws {
      let c = try decoder.container(keyedBy: CodingKeys.self)
      text = try c.decode(String.self, forKey: .text)
      index = try c.decode(Int.self, forKey: .index)
      finishReason = try c.decodeIfPresent(FinishReason.self, forKey: .finishReason)
      logprobs = try c.decodeIfPresent(TextLogprobs.self, forKey: .logprobs)
    }
    func encode(to encoder: any Encoder) throws {
      var c = encoder.container(keyedBy: CodingKeys.self)
      try c.encode(text, forKey: .text)
      try c.encode(index, forKey: .index)
      try c.encode(logprobs, forKey: .logprobs)
      try c.encode(finishReason, forKey: .finishReason)
    }
  }
  var id: String
  var object = "text_completion"
  var created: Int
  var model: String
  var choices: [Choice]
  var usage: Usage?
}

struct ModelList: Codable, Equatable {
  struct Entry: Codable, Equatable {
    var id: String
    var object = "model"
    var created: Int
    var ownedBy: String
    /// Not in OpenAI's shape, harmless to its clients: tells the base model from adapters.
    var kind: ModelInfo.Kind
    enum CodingKeys: String, CodingKey {
      case id, object, created, kind
      case ownedBy = "owned_by"
    }
  }
  var object = "list"
  var data: [Entry]
}

struct AdapterList: Codable, Equatable {
  var object = "list"
  var data: [AdapterInfo]
}

struct HealthBody: Codable, Equatable {
  var status: String
  var ready: Bool
}
