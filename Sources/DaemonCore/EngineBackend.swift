// The HTTP API's backend, served by the engine: translates API requests into engine requests
// (filling in the configured defaults, enforcing the configured limits) and engine events and
// errors back into the API's. No computation happens here.
import Adapters
import Engine
import Foundation
import Grammar
import HTTPAPI
import Settings
import StreamedTraining
import Tokenization
import Training

public final class EngineBackend: InferenceBackend, @unchecked Sendable {
  // unchecked: `settings` and `status` are guarded by `lock`; the rest is immutable or locks itself.
  public let engine: ServingEngine
  public let library: AdapterLibrary
  public let training: BackgroundTraining
  public let metrics: DaemonMetrics
  /// The id `/v1/models` gives the base model (also accepted as `model`, as is "base").
  public let baseID: String
  private let started = Int(Date().timeIntervalSince1970)
  private let lock = NSLock()
  private var generation: GenerationDefaults
  private var limits: Limits
  /// New adapters' rank, alpha and pruning rate when the request leaves them out.
  private var trainingDefaults: TrainingDefaults
  private var status = "serving"
  private var ready = true

  public init(
    engine: ServingEngine, library: AdapterLibrary, training: BackgroundTraining, metrics: DaemonMetrics, baseID: String,
    settings: DaemonSettings
  ) {
    self.engine = engine
    self.library = library
    self.training = training
    self.metrics = metrics
    self.baseID = baseID
    generation = settings.generation
    limits = settings.limits
    trainingDefaults = settings.training
  }

  /// Applies the live-changeable parts of reloaded settings.
  public func update(_ settings: DaemonSettings) {
    lock.withLock {
      generation = settings.generation
      limits = settings.limits
      trainingDefaults = settings.training
    }
    engine.updateLimits(
      maxConcurrentGenerations: settings.limits.maxConcurrentGenerations, queueLimit: settings.limits.queueLimit)
  }

  public func setStatus(_ text: String, ready: Bool) {
    lock.withLock {
      status = text
      self.ready = ready
    }
  }

  // MARK: InferenceBackend

  public func models() async -> [ModelInfo] {
    [ModelInfo(id: baseID, kind: .base, created: started)]
      + library.infos().map { ModelInfo(id: $0.name, kind: .adapter, created: library.created($0.name)) }
  }

  public func chat(
    _ request: ChatCompletionRequest, choices: Int
  ) async throws -> [AsyncThrowingStream<GenerationEvent, any Error>] {
    var messages = request.messages.map(Self.templateMessage)
    if let tools = try request.features.toolUse(), tools.choice != .none { messages = messages.offering(tools.functions) }
    return try submit(
      model: request.model, prompt: .chat(messages), sampling: request.sampling, features: request.features,
      scaling: request.adapterScaling, enableThinking: request.enableThinking, promptField: "messages", choices: choices)
  }

  public func complete(
    _ request: CompletionRequest, choices: Int
  ) async throws -> [AsyncThrowingStream<GenerationEvent, any Error>] {
    try submit(
      model: request.model, prompt: request.prompt.servingPrompt, sampling: request.sampling, features: request.features,
      scaling: request.adapterScaling, enableThinking: nil, promptField: "prompt", choices: choices)
  }

  public func adapters() async -> [AdapterInfo] { library.infos() }

  public func loadAdapter(name: String, path: String) async throws -> AdapterInfo {
    try await offCooperativePool { try self.library.load(name: name, path: path) }
  }

  public func createAdapter(_ request: AdapterSpec) async throws -> AdapterInfo {
    let defaults = lock.withLock { trainingDefaults }
    let spec = request.resolved(
      defaultRank: defaults.rank, defaultAlpha: defaults.alpha, defaultTargets: ["q", "k", "v", "up", "down"],
      defaultPruningRate: defaults.pruningRate)
    return try await offCooperativePool { try self.library.create(spec) }
  }

  /// Removes the adapter from the catalog and the registry, then everything the daemon keeps
  /// for it: its trainer (memory), checkpoint, versions and journal samples, and the files of
  /// an adapter the daemon created.
  public func unloadAdapter(name: String) async throws {
    try await offCooperativePool {
      try self.library.unload(name: name)
      self.training.forget(adapter: name)
    }
  }

  public func setDefaultAdapter(name: String?) async throws {
    try library.setDefault(name == baseID ? nil : name)
  }

