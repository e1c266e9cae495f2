// The daemon's response bodies as this client reads them (OpenAI's shapes plus the adapter
// list and health). Decoding is lenient where a newer daemon may say more: unknown keys are
// ignored and `finish_reason` is kept as a string. Encodable too, for `--json` output.
import HTTPAPI

public struct ChatCompletion: Sendable, Codable, Equatable {
  public struct Choice: Sendable, Codable, Equatable {
    public var index: Int
    public var message: ChatMessage
    public var finishReason: String?
    enum CodingKeys: String, CodingKey {
      case index, message
      case finishReason = "finish_reason"
    }
  }
  public var id: String
  public var object: String
  public var created: Int
  public var model: String
  public var choices: [Choice]
  public var usage: Usage?

  /// The first choice's text, the answer to a one-choice request.
  public var text: String { choices.first?.message.content ?? "" }
}

/// One `chat.completion.chunk` of a streamed chat.
public struct ChatChunk: Sendable, Codable, Equatable {
  public struct Delta: Sendable, Codable, Equatable {
    public var role: String?
    public var content: String?
  }
  public struct Choice: Sendable, Codable, Equatable {
    public var index: Int
    public var delta: Delta
    public var finishReason: String?
    enum CodingKeys: String, CodingKey {
      case index, delta
      case finishReason = "finish_reason"
    }
  }
  public var id: String
  public var model: String
  public var created: Int
  public var choices: [Choice]
  /// Only on the extra last chunk asked for with `stream_options.include_usage`.
  public var usage: Usage?

  public var text: String { choices.first?.delta.content ?? "" }
  public var finishReason: String? { choices.first?.finishReason }
}

/// A `text_completion`, whole or as one streamed piece.
public struct TextCompletion: Sendable, Codable, Equatable {
  public struct Choice: Sendable, Codable, Equatable {
    public var text: String
    public var index: Int
    public var finishReason: String?
    enum CodingKeys: String, CodingKey {
      case text, index
      case finishReason = "finish_reason"
    }
  }
  public var id: String
  public var created: Int
  public var model: String
  public var choices: [Choice]
  public var usage: Usage?

  public var text: String { choices.first?.text ?? "" }
  public var finishReason: String? { choices.first?.finishReason }
}

/// An entry of `GET /v1/models`: the base model or an adapter.
public struct ModelEntry: Sendable, Codable, Equatable {
  public var id: String
  public var created: Int
  public var ownedBy: String
  /// "base" or "adapter"; nil from a server that does not say.
  public var kind: String?
  enum CodingKeys: String, CodingKey {
    case id, created, kind
    case ownedBy = "owned_by"
  }
}

struct ListBody<Element: Decodable>: Decodable {
  var data: [Element]
}

/// `GET /health`: 200 when ready, 503 while loading or stopping, same body either way.
public struct HealthStatus: Sendable, Codable, Equatable {
  public var status: String
  public var ready: Bool

  public init(status: String, ready: Bool) {
    self.status = status
    self.ready = ready
  }
}
