// Tool use as chat-template messages, shared by training data and serving so an adapter is
// trained on exactly the text it is later prompted with: tools offered in the system prompt,
// an assistant's calls after its text, a tool's result as a user turn (ToolCallSyntax's forms).
import Grammar
import Tokenization

extension ChatMessage {
  /// A tool's result as the user turn that carries it.
  public static func toolResult(_ content: String) -> ChatMessage {
    ChatMessage(role: "user", content: ToolCallSyntax.toolResponse(content))
  }

  /// An assistant turn with its calls written after its text.
  public static func assistant(_ content: String, calls: [ToolCallSyntax.Call]) -> ChatMessage {
    ChatMessage(role: "assistant", content: ToolCallSyntax.assistantContent(content, calls: calls))
  }
}

extension Array where Element == ChatMessage {
  /// The conversation with `functions` offered in its system prompt (one is added when it has
  /// none). No template family here has tool markup of its own.
  public func offering(_ functions: [ToolCallSyntax.Function]) -> [ChatMessage] {
    guard !functions.isEmpty else { return self }
    var out = self
    if let first = out.first, first.role == "system" {
      out[0].content = ToolCallSyntax.systemPrompt(first.content, functions: functions)
    } else {
      out.insert(ChatMessage(role: "system", content: ToolCallSyntax.systemPrompt(nil, functions: functions)), at: 0)
    }
    return out
  }
}