  // MARK: streamed training

  public func pushSamples(adapter: String, jsonl: [UInt8]) async throws -> SampleIngestResult {
    let report = try await offCooperativePool { try Self.mapped { try self.training.ingest(adapter: adapter, body: jsonl) } }
    return SampleIngestResult(
      accepted: report.accepted, duplicates: report.duplicates,
      rejected: report.rejected.map { .init(line: $0.line, reason: $0.reason) })
  }

  public func trainingStatus(adapter: String) async throws -> TrainingStatusInfo {
    Self.info(try await offCooperativePool { try Self.mapped { try self.training.status(adapter: adapter) } })
  }

  public func controlTraining(adapter: String, control: TrainingControl) async throws -> TrainingStatusInfo {
    let changes = BackgroundTraining.Overrides(
      learningRate: control.learningRate.map(Float.init), batchSize: control.batchSize, publishEvery: control.publishEvery)
    if changes != BackgroundTraining.Overrides() {
      _ = try Self.mapped { try training.change(adapter: adapter, changes) }
    }
    guard let action = control.action else { return try await trainingStatus(adapter: adapter) }
    guard let engineAction = BackgroundTraining.Action(rawValue: action.rawValue) else {
      throw BackendError.invalidRequest(field: "action", message: "unknown action")
    }
    return Self.info(try Self.mapped { try training.control(adapter: adapter, action: engineAction) })
  }

  public func trainingVersions(adapter: String) async throws -> [TrainingVersionInfo] {
    let serving = try Self.mapped { try training.status(adapter: adapter) }.servingVersion
    return try Self.mapped { try training.versions(adapter: adapter) }.map {
      TrainingVersionInfo(
        version: $0.version, step: $0.step, evalLoss: $0.evalLoss, trainLoss: $0.trainLoss, created: $0.created,
        published: $0.published, serving: $0.version == serving)
    }
  }

  public func rollback(adapter: String, version: Int) async throws -> TrainingStatusInfo {
    Self.info(try await offCooperativePool { try Self.mapped { try self.training.rollback(adapter: adapter, to: version) } })
  }

  private static func info(_ s: TrainingStatus) -> TrainingStatusInfo {
    TrainingStatusInfo(
      adapter: s.adapter, state: s.state.rawValue, reason: s.reason, samplesReceived: s.samplesReceived,
      samplesTrained: s.samplesTrained, samplesPending: s.samplesPending, samplesHeldOut: s.samplesHeldOut,
      step: s.step, replayEpoch: s.replayEpoch, trainLoss: s.trainLoss, evalLoss: s.evalLoss, servingEvalLoss: s.servingEvalLoss,
      learningRate: s.learningRate, tokensPerSecond: s.tokensPerSecond, servingVersion: s.servingVersion,
      candidateVersion: s.candidateVersion, lastPublish: s.lastPublish, lastDecision: s.lastDecision)
  }

  /// The training errors as the API's.
  private static func mapped<T>(_ body: () throws -> T) throws -> T {
    do {
      return try body()
    } catch {
      guard let error = error as? TrainingControlError else { throw error }
      switch error {
      case .unknownAdapter(let name): throw BackendError.adapterNotFound(name)
      case .backlogFull(_, let seconds): throw BackendError.saturated(retryAfterSeconds: seconds)
      case .unknownVersion: throw BackendError.invalidRequest(field: "version", message: error.description)
      case .invalid(let message): throw BackendError.invalidRequest(field: nil, message: message)
      case .failed(let message): throw BackendError.internalFailure(message)
      }
    }
  }

  public func tokenize(_ text: String, addSpecial: Bool, parseSpecial: Bool) async throws -> [TokenPiece] {
    let tokenizer = engine.tokenizer
    return tokenizer.encode(text, parseSpecial: parseSpecial, addSpecial: addSpecial).map {
      TokenPiece(id: $0, bytes: tokenizer.tokenPiece($0, renderSpecial: true))
    }
  }

  public func detokenize(_ tokens: [Int32]) async throws -> String {
    let size = engine.tokenizer.vocabularySize
    if let bad = tokens.first(where: { $0 < 0 || Int($0) >= size }) {
      throw BackendError.invalidRequest(field: "tokens", message: "token \(bad) is not in the vocabulary (\(size) tokens)")
    }
    return engine.tokenizer.decode(tokens, renderSpecial: true)
  }

