// Choices of one prompt (OpenAI's `n`) on the default model: the prompt is evaluated once and
// copied into the other choices' slots, and each choice gives what a separate request with its
// options (seed) gives on an engine of its own. Tokens and log probabilities are compared as in
// BatchedServingTests (the choices decode batched, the references alone).
import Adapters
import Foundation
import GGUF
import Llama
import Testing
import Tokenization

import Engine

/// Counts the prompt tokens each finished request evaluated (not reused).
private final class PromptCounter: ServingObserver, @unchecked Sendable {
  // unchecked: `reports` is guarded by `lock`.
  private let lock = NSLock()
  private var reports: [RequestReport] = []
  func requestFinished(_ report: RequestReport) { lock.withLock { reports.append(report) } }
  var finished: [RequestReport] { lock.withLock { reports } }
  var evaluatedPromptTokens: Int { finished.reduce(0) { $0 + $1.promptTokens - $1.reusedPromptTokens } }
}

@Suite(
  .enabled(if: defaultModelIsPresent, "needs models/SmolLM2-135M-Instruct.Q4_1.gguf (scripts/fetch-model.sh)"),
  .serialized)
struct SharedPromptTests {
  static let prompt = ChatMessage(
    role: "user",
    content: """
      Here are some notes from a meeting. The team discussed the release schedule, the open bugs in \
      the parser, the new logging format and who will write the migration guide. Alice will fix the \
      parser bugs by Friday, Bob takes the logging format, and Carol writes the guide. Summarise the \
      notes in one sentence, then list the owners.
      """)

  /// Choice 0 greedy, the others sampled with seeds of their own.
  static let choices: [GenerationOptions] = (0..<4).map { i in
    GenerationOptions(
      maxTokens: 10, sampling: SamplingParameters(temperature: i == 0 ? 0 : 0.9, seed: 40 + UInt64(i)),
      ignoreEndOfGeneration: true, logprobs: 2)
  }

  static func engine(maxConcurrent: Int, observer: (any ServingObserver)? = nil) throws -> ServingEngine {
    let loaded = Loaded.shared
    return try ServingEngine(
      registry: AdapterRegistry(base: loaded.model, cacheCapacity: 1, mergeType: .none, threads: 2),
      tokenizer: loaded.tokenizer,
      configuration: ServingConfiguration(
        contextSize: 256, threads: 2, maxConcurrentGenerations: maxConcurrent, queueLimit: 8, prefillChunk: 16),
      observer: observer)
  }

  static func request(_ options: GenerationOptions) -> ServingRequest {
    ServingRequest(adapter: nil, prompt: .chat([prompt]), options: options)
  }

  /// Each choice as a request of its own, on a fresh engine (no cache to reuse).
  static func separately() async throws -> [BatchedServingTests.Output] {
    var outputs: [BatchedServingTests.Output] = []
    for options in choices {
      let engine = try engine(maxConcurrent: 1)
      engine.start()
      defer { engine.stop() }
      outputs.append(try await BatchedServingTests.collect(try engine.submit(request(options))))
    }
    return outputs
  }

  @Test(
    "n choices evaluate the prompt once and each equals a separate request with its seed",
    arguments: [4, 2])
  func choicesShareThePrompt(maxConcurrent: Int) async throws {
    let counter = PromptCounter()
    let engine = try Self.engine(maxConcurrent: maxConcurrent, observer: counter)
    engine.start()
    defer { engine.stop() }
    let promptTokens = try engine.tokenize(.chat([Self.prompt])).count
    #expect(promptTokens > 64, "the prompt spans several prefill chunks")
    let shared = try await BatchedServingTests.collectConcurrently(
      try engine.submit(Self.request(Self.choices[0]), choices: Self.choices))
    let alone = try await Self.separately()
    for (i, (a, b)) in zip(alone, shared).enumerated() {
      #expect(b.tokens.count == 10 && b.finish == .length)
      #expect(
        BatchedServingTests.agree(a, b),
        "choice \(i): \(a.tokens.map(\.token)) alone vs \(b.tokens.map(\.token)) shared (Δlogprob \(BatchedServingTests.logprobDifference(a, b)))")
    }
    #expect(Set(shared.map(\.text)).count > 1, "distinct seeds give distinct samples")
    #expect(counter.finished.count == 4)
    if maxConcurrent >= 4 {
      // One evaluation of the prompt; the other three copied it.
      #expect(counter.evaluatedPromptTokens == promptTokens)
    } else {
      // Two choices ran at once (one evaluated, one copied); the two that waited found the
      // prompt in a finished choice's slot and evaluated only its last token.
      #expect(counter.evaluatedPromptTokens == promptTokens + 2)
    }
  }

  @Test("a request copies the prompt prefix another running request evaluated, and gets its own output")
  func prefixFromAnotherRunningRequest() async throws {
    let counter = PromptCounter()
    let engine = try Self.engine(maxConcurrent: 2, observer: counter)
    engine.start()
    defer { engine.stop() }
    var long = Self.choices[0]
    long.maxTokens = 60
    let first = ServingRequest(adapter: nil, prompt: .chat([Self.prompt]), options: long)
    var question = Self.prompt
    question.content += " Also say who fixes the parser."
    let second = ServingRequest(adapter: nil, prompt: .chat([question]), options: Self.choices[0])
    let firstTokens = try engine.tokenize(first.prompt)
    let secondTokens = try engine.tokenize(second.prompt)
    let shared = zip(firstTokens, secondTokens).prefix { $0 == $1 }.count
    #expect(shared > 64, "the prompts share \(shared) tokens")
    // The second arrives once the first decodes: its slot is new, the first's is busy.
    let firstStream = try engine.submit(first)
    let (decoding, decodingStarted) = AsyncStream<Void>.makeStream()
    let firstRun = Task {
      for try await _ in firstStream { decodingStarted.yield() }
      decodingStarted.finish()
    }
    for await _ in decoding { break }
    let secondOutput = try await BatchedServingTests.collect(try engine.submit(second))
    try await firstRun.value
    let report = try #require(counter.finished.first { $0.promptTokens == secondTokens.count })
    #expect(report.reusedPromptTokens == shared, "copied \(report.reusedPromptTokens) of \(shared) shared tokens")
    let alone = try Self.engine(maxConcurrent: 1)
    alone.start()
    defer { alone.stop() }
    let reference = try await BatchedServingTests.collect(try alone.submit(second))
    #expect(
      BatchedServingTests.agree(reference, secondOutput),
      "\(reference.tokens.map(\.token)) alone vs \(secondOutput.tokens.map(\.token)) with the copied prefix (Δlogprob \(BatchedServingTests.logprobDifference(reference, secondOutput)))")
  }

  @Test(
    "a client gone before or after the prompt ends every choice, and the engine serves on",
    arguments: [0, 1])
  func cancelledChoices(readTokens: Int) async throws {
    let counter = PromptCounter()
    let engine = try Self.engine(maxConcurrent: 4, observer: counter)
    engine.start()
    defer { engine.stop() }
    var long = Self.choices[1]
    long.maxTokens = 200
    do {
      let streams = try engine.submit(Self.request(long), choices: [long, long, long])
      // Read a token of each choice (or nothing), then walk away: dropping the streams cancels.
      for stream in streams where readTokens > 0 {
        _ = try await BatchedServingTests.collect(stream, stopAfter: readTokens)
      }
    }
    let after = try await BatchedServingTests.collect(try engine.submit(Self.request(Self.choices[0])))
    #expect(after.tokens.count == 10)
    for _ in 0..<500 where engine.runningGenerations > 0 || engine.kvCacheBytes.inUse > 0 {
      try await Task.sleep(nanoseconds: 10_000_000)
    }
    #expect(engine.runningGenerations == 0)
    #expect(engine.kvCacheBytes.inUse == 0, "every choice's slot is free again")
    // Choices that started were cancelled long before their 200 tokens.
    let cancelled = counter.finished.filter { $0.finishReason == .cancelled }
    #expect(cancelled.allSatisfy { $0.completionTokens < 200 })
    #expect(counter.finished.allSatisfy { $0.finishReason == .cancelled || $0.completionTokens == 10 })
  }
}

