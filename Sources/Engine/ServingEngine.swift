// The serving engine: the single owner of the adapter registry's models, the tokenizer and the
// compute thread. Requests are tokenized on submission (so a bad prompt fails at once), wait
// in a bounded FIFO queue, and up to `maxConcurrentGenerations` of them run at once on one
// compute thread with continuous batching: each step gathers the next token of every decoding
// sequence and chunks of waiting prompts (up to `batchTokens` rows in all) into one batched
// forward pass (LlamaBatch), so the weights are read once per step for all of them. A request
// joins at the next step after it leaves the queue and leaves when it finishes; requests leave
// the queue taking turns between adapters (one adapter flooding the queue does not starve
// others). Each running sequence owns a slot: a KV cache sized by the request's need (prompt +
// max_tokens, in pages of `kvPageTokens`) that also remembers what it holds, so the next turn of
// a chat on the same weights evaluates only its new tokens. All slots together stay within the
// KV budget: a request that cannot get its KV memory waits in the queue.
//
// Choices of one prompt (OpenAI's `n`) queue as one job: the first choice evaluates the prompt,
// and the others, each on a slot reserved with it, copy its KV rows and last logits
// (`LlamaContext.copySequence`) and start sampling, with their own options (seeds). Choices that
// find no room (concurrency or KV budget) wait in the queue as requests of their own; when they
// start, a finished choice's slot usually still holds the prompt.
//
// Adapters: unmerged ones (merge type `none`) share the base pass, each adding its low-rank
// update to its own rows (LoRAHook's grouped kernel); merged ones are other weights and take a
// pass each. Switching a sequence between its merged and unmerged forms from step to step was
// tried and dropped: the forms differ by up to ~0.46 nats on chosen tokens (Q8_0 merge vs Q4_1
// base + F16 update), enough to change greedy outputs (BatchedServingTests).
import Adapters
import Dispatch
import Foundation
import Synchronization
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
  /// Most bytes of KV cache all sequences' slots hold together; nil: as many full-context slots
  /// as `maxConcurrentGenerations`. At least one full-context slot
  /// (`ServingEngine.minimumKVCacheBudgetBytes`): a smaller budget could not serve a long prompt,
  /// so the engine refuses it.
  public var kvCacheBudgetBytes: Int?

  public init(
    contextSize: Int = 2048, threads: Int = 1, maxConcurrentGenerations: Int = 2, queueLimit: Int = 32,
    prefillChunk: Int = 128, batchTokens: Int = 256, chatTemplate: String? = nil, kvCache: KVCacheElement = .f32,
    kvCacheBudgetBytes: Int? = nil
  ) {
    self.kvCacheBudgetBytes = kvCacheBudgetBytes
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
  /// The KV budget in bytes (at least `minimumKVCacheBudgetBytes`).
  public let kvCacheBudgetBytes: Int
  /// Slots are sized in whole pages of this many tokens, so similar requests reuse each other's.
  static let kvPageTokens = 256
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
  /// When each adapter (by request name, "" for the default) last left the queue, in admissions.
  private var lastAdmitted: [String: Int] = [:]
  private var admissions = 0
  /// KV bytes of all slots, and of the slots running sequences hold (read by /metrics).
  private var kvBytesAllocated = 0
  private var kvBytesInUse = 0
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
    contextSize = Self.contextSize(configuration.contextSize)
    prefillChunk = max(1, configuration.prefillChunk)
    batchTokens = max(1, configuration.batchTokens)
    kvCache = configuration.kvCache
    let fullSlot = Self.minimumKVCacheBudgetBytes(hyper: registry.base.hyper, configuration: configuration)
    if let budget = configuration.kvCacheBudgetBytes, budget < fullSlot {
      throw ServingSetupError.kvCacheBudgetTooSmall(bytes: budget, minimum: fullSlot)
    }
    kvCacheBudgetBytes = configuration.kvCacheBudgetBytes ?? fullSlot * max(1, configuration.maxConcurrentGenerations)
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

  /// The context size served for a configured one.
  private static func contextSize(_ configured: Int) -> Int { max(16, configured) }

  /// KV bytes of one slot holding a whole context: the least a KV budget may be (one sequence
  /// as long as the context must fit). Slots take prompt chunks of `prefillChunk` rows, so a
  /// sliding layer keeps window - 1 + prefillChunk positions.
  public static func minimumKVCacheBudgetBytes(hyper: LlamaHyperParameters, configuration: ServingConfiguration) -> Int {
    LlamaContext.cacheByteCount(
      hyper: hyper, contextLength: contextSize(configuration.contextSize), maxBatch: max(1, configuration.prefillChunk),
      cacheElement: configuration.kvCache)
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
    for job in dropped.flatMap({ [$0] + $0.otherChoices }) { job.continuation.finish(throwing: ServingError.stopping) }
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
  /// KV cache bytes held by running sequences, and by all slots (free ones keep theirs for
  /// prompt-prefix reuse until another request needs the memory).
  /// Forward passes run so far (llama-server's n_decode_total): a step is one pass, more when its
  /// rows exceed limits.batch_tokens or its sequences run on different weights.
  public var forwardPasses: Int { forwardPassCount.load(ordering: .relaxed) }
  private let forwardPassCount = Atomic<Int>(0)

  public var kvCacheBytes: (inUse: Int, allocated: Int) { condition.withLock { (kvBytesInUse, kvBytesAllocated) } }
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
      // A raw completion prompt is the client's own template: its special-token text
      // (`<|im_start|>`, `<start_of_turn>`) is those tokens, as in llama-server and `generate --raw`.
      return tokenizer.encode(text, parseSpecial: true, addSpecial: true)
    case .tokens(let ids):
      let vocabulary = registry.base.vocabularySize
      if let index = ids.firstIndex(where: { !(0..<vocabulary).contains($0) }) {
        throw .tokenOutOfRange(index: index, id: ids[index], vocabularySize: vocabulary)
      }
      return ids.map { Int32($0) }
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
    try submit(request, choices: [request.options])[0]
  }

  /// Queues one generation per element of `choices` (OpenAI's `n`; each its own options, e.g.
  /// seeds) of one prompt, evaluating the prompt once for all of them; one stream per choice, in
  /// order. Refuses all of them or none.
  public func submit(
    _ request: ServingRequest, choices: [GenerationOptions]
  ) throws(ServingError) -> [AsyncThrowingStream<ServingEvent, any Error>] {
    precondition(!choices.isEmpty, "submit needs at least one choice")
    if let name = request.adapter, name != AdapterRegistry.baseName, !registry.names.contains(name) {
      throw .unknownAdapter(name)
    }
    if let scale = request.adapterScale, !AdapterRegistry.scaleRange.contains(scale) {
      throw .adapterScaleOutOfRange(scale)
    }
    let tokens = try tokenize(request.prompt, enableThinking: request.enableThinking)
    guard !tokens.isEmpty else { throw .emptyPrompt }
    guard tokens.count < contextSize else { throw .promptTooLong(tokens: tokens.count, contextSize: contextSize) }

    var streams: [AsyncThrowingStream<ServingEvent, any Error>] = []
    let jobs = choices.map { options in
      var choice = request
      choice.options = options
      let (stream, continuation) = AsyncThrowingStream<ServingEvent, any Error>.makeStream()
      let job = Job(request: choice, promptTokens: tokens, continuation: continuation)
      continuation.onTermination = { _ in job.cancel() }
      streams.append(stream)
      return job
    }
    let job = jobs[0]
    job.otherChoices = Array(jobs.dropFirst())

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
    return streams
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
      // Admission: adapters take turns; a job whose KV memory cannot be found waits. A job's
      // other choices take the slots there is room for now; the rest go back to the queue's
      // front as jobs of their own.
      var admitted: [(job: Job, slot: Slot, reused: Int, sharing: [(Job, Slot)])] = []
      var generations = Self.generations(running)
      while generations < maxConcurrent, let index = nextPendingIndex() {
        let job = pending[index]
        guard let (slot, reused) = reserveSlot(for: job) else { break }
        pending.remove(at: index)
        lastAdmitted[job.request.adapter ?? ""] = admissions
        admissions += 1
        generations += 1
        var sharing: [(Job, Slot)] = []
        for choice in job.otherChoices {
          guard generations < maxConcurrent, let (choiceSlot, _) = reserveSlot(for: choice) else { break }
          sharing.append((choice, choiceSlot))
          generations += 1
        }
        pending.insert(contentsOf: job.otherChoices.dropFirst(sharing.count), at: index)
        admitted.append((job, slot, reused, sharing))
      }
      runningCount = generations
      condition.unlock()

      for (job, slot, reused, sharing) in admitted {
        if let item = begin(job, slot: slot, reused: reused) {
          item.waitingChoices = sharing
          running.append(item)
        } else {
          // The first choice did not start: the others start alone (and run or fail as it did).
          for (choice, choiceSlot) in sharing {
            if let item = begin(choice, slot: choiceSlot, reused: 0) { running.append(item) }
          }
        }
      }
      step(running)
      running += running.flatMap(startWaitingChoices)
      running.removeAll { item in
        guard item.sequence.isFinished else { return false }
        finish(item)
        return true
      }
      updateKVAccounting(runningCount: Self.generations(running))
    }
    condition.withLock { runningCount = 0 }
    finishedRunning.signal()
  }

  /// Generations the running items hold: each, and the choices waiting for its prompt.
  private static func generations(_ running: [Running]) -> Int {
    running.reduce(0) { $0 + 1 + $1.waitingChoices.count }
  }

  /// Once `item` has evaluated its prompt, the choices waiting for it copy its KV cache and
  /// start sampling; when it ended before that (cancelled, failed), they start alone.
  private func startWaitingChoices(of item: Running) -> [Running] {
    guard !item.waitingChoices.isEmpty else { return [] }
    let sequence = item.sequence
    let promptReady =
      sequence.isDecoding && sequence.result.tokens.isEmpty
      && item.slot.context.position == sequence.result.promptTokens.count
    guard promptReady || sequence.isFinished else { return [] }
    let waiting = item.waitingChoices
    item.waitingChoices = []
    return waiting.compactMap { job, slot in
      guard promptReady else { return begin(job, slot: slot, reused: 0) }
      guard !job.isCancelled else {
        release(slot)
        job.continuation.finish()
        return nil
      }
      slot.context.copySequence(from: item.slot.context)
      slot.weights = item.weights
      slot.adapter = item.slot.adapter
      let choice = GenerationSequence(
        context: slot.context, tokenizer: tokenizer, promptTokens: job.promptTokens, options: job.request.options,
        prefillChunk: prefillChunk, promptEvaluated: true)
      slot.sequence = choice
      return Running(job: job, slot: slot, weights: item.weights, sequence: choice, reused: choice.reusedPromptTokens)
    }
  }

  /// The pending job to admit next: the oldest of the adapter that left the queue least recently
  /// (round-robin over adapters, so one flooding the queue does not starve the others).
  private func nextPendingIndex() -> Int? {
    var best: (index: Int, turn: Int)?
    for (index, job) in pending.enumerated() {
      let turn = lastAdmitted[job.request.adapter ?? ""] ?? -1
      if best == nil || turn < best!.turn { best = (index, turn) }
    }
    return best?.index
  }

  /// Resolves the job's weights and sets the sequence up on its reserved slot; nil when the job
  /// ended already or its adapter cannot be used (the slot goes back).
  private func begin(_ job: Job, slot: Slot, reused: Int) -> Running? {
    guard !job.isCancelled else {
      release(slot)
      job.continuation.finish()
      return nil
    }
    let weights: AdaptedModel
    do {
      weights = try registry.weights(for: job.request.adapter, scale: job.request.adapterScale)
    } catch {
      release(slot)
      let failure: ServingError
      if case .unknownAdapter(let name) = error { failure = .unknownAdapter(name) } else {
        failure = .failed("cannot use adapter '\(job.request.adapter ?? "default")': \(error)")
      }
      job.continuation.finish(throwing: failure)
      report(job, sequence: nil, reused: 0, firstToken: nil, started: nil, failed: true)
      return nil
    }
    // The slot was picked by adapter name; a cache of other weights (the adapter reloaded or
    // its merge evicted meanwhile) is forgotten.
    var reused = reused
    if !slot.holds(weights) {
      slot.context.use(model: weights.model)
      slot.context.projectionHook = weights.hook
      slot.weights = weights
      slot.cachedTokens = []
      reused = 0
    }
    reused = copyLongerPrefix(into: slot, prompt: job.promptTokens, weights: weights, reused: reused)
    let sequence = GenerationSequence(
      context: slot.context, tokenizer: tokenizer, promptTokens: job.promptTokens,
      options: job.request.options, prefillChunk: prefillChunk, reusing: reused)
    slot.sequence = sequence
    return Running(job: job, slot: slot, weights: weights, sequence: sequence, reused: sequence.reusedPromptTokens)
  }

  /// When another slot's cache, on the same weights, holds a longer prefix of `prompt` than
  /// `slot` keeps (a system prompt or a conversation other requests share; the other slot may be
  /// running or free), copies those keys and values into `slot` instead of evaluating them
  /// again. Returns how many prompt tokens `slot` now holds. The last prompt token is always
  /// evaluated (its logits start the sampling).
  private func copyLongerPrefix(into slot: Slot, prompt: [Int32], weights: AdaptedModel, reused: Int) -> Int {
    let useful = min(prompt.count - 1, slot.context.capacity)
    var best: (donor: Slot, count: Int)?
    for other in slots where other !== slot && other.holds(weights) {
      let held = min(commonPrefixLength(other.heldTokens, prompt), useful)
      if held > (best?.count ?? reused) { best = (other, held) }
    }
    guard let (donor, count) = best, slot.context.copyPrefix(from: donor.context, count: count) else { return reused }
    slot.weights = weights
    return count
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
      let passes = try batchForward().evaluate(entries)
      forwardPassCount.add(passes, ordering: .relaxed)
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
    release(item.slot)
    report(
      item.job, sequence: item.sequence, reused: item.reused, firstToken: item.firstToken, started: item.started,
      failed: item.failure != nil)
  }

  private func cancel(_ item: Running) {
    item.sequence.cancel()
    item.job.continuation.finish(throwing: ServingError.stopping)
    release(item.slot)
    for (job, slot) in item.waitingChoices {
      job.continuation.finish(throwing: ServingError.stopping)
      release(slot)
    }
    item.waitingChoices = []
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

  // MARK: - KV slots (compute thread; reserveSlot runs with `condition` held)

  /// Tokens of KV a job needs: its prompt and every token it may generate, in whole pages,
  /// at most the context size.
  private func kvTokens(for job: Job) -> Int {
    let need = job.promptTokens.count + max(1, job.request.options.maxTokens)
    let pages = (need + Self.kvPageTokens - 1) / Self.kvPageTokens
    return min(contextSize, pages * Self.kvPageTokens)
  }

  /// A free slot for `job`, marked busy: of those large enough, the one whose cache shares the
  /// longest prefix with its prompt on the same adapter, else the smallest (if it wastes at most
  /// half), else a new one sized by need, made room for by dropping free slots (those with the
  /// least cached first); nil when running sequences hold too much of the KV budget. Returns
  /// the slot and how many prompt tokens its cache may already hold (`begin` checks the weights).
  private func reserveSlot(for job: Job) -> (Slot, Int)? {
    let tokens = kvTokens(for: job)
    let adapter = Self.cacheKey(for: job)
    func shared(_ slot: Slot) -> Int {
      slot.adapter == adapter ? commonPrefixLength(slot.cachedTokens, job.promptTokens) : 0
    }
    let free = slots.filter { !$0.busy }
    let fitting = free.filter { $0.context.capacity >= tokens }
    if let best = fitting.max(by: { shared($0) < shared($1) }), shared(best) > 0 {
      best.busy = true
      return (best, shared(best))
    }
    if let reuse = fitting.min(by: { $0.context.capacity < $1.context.capacity }),
      reuse.context.capacity <= 2 * tokens
    {
      reuse.busy = true
      reuse.adapter = adapter
      reuse.cachedTokens = []
      return (reuse, 0)
    }
    let bytes = LlamaContext.cacheByteCount(
      hyper: registry.base.hyper, contextLength: tokens, maxBatch: prefillChunk, cacheElement: kvCache)
    var allocated = slots.reduce(0) { $0 + $1.context.cacheByteCount }
    for slot in free.sorted(by: { $0.cachedTokens.count < $1.cachedTokens.count })
    where allocated + bytes > kvCacheBudgetBytes {
      allocated -= slot.context.cacheByteCount
      slots.removeAll { $0 === slot }
    }
    guard allocated + bytes <= kvCacheBudgetBytes else { return nil }
    // maxBatch is the prompt chunk a batched pass takes from this sequence (a sliding layer keeps
    // window - 1 + maxBatch positions); 1 would prefill a token per pass, at decode speed.
    let slot = Slot(
      context: LlamaContext(
        model: registry.base, contextLength: tokens, pool: pool, maxBatch: prefillChunk, cacheElement: kvCache),
      adapter: adapter)
    slot.busy = true
    slots.append(slot)
    return (slot, 0)
  }

  /// What a slot's cache was computed under, by name: the adapter and, when given, its scale
  /// (a cache of one scale is meaningless under another).
  private static func cacheKey(for job: Job) -> String {
    let adapter = job.request.adapter ?? ""
    guard let scale = job.request.adapterScale else { return adapter }
    return "\(adapter)@\(scale)"
  }

  private func release(_ slot: Slot) {
    slot.busy = false
    // What the cache holds now, for the next sequences' prefix reuse.
    if let sequence = slot.sequence { slot.cachedTokens = Array(sequence.evaluatedTokens) }
    slot.sequence = nil
    // Slots beyond a lowered limit are given back once free.
    if slots.count > maxConcurrentSnapshot() { slots.removeAll { $0 === slot } }
  }

  private func updateKVAccounting(runningCount running: Int) {
    let allocated = slots.reduce(0) { $0 + $1.context.cacheByteCount }
    let inUse = slots.reduce(0) { $0 + ($1.busy ? $1.context.cacheByteCount : 0) }
    condition.withLock {
      runningCount = running
      kvBytesAllocated = allocated
      kvBytesInUse = inUse
    }
  }

  private func maxConcurrentSnapshot() -> Int { condition.withLock { maxConcurrent } }

  private func commonPrefixLength(_ a: some Collection<Int32>, _ b: [Int32]) -> Int {
    var n = 0
    for (x, y) in zip(a, b) {
      guard x == y else { break }
      n += 1
    }
    return n
  }
}

