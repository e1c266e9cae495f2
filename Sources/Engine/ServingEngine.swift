// The serving engine: the single owner of the adapter registry's models, the tokenizer and the
// compute thread. Requests are tokenized on submission (so a bad prompt fails at once), wait
// in a bounded FIFO queue, and up to `maxConcurrentGenerations` of them run at once on one
// compute thread with continuous batching: each step gathers the next token of every decoding
// sequence and chunks of waiting prompts (up to `batchTokens` rows in all) into one batched
// forward pass (LlamaBatch), so the weights are read once per step for all of them. A request
// joins at the next step after it leaves the queue and leaves when it finishes. Each running
// sequence owns a slot: a KV cache that also remembers what it holds, so the next turn of a chat
// on the same weights evaluates only its new tokens.
import Adapters
import Dispatch
import Foundation
import Kernels
import Llama
import Tokenization

public struct ServingConfiguration: Sendable, Equatable {
  /// Tokens of context per sequence.
  public var contextSize: Int
  public var threads: Int
  public var maxConcurrentGenerations: Int
  /// Requests waiting for a slot beyond this are refused with `.saturated`.
  public var queueLimit: Int
  /// Most prompt tokens of one sequence evaluated per step.
  public var prefillChunk: Int
  /// Most rows (decode tokens and prompt chunks of all sequences) in one batched step: every
  /// decoding sequence always gets its token; prompt chunks share what is left.
  public var batchTokens: Int
  /// A chat template by name instead of the model's own (see `ChatTemplate.names`).
  public var chatTemplate: String?
  public var kvCache: KVCacheElement

  public init(
    contextSize: Int = 2048, threads: Int = 1, maxConcurrentGenerations: Int = 2, queueLimit: Int = 32,
    prefillChunk: Int = 128, batchTokens: Int = 256, chatTemplate: String? = nil, kvCache: KVCacheElement = .f32
  ) {
    self.batchTokens = batchTokens
    self.kvCache = kvCache
    self.contextSize = contextSize
    self.threads = threads
    self.maxConcurrentGenerations = maxConcurrentGenerations
    self.queueLimit = queueLimit
    self.prefillChunk = prefillChunk
    self.chatTemplate = chatTemplate
  }
}

public final class ServingEngine: @unchecked Sendable {
  // unchecked: `condition` guards pending, limits, stopping and the counters; `slots` and the
  // running sequences belong to the compute thread alone.
  public let registry: AdapterRegistry
  public let tokenizer: Tokenizer
  public let contextSize: Int
  private let template: ChatTemplate?
  private let prefillChunk: Int
  private let batchTokens: Int
  private let kvCache: KVCacheElement
  private let observer: (any ServingObserver)?
  private let pool: ThreadPool

  private let condition = NSCondition()
  private var pending: [Job] = []
  private var maxConcurrent: Int
  private var queueLimit: Int
  private var stopping = false
  private var runningCount = 0
  private var heartbeat = DispatchTime.now().uptimeNanoseconds
  /// Moving average of a request's compute seconds, for Retry-After estimates.
  private var averageRequestSeconds = 1.0
  private var thread: Thread?
  private let finishedRunning = DispatchSemaphore(value: 0)

  private var slots: [Slot] = []
  /// The batched forward pass, made for the first weights served (all share their shapes).
  private var batch: LlamaBatch?
  /// Which prefilling sequence goes first this step (turns rotate, so no prompt waits forever).
  private var prefillTurn = 0

