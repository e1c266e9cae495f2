// `droplora eval`: mean masked loss and perplexity of the base model or base + adapter on a
// JSONL file (the loss training reports), and with --generate the exact-match accuracy of
// greedy answers (generated through the serving path: adapter merged, as the daemon serves it).
import Adapters
import ArgumentParser
import Engine
import Foundation
import Kernels
import Llama
import Tokenization
import Training

struct EvalCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "eval", abstract: "Loss, perplexity and exact-match accuracy on JSONL samples.")

  @OptionGroup var modelOptions: ModelOptions
  @Option(help: "Samples (JSONL: messages, prompt/completion or Alpaca).") var data: String
  @Option(help: "LoRA adapter (PEFT directory or GGUF-LoRA file); none evaluates the base.")
  var adapter: String?
  @Flag(help: "Also generate greedy answers and report exact-match accuracy.") var generate = false
  @Flag(help: "With --generate, skip the loss pass (it costs more than short answers do).")
  var noLoss = false
  @Option(help: "Longest sequence in tokens; longer samples are truncated.") var maxSeqLen = 2048
  @Option(help: "Compute threads.") var threads = ProcessInfo.processInfo.activeProcessorCount
  @Option(help: "Type of the merged matrices for --generate: q8_0, f16 or f32.") var adapterType = "q8_0"
  @Flag(help: "Skip (and count) malformed JSONL lines instead of failing.") var skipBadLines = false
  @Option(help: "Chat template to use instead of the model's (as given to train).") var chatTemplate: String?
  @Flag(help: "Print one JSON object.") var json = false

  func validate() throws {
    if noLoss && !generate { throw ValidationError("--no-loss needs --generate (nothing would be measured)") }
  }

  func run() throws {
    OpenBLASCoreType.ensureSet()
    let opened = try modelOptions.openForTraining(chatTemplate: chatTemplate)
    let (tokenizer, template) = (opened.tokenizer, opened.template)
    var model = opened.model
    let lora = try adapter.map { try readAdapter($0, model: model) }
    let samples: SampleFile
    do { samples = try SampleFile.read(path: data, skipBadLines: skipBadLines) } catch {
      throw CommandFailure("\(error)")
    }
    let encoder = SampleEncoder(tokenizer: tokenizer, template: template, maxTokens: maxSeqLen)
    let encoded = samples.samples.map { encoder.encode($0) }
    var report = EvalReport(
      samples: encoded.count, truncated: encoded.filter(\.truncated).count, skippedLines: samples.skippedLines)
    if !noLoss {
      do {
        let evaluator = try Evaluator(model: model, adapter: lora, maxSequenceLength: maxSeqLen, threads: threads)
        let (loss, count) = try evaluator.loss(encoded.map(\.sample))
        report.loss = loss
        report.lossTokens = count
        report.perplexity = exp(loss)
      } catch {
        throw CommandFailure("\(error)")
      }
    }

    if generate {
      if let lora {
        do {
          model = try Merge.merge(lora, into: model, type: MergeType(parsing: adapterType), pool: ThreadPool(threads: threads))
        } catch {
          throw CommandFailure("cannot merge the adapter: \(error)")
        }
      }
      var correct = 0
      for sample in samples.samples {
        guard let answerIndex = sample.messages.lastIndex(where: { $0.role == "assistant" }) else { continue }
        let answer = sample.messages[answerIndex].content
        let prompt = tokenizer.encode(
          template.render(Array(sample.messages[..<answerIndex]), addGenerationPrompt: true), addSpecial: true)
        // A few tokens past the answer's own: anything longer cannot match it (only surrounding
        // whitespace is ignored), so generating more would only cost time.
        let limit = tokenizer.encode(answer, addSpecial: false).count + 4
        let generator = Generator(
          model: model, tokenizer: tokenizer, contextLength: prompt.count + limit + 1, threads: threads)
        let result = try generator.generate(
          promptTokens: prompt, options: GenerationOptions(maxTokens: limit, sampling: .greedy))
        if result.text.trimmingCharacters(in: .whitespacesAndNewlines)
          == answer.trimmingCharacters(in: .whitespacesAndNewlines)
        {
          correct += 1
        }
      }
      report.exactMatch = Double(correct) / Double(max(1, samples.samples.count))
      report.exactMatchCount = correct
    }

    if json {
      try printJSON(report)
    } else {
      var line = "\(report.samples) samples"
      if let loss = report.loss, let perplexity = report.perplexity, let lossTokens = report.lossTokens {
        line += String(format: ", %d loss tokens: loss %.4f, perplexity %.3f", lossTokens, loss, perplexity)
      }
      if let em = report.exactMatch {
        line += String(format: ", exact match %.1f%% (%d/%d)", em * 100, report.exactMatchCount ?? 0, report.samples)
      }
      print(line)
    }
  }
}

struct EvalReport: Encodable {
  var samples: Int
  var truncated: Int
  var skippedLines: Int
  /// nil with --no-loss.
  var lossTokens: Int?
  var loss: Double?
  var perplexity: Double?
  var exactMatch: Double?
  var exactMatchCount: Int?

  enum CodingKeys: String, CodingKey {
    case samples, loss, perplexity, truncated
    case lossTokens = "loss_tokens"
    case skippedLines = "skipped_lines"
    case exactMatch = "exact_match"
    case exactMatchCount = "exact_match_count"
  }
}
