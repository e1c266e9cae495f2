// The trainer cache: each adapter's Trainer is built on first use (from its checkpoint when
// there is one), checkpointed with the journal position, and released when idle.
import Adapters
import Dispatch
import DurableFiles
import Engine
import Foundation
import Llama
import Tokenization
import Training

extension BackgroundTraining {
  /// An idle trainer (nothing pending, its state in the checkpoint) gives its memory back; the
  /// next push rebuilds it from the checkpoint, optimizer state included.
  func releaseIfCheckpointed(_ job: Job) {
    condition.withLock {
      guard !job.dirty, job.trainer != nil else { return }
      job.trainer = nil
      trimPending = true
    }
  }

  func makeTrainer(
    _ name: String, _ job: Job, _ settings: BackgroundTrainingSettings, pruningRate: Double
  ) throws -> Trainer {
    guard let adapter = engine.registry.adapter(named: name) else { throw TrainingControlError.unknownAdapter(name) }
    let targets = Array(Set(adapter.targets.map(\.projection)))
    let lora = LoRATrainingConfig(
      rank: adapter.rank, alpha: adapter.config.loraAlpha, useRSLoRA: adapter.config.useRSLoRA ?? false,
      dropout: settings.loraDropout, targets: LlamaProjection.allCases.filter(targets.contains),
      method: pruningRate > 0 ? .droplora : .lora, pruningRate: Float(pruningRate),
      granularity: settings.granularity)
    // A stream has no end: the schedule is flat after warm-up (linear over a horizon never reached).
    var config = TrainerConfig(
      lora: lora, learningRate: settings.learningRate, schedule: .linear, warmupSteps: 10,
      totalSteps: Int(Int32.max), microBatch: settings.microBatch, maxSequenceLength: settings.maxSequenceLength,
      seed: Self.stableSeed(name), threads: settings.threads)
    config.computeType = settings.computeType
    let trainer = try Trainer(model: engine.registry.base, config: config)
    let checkpointDirectory = directory + "/" + name
    if FileManager.default.fileExists(atPath: checkpointDirectory + "/checkpoint/state.json")
      || FileManager.default.fileExists(atPath: checkpointDirectory + "/checkpoint.old/state.json")
    {
      let position = try trainer.loadCheckpoint(from: checkpointDirectory)
      condition.withLock {
        job.consumed = Int64(position.cursor)
        job.replayed = position.epoch
        job.status.step = trainer.stepCount
      }
      log("training '\(name)' resumed at step \(trainer.stepCount), journal id \(position.cursor)")
    } else {
      try trainer.parameters.load(from: adapter)
    }
    return trainer
  }

  /// FNV-1a of the name: the same adapter gets the same noise stream in every run.
  static func stableSeed(_ name: String) -> UInt64 {
    name.utf8.reduce(0xcbf2_9ce4_8422_2325) { ($0 ^ UInt64($1)) &* 0x0000_0100_0000_01b3 }
  }

  func checkpoint(_ name: String, _ job: Job) {
    guard let trainer = job.trainer, !condition.withLock({ job.removed }) else { return }
    let position = condition.withLock { DataPosition(epoch: job.replayed, cursor: Int(job.consumed)) }
    do {
      try trainer.saveCheckpoint(to: try adapterDirectory(name), dataPosition: position)
      condition.withLock { job.dirty = false }
    } catch {
      log("training '\(name)': checkpoint failed: \(error)")
    }
  }


  /// The job for `name`, loaded from its files on first use.
  func job(for name: String) -> Job {
    condition.withLock {
      if let job = jobs[name] { return job }
      let job = loadJob(name)
      jobs[name] = job
      return job
    }
  }

  /// The adapter's training facts from the catalog (called under `condition`).
  func loadJob(_ name: String) -> Job {
    let job = Job()
    let entry = try? catalog.adapter(named: name)
    let versions = (try? catalog.versions(of: name)) ?? []
    job.paused = entry?.paused ?? false
    job.status.servingVersion = entry?.servingVersion ?? 0
    job.status.servingEvalLoss = versions.first { $0.version == entry?.servingVersion }?.evalLoss
    job.status.state = job.paused ? .paused : .idle
    job.status.lastPublish = versions.last { $0.published }?.created
    // The checkpoint's journal position, without building a trainer yet.
    if let data = FileManager.default.contents(atPath: "\(directory)/\(name)/checkpoint/state.json"),
      let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
      let position = object["dataPosition"] as? [String: Any], let cursor = position["cursor"] as? Int
    {
      job.consumed = Int64(cursor)
      job.status.step = object["step"] as? Int ?? 0
    }
    return job
  }
}
