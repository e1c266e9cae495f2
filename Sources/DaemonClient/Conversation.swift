// A multi-turn chat's history: the optional system message and every exchanged turn, sent in
// full with each new question (the daemon is stateless between requests).
import HTTPAPI

public struct Conversation: Sendable, Equatable {
  public let system: String?
  public private(set) var turns: [ChatMessage] = []

  public init(system: String? = nil) {
    self.system = system
  }

  /// What to send for a new user message: the history so far, then that message.
  public func messages(asking question: String) -> [ChatMessage] {
    var out: [ChatMessage] = []
    if let system, !system.isEmpty { out.append(ChatMessage(role: .system, content: system)) }
    out += turns
    out.append(ChatMessage(role: .user, content: question))
    return out
  }

  /// Keeps a completed exchange; a failed one is simply not recorded.
  public mutating func record(question: String, answer: String) {
    turns.append(ChatMessage(role: .user, content: question))
    turns.append(ChatMessage(role: .assistant, content: answer))
  }

  /// Forgets the turns, keeps the system message.
  public mutating func reset() {
    turns = []
  }
}
