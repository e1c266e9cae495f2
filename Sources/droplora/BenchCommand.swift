// `droplora bench`: prefill and decode speed, time to first token and peak RSS on one model,
// measured the way llama-bench does (pp: one batch on an empty context; tg: single-token
// decodes). scripts/bench.sh runs it beside llama.cpp and prints the ratios.
import ArgumentParser
import Dispatch
import Engine
import Foundation
import GGUF
import Grammar
import Kernels
import Llama
import Tokenization

struct BenchCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "bench", abstract: "Measure prefill/decode tokens per second and peak RSS.")

  @OptionGroup var modelOptions: ModelOptions
  @Option(help: "Compute threads.") var threads = 2
  @Option(help: "Prompt length for the prefill measurement.") var promptTokens = 512
  @Option(help: "Tokens decoded one at a time for the decode measurement.") var genTokens = 128
  @Option(help: "Context tokens already in the cache when the decode measurement starts (llama-bench's -d): decode speed deep in a conversation.")
  var depth = 0
  @Option(help: "Repetitions; the best run is reported (the machines are shared and noisy).")
  var repetitions = 3
  @Option(help: "Seed of the synthetic prompt's token ids.") var seed: UInt64 = 42
  @Option(help: "File of whitespace-separated prompt token ids (instead of --prompt-tokens).")
  var promptIds: String?
  @Flag(help: "Print one JSON object.") var json = false
  @Option(help: "Element type of the KV cache: f32 or f16.") var kvCacheType = KVCacheElement.f32
  @Option(help: "Also time N sequences decoding together in one batched step per token (the daemon's continuous batching) against one, interleaved.")
  var sequences = 1
  @Option(help: "With --sequences: run every sequence on an unmerged random LoRA adapter of this rank, all on one and each on its own (0: no adapter).")
  var loraRank = 0
  @Option(help: "Also time decoding constrained to this JSON Schema (fresh matcher per finished document) against the same decode unconstrained, interleaved.")
  var jsonSchema: String?

  func validate() throws {
    guard threads >= 1 else { throw ValidationError("--threads must be 1 or more") }
    guard promptIds != nil || promptTokens >= 1 else { throw ValidationError("--prompt-tokens must be 1 or more") }
    guard genTokens >= 1 else { throw ValidationError("--gen-tokens must be 1 or more") }
    guard depth >= 0 else { throw ValidationError("--depth must be 0 or more") }
    guard repetitions >= 1 else { throw ValidationError("--repetitions must be 1 or more") }
    guard sequences >= 1 else { throw ValidationError("--sequences must be 1 or more") }
    guard loraRank >= 0 else { throw ValidationError("--lora-rank must be 0 or more") }
  }

  func run() throws {
    // Measure what the daemon runs: OpenBLAS's sgemm (float weights' prefill, merges) with the
    // kernels its core type selects.
    OpenBLASCoreType.ensureSet()
    let file = try modelOptions.open()
    let model = try LlamaModel(file: file)
    let prompt = try promptIds.map(BenchCommand.readTokenIds)
      ?? BenchCommand.syntheticPrompt(count: promptTokens, vocabulary: model.vocabularySize, seed: seed)
    let depthTokens = BenchCommand.syntheticPrompt(count: depth, vocabulary: model.vocabularySize, seed: seed &+ 1)
    let capacity = max(prompt.count, depth) + genTokens + 1
    let context = LlamaContext(
      model: model, contextLength: capacity, threads: threads, maxBatch: prompt.count, cacheElement: kvCacheType)

    var best = (prefill: Double.infinity, ttft: Double.infinity, decode: Double.infinity)
    for _ in 0..<repetitions {
      context.reset()
      let start = now()
      try context.evaluate(prompt)
      let prefilled = now()
      var greedy = Sampler(.greedy)
      var token = greedy.sample(logits: context.lastLogits, history: [])
      let ttft = now() - start
      best.prefill = min(best.prefill, prefilled - start)
      best.ttft = min(best.ttft, ttft)

      context.reset()
      try context.evaluate(depth > 0 ? depthTokens : [prompt[0]])
      let decodeStart = now()
      for _ in 0..<genTokens {
        try context.evaluate([token])
        token = greedy.sample(logits: context.lastLogits, history: [])
      }
      best.decode = min(best.decode, now() - decodeStart)
    }

    let batched = sequences > 1 ? try benchBatched(model: model, firstToken: prompt[0]) : nil
    let constrained = try jsonSchema.map { try benchConstrained(schemaPath: $0, file: file, model: model) }
    let report = BenchReport(
      engine: "droplorad", threads: threads, promptTokens: prompt.count, genTokens: genTokens, depth: depth,
      prefillTokensPerSecond: Double(prompt.count) / best.prefill,
      decodeTokensPerSecond: Double(genTokens) / best.decode,
      timeToFirstTokenMs: best.ttft * 1000,
      peakRSSMiB: Double(peakRSSBytes()) / 1_048_576,
      modelMiB: Double(fileSize(file.path)) / 1_048_576,
      unconstrainedDecodeTokensPerSecond: constrained.map { Double($0.tokens) / $0.plainSeconds },
      constrainedDecodeTokensPerSecond: constrained.map { Double($0.tokens) / $0.constrainedSeconds },
      constrainedDocuments: constrained?.documents,
      unconstrainedChoiceMs: constrained.map { 1000 * $0.plainChoosing / Double($0.tokens) },
      constrainedChoiceMs: constrained.map { 1000 * $0.constrainedChoosing / Double($0.tokens) },
      batchedSequences: batched.map { _ in sequences },
      batchedSingleDecodeTokensPerSecond: batched.map { Double(genTokens) / $0.single },
      batchedDecodeTokensPerSecond: batched.map { Double(sequences * genTokens) / $0.sameAdapter },
      batchedDistinctAdaptersDecodeTokensPerSecond: batched?.distinctAdapters.map { Double(sequences * genTokens) / $0 },
      batchedMergedSingleDecodeTokensPerSecond: batched?.mergedSingle.map { Double(genTokens) / $0 },
      batchedMergedDecodeTokensPerSecond: batched?.mergedSameAdapter.map { Double(sequences * genTokens) / $0 })
    if json {
      try printJSON(report)
    } else {
      print(String(format: "threads %d  prefill %.1f tok/s  decode %.1f tok/s  ttft %.1f ms  peak RSS %.1f MiB",
                   threads, report.prefillTokensPerSecond, report.decodeTokensPerSecond,
                   report.timeToFirstTokenMs, report.peakRSSMiB))
      if let one = report.batchedSingleDecodeTokensPerSecond, let all = report.batchedDecodeTokensPerSecond {
        var line = String(
          format: "batched: 1 sequence %.1f tok/s, %d sequences %.1f tok/s aggregate (%.2fx)", one, sequences, all, all / one)
        if let distinct = report.batchedDistinctAdaptersDecodeTokensPerSecond {
          line += String(format: "; on %d adapters %.1f tok/s (%.0f %% of one adapter)", sequences, distinct, 100 * distinct / all)
        }
        if loraRank > 0 { line += " (rank \(loraRank), unmerged)" }
        print(line)
        if let one = report.batchedMergedSingleDecodeTokensPerSecond, let all = report.batchedMergedDecodeTokensPerSecond {
          print(String(
            format: "merged Q8_0: 1 sequence %.1f tok/s, %d sequences on it %.1f tok/s aggregate (%.0f %% of unmerged)",
            one, sequences, all, 100 * all / (report.batchedDecodeTokensPerSecond ?? all)))
        }
      }
      if let plain = report.unconstrainedDecodeTokensPerSecond, let constrained = report.constrainedDecodeTokensPerSecond {
        print(String(format: "json-schema: decode %.1f tok/s unconstrained, %.1f tok/s constrained (%.1f %%); choosing a token %.3f ms vs %.3f ms; %d documents completed",
                     plain, constrained, 100 * constrained / plain, report.unconstrainedChoiceMs ?? 0,
                     report.constrainedChoiceMs ?? 0, report.constrainedDocuments ?? 0))
      }
    }
  }

  /// Greedy decode of genTokens tokens after a chat prompt asking for JSON, unconstrained and
  /// constrained to the schema, alternated `repetitions` times; best of each, plus the time
  /// spent choosing tokens (sampling, and masking when constrained) per token. A constrained
  /// document that completes starts a fresh matcher, as a new request would. The vocabulary
  /// trie is built before timing (the daemon builds it once).
  func benchConstrained(schemaPath: String, file: GGUFFile, model: LlamaModel) throws -> ConstrainedBench {
    let schemaText = try String(contentsOfFile: schemaPath, encoding: .utf8)
    let grammar: Grammar
    do {
      grammar = try JSONSchemaCompiler.grammar(schema: schemaText)
    } catch {
      throw CommandFailure("\(schemaPath): \(error)")
    }
    let tokenizer = try Tokenizer(gguf: file)
    _ = TokenVocabularies.vocabulary(for: tokenizer)
    let request = "Reply with one JSON object following this JSON Schema, nothing else:\n" + schemaText
    let prompt = tokenizer.encode(
      try tokenizer.chatTemplate().render([ChatMessage(role: "user", content: request)], addGenerationPrompt: true))
    let context = LlamaContext(
      model: model, contextLength: prompt.count + genTokens + 1, threads: threads, maxBatch: prompt.count,
      cacheElement: kvCacheType)
    var result = ConstrainedBench()
    for _ in 0..<repetitions {
      context.reset()
      try context.evaluate(prompt)
      var greedy = Sampler(.greedy)
      var choosing = 0.0
      var start = now()
      for _ in 0..<genTokens {
        let t0 = now()
        let token = greedy.sample(logits: context.lastLogits, history: [])
        choosing += now() - t0
        try context.evaluate([token])
      }
      if now() - start < result.plainSeconds {
        result.plainSeconds = now() - start
        result.plainChoosing = choosing
      }

      context.reset()
      try context.evaluate(prompt)
      var documents = 0
      choosing = 0
      start = now()
      var constraint = ConstrainedSampling(grammar: grammar, tokenizer: tokenizer)
      for _ in 0..<genTokens {
        let t0 = now()
        var token = constraint.sample(&greedy, logits: context.lastLogits, history: []) ?? tokenizer.eos ?? 0
        if tokenizer.isEndOfGeneration(token) || constraint.isComplete {
          documents += 1
          constraint = ConstrainedSampling(grammar: grammar, tokenizer: tokenizer)
          if tokenizer.isEndOfGeneration(token) {
            token = constraint.sample(&greedy, logits: context.lastLogits, history: []) ?? 0
          }
        }
        choosing += now() - t0
        try context.evaluate([token])
      }
      if now() - start < result.constrainedSeconds {
        result.constrainedSeconds = now() - start
        result.constrainedChoosing = choosing
        result.documents = documents
      }
    }
    result.tokens = genTokens
    return result
  }

  /// The ids of a --prompt-ids file; a word that is not a non-negative integer is an error
  /// (skipping it would time another prompt than the one the file holds).
  static func readTokenIds(_ path: String) throws -> [Int32] {
    let text = try String(contentsOfFile: path, encoding: .utf8)
    let words = text.split(whereSeparator: \.isWhitespace)
    let ids = try words.enumerated().map { index, word in
      guard let id = Int32(word), id >= 0 else {
        throw CommandFailure("\(path): word \(index + 1) (\"\(word.prefix(40))\") is not a token id")
      }
      return id
    }
    guard !ids.isEmpty else { throw CommandFailure("\(path) holds no token ids") }
    return ids
  }

  /// Token ids drawn uniformly from the vocabulary: the same ids for every engine compared.
  static func syntheticPrompt(count: Int, vocabulary: Int, seed: UInt64) -> [Int32] {
    var random = SeededRandom(seed: seed)
    return (0..<count).map { _ in Int32(random.next() % UInt64(vocabulary)) }
  }
}

