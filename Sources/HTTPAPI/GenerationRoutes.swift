import Foundation
import Grammar
// The two generation routes: one backend stream per choice (`n` of them), their events
// merged by choice index and written as one OpenAI answer or as server-sent chunks, with
// `logprobs` attached to the text they belong to.

/// What one choice produced, collected for a non-streamed answer.
private struct Collected {
  var text = ""
  var logprobs: [TokenLogprobInfo] = []
  var finish: (FinishReason, Usage)?
}

extension Router {
  static func makeID(_ prefix: String) -> String {
    var g = SystemRandomNumberGenerator()
    let hex = (0..<3).map { _ in String(g.next() as UInt64, radix: 16) }.joined()
    return prefix + hex
  }

  /// Starts `n` generations of the request (see `InferenceBackend.chat(_:choices:)`), within
  /// `limits.max_choices`.
  private func start(
    n: Int, _ submit: (Int) async throws -> [AsyncThrowingStream<GenerationEvent, any Error>]
  ) async throws -> [AsyncThrowingStream<GenerationEvent, any Error>] {
    let limit = await backend.maxChoices()
    guard n <= limit else { throw APIError.invalidField("n", "at most \(limit) choices per request, got \(n)") }
    return try await submit(n)
  }

  /// Runs `body` for each event of every stream, one at a time, tagged with its stream's index,
  /// until every stream has ended. Cancelling the caller cancels every stream.
  private func merge(
    _ streams: [AsyncThrowingStream<GenerationEvent, any Error>],
    _ body: (Int, GenerationEvent) async throws -> Void
  ) async throws {
    if streams.count == 1 {
      for try await event in streams[0] { try await body(0, event) }
      return
    }
    let (merged, continuation) = AsyncThrowingStream.makeStream(of: (Int, GenerationEvent?).self)
    try await withThrowingTaskGroup(of: Void.self) { group in
      for (i, stream) in streams.enumerated() {
        group.addTask {
          do {
            for try await event in stream { continuation.yield((i, event)) }
            continuation.yield((i, nil))
          } catch {
            continuation.finish(throwing: error)
          }
        }
      }
      var ended = 0
      for try await (i, event) in merged {
        guard let event else {
          ended += 1
          if ended == streams.count { break }
          continue
        }
        try await body(i, event)
      }
      group.cancelAll()
    }
  }

  private func collect(_ streams: [AsyncThrowingStream<GenerationEvent, any Error>]) async throws -> [Collected] {
    var out = [Collected](repeating: Collected(), count: streams.count)
    try await merge(streams) { i, event in
      switch event {
      case .text(let t): out[i].text += t
      case .logprobs(let l): out[i].logprobs += l
      case .finished(let r, let u): out[i].finish = (r, u)
      }
    }
    // A cancelled iteration ends quietly; don't dress a disconnect up as a finished answer.
    try Task.checkCancellation()
    guard out.allSatisfy({ $0.finish != nil }) else { throw APIError.internalFailure("generation ended without finishing") }
    return out
  }

  /// The usage of all choices: the prompt once (as OpenAI counts it), the completions summed.
  private static func totalUsage(_ usages: [Usage]) -> Usage {
    Usage(promptTokens: usages.first?.promptTokens ?? 0, completionTokens: usages.reduce(0) { $0 + $1.completionTokens })
  }

  /// A finished chat answer as the message OpenAI returns: with tools in use, a well-formed
  /// answer made of calls to offered functions becomes `tool_calls` (finish reason
  /// "tool_calls"); anything else stays text.
  /// With a required call the output is calls only, so when the token limit cuts one off the
  /// calls completed before it are the answer.
  static func answer(_ text: String, finish: FinishReason, tools: ToolUse?) -> (ChatMessage, FinishReason) {
    let plain = (ChatMessage(role: .assistant, content: text), finish)
    var text = text
    if finish == .length, let tools, tools.choice != .none, tools.choice != .auto,
      let end = text.range(of: "</tool_call>", options: .backwards)
    {
      text = String(text[..<end.upperBound])
    } else if finish != .stop {
      return plain
    }
    guard let tools, tools.choice != .none, let parsed = ToolCallSyntax.parse(text),
      parsed.calls.allSatisfy({ call in tools.functions.contains { $0.name == call.name } })
    else { return plain }
    let calls = tools.parallel ? parsed.calls : Array(parsed.calls.prefix(1))
    return (
      ChatMessage(
        role: .assistant, content: parsed.content,
        toolCalls: calls.map { ToolCall(id: makeID("call_"), name: $0.name, arguments: $0.arguments) }),
      .toolCalls
    )
  }

