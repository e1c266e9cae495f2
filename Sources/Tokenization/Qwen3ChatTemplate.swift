// Qwen 3's chat template (Qwen/Qwen3-0.6B's tokenizer_config.json, also llama.cpp's
// models/templates/Qwen-Qwen3-0.6B.jinja), without tools: ChatML in which an assistant turn
// after the last user query carries its reasoning in a `<think>` block (an empty one on the
// final turn), earlier turns lose theirs, and `enable_thinking=false` pre-fills an empty block.
// Reasoning is read from the message text as the template does (split at `</think>`).

extension ChatTemplate {
  func renderQwen3(_ messages: [ChatMessage], addGenerationPrompt: Bool, into out: inout SegmentBuilder) {
    if let first = messages.first, first.role == "system" {
      out.markup("<|im_start|>system\n")
      out.content(first.content)
      out.markup("<|im_end|>\n")
    }
    // The last user message that is not a tool response wrapped as one.
    let lastQuery =
      messages.indices.last { i in
        messages[i].role == "user"
          && !(messages[i].content.hasUTF8Prefix("<tool_response>") && messages[i].content.hasUTF8Suffix("</tool_response>"))
      } ?? messages.count - 1
    for (i, m) in messages.enumerated() {
      let isLast = i == messages.count - 1
      switch m.role {
      case "user",
        "system" where i > 0:  // the first system message went above
        out.markup("<|im_start|>")
        out.content(m.role)
        out.markup("\n")
        out.content(m.content)
        out.markup("<|im_end|>\n")
      case "assistant":
        var content = m.content
        var reasoning = ""
        if let parts = m.content.utf8Split(separator: "</think>") {
          content = parts.last!.trimmingNewlines(leading: true, trailing: false)
          let beforeFirst = parts.first!.trimmingNewlines(leading: false, trailing: true)
          reasoning = (beforeFirst.utf8Split(separator: "<think>")?.last ?? beforeFirst)
            .trimmingNewlines(leading: true, trailing: false)
        }
        out.markup("<|im_start|>assistant\n")
        if i > lastQuery && (isLast || !reasoning.isEmpty) {
          out.markup("<think>\n")
          out.content(reasoning.trimmingNewlines(leading: true, trailing: true))
          out.markup("\n</think>\n\n")
          out.content(content.trimmingNewlines(leading: true, trailing: false))
        } else {
          out.content(content)
        }
        out.markup("<|im_end|>\n")
      case "tool":
        if i == 0 || messages[i - 1].role != "tool" { out.markup("<|im_start|>user") }
        out.markup("\n<tool_response>\n")
        out.content(m.content)
        out.markup("\n</tool_response>")
        if isLast || messages[i + 1].role != "tool" { out.markup("<|im_end|>\n") }
      default:
        break
      }
    }
    if addGenerationPrompt {
      out.markup("<|im_start|>assistant\n")
      if enableThinking == false { out.markup("<think>\n\n</think>\n\n") }
    }
  }
}

extension String {
  /// Python's `s.split(separator)` when `separator` occurs (nil otherwise), on UTF-8 bytes so
  /// that no grapheme joins a separator to its neighbour.
  fileprivate func utf8Split(separator: String) -> [String]? {
    let bytes = Array(utf8)
    let sep = Array(separator.utf8)
    var parts: [String] = []
    var start = 0
    var i = 0
    while i + sep.count <= bytes.count {
      if bytes[i..<(i + sep.count)].elementsEqual(sep) {
        parts.append(String(decoding: bytes[start..<i], as: UTF8.self))
        i += sep.count
        start = i
      } else {
        i += 1
      }
    }
    guard !parts.isEmpty else { return nil }
    parts.append(String(decoding: bytes[start...], as: UTF8.self))
    return parts
  }

  fileprivate func hasUTF8Prefix(_ p: String) -> Bool { utf8.starts(with: p.utf8) }
  fileprivate func hasUTF8Suffix(_ p: String) -> Bool { utf8.reversed().starts(with: p.utf8.reversed()) }

  /// Python's `lstrip('\n')` / `rstrip('\n')` / `strip('\n')`: newline characters only.
  fileprivate func trimmingNewlines(leading: Bool, trailing: Bool) -> String {
    var s = Substring(self).utf8[...]
    if leading { while s.first == 0x0A { s = s.dropFirst() } }
    if trailing { while s.last == 0x0A { s = s.dropLast() } }
    return String(decoding: s, as: UTF8.self)
  }
}
