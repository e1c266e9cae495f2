// One forward step over many sequences (continuous batching): each entry is a sequence (its own
// LlamaContext: KV cache, position, adapter hook) and the tokens it appends this step, one for a
// decoding sequence, a prompt chunk for a prefilling one. Sequences on the same weights share one
// pass: every projection and the feed-forward network run as one multi-row product over the
// quantized weights, so the weights are read once for all of them; attention is per sequence.
// Rows are ordered by adapter so each adapter's update covers one run of rows. Sequences on
// different weights (merged adapters) take one pass per set of weights.
//
// Results equal each sequence evaluated alone up to the summation order of the multi-row
// kernels (the tiles give the one-token dots' bits; AVX-512 decode dots sum in another order).
import CKernels
import Kernels

public final class LlamaBatch {
  public let hyper: LlamaHyperParameters
  /// Most rows (tokens of all sequences) in one pass; a larger step runs in several passes.
  public let maxRows: Int
  /// Longest context a sequence in the batch may have.
  public let maxContextLength: Int
  public let pool: ThreadPool

  let workspace: MatMulWorkspace
  let scratch: Scratch
  /// Logits of the sequences' last rows in one pass, [sequence][vocabulary]; grown on demand.
  private var logits: [Float] = []

  public init(model: LlamaModel, maxRows: Int, maxContextLength: Int, pool: ThreadPool) {
    hyper = model.hyper
    self.maxRows = max(1, maxRows)
    self.maxContextLength = max(1, maxContextLength)
    self.pool = pool
    workspace = MatMulWorkspace(maxColumns: model.widestMatrixInput, maxTokens: self.maxRows, threads: pool.threadCount)
    scratch = Scratch(hyper: hyper, tokens: self.maxRows, threads: pool.threadCount, capacity: self.maxContextLength)
  }

  /// Appends each entry's tokens to its context and leaves the logits of its last token in the
  /// context's `lastLogits`, as `context.evaluate(tokens)` would. Every entry is checked before
  /// anything is computed: a bad entry throws and no context changes. Returns the number of
  /// forward passes it took (a prompt chunk longer than its context's maxBatch takes several).
  @discardableResult
  public func evaluate(_ entries: [(context: LlamaContext, tokens: [Int32])]) throws -> Int {
    var seen = Set<ObjectIdentifier>()
    for (context, tokens) in entries {
      guard !tokens.isEmpty else { throw LlamaError.emptyInput }
      precondition(seen.insert(ObjectIdentifier(context)).inserted, "a context appears twice in one batch")
      precondition(context.model.hyper == hyper, "a context of another model shape in the batch")
      precondition(context.capacity <= maxContextLength, "a context longer than the batch's attention scratch")
      let vocabulary = context.model.vocabularySize
      for token in tokens where token < 0 || Int(token) >= vocabulary {
        throw LlamaError.tokenOutOfRange(token: token, vocabularySize: vocabulary)
      }
      guard context.position + tokens.count <= context.capacity else {
        throw LlamaError.contextFull(needed: context.position + tokens.count, capacity: context.capacity)
      }
    }
    // One group per set of weights.
    var groups: [(model: LlamaModel, entries: [(context: LlamaContext, tokens: [Int32])])] = []
    for entry in entries {
      if let index = groups.firstIndex(where: { $0.model === entry.context.model }) {
        groups[index].entries.append(entry)
      } else {
        groups.append((entry.context.model, [entry]))
      }
    }
    var passes = 0
    for group in groups {
      // Sequences on one adapter side by side, adapters in order of first appearance.
      var adapters: [ObjectIdentifier?] = []
      for entry in group.entries {
        let id = entry.context.projectionHook.map { ObjectIdentifier($0) }
        if !adapters.contains(id) { adapters.append(id) }
      }
      let sorted = adapters.flatMap { id in
        group.entries.filter { entry in entry.context.projectionHook.map { ObjectIdentifier($0) } == id }
      }
      passes += run(model: group.model, sorted)
    }
    return passes
  }

  /// Packs the entries' remaining tokens into passes of at most `maxRows` rows; returns how many.
  private func run(model: LlamaModel, _ entries: [(context: LlamaContext, tokens: [Int32])]) -> Int {
    var done = [Int](repeating: 0, count: entries.count)
    var passes = 0
    while true {
      var segments: [ForwardSegment] = []
      var tokens: [Int32] = []
      var members: [Int] = []
      for (index, entry) in entries.enumerated() where done[index] < entry.tokens.count {
        let take = min(entry.tokens.count - done[index], maxRows - tokens.count, entry.context.maxBatch)
        if take == 0 { break }
        segments.append(
          ForwardSegment(context: entry.context, rows: tokens.count..<(tokens.count + take), start: entry.context.position))
        tokens += entry.tokens[done[index]..<(done[index] + take)]
        members.append(index)
      }
      if segments.isEmpty { return passes }
      passes += 1
      for segment in segments { segment.context.makeRoomInSlidingLayers(for: segment.rows.count) }
      let pass = ForwardPass(model: model, pool: pool, workspace: workspace, scratch: scratch, segments: segments)
      pass.run(tokens: tokens)
      for (segment, index) in zip(segments, members) {
        segment.context.position += segment.rows.count
        done[index] += segment.rows.count
      }
      // Logits of the sequences whose tokens all went in: their last rows, gathered, through
      // the output matrix in one product.
      let finished = zip(segments, members).filter { done[$0.1] == entries[$0.1].tokens.count }.map(\.0)
      output(model: model, pass: pass, finished)
    }
  }

  private func output(model: LlamaModel, pass: ForwardPass, _ segments: [ForwardSegment]) {
    guard !segments.isEmpty else { return }
    let d = hyper.embeddingLength
    let vocabulary = model.vocabularySize
    let s = scratch
    let lastRows = segments.map { $0.rows.upperBound - 1 }
    let epsilon = hyper.rmsEpsilon
    let norm = model.weights.outputNorm
    lastRows.withUnsafeBufferPointer { lastRows in
      pool.parallelFor(lastRows.count) { range, _ in
        for i in range { dq_rmsnorm(s.normed + i * d, s.x + lastRows[i] * d, norm.base, Int64(d), epsilon) }
      }
    }
    if logits.count < segments.count * vocabulary {
      logits = [Float](repeating: 0, count: segments.count * vocabulary)
    }
    logits.withUnsafeMutableBufferPointer { all in
      pass.multiply(all.baseAddress!, model.weights.output, s.normed, tokens: segments.count)
      for (i, segment) in segments.enumerated() {
        segment.context.logits.update(from: all.baseAddress! + i * vocabulary, count: vocabulary)
      }
    }
  }
}
