// Continuous batching in the serving engine on the default model: 8 concurrent greedy requests
// (mixed prompt lengths, the base and two adapters, merged and unmerged) give the tokens each
// gives alone, and a request joining, leaving or cancelled mid-batch changes nobody else's.
// Alone and batched rows sum in different orders on AVX-512 (decode dots vs tiles), so tokens
// are compared up to the first step where the alone run's top two are within `nearTie` nats,
// and the chosen tokens' log probabilities within `logprobTolerance`.
// Merged adapters keep their merged weights in every step (a pass per set of weights), but their
// Q8_0 matrices are among the types whose packed AVX-512 kernels (8 or more rows in a pass) are
// not bit-exact to smaller passes (dq_matmul_rows_exact): a last-bit difference flips the
// rounding of an activation in its Q8_0 block, and SmolLM2's outlier activations make a block's
// step large, so a prompt chunked differently moves chosen-token log probabilities by up to
// ~0.2 nats (measured). Merged runs therefore take each prompt whole, alone and batched.
import Adapters
import Foundation
import GGUF
import Llama
import Testing
import Tokenization

import Engine

@Suite(
  .enabled(if: defaultModelIsPresent, "needs models/SmolLM2-135M-Instruct.Q4_1.gguf (scripts/fetch-model.sh)"),
  .serialized)
struct BatchedServingTests {
  static func nearTie(_ mergeType: MergeType) -> Double { 0.02 }
  static func logprobTolerance(_ mergeType: MergeType) -> Double { 0.02 }
  static let prompts = [
    "Hi", "Write a haiku about the sea.", "What is 2 + 2?",
    "List three colours, then explain in one long sentence why the sky looks blue on a clear day.",
    "Name a fruit.", "Tell me a story about a robot who learns to paint, in two sentences.", "Why?",
    "Translate 'good morning' into French and Spanish.",
  ]

  struct Output {
    var tokens: [TokenLogprob] = []
    var text = ""
    var finish: FinishReason?
  }

  /// The test engines' prompt chunk: short prompts still take several passes.
  static let prefillChunk = 16

  static func engine(
    mergeType: MergeType, maxConcurrent: Int, batchTokens: Int = 256, contextSize: Int = 256, kvBudget: Int? = nil,
    prefillChunk: Int = Self.prefillChunk
  ) throws -> ServingEngine {
    let loaded = Loaded.shared
    let registry = AdapterRegistry(base: loaded.model, cacheCapacity: 4, mergeType: mergeType, threads: 2)
    for (name, seed) in [("a", UInt64(3)), ("b", UInt64(4))] {
      try registry.add(
        LoRAAdapter.random(base: loaded.model.hyper, rank: 8, bScale: 0.05, seed: seed), name: name)
    }
    return try ServingEngine(
      registry: registry, tokenizer: loaded.tokenizer,
      configuration: ServingConfiguration(
        contextSize: contextSize, threads: 2, maxConcurrentGenerations: maxConcurrent, queueLimit: 64,
        prefillChunk: prefillChunk, batchTokens: batchTokens, kvCacheBudgetBytes: kvBudget))
  }

  static func request(_ prompt: String, adapter: String?, maxTokens: Int) -> ServingRequest {
    ServingRequest(
      adapter: adapter, prompt: .chat([ChatMessage(role: "user", content: prompt)]),
      options: GenerationOptions(
        maxTokens: maxTokens, sampling: SamplingParameters(temperature: 0), ignoreEndOfGeneration: true, logprobs: 2))
  }

  static func collect(
    _ stream: AsyncThrowingStream<ServingEvent, any Error>, stopAfter: Int = .max
  ) async throws -> Output {
    var output = Output()
    for try await event in stream {
      switch event {
      case .text(let text): output.text += text
      case .logprobs(let items): output.tokens += items
      case .finished(let reason, _, _): output.finish = reason
      }
      if output.tokens.count >= stopAfter { break }
    }
    return output
  }

