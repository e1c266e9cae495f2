// The serving engine's admission and KV memory on the default model: prompts run in chunks of
// many rows, adapters take turns
// leaving the queue (one adapter flooding it does not starve another), slots are sized by need
// within the KV budget, a request whose KV memory is not free waits in the queue, and a
// generation cancelled mid-batch gives its KV memory back to the next request.
import Adapters
import Foundation
import Llama
import Testing
import Tokenization

import Engine

@Suite(
  .enabled(if: defaultModelIsPresent, "needs models/SmolLM2-135M-Instruct.Q4_1.gguf (scripts/fetch-model.sh)"),
  .serialized)
struct ServingSchedulingTests {
  typealias B = BatchedServingTests

  /// KV bytes of one slot of `tokens` positions on the default model (f32), sized as the test
  /// engines' slots are (prompt chunks of B.prefillChunk rows).
  static func slotBytes(_ tokens: Int) -> Int {
    LlamaContext.cacheByteCount(
      hyper: Loaded.shared.model.hyper, contextLength: tokens, maxBatch: B.prefillChunk, cacheElement: .f32)
  }

  @Test("a KV budget below one full-context slot is refused, naming both sizes")
  func kvBudgetBelowOneSlotIsRefused() throws {
    let fullSlot = Self.slotBytes(1024)
    #expect(
      ServingEngine.minimumKVCacheBudgetBytes(
        hyper: Loaded.shared.model.hyper, configuration: ServingConfiguration(contextSize: 1024)) == fullSlot)
    #expect(throws: ServingSetupError.kvCacheBudgetTooSmall(bytes: fullSlot - 1, minimum: fullSlot)) {
      try B.engine(mergeType: .none, maxConcurrent: 2, contextSize: 1024, kvBudget: fullSlot - 1)
    }
    #expect(try B.engine(mergeType: .none, maxConcurrent: 2, contextSize: 1024, kvBudget: fullSlot).kvCacheBudgetBytes == fullSlot)
  }

  @Test("a long prompt is evaluated in prompt chunks, not a token per forward pass")
  func promptsPrefillInChunks() async throws {
    // About 300 prompt tokens, in chunks of B.prefillChunk (16) rows.
    let engine = try B.engine(mergeType: .none, maxConcurrent: 1, contextSize: 1024)
    let prompt = Array(repeating: "the quick brown fox jumps over the lazy dog", count: 30).joined(separator: " ")
    let promptTokens = try engine.tokenize(.chat([ChatMessage(role: "user", content: prompt)])).count
    #expect(promptTokens > 10 * B.prefillChunk)
    engine.start()
    defer { engine.stop() }
    _ = try await B.collect(try engine.submit(B.request(prompt, adapter: nil, maxTokens: 1)))
    // One pass per chunk (the last chunk's logits give the one token).
    #expect(engine.forwardPasses == (promptTokens + B.prefillChunk - 1) / B.prefillChunk)
  }

  @Test("a flood of requests on one adapter does not starve another adapter's request")
  func adaptersTakeTurns() async throws {
    let engine = try B.engine(mergeType: .none, maxConcurrent: 1)
    // Queued before the compute thread starts: five on "a", then one on "b".
    var streams = try (0..<5).map { i in try engine.submit(B.request(B.prompts[i], adapter: "a", maxTokens: 3)) }
    streams.append(try engine.submit(B.request(B.prompts[5], adapter: "b", maxTokens: 3)))
    let order = OrderLog()
    engine.start()
    defer { engine.stop() }
    try await withThrowingTaskGroup(of: Void.self) { group in
      for (i, stream) in streams.enumerated() {
        group.addTask {
          _ = try await B.collect(stream)
          order.append(i)
        }
      }
      try await group.waitForAll()
    }
    // One at a time: "a" first (oldest), then "b" (its turn), then the rest of "a" in order.
    #expect(order.items == [0, 5, 1, 2, 3, 4])
  }

  @Test("slots are sized by need, and a request whose KV memory is not free waits in the queue")
  func kvBudgetSizesSlotsAndQueues() async throws {
    // Context 1024 tokens; budget one full context = four 256-token pages.
    let budget = Self.slotBytes(1024)
    let engine = try B.engine(mergeType: .none, maxConcurrent: 8, contextSize: 1024, kvBudget: budget)
    #expect(engine.kvCacheBudgetBytes == budget)
    // Four short requests (prompt + max_tokens within a page) run together in a page each.
    let short = try (0..<4).map { try engine.submit(B.request(B.prompts[$0], adapter: nil, maxTokens: 8)) }
    engine.start()
    defer { engine.stop() }
    for stream in short { #expect(try await B.collect(stream).tokens.count == 8) }
    // The accounting is updated at the end of the step that finished them.
    for _ in 0..<3000 where engine.kvCacheBytes.inUse > 0 { try await Task.sleep(nanoseconds: 10_000_000) }
    #expect(engine.kvCacheBytes.allocated == 4 * Self.slotBytes(256))
    #expect(engine.kvCacheBytes.inUse == 0)

    // A long request needs the whole budget: the free slots are dropped for it. Its client
    // reads one event, then holds the stream until told to leave.
    let (started, startedSignal) = AsyncStream<Void>.makeStream()
    let (leave, leaveSignal) = AsyncStream<Void>.makeStream()
    let holder = Task {
      var events = try engine.submit(B.request(B.prompts[1], adapter: nil, maxTokens: 1000)).makeAsyncIterator()
      _ = try await events.next()
      startedSignal.finish()
      for await _ in leave {}
    }
    for await _ in started {}
    // A second long one waits in the queue while the first runs, although a place is free.
    let second = try engine.submit(B.request(B.prompts[2], adapter: "a", maxTokens: 1000))
    try await Task.sleep(nanoseconds: 300_000_000)
    #expect(engine.runningGenerations == 1)
    #expect(engine.queueDepth == 1)
    #expect(engine.kvCacheBytes.inUse == budget)
    #expect(engine.kvCacheBytes.allocated <= budget)
    // The first client leaves mid-generation: its KV memory goes to the waiting request.
    leaveSignal.finish()
    try await holder.value
    let output = try await B.collect(second, stopAfter: 2)
    #expect(output.tokens.count == 2)
    #expect(engine.queueDepth == 0)
    #expect(engine.kvCacheBytes.allocated <= budget)
  }

  @Test("a generation cancelled mid-batch frees its KV memory")
  func cancellationFreesKV() async throws {
    let engine = try B.engine(mergeType: .none, maxConcurrent: 4)
    engine.start()
    defer { engine.stop() }
    let staying = try engine.submit(B.request(B.prompts[3], adapter: "a", maxTokens: 30))
    async let stayed = B.collect(staying)
    // The leaving client's stream ends with the call (nothing else holds it): a cancellation.
    let partial = try await B.collect(
      try engine.submit(B.request(B.prompts[7], adapter: "b", maxTokens: 200)), stopAfter: 2)
    #expect(partial.tokens.count >= 2)
    #expect(try await stayed.tokens.count == 30)
    for _ in 0..<3000 where engine.kvCacheBytes.inUse > 0 { try await Task.sleep(nanoseconds: 10_000_000) }
    #expect(engine.kvCacheBytes.inUse == 0)
    #expect(engine.runningGenerations == 0)
  }
}

/// Indices in the order they were appended, from any task.
final class OrderLog: @unchecked Sendable {
  // unchecked: `values` is guarded by `lock`.
  private let lock = NSLock()
  private var values: [Int] = []
  func append(_ value: Int) { lock.withLock { values.append(value) } }
  var items: [Int] { lock.withLock { values } }
}