  public init(
    registry: AdapterRegistry, tokenizer: Tokenizer, configuration: ServingConfiguration,
    observer: (any ServingObserver)? = nil
  ) throws {
    self.registry = registry
    self.tokenizer = tokenizer
    self.observer = observer
    contextSize = max(16, configuration.contextSize)
    prefillChunk = max(1, configuration.prefillChunk)
    batchTokens = max(1, configuration.batchTokens)
    kvCache = configuration.kvCache
    maxConcurrent = max(1, configuration.maxConcurrentGenerations)
    queueLimit = max(0, configuration.queueLimit)
    pool = ThreadPool(threads: max(1, configuration.threads))
    // A template asked for by name must exist; without one, a model lacking a usable template
    // still serves raw completions and chat fails clearly.
    if let name = configuration.chatTemplate {
      template = try tokenizer.chatTemplate(named: name)
    } else {
      template = try? tokenizer.chatTemplate()
    }
  }

  /// Starts the compute thread.
  public func start() {
    condition.lock()
    defer { condition.unlock() }
    guard thread == nil else { return }
    let thread = Thread { [self] in computeLoop() }
    thread.name = "droplorad-compute"
    thread.stackSize = 8 << 20
    self.thread = thread
    thread.start()
  }

  /// Refuses new requests, ends queued ones with `.stopping`, cancels running ones and waits
  /// for the compute thread. Call after the HTTP server let in-flight requests finish.
  public func stop() {
    condition.lock()
    let wasRunning = thread != nil && !stopping
    stopping = true
    let dropped = pending
    pending.removeAll()
    condition.broadcast()
    condition.unlock()
    for job in dropped { job.continuation.finish(throwing: ServingError.stopping) }
    if wasRunning { finishedRunning.wait() }
  }

  /// Live-changeable limits (SIGHUP).
  public func updateLimits(maxConcurrentGenerations: Int, queueLimit: Int) {
    condition.lock()
    maxConcurrent = max(1, maxConcurrentGenerations)
    self.queueLimit = max(0, queueLimit)
    condition.broadcast()
    condition.unlock()
  }

  public var queueDepth: Int { condition.withLock { pending.count } }
  /// Whether any generation is queued or running (background training yields to it).
  public var isBusy: Bool { condition.withLock { !pending.isEmpty || runningCount > 0 } }
  public var runningGenerations: Int { condition.withLock { runningCount } }
  /// Seconds since the compute thread last went round its loop (a wedged loop stops the
  /// systemd watchdog pings).
  public var secondsSinceHeartbeat: Double {
    let last = condition.withLock { heartbeat }
    let now = DispatchTime.now().uptimeNanoseconds
    return now > last ? Double(now - last) / 1e9 : 0
  }

  /// The chat template chat prompts are rendered with; nil when the model has none usable.
  public var chatTemplate: ChatTemplate? { template }

  /// The prompt's tokens as the engine will evaluate them; `enableThinking` sets the chat
  /// template's switch (see `ServingRequest.enableThinking`).
  public func tokenize(_ prompt: ServingPrompt, enableThinking: Bool? = nil) throws(ServingError) -> [Int32] {
    switch prompt {
    case .text(let text):
      return tokenizer.encode(text, parseSpecial: false, addSpecial: true)
    case .chat(let messages):
      guard var template else {
        throw .failed("the model has no chat template this engine understands; use completions")
      }
      if let enableThinking {
        // Without a thinking mode the model answers directly already: `false` asks for what it does.
        guard template.hasThinkingMode || !enableThinking else { throw .noThinkingMode }
        template.enableThinking = enableThinking
      }
      return tokenizer.encode(template.render(messages, addGenerationPrompt: true), addSpecial: true)
    }
  }