struct BenchReport: Codable {
  var engine: String
  var threads: Int
  var promptTokens: Int
  var genTokens: Int
  /// Context tokens in the cache before the timed decode (--depth).
  var depth: Int
  var prefillTokensPerSecond: Double
  var decodeTokensPerSecond: Double
  var timeToFirstTokenMs: Double
  var peakRSSMiB: Double
  var modelMiB: Double
  /// With --json-schema: greedy decode tokens/s without and with the constraint.
  var unconstrainedDecodeTokensPerSecond: Double?
  var constrainedDecodeTokensPerSecond: Double?
  var constrainedDocuments: Int?
  /// Milliseconds per token spent choosing it (sampling; masking too when constrained).
  var unconstrainedChoiceMs: Double?
  var constrainedChoiceMs: Double?
  /// With --sequences: decode tokens/s of one sequence and aggregate of N in one batch
  /// (each on its own adapter with --lora-rank).
  var batchedSequences: Int?
  var batchedSingleDecodeTokensPerSecond: Double?
  var batchedDecodeTokensPerSecond: Double?
  var batchedDistinctAdaptersDecodeTokensPerSecond: Double?
  /// With --lora-rank: the first adapter merged into Q8_0, one sequence and N on it.
  var batchedMergedSingleDecodeTokensPerSecond: Double?
  var batchedMergedDecodeTokensPerSecond: Double?

