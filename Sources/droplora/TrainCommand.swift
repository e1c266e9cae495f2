// `droplora train`: fine-tune a LoRA/DropLoRA adapter on a JSONL file and write it (PEFT, plus
// GGUF-LoRA with --gguf) to --out, with checkpoints there for --resume. The numerics live in
// the Training module; this file parses options, prints progress and writes files.
import Adapters
import ArgumentParser
import Dispatch
import Foundation
import Kernels
import GGUF
import Llama
import Tokenization
import Training

struct TrainCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "train", abstract: "Fine-tune a LoRA / DropLoRA adapter on JSONL samples.")

  @OptionGroup var modelOptions: ModelOptions
  @Option(help: "Training samples (JSONL: messages, prompt/completion or Alpaca).") var data: String
  @Option(help: "Held-out samples (JSONL) for the eval loss.") var eval: String?
  @Option(help: "Hold out this fraction of --data for the eval loss instead.") var evalFraction: Double?
  @Option(help: "Output directory: the adapter (PEFT) and the checkpoint.") var out: String
  @Option(help: "droplora or lora.") var method = "droplora"
  @Option(help: "DropLoRA pruning rate p (rank directions dropped with probability p).")
  var pruningRate: Float = 0.5
  @Option(help: "DropLoRA mask granularity: token (authors' code) or step (paper's text).")
  var mask = "token"
  @Option(help: "LoRA rank r.") var rank = 32
  @Option(help: "LoRA alpha (default 2r).") var alpha: Double?
  @Flag(help: "rsLoRA scaling alpha/sqrt(r) instead of alpha/r.") var rslora = false
  @Option(help: "Input dropout before A.") var loraDropout: Float = 0.05
  @Option(help: "Target projections, comma-separated from q,k,v,o,gate,up,down.")
  var targets = "q,k,v,up,down"
  @Option(name: .customLong("init"), help: "Initialisation: lora, gaussian, pissa or milora.")
  var initialization = "lora"
  @Option(help: "Peak learning rate.") var lr: Float = 3e-4
  @Option(help: "Learning-rate schedule: linear or cosine.") var schedule = "linear"
  @Option(help: "Warm-up steps (default: 100, at most a tenth of the run).") var warmup: Int?
  @Option(help: "Sequences per optimizer step.") var batchSize = 16
  @Option(help: "Sequences per micro-batch (gradient accumulation step).") var microBatch = 4
  @Option(help: "Longest sequence in tokens; longer samples are truncated.") var maxSeqLen = 512
  @Option(help: "Epochs over the training samples (default 1).") var epochs: Double?
  @Option(help: "Optimizer steps (instead of --epochs).") var steps: Int?
  @Option(help: "Random seed (data order, noise, initialisation).") var seed: UInt64 = 0
  @Option(help: "Compute threads.") var threads = ProcessInfo.processInfo.activeProcessorCount
  @Flag(help: "Continue from the checkpoint in --out.") var resume = false
  @Flag(help: "Print one JSON object per step instead of a progress line.") var json = false
  @Option(help: "AdamW weight decay.") var weightDecay: Float = 0
  @Option(help: "Clip the global gradient norm to this (0 = off).") var maxGradNorm: Float = 1
  @Option(help: "Write a checkpoint every N steps (and at the end).") var saveEvery = 50
  @Option(help: "Eval loss every N steps (default: ten times per run, and at the end).")
  var evalEvery: Int?
  @Flag(help: "Also write the adapter as GGUF-LoRA (adapter.gguf).") var gguf = false
  @Flag(help: "Skip (and count) malformed JSONL lines instead of failing.") var skipBadLines = false
  @Option(help: "Chat template to use instead of the model's.") var chatTemplate: String?
  @Flag(help: "Recompute activations in the backward (less memory for long sequences, ~1/3 slower).")
  var recompute = false
  @Flag(help: "Pack short samples: each micro-batch holds as many samples as fit in micro-batch × max-seq-len tokens (attention stays within each sample).")
  var pack = false
  @Option(help: "Precision of the products through the frozen base: f32; bf16 (AVX512-BF16 CPUs only: bf16 operands, fp32 sums); or int8 (the forward's products as inference computes them, 8-bit activations and integer dot products, the backward's in fp32: about 1.3–1.4 times f32's speed on Gemma 3 270M at one thread).")
  var computeType = "f32"

  func validate() throws {
    if eval != nil && evalFraction != nil { throw ValidationError("give --eval or --eval-fraction, not both") }
    if epochs != nil && steps != nil { throw ValidationError("give --epochs or --steps, not both") }
    if let f = evalFraction, !(f > 0 && f < 1) { throw ValidationError("--eval-fraction must be in (0, 1)") }
    if batchSize < 1 || microBatch < 1 { throw ValidationError("--batch-size and --micro-batch must be >= 1") }
    if let e = epochs, !(e > 0) { throw ValidationError("--epochs must be positive") }
    if let s = steps, s < 1 { throw ValidationError("--steps must be >= 1") }
    if threads < 1 { throw ValidationError("--threads must be >= 1") }
    if saveEvery < 1 { throw ValidationError("--save-every must be >= 1") }
    _ = try loraConfig()
    _ = try compute()
  }

  func loraConfig() throws -> LoRATrainingConfig {
    guard let method = LoRAMethod(rawValue: method) else { throw ValidationError("--method must be droplora or lora") }
    guard let granularity = MaskGranularity(rawValue: mask) else { throw ValidationError("--mask must be step or token") }
    guard let initialization = LoRAInit(rawValue: initialization) else {
      throw ValidationError("--init must be lora, gaussian, pissa or milora")
    }
    var projections: [LlamaProjection] = []
    for name in targets.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) {
      guard let projection = LlamaProjection(anyName: name) else {
        throw ValidationError("unknown target '\(name)' (use q,k,v,o,gate,up,down)")
      }
      projections.append(projection)
    }
    let config = LoRATrainingConfig(
      rank: rank, alpha: alpha, useRSLoRA: rslora, dropout: loraDropout, targets: projections,
      method: method, pruningRate: pruningRate, granularity: granularity, initialization: initialization)
    do { try config.validate() } catch { throw ValidationError("\(error)") }
    return config
  }

  func compute() throws -> ComputeType {
    guard let type = ComputeType(rawValue: computeType) else {
      throw ValidationError("--compute-type must be f32, bf16 or int8")
    }
    if let why = type.unsupportedReason { throw ValidationError("--compute-type " + why) }
    return type
  }

  func run() throws {
    OpenBLASCoreType.ensureSet()
    let (model, tokenizer, template) = try modelOptions.openForTraining(chatTemplate: chatTemplate)
    let encoder = SampleEncoder(tokenizer: tokenizer, template: template, maxTokens: maxSeqLen)
    let loaded = try loadSamples(data, encoder: encoder)
    var trainSamples = loaded.samples
    var evalSamples: [EncodedSample] = []
    var truncated = loaded.truncated
    var skipped = loaded.skipped
    if let eval {
      let held = try loadSamples(eval, encoder: encoder)
      evalSamples = held.samples
      truncated += held.truncated
      skipped += held.skipped
    } else if let evalFraction {
      (trainSamples, evalSamples) = TrainingData.split(trainSamples, evalFraction: evalFraction, seed: seed)
    }
    guard !trainSamples.isEmpty else { throw CommandFailure("\(data): no training samples left") }

    let totalSteps = steps
      ?? max(1, Int((Double(trainSamples.count) * (epochs ?? 1) / Double(batchSize)).rounded(.up)))
    var config = TrainerConfig(
      lora: try loraConfig(), optimizer: AdamWConfig(weightDecay: weightDecay, maxGradNorm: maxGradNorm),
      learningRate: lr, schedule: ScheduleKind(rawValue: schedule) ?? .linear,
      warmupSteps: warmup ?? min(100, totalSteps / 10), totalSteps: totalSteps,
      microBatch: microBatch, maxSequenceLength: maxSeqLen, seed: seed, threads: threads)
    config.recomputeActivations = recompute
    config.packSequences = pack
    config.computeType = try compute()
    guard ScheduleKind(rawValue: schedule) != nil else { throw ValidationError("--schedule must be linear or cosine") }

    let trainer: Trainer
    do { trainer = try Trainer(model: model, config: config) } catch { throw CommandFailure("\(error)") }
    var position = DataPosition()
    if resume {
      do { position = try trainer.loadCheckpoint(from: out) } catch { throw CommandFailure("\(error)") }
    } else if FileManager.default.fileExists(atPath: out + "/checkpoint/state.json") {
      throw CommandFailure("\(out) already holds a checkpoint; pass --resume to continue it or choose another --out")
    }
    var dataOrder = TrainingData(samples: trainSamples, seed: seed)
    let progress = Progress(json: json, totalSteps: totalSteps)
    progress.note(
      "\(trainSamples.count) training samples, \(evalSamples.count) eval, \(truncated) truncated to \(maxSeqLen) tokens, "
        + "\(skipped) bad lines skipped; \(trainer.parameters.parameterCount) trainable parameters; "
        + "\(totalSteps) steps of \(batchSize)" + (resume ? ", resuming at step \(trainer.stepCount)" : ""))

    let evalEvery = self.evalEvery ?? max(1, totalSteps / 10)
    var evalLoss: Double?
    let started = DispatchTime.now().uptimeNanoseconds
    let firstStep = trainer.stepCount
    var tokensDone = 0
    do {
      while trainer.stepCount < totalSteps {
        let batch = dataOrder.nextBatch(size: batchSize, position: &position)
        guard let report = try trainer.step(batch) else { break }
        tokensDone += report.tokens
        if !evalSamples.isEmpty && (report.step % evalEvery == 0 || report.step == totalSteps) {
          evalLoss = try trainer.evaluate(evalSamples).loss
        }
        let elapsed = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
        let stepsDone = report.step - firstStep
        let eta = elapsed / Double(stepsDone) * Double(totalSteps - report.step)
        progress.step(report, evalLoss: evalLoss, tokensPerSecond: Double(tokensDone) / elapsed, eta: eta,
                      epoch: position.epoch)
        if report.step % saveEvery == 0 || report.step == totalSteps {
          try trainer.saveCheckpoint(to: out, dataPosition: position, gguf: false)
        }
      }
      try AdapterOutput.write(trainer.snapshot(), to: out, base: model.hyper, gguf: gguf)
    } catch {
      progress.finish()
      throw CommandFailure("\(error)")
    }
    progress.finish()
    let seconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
    let summary = TrainSummary(
      steps: trainer.stepCount, tokens: tokensDone, seconds: seconds,
      tokensPerSecond: seconds > 0 ? Double(tokensDone) / seconds : 0, evalLoss: evalLoss,
      peakRSSMiB: Double(peakRSSBytes()) / 1_048_576, adapter: out)
    if json { try printJSON(summary) }
    progress.note(
      "wrote \(out)/\(PEFTFormat.weightsFileName)" + (gguf ? " and \(out)/adapter.gguf" : "")
        + String(format: "; %.0f tok/s, peak RSS %.0f MiB", summary.tokensPerSecond, summary.peakRSSMiB))
  }

  func loadSamples(_ path: String, encoder: SampleEncoder) throws
    -> (samples: [EncodedSample], truncated: Int, skipped: Int)
  {
    let file: SampleFile
    do { file = try SampleFile.read(path: path, skipBadLines: skipBadLines) } catch {
      throw CommandFailure("\(error)")
    }
    var samples: [EncodedSample] = []
    var truncated = 0
    var empty = 0
    for sample in file.samples {
      let (encoded, wasTruncated) = encoder.encode(sample)
      if wasTruncated { truncated += 1 }
      // A sample whose answer was cut away entirely teaches nothing.
      if encoded.lossTokenCount == 0 { empty += 1; continue }
      samples.append(encoded)
    }
    return (samples, truncated, file.skippedLines + empty)
  }
}

