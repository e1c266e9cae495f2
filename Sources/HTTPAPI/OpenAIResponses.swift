// OpenAI-compatible response bodies with their on-disk names: chat completions and their
// stream chunks, text completions, the model list, and this daemon's adapter list.
// `finish_reason` and `logprobs` are written as explicit nulls, as OpenAI does.

struct ChatCompletionResponse: Codable, Equatable {
  struct Choice: Codable, Equatable {
    var index: Int
    var message: ChatMessage
    var finishReason: FinishReason
    enum CodingKeys: String, CodingKey {
      case index, message
      case finishReason = "finish_reason"
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
  }
  struct Choice: Codable, Equatable {
    var index: Int
    var delta: Delta
    var finishReason: FinishReason?
    enum CodingKeys: String, CodingKey {
      case index, delta
      case finishReason = "finish_reason"
    }
    func encode(to encoder: any Encoder) throws {
      var c = encoder.container(keyedBy: CodingKeys.self)
      try c.encode(index, forKey: .index)
      try c.encode(delta, forKey: .delta)
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
    enum CodingKeys: String, CodingKey {
      case text, index, logprobs
      case finishReason = "finish_reason"
    }
    init(text: String, index: Int, finishReason: FinishReason?) {
      self.text = text
      self.index = index
      self.finishReason = finishReason
    }
    init(from decoder: any Decoder) throws {
      let c = try decoder.container(keyedBy: CodingKeys.self)
      text = try c.decode(String.self, forKey: .text)
      index = try c.decode(Int.self, forKey: .index)
      finishReason = try c.decodeIfPresent(FinishReason.self, forKey: .finishReason)
    }
    func encode(to encoder: any Encoder) throws {
      var c = encoder.container(keyedBy: CodingKeys.self)
      try c.encode(text, forKey: .text)
      try c.encode(index, forKey: .index)
      try c.encodeNil(forKey: .logprobs)
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
