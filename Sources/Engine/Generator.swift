// The generation loop of one sequence: prefill the prompt, then sample, decode and stream text
// until an end-of-generation token, a stop string or the token limit. Synchronous on purpose:
// the daemon runs it on its compute thread and bridges the text into an async stream.
import Dispatch
import Llama
import Tokenization

public struct GenerationOptions: Sendable {
  public var maxTokens: Int
  public var sampling: SamplingParameters
  public var stop: [String]

  public init(maxTokens: Int = 256, sampling: SamplingParameters = .init(), stop: [String] = []) {
    self.maxTokens = maxTokens
    self.sampling = sampling
    self.stop = stop
  }
}

public enum FinishReason: String, Sendable, Codable {
  case stop  // end-of-generation token or stop string
  case length  // max tokens or the context is full
  case cancelled
}

public struct GenerationResult: Sendable {
  public var promptTokens: [Int32]
  public var tokens: [Int32]
  public var text: String
  public var finishReason: FinishReason
  /// Wall time of the prompt's forward pass (time to first token, less sampling), seconds.
  public var promptSeconds: Double
  /// Wall time from the first generated token to the last, seconds.
  public var decodeSeconds: Double
}

public final class Generator {
  public let model: LlamaModel
  public let tokenizer: Tokenizer
  public let context: LlamaContext

  public init(model: LlamaModel, tokenizer: Tokenizer, contextLength: Int, threads: Int) {
    self.model = model
    self.tokenizer = tokenizer
    context = LlamaContext(model: model, contextLength: contextLength, threads: threads)
  }

  /// Generates a continuation of `promptTokens`. `onText` receives text as it becomes final
  /// and returns false to cancel.
  public func generate(
    promptTokens: [Int32], options: GenerationOptions, onText: (String) -> Bool = { _ in true }
  ) throws -> GenerationResult {
    var result = GenerationResult(
      promptTokens: promptTokens, tokens: [], text: "", finishReason: .length,
      promptSeconds: 0, decodeSeconds: 0)
    context.reset()
    let promptStart = DispatchTime.now().uptimeNanoseconds
    try context.evaluate(promptTokens)
    let decodeStart = DispatchTime.now().uptimeNanoseconds
    result.promptSeconds = Double(decodeStart - promptStart) / 1e9

    var sampler = Sampler(options.sampling)
    var decoder = tokenizer.streamingDecoder()
    var stops = StopMatcher(stops: options.stop)
    var history = promptTokens
    func finished(_ reason: FinishReason, flush: Bool = true) -> GenerationResult {
      if flush {
        // Bytes the decoder held back and text held for a possible stop string are final now.
        let (release, stopped) = stops.push(decoder.finish())
        _ = emit(release)
        if !stopped { _ = emit(stops.finish()) }
      }
      result.finishReason = reason
      result.decodeSeconds = Double(DispatchTime.now().uptimeNanoseconds - decodeStart) / 1e9
      return result
    }
    func emit(_ text: String) -> Bool {
      result.text += text
      return text.isEmpty || onText(text)
    }

    while result.tokens.count < options.maxTokens {
      let token = sampler.sample(logits: context.lastLogits, history: history[...])
      if tokenizer.isEndOfGeneration(token) { return finished(.stop) }
      result.tokens.append(token)
      history.append(token)
      let (release, stopped) = stops.push(decoder.push(token))
      guard emit(release) else { return finished(.cancelled, flush: false) }
      if stopped { return finished(.stop, flush: false) }
      guard result.tokens.count < options.maxTokens, context.position < context.capacity else {
        break
      }
      try context.evaluate([token])
    }
    return finished(.length)
  }
}