  enum CodingKeys: String, CodingKey {
    case engine, threads
    case promptTokens = "prompt_tokens"
    case genTokens = "gen_tokens"
    case depth
    case prefillTokensPerSecond = "prefill_tps"
    case decodeTokensPerSecond = "decode_tps"
    case timeToFirstTokenMs = "ttft_ms"
    case peakRSSMiB = "peak_rss_mib"
    case modelMiB = "model_mib"
    case unconstrainedDecodeTokensPerSecond = "unconstrained_decode_tps"
    case constrainedDecodeTokensPerSecond = "constrained_decode_tps"
    case constrainedDocuments = "constrained_documents"
    case unconstrainedChoiceMs = "unconstrained_choice_ms"
    case constrainedChoiceMs = "constrained_choice_ms"
    case batchedSequences = "batched_sequences"
    case batchedSingleDecodeTokensPerSecond = "batched_single_decode_tps"
    case batchedDecodeTokensPerSecond = "batched_decode_tps"
    case batchedDistinctAdaptersDecodeTokensPerSecond = "batched_distinct_adapters_decode_tps"
    case batchedMergedSingleDecodeTokensPerSecond = "batched_merged_single_decode_tps"
    case batchedMergedDecodeTokensPerSecond = "batched_merged_decode_tps"
  }
}

struct ConstrainedBench {
  var tokens = 0
  var plainSeconds = Double.infinity
  var plainChoosing = 0.0
  var constrainedSeconds = Double.infinity
  var constrainedChoosing = 0.0
  var documents = 0
}

private func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }

/// VmHWM from /proc/self/status: the peak resident set of this process.
func peakRSSBytes() -> Int {
  guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
  for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
    let kib = line.split(separator: " ").compactMap { Int($0) }.first ?? 0
    return kib * 1024
  }
  return 0
}

private func fileSize(_ path: String) -> Int {
  ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? Int) ?? 0
}