/// The live progress line on a terminal, plain lines otherwise, JSON lines with --json.
final class Progress {
  let json: Bool
  let totalSteps: Int
  let terminal = isatty(STDOUT_FILENO) == 1
  var lineOpen = false

  init(json: Bool, totalSteps: Int) {
    self.json = json
    self.totalSteps = totalSteps
  }

  func note(_ text: String) {
    finish()
    FileHandle.standardError.write(Data((text + "\n").utf8))
  }

  func step(_ r: StepReport, evalLoss: Double?, tokensPerSecond: Double, eta: Double, epoch: Int) {
    if json {
      let line = StepLine(
        step: r.step, totalSteps: totalSteps, epoch: epoch, loss: r.loss, evalLoss: evalLoss,
        lr: r.learningRate, gradNorm: r.gradientNorm, tokensPerSecond: tokensPerSecond, etaSeconds: eta)
      try? printJSON(line)
      return
    }
    let evalText = evalLoss.map { String(format: "%.4f", $0) } ?? "-"
    let text = String(
      format: "step %d/%d  loss %.4f  eval %@  lr %.2e  %.0f tok/s  ETA %@", r.step, totalSteps, r.loss,
      evalText, r.learningRate, tokensPerSecond, Self.duration(eta))
    if terminal {
      FileHandle.standardOutput.write(Data(("\r\u{1B}[K" + text).utf8))
      lineOpen = true
    } else {
      print(text)
    }
  }