/// A queued request.
private final class Job: @unchecked Sendable {
  // unchecked: `cancelled` is guarded by `lock`; the rest is immutable once queued.
  let request: ServingRequest
  let promptTokens: [Int32]
  let continuation: AsyncThrowingStream<ServingEvent, any Error>.Continuation
  let submitted = DispatchTime.now().uptimeNanoseconds
  /// The other choices of the same prompt (set before the job is queued, then read-only).
  var otherChoices: [Job] = []
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

/// A KV cache and what it holds: tokens of the adapter named `adapter` ("" the default, with
/// "@scale" when a request scaled it), evaluated with `weights`.
private final class Slot {
  let context: LlamaContext
  var adapter: String
  /// The weights the cache was computed with (nil before the first sequence).
  var weights: AdaptedModel?
  var cachedTokens: [Int32] = []
  var busy = false
  /// The sequence running on the slot, if any (its cache grows as it runs).
  var sequence: GenerationSequence?
  init(context: LlamaContext, adapter: String) {
    self.context = context
    self.adapter = adapter
  }

  /// The tokens whose keys and values the cache holds now, in order.
  var heldTokens: ArraySlice<Int32> {
    if let sequence { return sequence.evaluatedTokens }
    return cachedTokens.prefix(context.position)
  }

  /// Whether the cache was computed with `weights` (in either of its forms).
  func holds(_ weights: AdaptedModel) -> Bool {
    guard let mine = self.weights, mine.model === weights.model else { return false }
    switch (mine.hook, weights.hook) {
    case (nil, nil): return true
    case (let held?, let wanted?): return held === wanted || held.computesSameUpdate(as: wanted)
    default: return false
    }
  }
}

/// A request on the compute thread.
private final class Running {
  let job: Job
  let slot: Slot
  let weights: AdaptedModel
  let sequence: GenerationSequence
  let reused: Int
  /// Other choices of the prompt, on their reserved slots, waiting for it to be evaluated.
  var waitingChoices: [(Job, Slot)] = []
  var firstToken: UInt64?
  var logprobsSent = 0
  /// When it left the queue (for the time-in-queue metric).
  let started = DispatchTime.now().uptimeNanoseconds
  var failure: String?

  init(job: Job, slot: Slot, weights: AdaptedModel, sequence: GenerationSequence, reused: Int) {
    self.job = job
    self.slot = slot
    self.weights = weights
    self.sequence = sequence
    self.reused = reused
  }
}
