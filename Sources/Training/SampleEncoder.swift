// A conversation → token ids and a loss mask, through the model's chat template: the loss
// covers each assistant message's tokens and its end-of-turn token, nothing else (not the
// prompt, not the template's newline after the end-of-turn). Overlong samples are cut at
// maxTokens from the end and counted.
import Tokenization

public struct EncodedSample: Sendable, Equatable, Codable {
  public var tokens: [Int32]
  /// lossMask[t]: token t is a target (predicted from the tokens before it).
  public var lossMask: [Bool]

  public init(tokens: [Int32], lossMask: [Bool]) {
    self.tokens = tokens
    self.lossMask = lossMask
  }

  public var lossTokenCount: Int { lossMask.dropFirst().filter { $0 }.count }
}

public struct SampleEncoder: Sendable {
  public let tokenizer: Tokenizer
  public let template: ChatTemplate
  public let maxTokens: Int

  public init(tokenizer: Tokenizer, template: ChatTemplate, maxTokens: Int) {
    self.tokenizer = tokenizer
    self.template = template
    self.maxTokens = maxTokens
  }

  /// The encoded sample and whether it was truncated.
  public func encode(_ sample: TrainingSample) -> (sample: EncodedSample, truncated: Bool) {
    let messages = sample.messages
    let tokens = tokenizer.encode(template.render(messages, addGenerationPrompt: false), addSpecial: true)
    var mask = [Bool](repeating: false, count: tokens.count)
    for (i, message) in messages.enumerated() where message.role == "assistant" {
      // The answer spans from the end of the prompt that asks for it to the end of the
      // conversation rendered through it.
      let before = tokenizer.encode(
        template.render(Array(messages[..<i]), addGenerationPrompt: true), addSpecial: true)
      let through = tokenizer.encode(
        template.render(Array(messages[...i]), addGenerationPrompt: false), addSpecial: true)
      let start = commonPrefix(before, tokens)
      var end = min(commonPrefix(through, tokens), through.count)
      // Stop after the last end-of-turn token inside the span (ChatML's "\n" after <|im_end|>
      // belongs to the template, not to the answer).
      if let last = (start..<end).last(where: { isEndOfTurn(tokens[$0]) }) { end = last + 1 }
      for t in start..<max(start, end) { mask[t] = true }
    }
    if tokens.count <= maxTokens {
      return (EncodedSample(tokens: tokens, lossMask: mask), false)
    }
    return (EncodedSample(tokens: Array(tokens[..<maxTokens]), lossMask: Array(mask[..<maxTokens])), true)
  }

  private func isEndOfTurn(_ token: Int32) -> Bool {
    tokenizer.isEndOfGeneration(token) || token == tokenizer.eos || token == tokenizer.eot
  }

  private func commonPrefix(_ a: [Int32], _ b: [Int32]) -> Int {
    var n = 0
    while n < a.count && n < b.count && a[n] == b[n] { n += 1 }
    return n
  }
}