  func finish() {
    if lineOpen {
      FileHandle.standardOutput.write(Data("\n".utf8))
      lineOpen = false
    }
  }

  static func duration(_ seconds: Double) -> String {
    guard seconds.isFinite else { return "-" }
    let s = Int(seconds.rounded())
    return s >= 3600 ? String(format: "%dh%02dm", s / 3600, s % 3600 / 60) : String(format: "%dm%02ds", s / 60, s % 60)
  }
}

/// The last JSON line of a run (no "step" key, so step parsers can skip it).
struct TrainSummary: Encodable {
  let steps: Int
  let tokens: Int
  let seconds: Double
  let tokensPerSecond: Double
  let evalLoss: Double?
  let peakRSSMiB: Double
  let adapter: String

  enum CodingKeys: String, CodingKey {
    case tokens, seconds, adapter
    case steps = "steps_done"
    case tokensPerSecond = "tokens_per_second"
    case evalLoss = "eval_loss"
    case peakRSSMiB = "peak_rss_mib"
  }
}

struct StepLine: Encodable {
  let step: Int
  let totalSteps: Int
  let epoch: Int
  let loss: Double
  let evalLoss: Double?
  let lr: Float
  let gradNorm: Double
  let tokensPerSecond: Double
  let etaSeconds: Double

  enum CodingKeys: String, CodingKey {
    case step, epoch, loss, lr
    case totalSteps = "total_steps"
    case evalLoss = "eval_loss"
    case gradNorm = "grad_norm"
    case tokensPerSecond = "tokens_per_second"
    case etaSeconds = "eta_seconds"
  }
}
