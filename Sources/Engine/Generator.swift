// The generation of one sequence start to end: prefill the prompt, then sample, decode and
// stream text until an end-of-generation token, a stop string or the token limit (the steps are
// GenerationSequence's). Synchronous: the offline CLI's loop; the daemon schedules sequences.
import Dispatch
import Grammar
import Llama
import Tokenization

public struct GenerationOptions: Sendable {
  public var maxTokens: Int
  public var sampling: SamplingParameters
  public var stop: [String]
  /// When set, the output follows this grammar (JSON Schema or GBNF compiled by the Grammar
  /// module) and generation stops when it is complete.
  public var grammar: Grammar?
  /// Never sample an end-of-generation token (llama-server's `ignore_eos`): the sequence runs
  /// to `maxTokens` or the end of the context.
  public var ignoreEndOfGeneration: Bool
  /// When set, each generated token's log probability is recorded with this many of the most
  /// likely alternatives (0 to 20) in `GenerationResult.logprobs`.
  public var logprobs: Int?

  public init(
    maxTokens: Int = 256, sampling: SamplingParameters = .init(), stop: [String] = [], grammar: Grammar? = nil,
    ignoreEndOfGeneration: Bool = false, logprobs: Int? = nil
  ) {
    self.maxTokens = maxTokens
    self.sampling = sampling
    self.stop = stop
    self.grammar = grammar
    self.ignoreEndOfGeneration = ignoreEndOfGeneration
    self.logprobs = logprobs
  }
}

public enum FinishReason: String, Sendable, Codable {
  case stop  // end-of-generation token, stop string, or the grammar is complete
  case length  // max tokens or the context is full
  case cancelled
}

public struct GenerationResult: Sendable {
  public var promptTokens: [Int32]
  public var tokens: [Int32]
  /// One per token of `tokens` when `GenerationOptions.logprobs` is set, else empty.
  public var logprobs: [TokenLogprob] = []
  public var text: String
  public var finishReason: FinishReason
  /// Compute time of the prompt's forward pass, seconds.
  public var promptSeconds: Double
  /// Compute time of the decode steps (sampling and one forward pass each), seconds.
  public var decodeSeconds: Double
}

public final class Generator {
  public let model: LlamaModel
  public let tokenizer: Tokenizer
  public let context: LlamaContext

  public init(
    model: LlamaModel, tokenizer: Tokenizer, contextLength: Int, threads: Int, kvCache: KVCacheElement = .f32
  ) {
    self.model = model
    self.tokenizer = tokenizer
    context = LlamaContext(model: model, contextLength: contextLength, threads: threads, cacheElement: kvCache)
  }

  /// Generates a continuation of `promptTokens`. `onText` receives text as it becomes final
  /// and returns false to cancel.
  public func generate(
    promptTokens: [Int32], options: GenerationOptions, onText: (String) -> Bool = { _ in true }
  ) throws -> GenerationResult {
    let sequence = GenerationSequence(
      context: context, tokenizer: tokenizer, promptTokens: promptTokens, options: options)
    while !sequence.isFinished {
      let text = try sequence.step()
      if !text.isEmpty && !onText(text) { sequence.cancel() }
    }
    return sequence.result
  }
}
