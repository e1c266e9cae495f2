// Chat templates: the model's Jinja `tokenizer.chat_template` is recognised by the markers
// of its family and re-implemented here, rendering to segments so that message content is
// never parsed for special tokens. Each family follows one real template byte for byte as
// Hugging Face renders it (jinja2 with trim_blocks and lstrip_blocks); the fixtures script
// checks that. Not here: a Jinja interpreter, tool calls, multimodal content.

public struct ChatTemplate: Sendable, Equatable {
  public enum Family: String, Sendable, CaseIterable {
    /// `<|im_start|>role\ncontent<|im_end|>\n` (Qwen, SmolLM, Hermes, …).
    case chatml
    /// Llama 3 (Meta-Llama-3-8B-Instruct): header ids and `<|eot_id|>`, content trimmed.
    case llama3
    /// Llama 3.1: as llama3 plus the dated system block ("Cutting Knowledge Date").
    case llama31 = "llama3.1"
    /// Llama 2 chat: `<s>[INST] <<SYS>>…<</SYS>> … [/INST] answer </s>`.
    case llama2
    /// Mistral 7B Instruct v0.1: `<s>[INST] … [/INST]answer</s>`.
    case mistral
    /// Gemma 2/3: `<start_of_turn>user\n…<end_of_turn>\n`, system text before the first turn.
    case gemma
    /// Phi-3.5 / Phi-3 (updated): `<|system|>`, `<|user|>`, `<|assistant|>`, each ended by `<|end|>`.
    case phi3
    /// The first Phi-3 template: no system role, `<|assistant|>\n` after every user turn.
    case phi3Legacy = "phi3-legacy"
    /// Zephyr: `<|user|>\n…</s>\n`.
    case zephyr
    /// Qwen 3: ChatML with its thinking conventions (`<think>` blocks; Qwen3ChatTemplate.swift).
    case qwen3
  }

  public var family: Family
  /// ChatML only: the system message inserted when the conversation has none (SmolLM2's
  /// "You are a helpful AI assistant named SmolLM, trained by Hugging Face").
  public var defaultSystemPrompt: String?
  /// What the template's `bos_token` / `eos_token` render as (the vocabulary's texts).
  public var bosToken: String
  public var eosToken: String
  /// Qwen 3 only: the template's `enable_thinking`; false ends the generation prompt with an
  /// empty `<think>` block so the model answers directly. nil (the default) leaves it undefined.
  public var enableThinking: Bool?
  /// Whether `enableThinking` changes anything: the family has a thinking mode to switch.
  public var hasThinkingMode: Bool { family == .qwen3 }

  /// The names `ChatTemplate(named:)` (and the CLI's `--chat-template NAME`) accept.
  public static let names: [String] = ["chatml", "smollm2"] + Family.allCases.dropFirst().map(\.rawValue)

  static let smolLM2SystemPrompt = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"

  public init(family: Family, defaultSystemPrompt: String? = nil, bosToken: String = "", eosToken: String = "") {
    self.family = family
    self.defaultSystemPrompt = defaultSystemPrompt
    self.bosToken = bosToken
    self.eosToken = eosToken
  }

  /// A template chosen by name: a family name, or "smollm2" (ChatML with SmolLM2's default
  /// system prompt).
  public init(named name: String, bosToken: String = "", eosToken: String = "") throws {
    let key = name.lowercased()
    if key == "smollm2" || key == "smollm" {
      self.init(family: .chatml, defaultSystemPrompt: Self.smolLM2SystemPrompt, bosToken: bosToken, eosToken: eosToken)
      return
    }
    let aliases: [String: Family] = ["llama-3": .llama3, "llama31": .llama31, "mistral-v1": .mistral, "gemma2": .gemma, "gemma3": .gemma, "phi-3": .phi3]
    guard let family = Family(rawValue: key) ?? aliases[key] else {
      throw TokenizationError.unknownChatTemplateName(name)
    }
    self.init(family: family, bosToken: bosToken, eosToken: eosToken)
  }

  /// Recognises the family of a Jinja chat template by its distinctive markers.
  public init(jinja: String, bosToken: String = "", eosToken: String = "") throws {
    func has(_ s: String) -> Bool { jinja.contains(s) }
    let family: Family
    var system: String? = nil
    // Look-alikes that render differently (Phi-4's <|im_sep|>, SmolVLM, Mistral v3/v7
    // without the spaces around [/INST]) are refused rather than rendered wrongly.
    if has("<|im_start|>") && has("<think>") && has("last_query_index") {
      family = .qwen3
    } else if has("<|im_start|>") && !has("<|im_sep|>") && !has("<end_of_utterance>") {
      family = .chatml
      system = Self.defaultChatMLSystemPrompt(in: jinja)
    } else if has("[INST]") && has("<<SYS>>") {
      family = .llama2
    } else if has("'[INST] '") && has("' [/INST]'") && !has("[SYSTEM_PROMPT]") {
      family = .mistral
    } else if has("<|start_header_id|>") && has("<|end_header_id|>") {
      family = has("Cutting Knowledge Date") ? .llama31 : .llama3
    } else if has("<start_of_turn>") {
      family = .gemma
    } else if has("<|user|>") && has("<|end|>") {
      family = has("<|system|>") ? .phi3 : .phi3Legacy
    } else if has("<|user|>") && (has("eos_token") || has("</s>")) {
      family = .zephyr
    } else {
      let excerpt = String(jinja.prefix(60)).replacingNewlines()
      throw TokenizationError.unrecognizedChatTemplate(excerpt: excerpt)
    }
    self.init(family: family, defaultSystemPrompt: system, bosToken: bosToken, eosToken: eosToken)
  }