  /// Queues a generation. Throws at once for what is known up front: an unknown adapter, a
  /// prompt that does not fit, a full queue, a stopping engine. Ending the returned stream's
  /// iteration (a client gone) cancels the generation at its next step.
  public func submit(_ request: ServingRequest) throws(ServingError) -> AsyncThrowingStream<ServingEvent, any Error> {
    if let name = request.adapter, name != AdapterRegistry.baseName, !registry.names.contains(name) {
      throw .unknownAdapter(name)
    }
    if let scale = request.adapterScale, !AdapterRegistry.scaleRange.contains(scale) {
      throw .adapterScaleOutOfRange(scale)
    }
    let tokens = try tokenize(request.prompt, enableThinking: request.enableThinking)
    guard !tokens.isEmpty else { throw .emptyPrompt }
    guard tokens.count < contextSize else { throw .promptTooLong(tokens: tokens.count, contextSize: contextSize) }

    let (stream, continuation) = AsyncThrowingStream<ServingEvent, any Error>.makeStream()
    let job = Job(request: request, promptTokens: tokens, continuation: continuation)
    continuation.onTermination = { _ in job.cancel() }

    condition.lock()
    defer { condition.unlock() }
    guard !stopping else { throw .stopping }
    // Queue room is counted beyond the free slots: a request that can start now never waits.
    let freeSlots = max(0, maxConcurrent - runningCount)
    guard pending.count < queueLimit + freeSlots else {
      let perSlot = averageRequestSeconds * Double(pending.count + 1) / Double(maxConcurrent)
      throw .saturated(retryAfterSeconds: Int(min(60, max(1, perSlot.rounded(.up)))))
    }
    pending.append(job)
    condition.signal()
    return stream
  }

  // MARK: - compute thread

  private func computeLoop() {
    var running: [Running] = []
    while true {
      condition.lock()
      heartbeat = DispatchTime.now().uptimeNanoseconds
      while pending.isEmpty && running.isEmpty && !stopping {
        _ = condition.wait(until: Date(timeIntervalSinceNow: 1))
        heartbeat = DispatchTime.now().uptimeNanoseconds
      }
      if stopping {
        condition.unlock()
        for item in running { cancel(item) }
        break
      }
      var admitted: [Job] = []
      while running.count + admitted.count < maxConcurrent, !pending.isEmpty {
        admitted.append(pending.removeFirst())
      }
      runningCount = running.count + admitted.count
      condition.unlock()

      for job in admitted {
        if let item = begin(job) { running.append(item) }
      }
      step(running)
      running.removeAll { item in
        guard item.sequence.isFinished else { return false }
        finish(item)
        return true
      }
      condition.withLock { runningCount = running.count }
    }
    condition.withLock { runningCount = 0 }
    finishedRunning.signal()
  }

  /// Picks the weights and a slot, and sets the sequence up; nil when the job ended already.
  private func begin(_ job: Job) -> Running? {
    guard !job.isCancelled else {
      job.continuation.finish()
      return nil
    }
    let weights: AdaptedModel
    do {
      weights = try registry.weights(for: job.request.adapter, scale: job.request.adapterScale)
    } catch {
      let failure: ServingError
      if case .unknownAdapter(let name) = error { failure = .unknownAdapter(name) } else {
        failure = .failed("cannot use adapter '\(job.request.adapter ?? "default")': \(error)")
      }
      job.continuation.finish(throwing: failure)
      report(job, sequence: nil, reused: 0, firstToken: nil, started: nil, failed: true)
      return nil
    }
    let (slot, reused) = takeSlot(for: weights, prompt: job.promptTokens)
    let sequence = GenerationSequence(
      context: slot.context, tokenizer: tokenizer, promptTokens: job.promptTokens,
      options: job.request.options, prefillChunk: prefillChunk, reusing: reused)
    return Running(job: job, slot: slot, sequence: sequence, reused: sequence.reusedPromptTokens)
  }