let gemma3Path =
  ProcessInfo.processInfo.environment["DROPLORA_GEMMA3_MODEL"]
  ?? packageRoot.appendingPathComponent("models/gemma-3-270m-q4_k_m.gguf").path

/// Gemma 3's sliding layers: a prompt longer than the window, so the copy takes only the
/// window's rows of those layers (and all rows of the global ones).
@Suite(
  .enabled(if: FileManager.default.fileExists(atPath: gemma3Path), "needs Gemma 3 270M (scripts/fetch-gemma3.sh)"),
  .serialized)
struct SharedPromptGemmaTests {
  static func engine(_ model: LlamaModel, _ tokenizer: Tokenizer, maxConcurrent: Int) throws -> ServingEngine {
    try ServingEngine(
      registry: AdapterRegistry(base: model, cacheCapacity: 1, mergeType: .none, threads: 2), tokenizer: tokenizer,
      configuration: ServingConfiguration(
        contextSize: 1024, threads: 2, maxConcurrentGenerations: maxConcurrent, queueLimit: 4, prefillChunk: 64))
  }

  @Test("choices of a prompt longer than the sliding window equal separate requests")
  func choicesPastTheWindow() async throws {
    let file = try GGUFFile(path: gemma3Path)
    let model = try LlamaModel(file: file)
    let tokenizer = try Tokenizer(gguf: file)
    let window = model.hyper.slidingWindow
    let text = (0..<45).map { "Note \($0): the harbour crane moved \($0 * 7 % 13) containers today." }.joined(separator: " ")
    let request = ServingRequest(
      adapter: nil, prompt: .chat([ChatMessage(role: "user", content: text + " Which note moved the most?")]),
      options: GenerationOptions())
    let choices = [0, 1].map { i in
      GenerationOptions(
        maxTokens: 5, sampling: SamplingParameters(temperature: i == 0 ? 0 : 0.9, seed: 9 + UInt64(i)),
        ignoreEndOfGeneration: true, logprobs: 2)
    }
    let shared = try Self.engine(model, tokenizer, maxConcurrent: 2)
    let promptTokens = try shared.tokenize(request.prompt).count
    #expect(window > 0 && promptTokens > window + 64, "prompt \(promptTokens) tokens, window \(window)")
    shared.start()
    let outputs = try await BatchedServingTests.collectConcurrently(try shared.submit(request, choices: choices))
    shared.stop()
    #expect(outputs[0].tokens.count == 5)
    // Choice 1 is the copy (choice 0 evaluated the prompt); each prefill here takes ~20 s.
    for (i, options) in choices.enumerated() where i > 0 {
      let alone = try Self.engine(model, tokenizer, maxConcurrent: 1)
      alone.start()
      var single = request
      single.options = options
      let reference = try await BatchedServingTests.collect(try alone.submit(single))
      alone.stop()
      #expect(outputs[i].tokens.count == 5)
      #expect(
        BatchedServingTests.agree(reference, outputs[i]),
        "choice \(i): \(reference.tokens.map(\.token)) alone vs \(outputs[i].tokens.map(\.token)) shared (Δlogprob \(BatchedServingTests.logprobDifference(reference, outputs[i])))")
    }
  }
}