  /// The template of a family whose files carry none in their metadata, by
  /// `general.architecture` (Gemma 3 270M ships without `tokenizer.chat_template`).
  public init?(architecture: String, bosToken: String = "", eosToken: String = "") {
    let families: [String: Family] = ["gemma": .gemma, "gemma2": .gemma, "gemma3": .gemma, "qwen3": .qwen3]
    guard let family = families[architecture] else { return nil }
    self.init(family: family, bosToken: bosToken, eosToken: eosToken)
  }

  /// The literal system message a ChatML template inserts when the first message is not a
  /// system message (`'<|im_start|>system\nYou are …<|im_end|>\n'`), if it has one.
  static func defaultChatMLSystemPrompt(in jinja: String) -> String? {
    guard jinja.contains("!= 'system'") || jinja.contains("!= \"system\"") else { return nil }
    let marker = "<|im_start|>system"
    var rest = Substring(jinja)
    while let r = rest.firstRange(of: marker) {
      var after = rest[r.upperBound...]
      rest = after
      if after.hasPrefix("\\n") {
        after = after.dropFirst(2)
      } else if after.hasPrefix("\n") {
        after = after.dropFirst(1)
      } else {
        continue
      }
      guard let end = after.firstRange(of: "<|im_end|>") else { continue }
      let literal = after[..<end.lowerBound]
      if literal.isEmpty || literal.contains(where: { "'\"{}+".contains($0) }) { continue }
      return String(literal).replacingOccurrences(of: "\\n", with: "\n")
    }
    return nil
  }

  /// Renders the conversation as template markup and message content, in order. Shapes the
  /// real templates reject (a system message for Gemma 2 or Mistral, roles out of turn) are
  /// rendered the lenient way llama.cpp's built-in templates do rather than refused.
  public func render(_ messages: [ChatMessage], addGenerationPrompt: Bool) -> [PromptSegment] {
    var out = SegmentBuilder()
    switch family {
    case .chatml:
      if let sys = defaultSystemPrompt, let first = messages.first, first.role != "system" {
        out.markup("<|im_start|>system\n" + sys + "<|im_end|>\n")
      }
      for m in messages {
        out.markup("<|im_start|>")
        out.content(m.role)
        out.markup("\n")
        out.content(m.content)
        out.markup("<|im_end|>\n")
      }
      if addGenerationPrompt { out.markup("<|im_start|>assistant\n") }

    case .llama3:
      for (i, m) in messages.enumerated() {
        if i == 0 { out.markup(bosToken) }
        out.markup("<|start_header_id|>")
        out.content(m.role)
        out.markup("<|end_header_id|>\n\n")
        out.content(m.content.pythonStripped())
        out.markup("<|eot_id|>")
      }
      if addGenerationPrompt { out.markup("<|start_header_id|>assistant<|end_header_id|>\n\n") }

    case .llama31:
      var rest = messages[...]
      var system = ""
      if let first = rest.first, first.role == "system" {
        system = first.content.pythonStripped()
        rest = rest.dropFirst()
      }
      out.markup(bosToken)
      out.markup("<|start_header_id|>system<|end_header_id|>\n\n")
      out.markup("Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n")
      out.content(system)
      out.markup("<|eot_id|>")
      for m in rest {
        out.markup("<|start_header_id|>")
        out.content(m.role)
        out.markup("<|end_header_id|>\n\n")
        out.content(m.content.pythonStripped())
        out.markup("<|eot_id|>")
      }
      if addGenerationPrompt { out.markup("<|start_header_id|>assistant<|end_header_id|>\n\n") }

    case .llama2:
      var rest = messages[...]
      var system: String? = nil
      if let first = rest.first, first.role == "system" {
        system = first.content
        rest = rest.dropFirst()
      }
      for (i, m) in rest.enumerated() {
        var body = SegmentBuilder()
        if i == 0, let system {
          body.markup("<<SYS>>\n")
          body.content(system)
          body.markup("\n<</SYS>>\n\n")
        }
        body.content(m.content)
        if m.role == "user" {
          out.markup(bosToken + "[INST] ")
          out.append(body.pythonStripped())
          out.markup(" [/INST]")
        } else if m.role == "assistant" {
          out.markup(" ")
          out.append(body.pythonStripped())
          out.markup(" " + eosToken)
        }
      }

    case .mistral:
      out.markup(bosToken)
      var pendingSystem = ""
      for m in messages {
        switch m.role {
        case "system":
          pendingSystem += m.content + "\n\n"
        case "user":
          out.markup("[INST] ")
          out.content(pendingSystem + m.content)
          pendingSystem = ""
          out.markup(" [/INST]")
        case "assistant":
          out.content(m.content)
          out.markup(eosToken)
        default:
          break
        }
      }

    case .gemma:
      out.markup(bosToken)
      var rest = messages[...]
      var prefix = ""
      if let first = rest.first, first.role == "system" {
        prefix = first.content + "\n\n"
        rest = rest.dropFirst()
      }
      for (i, m) in rest.enumerated() {
        out.markup("<start_of_turn>")
        out.content(m.role == "assistant" ? "model" : m.role)
        out.markup("\n")
        if i == 0 { out.content(prefix) }
        out.content(m.content.pythonStripped())
        out.markup("<end_of_turn>\n")
      }
      if addGenerationPrompt { out.markup("<start_of_turn>model\n") }

    case .phi3:
      for m in messages {
        switch m.role {
        case "system" where !m.content.isEmpty, "user", "assistant":
          out.markup("<|\(m.role)|>\n")
          out.content(m.content)
          out.markup("<|end|>\n")
        default:
          break
        }
      }
      out.markup(addGenerationPrompt ? "<|assistant|>\n" : eosToken)

    case .phi3Legacy:
      out.markup(bosToken)
      for m in messages {
        if m.role == "user" {
          out.markup("<|user|>\n")
          out.content(m.content)
          out.markup("<|end|>\n<|assistant|>\n")
        } else if m.role == "assistant" {
          out.content(m.content)
          out.markup("<|end|>\n")
        }
      }

    case .qwen3:
      renderQwen3(messages, addGenerationPrompt: addGenerationPrompt, into: &out)

    case .zephyr:
      for (i, m) in messages.enumerated() {
        if ["user", "system", "assistant"].contains(m.role) {
          out.markup("<|\(m.role)|>\n")
          out.content(m.content)
          out.markup(eosToken + "\n")
        }
        if i == messages.count - 1 && addGenerationPrompt { out.markup("<|assistant|>\n") }
      }
    }
    return out.segments
  }
}