  public func maxChoices() async -> Int { lock.withLock { limits.maxChoices } }

  public func requestRefused(status: Int, code: String) { metrics.refused(status: status, code: code) }

  public func health() async -> HealthReport {
    lock.withLock { HealthReport(ready: ready, status: status) }
  }

  public func metricsText() async -> String { metrics.render(engine: engine, training: training) }

  // MARK: -

  private func submit(
    model: String?, prompt: ServingPrompt, sampling: HTTPAPI.SamplingParameters, features: RequestedFeatures,
    scaling: AdapterScaling?, enableThinking: Bool?, promptField: String, choices: Int
  ) throws -> [AsyncThrowingStream<GenerationEvent, any Error>] {
    let logprobs = features.logprobs ? (features.topLogprobs ?? 0) : nil
    let grammar = try features.outputGrammar()
    let choiceOptions = try (0..<max(1, choices)).map { i in
      var options = try options(sampling.forChoice(i))
      options.logprobs = logprobs
      options.grammar = grammar
      return options
    }
    // The range is AdapterRegistry.scaleRange, judged here in the request's own precision too:
    // 4.0000001 would round to the Float 4 and pass the engine's check (issue 18, item 8).
    if let scaling {
      let range = AdapterRegistry.scaleRange
      guard scaling.scale >= Double(range.lowerBound) && scaling.scale <= Double(range.upperBound) else {
        throw BackendError.invalidRequest(
          field: scaling.field,
          message: "the adapter scale must be a finite number from \(range.lowerBound) to \(range.upperBound), got \(scaling.scale)")
      }
    }
    let request = ServingRequest(
      adapter: adapterName(model), prompt: prompt, options: choiceOptions[0],
      adapterScale: scaling.map { Float($0.scale) }, enableThinking: enableThinking)
    let events: [AsyncThrowingStream<ServingEvent, any Error>]
    do {
      events = try engine.submit(request, choices: choiceOptions)
    } catch {
      throw Self.backendError(error, promptField: promptField, scaleField: scaling?.field)
    }
    return events.map { Self.translate($0, tokenizer: engine.tokenizer) }
  }

  /// nil (the default adapter), `AdapterRegistry.baseName` for the base, or an adapter name.
  private func adapterName(_ model: String?) -> String? {
    guard let model else { return nil }
    return model == baseID ? AdapterRegistry.baseName : model
  }

  private func options(_ sampling: HTTPAPI.SamplingParameters) throws -> GenerationOptions {
    let (defaults, cap) = lock.withLock { (generation, limits.maxTokens) }
    // Past limits.max_tokens a request is capped, not refused (droplorad(8)); the context's end
    // stops it earlier with finish_reason "length".
    let maxTokens = min(sampling.maxTokens ?? defaults.maxTokens, cap)
    // The API validated every value in Double; these conversions only saturate at Float's range
    // (top_p 1e-300 stays a positive nucleus, repeat_penalty 1e300 a finite one).
    var parameters = Engine.SamplingParameters()
    parameters.temperature = Self.float(sampling.temperature ?? defaults.temperature)
    parameters.topK = sampling.topK ?? defaults.topK
    parameters.topP = Self.float(sampling.topP ?? defaults.topP, positive: true)
    parameters.minP = Self.float(sampling.minP ?? defaults.minP)
    parameters.repeatPenalty = Self.float(sampling.repeatPenalty ?? defaults.repeatPenalty, positive: true)
    parameters.presencePenalty = Self.float(sampling.presencePenalty ?? 0)
    parameters.frequencyPenalty = Self.float(sampling.frequencyPenalty ?? 0)
    parameters.logitBias = sampling.logitBias.mapValues { Self.float($0) }
    parameters.seed = sampling.seed
    if let problem = parameters.validationError {
      // Unreachable after the API's checks; still named, never a bare 500.
      throw BackendError.invalidRequest(field: problem.split(separator: " ").first.map(String.init), message: problem)
    }
    if let bad = sampling.logitBias.keys.first(where: { Int($0) >= engine.tokenizer.vocabularySize }) {
      throw BackendError.invalidRequest(
        field: "logit_bias", message: "token \(bad) is not in the vocabulary (\(engine.tokenizer.vocabularySize) tokens)")
    }
    return GenerationOptions(
      maxTokens: maxTokens, sampling: parameters, stop: sampling.stop, ignoreEndOfGeneration: sampling.ignoreEOS)
  }

