// The values the serving engine speaks: a request (prompt, adapter, options), the events of its
// stream, its errors and the report it files when a request ends. Plain values with no HTTP
// or JSON in them; the daemon maps them to and from its API.
import Adapters
import Tokenization

public enum ServingPrompt: Sendable, Equatable {
  /// Rendered through the model's chat template with the assistant's turn opened.
  case chat([ChatMessage])
  /// Tokenized as it is (no special tokens parsed from it), after the model's BOS if it uses one.
  case text(String)
  /// Token ids taken as they are (no BOS added, nothing parsed), as OpenAI and llama-server take
  /// a completions prompt given as an array of integers. Each must be in the model's vocabulary.
  case tokens([Int])
}

public struct ServingRequest: Sendable {
  /// Adapter name; nil uses the registry's default, `AdapterRegistry.baseName` the plain base.
  public var adapter: String?
  public var prompt: ServingPrompt
  public var options: GenerationOptions
  /// The adapter's update times this (nil: as stored; 0: the base model); any other value runs
  /// the adapter unmerged (`AdapterRegistry.weights(for:scale:)`), within `AdapterRegistry.scaleRange`.
  public var adapterScale: Float?
  /// Chat prompts: the template's `enable_thinking` (nil: the template's default). Only a
  /// template with a thinking mode (Qwen 3) can turn thinking on; `false` suits every template.
  public var enableThinking: Bool?

  public init(
    adapter: String?, prompt: ServingPrompt, options: GenerationOptions, adapterScale: Float? = nil,
    enableThinking: Bool? = nil
  ) {
    self.adapter = adapter
    self.prompt = prompt
    self.options = options
    self.adapterScale = adapterScale
    self.enableThinking = enableThinking
  }
}

public enum ServingEvent: Sendable, Equatable {
  /// Newly final text (whole UTF-8 characters).
  case text(String)
  /// Generated tokens' log probabilities (when asked for), sent before the text they made.
  case logprobs([TokenLogprob])
  case finished(FinishReason, promptTokens: Int, completionTokens: Int)
}

public enum ServingError: Error, Sendable, Equatable, CustomStringConvertible {
  case unknownAdapter(String)
  /// The queue is full; try again after about this many seconds.
  case saturated(retryAfterSeconds: Int)
  case promptTooLong(tokens: Int, contextSize: Int)
  case emptyPrompt
  /// A token-id prompt's element `index` is not a token of the model's vocabulary.
  case tokenOutOfRange(index: Int, id: Int, vocabularySize: Int)
  /// `adapterScale` is not finite or outside `AdapterRegistry.scaleRange`.
  case adapterScaleOutOfRange(Float)
  /// `enableThinking: true` for a chat template without a thinking mode.
  case noThinkingMode
  /// The engine is shutting down.
  case stopping
  /// Merging the adapter or the forward pass failed.
  case failed(String)

  public var description: String {
    switch self {
    case .unknownAdapter(let name): return "no adapter named '\(name)' is loaded"
    case .saturated(let seconds): return "too many requests are waiting; retry in \(seconds) s"
    case .promptTooLong(let tokens, let size):
      return "the prompt has \(tokens) tokens; the context holds \(size), so at most \(size - 1) fit"
    case .emptyPrompt: return "the prompt is empty"
    case .tokenOutOfRange(_, let id, let size):
      return "token id \(id) is not in the model's vocabulary (0 to \(size - 1))"
    case .adapterScaleOutOfRange(let scale):
      let range = AdapterRegistry.scaleRange
      return "the adapter scale must be a finite number from \(range.lowerBound) to \(range.upperBound), got \(scale)"
    case .noThinkingMode: return "this model's chat template has no thinking mode to turn on"
    case .stopping: return "the daemon is stopping"
    case .failed(let message): return message
    }
  }
}

/// A serving configuration the engine cannot run with.
public enum ServingSetupError: Error, Sendable, Equatable, CustomStringConvertible {
  /// The KV budget cannot hold one sequence of the whole context.
  case kvCacheBudgetTooSmall(bytes: Int, minimum: Int)

  public var description: String {
    switch self {
    case .kvCacheBudgetTooSmall(let bytes, let minimum):
      return "a KV cache budget of \(bytes) bytes cannot hold one sequence of the whole context (\(minimum) bytes)"
    }
  }
}

/// What one finished request did, for metrics and logs.
public struct RequestReport: Sendable {
  public var adapter: String?
  public var promptTokens: Int
  /// Prompt tokens served from a previous turn's cache instead of evaluated.
  public var reusedPromptTokens: Int
  public var completionTokens: Int
  public var finishReason: FinishReason
  /// Compute time of the prompt and of the decode steps, seconds.
  public var promptSeconds: Double
  public var decodeSeconds: Double
  /// From submission to the first token (or to the end when none came), seconds; includes
  /// waiting in the queue and merging the adapter.
  public var timeToFirstToken: Double
  /// From submission to leaving the queue (a slot and the adapter's weights taken), seconds.
  public var queueSeconds: Double
  /// From submission to the end of the request, seconds.
  public var totalSeconds: Double
  public var failed: Bool
}

/// Receives a report for every request that started (successful, cancelled or failed).
public protocol ServingObserver: Sendable {
  func requestFinished(_ report: RequestReport)
}

extension RequestReport {
  /// Prompt tokens evaluated per second of prompt compute (reused tokens not counted); nil
  /// when nothing was evaluated.
  public var promptTokensPerSecond: Double? {
    let evaluated = promptTokens - reusedPromptTokens
    return promptSeconds > 0 && evaluated > 0 ? Double(evaluated) / promptSeconds : nil
  }

  /// Wall time per generated token after the first (OpenAI-style TPOT); nil under two tokens.
  public var timePerOutputToken: Double? {
    completionTokens > 1 ? max(0, totalSeconds - timeToFirstToken) / Double(completionTokens - 1) : nil
  }

  public var decodeTokensPerSecond: Double? {
    decodeSeconds > 0 && completionTokens > 0 ? Double(completionTokens) / decodeSeconds : nil
  }
}