  /// One batched step: every decoding sequence samples its next token, prompt chunks fill the
  /// rest of the token budget, and all of them go through one forward pass.
  private func step(_ running: [Running]) {
    var entries: [(context: LlamaContext, tokens: [Int32])] = []
    var members: [Running] = []
    func prepare(_ item: Running, maxPromptTokens: Int) {
      if item.job.isCancelled {
        item.sequence.cancel()
        return
      }
      do {
        let work = try item.sequence.prepare(maxPromptTokens: maxPromptTokens)
        if item.firstToken == nil && !item.sequence.result.tokens.isEmpty || item.sequence.isFinished {
          item.firstToken = item.firstToken ?? DispatchTime.now().uptimeNanoseconds
        }
        // Log probabilities go out before the text of the same step, so a client can attach them to it.
        let logprobs = item.sequence.result.logprobs
        if logprobs.count > item.logprobsSent {
          item.job.continuation.yield(.logprobs(Array(logprobs[item.logprobsSent...])))
          item.logprobsSent = logprobs.count
        }
        if !work.text.isEmpty { item.job.continuation.yield(.text(work.text)) }
        if !work.input.isEmpty {
          entries.append((item.slot.context, work.input))
          members.append(item)
        }
      } catch {
        item.failure = "generation failed: \(error)"
        item.sequence.cancel()
      }
    }
    for item in running where item.sequence.isDecoding { prepare(item, maxPromptTokens: 0) }
    var budget = batchTokens - entries.count
    let prefilling = running.filter { !$0.sequence.isDecoding && !$0.sequence.isFinished }
    if !prefilling.isEmpty {
      let first = prefillTurn % prefilling.count
      prefillTurn &+= 1
      for item in prefilling[first...] + prefilling[..<first] {
        // At least one prompt token a step, however many sequences decode.
        guard budget > 0 || item === prefilling[first] else { break }
        let before = entries.count
        prepare(item, maxPromptTokens: max(1, budget))
        if entries.count > before { budget -= entries[before].tokens.count }
      }
    }
    guard !entries.isEmpty else { return }
    do {
      try batchForward().evaluate(entries)
      for item in members { item.sequence.evaluated() }
    } catch {
      // The batch refuses a bad entry before computing anything: run each alone to fail only it.
      for (entry, item) in zip(entries, members) {
        do {
          try entry.context.evaluate(entry.tokens)
          item.sequence.evaluated()
        } catch {
          item.sequence.failed()
          item.failure = "generation failed: \(error)"
        }
      }
    }
  }

  private func batchForward() -> LlamaBatch {
    if let batch { return batch }
    let made = LlamaBatch(
      model: registry.base, maxRows: batchTokens, maxContextLength: contextSize, pool: pool)
    batch = made
    return made
  }

  private func finish(_ item: Running) {
    let result = item.sequence.result
    if let failure = item.failure {
      item.job.continuation.finish(throwing: ServingError.failed(failure))
    } else {
      if result.finishReason != .cancelled {
        item.job.continuation.yield(
          .finished(result.finishReason, promptTokens: result.promptTokens.count, completionTokens: result.tokens.count))
      }
      item.job.continuation.finish()
    }
    item.slot.cachedTokens = Array(item.sequence.evaluatedTokens)
    item.slot.busy = false
    report(
      item.job, sequence: item.sequence, reused: item.reused, firstToken: item.firstToken, started: item.started,
      failed: item.failure != nil)
  }

  private func cancel(_ item: Running) {
    item.sequence.cancel()
    item.job.continuation.finish(throwing: ServingError.stopping)
    item.slot.busy = false
  }

  private func report(
    _ job: Job, sequence: GenerationSequence?, reused: Int, firstToken: UInt64?, started: UInt64?, failed: Bool
  ) {
    let now = DispatchTime.now().uptimeNanoseconds
    let result = sequence?.result
    let computeSeconds = (result?.promptSeconds ?? 0) + (result?.decodeSeconds ?? 0)
    condition.withLock { averageRequestSeconds = 0.8 * averageRequestSeconds + 0.2 * computeSeconds }
    observer?.requestFinished(
      RequestReport(
        adapter: job.request.adapter, promptTokens: job.promptTokens.count, reusedPromptTokens: reused,
        completionTokens: result?.tokens.count ?? 0, finishReason: result?.finishReason ?? .stop,
        promptSeconds: result?.promptSeconds ?? 0, decodeSeconds: result?.decodeSeconds ?? 0,
        timeToFirstToken: Double((firstToken ?? now) - job.submitted) / 1e9,
        queueSeconds: Double((started ?? now) - job.submitted) / 1e9, totalSeconds: Double(now - job.submitted) / 1e9,
        failed: failed))
  }