  func chat(_ req: ChatCompletionRequest, writer: ResponseWriter) async throws {
    let id = Self.makeID("chatcmpl-")
    let created = Int(Date().timeIntervalSince1970)
    let model = await resolvedModel(req.model)
    let n = req.features.n ?? 1
    let tools = try req.features.toolUse()
    let streams = try await start(n: n) { try await backend.chat(req, choices: $0) }
    let wantLogprobs = req.features.logprobs
    if !req.stream {
      let results = try await collect(streams)
      try await writer.writeJSON(
        ChatCompletionResponse(
          id: id, created: created, model: model,
          choices: results.enumerated().map { i, r in
            let (message, reason) = Self.answer(r.text, finish: r.finish!.0, tools: tools)
            return .init(
              index: i, message: message, finishReason: reason,
              logprobs: wantLogprobs ? ChatLogprobs(r.logprobs) : nil)
          },
          usage: Self.totalUsage(results.map { $0.finish!.1 })))
      return
    }
    func chunk(_ i: Int, _ delta: ChatCompletionChunk.Delta, _ reason: FinishReason? = nil, _ logprobs: [TokenLogprobInfo]? = nil)
      -> ChatCompletionChunk
    {
      ChatCompletionChunk(
        id: id, created: created, model: model,
        choices: [.init(index: i, delta: delta, finishReason: reason, logprobs: logprobs.map(ChatLogprobs.init))])
    }
    try await writer.writeSSEHead()
    for i in 0..<n { try await writer.writeSSE(chunk(i, .init(role: .assistant, content: ""))) }
    // Log probabilities wait for the text they made (a stop string may hold text back).
    var pending = [[TokenLogprobInfo]](repeating: [], count: n)
    var usages = [Usage?](repeating: nil, count: n)
    // With tools in use, text that may be a call is held until it is known to be one (sent as
    // tool_calls at the end) or not (sent as content from then on).
    var holding = [Bool](repeating: tools.map { $0.choice != .none } ?? false, count: n)
    var held = [String](repeating: "", count: n)
    try await merge(streams) { i, event in
      switch event {
      case .logprobs(let l): pending[i] += l
      case .text(let t):
        guard !t.isEmpty else { return }
        var text = t
        if holding[i] {
          held[i] += t
          guard tools?.choice == .auto, !ToolCallSyntax.mayBeginCall(held[i][...]) else { return }
          holding[i] = false
          text = held[i]
          held[i] = ""
        }
        try await writer.writeSSE(chunk(i, .init(content: text), nil, wantLogprobs ? pending[i] : nil))
        pending[i] = []
      case .finished(var r, let u):
        usages[i] = u
        if holding[i] {
          let (message, reason) = Self.answer(held[i], finish: r, tools: tools)
          r = reason
          if !message.content.isEmpty {
            try await writer.writeSSE(chunk(i, .init(content: message.content), nil, wantLogprobs ? pending[i] : nil))
            pending[i] = []
          }
          if !message.toolCalls.isEmpty {
            let deltas = message.toolCalls.enumerated().map { k, call in
              ChatCompletionChunk.ToolCallDelta(index: k, id: call.id, function: .init(name: call.name, arguments: call.arguments))
            }
            try await writer.writeSSE(chunk(i, .init(toolCalls: deltas), nil, wantLogprobs && !pending[i].isEmpty ? pending[i] : nil))
            pending[i] = []
          }
        }
        try await writer.writeSSE(chunk(i, .init(), r, wantLogprobs && !pending[i].isEmpty ? pending[i] : nil))
        pending[i] = []
      }
    }
    try Task.checkCancellation()
    guard usages.allSatisfy({ $0 != nil }) else { throw APIError.internalFailure("generation ended without finishing") }
    if req.includeUsageInStream {
      try await writer.writeSSE(
        ChatCompletionChunk(id: id, created: created, model: model, choices: [], usage: Self.totalUsage(usages.map { $0! })))
    }
    try await writer.writeSSEDone()
  }

  func complete(_ req: CompletionRequest, writer: ResponseWriter) async throws {
    let id = Self.makeID("cmpl-")
    let created = Int(Date().timeIntervalSince1970)
    let model = await resolvedModel(req.model)
    let n = req.features.n ?? 1
    let streams = try await start(n: n) { try await backend.complete(req, choices: $0) }
    let wantLogprobs = req.features.logprobs
    if !req.stream {
      let results = try await collect(streams)
      try await writer.writeJSON(
        TextCompletionResponse(
          id: id, created: created, model: model,
          choices: results.enumerated().map { i, r in
            .init(
              text: r.text, index: i, finishReason: r.finish!.0,
              logprobs: wantLogprobs ? TextLogprobs(r.logprobs, offset: 0) : nil)
          },
          usage: Self.totalUsage(results.map { $0.finish!.1 })))
      return
    }
    func chunk(_ i: Int, _ text: String, _ reason: FinishReason?, _ logprobs: TextLogprobs?, _ usage: Usage? = nil)
      -> TextCompletionResponse
    {
      TextCompletionResponse(
        id: id, created: created, model: model,
        choices: [.init(text: text, index: i, finishReason: reason, logprobs: logprobs)], usage: usage)
    }
    try await writer.writeSSEHead()
    var pending = [[TokenLogprobInfo]](repeating: [], count: n)
    var offsets = [Int](repeating: 0, count: n)
    var usages = [Usage?](repeating: nil, count: n)
    func flush(_ i: Int) -> TextLogprobs? {
      guard wantLogprobs else { return nil }
      defer {
        offsets[i] += pending[i].reduce(0) { $0 + $1.chosen.token.count }
        pending[i] = []
      }
      return TextLogprobs(pending[i], offset: offsets[i])
    }
    try await merge(streams) { i, event in
      switch event {
      case .logprobs(let l): pending[i] += l
      case .text(let t):
        guard !t.isEmpty else { return }
        try await writer.writeSSE(chunk(i, t, nil, flush(i)))
      case .finished(let r, let u):
        usages[i] = u
        let last = usages.allSatisfy { $0 != nil }
        // The usage rides on the last choice's final chunk, as before (one chunk per choice end).
        try await writer.writeSSE(
          chunk(i, "", r, pending[i].isEmpty ? nil : flush(i),
            last && req.includeUsageInStream ? Self.totalUsage(usages.map { $0! }) : nil))
      }
    }
    try Task.checkCancellation()
    guard usages.allSatisfy({ $0 != nil }) else { throw APIError.internalFailure("generation ended without finishing") }
    try await writer.writeSSEDone()
  }

  /// What `model` says in the response when the request named none: the default adapter, else
  /// the base model, as the backend will choose.
  private func resolvedModel(_ requested: String?) async -> String {
    if let requested { return requested }
    if let adapter = await backend.adapters().first(where: \.isDefault) { return adapter.name }
    return await backend.models().first { $0.kind == .base }?.id ?? "default"
  }
}
