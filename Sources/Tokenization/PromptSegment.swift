// A rendered prompt as a list of segments, so that only the chat template's own markup is
// ever parsed for special tokens: `<|im_start|>` typed by a user stays ordinary text.

public enum PromptSegment: Sendable, Equatable, Hashable {
  /// Template markup; special-token text in it becomes special tokens.
  case markup(String)
  /// Message content (or a role name); special-token text in it stays text.
  case content(String)

  public var text: String {
    switch self {
    case .markup(let s), .content(let s): return s
    }
  }
}

extension Array where Element == PromptSegment {
  /// The prompt as one string (what a Jinja renderer would produce).
  public var renderedText: String { map(\.text).joined() }
}
