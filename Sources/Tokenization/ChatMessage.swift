// One message of a conversation, as the OpenAI-style API and the chat templates see it.

public struct ChatMessage: Sendable, Codable, Equatable, Hashable {
  public var role: String
  public var content: String

  public init(role: String, content: String) {
    self.role = role
    self.content = content
  }
}