  /// A free slot for `weights`: the one whose cache shares the longest prefix with `prompt`
  /// (same weights and same unmerged adapter at the same scale only: a cache computed under
  /// other weights is meaningless), else an unused or new one, else the least useful free one.
  private func takeSlot(for weights: AdaptedModel, prompt: [Int32]) -> (Slot, Int) {
    func matches(_ slot: Slot) -> Bool {
      guard slot.context.model === weights.model else { return false }
      switch (slot.context.projectionHook as? LoRAHook, weights.hook) {
      case (nil, nil): return slot.context.projectionHook == nil
      case (let held?, let wanted?): return held.computesSameUpdate(as: wanted)
      default: return false
      }
    }
    var best: (slot: Slot, shared: Int)?
    for slot in slots where !slot.busy {
      let shared = matches(slot) ? commonPrefixLength(slot.cachedTokens, prompt) : 0
      if best == nil || shared > best!.shared { best = (slot, shared) }
    }
    let chosen: (slot: Slot, shared: Int)
    if let best, best.shared > 0 || slots.count >= maxConcurrentSnapshot() {
      chosen = best
    } else {
      let slot = Slot(
        context: LlamaContext(
          model: weights.model, contextLength: contextSize, pool: pool, maxBatch: 1, cacheElement: kvCache))
      slot.context.projectionHook = weights.hook
      slots.append(slot)
      chosen = (slot, 0)
    }
    if !matches(chosen.slot) {
      chosen.slot.context.use(model: weights.model)
      chosen.slot.context.projectionHook = weights.hook
      chosen.slot.cachedTokens = []
    }
    chosen.slot.busy = true
    // Slots beyond a lowered limit are given back once free.
    let limit = maxConcurrentSnapshot()
    if slots.count > limit {
      slots.removeAll { !$0.busy && slots.count > limit && $0 !== chosen.slot }
    }
    return (chosen.slot, chosen.shared)
  }

  private func maxConcurrentSnapshot() -> Int { condition.withLock { maxConcurrent } }

  private func commonPrefixLength(_ a: [Int32], _ b: [Int32]) -> Int {
    var n = 0
    while n < a.count && n < b.count && a[n] == b[n] { n += 1 }
    return n
  }
}

/// A queued request.
private final class Job: @unchecked Sendable {
  // unchecked: `cancelled` is guarded by `lock`; the rest is immutable.
  let request: ServingRequest
  let promptTokens: [Int32]
  let continuation: AsyncThrowingStream<ServingEvent, any Error>.Continuation
  let submitted = DispatchTime.now().uptimeNanoseconds
  private let lock = NSLock()
  private var cancelled = false

  init(request: ServingRequest, promptTokens: [Int32], continuation: AsyncThrowingStream<ServingEvent, any Error>.Continuation) {
    self.request = request
    self.promptTokens = promptTokens
    self.continuation = continuation
  }

  var isCancelled: Bool { lock.withLock { cancelled } }
  func cancel() { lock.withLock { cancelled = true } }
}

/// A KV cache and what it holds.
private final class Slot {
  let context: LlamaContext
  var cachedTokens: [Int32] = []
  var busy = false
  init(context: LlamaContext) { self.context = context }
}

/// A request on the compute thread.
private final class Running {
  let job: Job
  let slot: Slot
  let sequence: GenerationSequence
  let reused: Int
  var firstToken: UInt64?
  var logprobsSent = 0
  /// When it left the queue (for the time-in-queue metric).
  let started = DispatchTime.now().uptimeNanoseconds
  var failure: String?

  init(job: Job, slot: Slot, sequence: GenerationSequence, reused: Int) {
    self.job = job
    self.slot = slot
    self.sequence = sequence
    self.reused = reused
  }
}