  /// Every stream's output, read side by side (in the streams' order).
  static func collectConcurrently(_ streams: [AsyncThrowingStream<ServingEvent, any Error>]) async throws -> [Output] {
    try await withThrowingTaskGroup(of: (Int, Output).self) { group in
      for (i, stream) in streams.enumerated() { group.addTask { (i, try await Self.collect(stream)) } }
      var outputs = [Output](repeating: Output(), count: streams.count)
      for try await (i, output) in group { outputs[i] = output }
      return outputs
    }
  }

  /// Whether `batched` has `alone`'s tokens, with log probabilities within the tolerance, up to
  /// the first near tie of the alone run.
  static func agree(_ alone: Output, _ batched: Output, mergeType: MergeType = .none) -> Bool {
    guard alone.tokens.count == batched.tokens.count else { return false }
    for (a, b) in zip(alone.tokens, batched.tokens) {
      // From the alone run's first near tie on, either token is right and the runs part ways.
      if a.top.count > 1 && a.top[0].logprob - a.top[1].logprob < nearTie(mergeType) { return true }
      if a.token != b.token || abs(a.logprob - b.logprob) > logprobTolerance(mergeType) { return false }
    }
    return true
  }

  /// Largest difference of the chosen tokens' log probabilities while the tokens agree.
  static func logprobDifference(_ alone: Output, _ batched: Output) -> Double {
    var worst = 0.0
    for (a, b) in zip(alone.tokens, batched.tokens) {
      guard a.token == b.token else { break }
      worst = max(worst, abs(a.logprob - b.logprob))
    }
    return worst
  }

  static func adapter(_ i: Int) -> String? { [nil, "a", "b", AdapterRegistry.baseName][i % 4] }

  static func alone(mergeType: MergeType, _ requests: [ServingRequest]) async throws -> [Output] {
    let engine = try Self.engine(mergeType: mergeType, maxConcurrent: 1, prefillChunk: 64)
    engine.start()
    defer { engine.stop() }
    var outputs: [Output] = []
    for request in requests { outputs.append(try await collect(try engine.submit(request))) }
    return outputs
  }