/// Collects segments, dropping empty ones and joining neighbours of the same kind.
struct SegmentBuilder {
  var segments: [PromptSegment] = []

  mutating func markup(_ s: String) { add(.markup(s)) }
  mutating func content(_ s: String) { add(.content(s)) }
  mutating func append(_ segs: [PromptSegment]) { for s in segs { add(s) } }

  private mutating func add(_ seg: PromptSegment) {
    guard !seg.text.isEmpty else { return }
    switch (segments.last, seg) {
    case (.markup(let a)?, .markup(let b)): segments[segments.count - 1] = .markup(a + b)
    case (.content(let a)?, .content(let b)): segments[segments.count - 1] = .content(a + b)
    default: segments.append(seg)
    }
  }

  /// Python's `str.strip()` applied to the concatenation, keeping segment kinds.
  func pythonStripped() -> [PromptSegment] {
    var segs = segments
    while let first = segs.first {
      let t = Substring(first.text).drop(while: { $0.unicodeScalars.allSatisfy(\.isPythonWhitespace) })
      if t.isEmpty { segs.removeFirst(); continue }
      segs[0] = first.with(String(t))
      break
    }
    while let last = segs.last {
      var t = Substring(last.text)
      while let c = t.last, c.unicodeScalars.allSatisfy(\.isPythonWhitespace) { t = t.dropLast() }
      if t.isEmpty { segs.removeLast(); continue }
      segs[segs.count - 1] = last.with(String(t))
      break
    }
    return segs
  }
}

extension PromptSegment {
  fileprivate func with(_ text: String) -> PromptSegment {
    switch self {
    case .markup: return .markup(text)
    case .content: return .content(text)
    }
  }
}

extension Unicode.Scalar {
  /// Python's `str.isspace()` (what Jinja's `trim` and `.strip()` remove).
  var isPythonWhitespace: Bool {
    switch value {
    case 0x09...0x0D, 0x1C...0x20, 0x85, 0xA0, 0x1680, 0x2000...0x200A, 0x2028, 0x2029, 0x202F,
      0x205F, 0x3000:
      return true
    default: return false
    }
  }
}

extension String {
  /// Python's `str.strip()` with no arguments.
  func pythonStripped() -> String {
    var s = Substring(self).unicodeScalars
    while let f = s.first, f.isPythonWhitespace { s.removeFirst() }
    while let l = s.last, l.isPythonWhitespace { s.removeLast() }
    return String(String.UnicodeScalarView(s))
  }

  fileprivate func replacingNewlines() -> String {
    String(map { $0 == "\n" ? " " : $0 })
  }

  fileprivate func replacingOccurrences(of target: String, with replacement: String) -> String {
    guard !target.isEmpty else { return self }
    var result = ""
    var rest = Substring(self)
    while let r = rest.firstRange(of: target) {
      result += rest[..<r.lowerBound]
      result += replacement
      rest = rest[r.upperBound...]
    }
    result += rest
    return result
  }
}