  /// A Double the API validated, as the engine's Float, saturating instead of overflowing to
  /// infinity or (for values that must stay positive) underflowing to 0.
  private static func float(_ value: Double, positive: Bool = false) -> Float {
    let f = Float(max(-Double(Float.greatestFiniteMagnitude), min(Double(Float.greatestFiniteMagnitude), value)))
    return positive && f == 0 && value > 0 ? Float.leastNonzeroMagnitude : f
  }

  /// An API message as the chat template sees it. `developer` arrives as `system` already; an
  /// assistant's tool calls and a tool's result are written as `ToolCallSyntax` says (Hermes /
  /// Qwen 2.5 text), so every template family carries them as plain content.
  public static func templateMessage(_ m: HTTPAPI.ChatMessage) -> Tokenization.ChatMessage {
    if m.role == .tool { return .toolResult(m.content) }
    if m.role == .assistant { return .assistant(m.content, calls: m.toolCalls.map { .init(name: $0.name, arguments: $0.arguments) }) }
    return Tokenization.ChatMessage(role: m.role.rawValue, content: m.content)
  }

  public static func backendError(_ error: any Error, promptField: String, scaleField: String? = nil) -> any Error {
    guard let error = error as? ServingError else { return error }
    switch error {
    case .unknownAdapter(let name): return BackendError.modelNotFound(name)
    case .saturated(let seconds): return BackendError.saturated(retryAfterSeconds: seconds)
    case .promptTooLong, .emptyPrompt: return BackendError.invalidRequest(field: promptField, message: error.description)
    case .tokenOutOfRange(let index, _, _):
      return BackendError.invalidRequest(field: "\(promptField)[\(index)]", message: error.description)
    case .adapterScaleOutOfRange:
      return BackendError.invalidRequest(field: scaleField ?? "adapter_scale", message: error.description)
    case .noThinkingMode:
      return BackendError.invalidRequest(field: "chat_template_kwargs.enable_thinking", message: error.description)
    case .stopping: return BackendError.unavailable(error.description)
    case .failed(let message): return BackendError.internalFailure(message)
    }
  }

  /// The engine's events as the API's; ending the iteration ends the engine's (cancelling it).
  public static func translate(
    _ events: AsyncThrowingStream<ServingEvent, any Error>, tokenizer: Tokenizer
  ) -> AsyncThrowingStream<GenerationEvent, any Error> {
    @Sendable func alternative(_ token: Int32, _ logprob: Double) -> TokenLogprobInfo.Alternative {
      let bytes = tokenizer.tokenPiece(token, renderSpecial: true)
      return .init(token: String(decoding: bytes, as: UTF8.self), bytes: bytes, logprob: logprob)
    }
    let iterator = IteratorBox(events.makeAsyncIterator())
    return AsyncThrowingStream {
      do {
        switch try await iterator.next() {
        case nil: return nil
        case .text(let text): return .text(text)
        case .logprobs(let list):
          return .logprobs(
            list.map { .init(chosen: alternative($0.token, $0.logprob), top: $0.top.map { alternative($0.token, $0.logprob) }) })
        case .finished(let reason, let prompt, let completion):
          let apiReason: HTTPAPI.FinishReason = reason == .length ? .length : .stop
          return .finished(apiReason, Usage(promptTokens: prompt, completionTokens: completion))
        }
      } catch {
        throw backendError(error, promptField: "prompt")
      }
    }
  }
}

/// The engine stream's iterator, advanced by one consumer at a time (the HTTP request task).
private final class IteratorBox: @unchecked Sendable {
  private var iterator: AsyncThrowingStream<ServingEvent, any Error>.AsyncIterator
  public init(_ iterator: AsyncThrowingStream<ServingEvent, any Error>.AsyncIterator) { self.iterator = iterator }
  public func next() async throws -> ServingEvent? { try await iterator.next() }
}

/// Runs blocking work (file I/O, merging) on its own thread, so the cooperative pool that serves
/// the socket never waits on it.
public func offCooperativePool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
  try await withCheckedThrowingContinuation { continuation in
    Thread { continuation.resume(with: Result { try body() }) }.start()
  }
}

extension CompletionPrompt {
  /// The engine's form of a completions prompt.
  var servingPrompt: ServingPrompt {
    switch self {
    case .text(let text): return .text(text)
    case .tokens(let ids): return .tokens(ids)
    }
  }
}