  @Test("8 concurrent greedy requests equal each alone", arguments: [MergeType.none, .q8_0])
  func concurrentEqualsAlone(_ mergeType: MergeType) async throws {
    let requests = Self.prompts.enumerated().map { i, prompt in
      Self.request(prompt, adapter: Self.adapter(i), maxTokens: 12 + 3 * i)
    }
    let alone = try await Self.alone(mergeType: mergeType, requests)
    // The same prompt on another adapter gives other tokens: the adapters take part.
    let differs = try await Self.alone(mergeType: mergeType, [Self.request(Self.prompts[1], adapter: nil, maxTokens: 15)])
    #expect(differs[0].tokens.map(\.token) != alone[1].tokens.map(\.token))

    // All 8 are queued before the compute thread starts, so they share every step. Unmerged, a
    // step of 48 rows mixes prompt chunks with decoding rows; merged, every prompt goes in
    // whole in the first step, as alone (see the header: Q8_0 chunks of 8+ rows are not
    // bit-exact to smaller ones).
    let engine = try Self.engine(
      mergeType: mergeType, maxConcurrent: 8, batchTokens: mergeType == .none ? 48 : 512, prefillChunk: 64)
    let streams = try requests.map { try engine.submit($0) }
    engine.start()
    defer { engine.stop() }
    let batched = try await Self.collectConcurrently(streams)
    for i in requests.indices {
      #expect(batched[i].finish == .length)
      #expect(batched[i].tokens.count == 12 + 3 * i)
      #expect(
        Self.agree(alone[i], batched[i], mergeType: mergeType),
        "request \(i) (\(Self.adapter(i) ?? "default")): \(batched[i].text) vs alone \(alone[i].text)")
    }
    print("merge type \(mergeType): chosen-token logprob max |Δ| batched vs alone",
      requests.indices.map { Self.logprobDifference(alone[$0], batched[$0]) }.max() ?? 0)
  }

  @Test("concurrent requests all on one merged adapter run on its merged weights, as alone")
  func oneMergedAdapterStaysMerged() async throws {
    let requests = [0, 2, 4, 6].map { Self.request(Self.prompts[$0], adapter: "a", maxTokens: 10 + $0) }
    let alone = try await Self.alone(mergeType: .q8_0, requests)
    let engine = try Self.engine(mergeType: .q8_0, maxConcurrent: 8, batchTokens: 48)
    let streams = try requests.map { try engine.submit($0) }
    engine.start()
    defer { engine.stop() }
    var batched: [Output] = []
    for stream in streams { batched.append(try await Self.collect(stream)) }
    // Same weights as alone (merged), so the strict tolerance of the unmerged comparison holds.
    for i in requests.indices {
      #expect(Self.agree(alone[i], batched[i], mergeType: .none), "request \(i): \(batched[i].text) vs \(alone[i].text)")
    }
  }

  /// Per-request adapter scales: two sequences on one adapter at different scales share every
  /// step (each with its own hook on the same factors) and each gets the tokens it gets alone;
  /// scale 0 is the base model's tokens exactly. With merging, the scaled ones run unmerged.
  @Test("two sequences at different scales of one adapter each get their own tokens", arguments: [MergeType.none, .q8_0])
  func scalesSideBySide(_ mergeType: MergeType) async throws {
    let requests = [Float(0.5), 3].map { scale in
      var r = Self.request(Self.prompts[1], adapter: "a", maxTokens: 16)
      r.adapterScale = scale
      return r
    }
    var off = Self.request(Self.prompts[1], adapter: "a", maxTokens: 16)
    off.adapterScale = 0
    let alone = try await Self.alone(
      mergeType: mergeType, requests + [off, Self.request(Self.prompts[1], adapter: AdapterRegistry.baseName, maxTokens: 16)])
    #expect(alone[0].tokens.map(\.token) != alone[1].tokens.map(\.token), "the scales must change the tokens")
    #expect(alone[2].tokens == alone[3].tokens, "scale 0 is the base model")

    let engine = try Self.engine(mergeType: mergeType, maxConcurrent: 2)
    let streams = try requests.map { try engine.submit($0) }
    engine.start()
    defer { engine.stop() }
    let batched = try await Self.collectConcurrently(streams)
    for i in requests.indices {
      #expect(Self.agree(alone[i], batched[i]), "scale \(requests[i].adapterScale!): \(batched[i].text) vs alone \(alone[i].text)")
    }
    var tooBig = requests[0]
    tooBig.adapterScale = 4.5
    #expect(throws: ServingError.adapterScaleOutOfRange(4.5)) { try engine.submit(tooBig) }
  }

  @Test("a request joining, leaving or cancelled mid-batch changes nobody else's tokens")
  func joinLeaveCancel() async throws {
    let long = Self.request(Self.prompts[3], adapter: "a", maxTokens: 40)
    let short = Self.request(Self.prompts[0], adapter: nil, maxTokens: 6)
    let late = Self.request(Self.prompts[5], adapter: "b", maxTokens: 10)
    let cancelled = Self.request(Self.prompts[7], adapter: "a", maxTokens: 60)
    let alone = try await Self.alone(mergeType: .none, [long, short, late])

    let engine = try Self.engine(mergeType: .none, maxConcurrent: 8)
    engine.start()
    defer { engine.stop() }
    let longStream = try engine.submit(long)
    let shortStream = try engine.submit(short)
    let cancelledStream = try engine.submit(cancelled)
    async let longOutput = Self.collect(longStream)
    async let shortOutput = Self.collect(shortStream)
    // The cancelled one leaves after a few tokens (its client stops reading).
    let partial = try await Self.collect(cancelledStream, stopAfter: 3)
    #expect(partial.tokens.count >= 3)
    // The late one joins while the long one is still decoding.
    let lateOutput = try await Self.collect(try engine.submit(late))
    let outputs = try await [longOutput, shortOutput, lateOutput]
    for (i, (a, b)) in zip(alone, outputs).enumerated() {
      #expect(Self.agree(a, b), "request \(i): \(b.text) vs alone \(a.text)")
    }
    // The cancelled sequence gave its slot back: the engine runs nothing once all are done.
    // (Generously bounded: the shared test machine may be heavily loaded.)
    for _ in 0..<3000 where engine.runningGenerations > 0 { try await Task.sleep(nanoseconds: 10_000_000) }
    #expect(engine.runningGenerations == 0)
  }
}
