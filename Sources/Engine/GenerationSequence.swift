// One sequence's generation as explicit steps (a chunk of the prompt, or one sampled token),
// so a scheduler can interleave several sequences on one compute thread. `Generator` runs
// the same steps back to back for the offline CLI.
import Dispatch
import Llama
import Tokenization

public final class GenerationSequence {
  public let context: LlamaContext
  public let tokenizer: Tokenizer
  public let options: GenerationOptions
  /// Longest run of prompt tokens evaluated in one step; smaller keeps other sequences moving.
  public let prefillChunk: Int

  public private(set) var result: GenerationResult
  /// Prompt tokens kept from the context's previous sequence instead of evaluated.
  public let reusedPromptTokens: Int
  public var isFinished: Bool { finishReason != nil }
  public var finishReason: FinishReason? { finished ? result.finishReason : nil }
  /// Whether every prompt token has been evaluated (the next step samples).
  public var isDecoding: Bool { prefilled == result.promptTokens.count }

  private var finished = false
  private var prefilled = 0
  /// Prompt tokens handed out by `prepare` and not yet evaluated.
  private var inFlight = 0
  private var stepStarted: UInt64?
  private var stepDecodes = false
  private var sampler: Sampler
  private var decoder: StreamingDecoder
  private var stops: StopMatcher
  private var history: [Int32]
  private var constraint: ConstrainedSampling?

  /// Starts a sequence on `context`, whose cache belongs to this sequence now. When the cache
  /// already holds the first `reusing` prompt tokens (a previous turn of the same chat on the
  /// same weights), they are kept and not evaluated again; at least the last prompt token is.
  /// `promptEvaluated`: the context holds the whole prompt and its last logits already (copied
  /// from another choice's context, `LlamaContext.copySequence`), so the first step samples.
  public init(
    context: LlamaContext, tokenizer: Tokenizer, promptTokens: [Int32], options: GenerationOptions,
    prefillChunk: Int = .max, reusing: Int = 0, promptEvaluated: Bool = false
  ) {
    self.context = context
    self.tokenizer = tokenizer
    self.options = options
    self.prefillChunk = max(1, prefillChunk)
    result = GenerationResult(
      promptTokens: promptTokens, tokens: [], text: "", finishReason: .length,
      promptSeconds: 0, decodeSeconds: 0)
    sampler = Sampler(options.sampling.banning(options.ignoreEndOfGeneration ? tokenizer.endOfGeneration : []))
    decoder = tokenizer.streamingDecoder()
    stops = StopMatcher(stops: options.stop)
    history = promptTokens
    constraint = options.grammar.map { ConstrainedSampling(grammar: $0, tokenizer: tokenizer) }
    if promptEvaluated {
      precondition(context.position == promptTokens.count, "promptEvaluated: the context must hold exactly the prompt")
    } else {
      // A sliding-window cache may keep less than asked: continue where the context says.
      context.truncate(to: max(0, min(reusing, promptTokens.count - 1, context.position)))
    }
    prefilled = context.position
    reusedPromptTokens = prefilled
  }

  /// The tokens whose keys and values the context holds, in order (what a later sequence may reuse).
  public var evaluatedTokens: ArraySlice<Int32> {
    (result.promptTokens + result.tokens).prefix(context.position)
  }

  /// Does one unit of work and returns the text it made final (often empty). Does nothing
  /// once finished. Throws what the forward pass throws (e.g. an empty or oversized prompt).
  public func step() throws -> String {
    let work = try prepare(maxPromptTokens: prefillChunk)
    if !work.input.isEmpty {
      do {
        try context.evaluate(work.input)
      } catch {
        failed()
        throw error
      }
      evaluated()
    }
    return work.text
  }

  /// The first half of a step, for a scheduler that evaluates many sequences in one batch:
  /// samples the next token when decoding, and returns what the context must evaluate next
  /// (that token, or the next chunk of at most `maxPromptTokens` prompt tokens; empty when the
  /// sequence finished) with the text this step made final. The caller evaluates `input` on
  /// `context` and then calls `evaluated()` (or `failed()`).
  public func prepare(maxPromptTokens: Int) throws -> (input: [Int32], text: String) {
    guard !finished else { return ([], "") }
    stepStarted = DispatchTime.now().uptimeNanoseconds
    stepDecodes = isDecoding
    if isDecoding {
      let text = try decodeOne()
      if finished { recordStepTime() }
      return (finished ? [] : [result.tokens.last!], text)
    }
    let end = min(result.promptTokens.count, prefilled + max(1, min(prefillChunk, maxPromptTokens)))
    inFlight = end - prefilled
    return (Array(result.promptTokens[prefilled..<end]), "")
  }

  /// The input of the last `prepare` is in the context now.
  public func evaluated() {
    prefilled += inFlight
    inFlight = 0
    recordStepTime()
  }

  /// The input of the last `prepare` could not be evaluated: the sequence ends.
  public func failed() {
    inFlight = 0
    finished = true
    recordStepTime()
  }

  private func recordStepTime() {
    guard let started = stepStarted else { return }
    stepStarted = nil
    let seconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
    if stepDecodes {
      result.decodeSeconds += seconds
    } else {
      result.promptSeconds += seconds
    }
  }

  /// Stops without flushing held-back text (the client is gone).
  public func cancel() {
    guard !finished else { return }
    result.finishReason = .cancelled
    finished = true
  }

  private func decodeOne() throws -> String {
    var emitted = ""
    func emit(_ text: String) {
      result.text += text
      emitted += text
    }
    func finish(_ reason: FinishReason, flush: Bool = true) -> String {
      if flush {
        // Bytes the decoder held back and text held for a possible stop string are final now.
        let (release, stopped) = stops.push(decoder.finish())
        emit(release)
        if !stopped { emit(stops.finish()) }
      }
      result.finishReason = reason
      finished = true
      return emitted
    }
    guard result.tokens.count < options.maxTokens else { return finish(.length) }
    let token: Int32
    if constraint != nil {
      // A grammar dead end (no token of the vocabulary continues it) ends like a stop.
      guard let allowed = constraint!.sample(&sampler, logits: context.lastLogits, history: history[...]) else {
        return finish(.stop)
      }
      token = allowed
    } else {
      token = sampler.sample(logits: context.lastLogits, history: history[...])
    }
    if tokenizer.isEndOfGeneration(token) { return finish(.stop) }
    if let k = options.logprobs { result.logprobs.append(TokenLogprob(logits: context.lastLogits, chosen: token, top: k)) }
    result.tokens.append(token)
    history.append(token)
    let (release, stopped) = stops.push(decoder.push(token))
    emit(release)
    if stopped { return finish(.stop, flush: false) }
    if constraint?.isComplete == true { return finish(.stop) }
    guard result.tokens.count < options.maxTokens, context.position < context.capacity else {
      return finish(.length)
    }
    return emitted
  }
}
