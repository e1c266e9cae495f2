// Streamed DropLoRA fine-tuning inside the daemon. Pushed samples are validated and written to
// the durable journal; one background thread trains every adapter that has new samples, one
// optimizer step at a time, and only while no generation is queued or running (a step in
// progress is abandoned at its next micro-batch boundary and retried later). Every
// `publishEvery` steps, and when an adapter's backlog runs dry, the snapshot is evaluated on
// the adapter's held-out samples against the serving version; if it is not worse by more
// than the margin it is saved as a new version and swapped into the registry (requests in
// flight keep the weights they started with), else kept as a candidate. Checkpoints hold the
// adapter, the optimizer, the random state and the journal position together, so a restart
// resumes exactly where the last checkpoint was.
import Adapters
import Dispatch
import DurableFiles
import Engine
import Foundation
import Llama
import Tokenization
import Training

public struct BackgroundTrainingSettings: Sendable, Equatable {
  public var learningRate: Float = 3e-4
  public var pruningRate: Float = 0.5
  public var granularity: Training.MaskGranularity = .step
  /// Read when an adapter's trainer is made (the daemon asks for a restart to change it).
  public var computeType: ComputeType = .f32
  public var loraDropout: Float = 0.05
  public var batchSize = 8
  public var microBatch = 2
  public var maxSequenceLength = 512
  public var publishEvery = 50
  public var replayRatio = 0.25
  public var publishMargin = 0.02
  public var keepVersions = 5
  public var maxBacklog = 100_000
  /// Under sustained serving load, the least fraction of wall time training still gets.
  public var minComputeShare = 0.05
  public var threads = 1
  /// Held-out samples (the newest) a publish decision is measured on.
  public var evaluationSamples = 64
  public init() {}
}

/// `waiting`: samples are pending but serving has the cores (the reason says how many).
public enum TrainingState: String, Sendable, Codable { case idle, waiting, training, paused, stopped, failed }

public struct TrainingStatus: Sendable, Codable, Equatable {
  public var adapter: String
  public var state: TrainingState
  public var reason: String?
  public var samplesReceived: Int
  public var samplesTrained: Int
  public var samplesPending: Int
  public var samplesHeldOut: Int
  public var step: Int
  /// Passes of the replay walk over the samples trained so far.
  public var replayEpoch = 0
  /// Moving average of the training loss (nats per target token).
  public var trainLoss: Double?
  public var evalLoss: Double?
  public var servingEvalLoss: Double?
  public var learningRate: Double?
  public var tokensPerSecond: Double?
  public var servingVersion: Int
  public var candidateVersion: Int?
  /// Unix seconds.
  public var lastPublish: Double?
  public var lastDecision: String?
}

public struct TrainingVersion: Sendable, Codable, Equatable {
  public var version: Int
  public var step: Int
  public var evalLoss: Double?
  public var trainLoss: Double?
  /// Unix seconds.
  public var created: Double
  public var published: Bool

  public init(version: Int, step: Int, evalLoss: Double?, trainLoss: Double?, created: Double, published: Bool) {
    self.version = version
    self.step = step
    self.evalLoss = evalLoss
    self.trainLoss = trainLoss
    self.created = created
    self.published = published
  }
}

public struct IngestReport: Sendable, Equatable {
  public struct Rejection: Sendable, Equatable {
    public var line: Int
    public var reason: String
  }
  public var accepted: Int
  public var duplicates: Int
  public var rejected: [Rejection]
}

public enum TrainingControlError: Error, Sendable, Equatable, CustomStringConvertible {
  case unknownAdapter(String)
  case backlogFull(pending: Int, retryAfterSeconds: Int)
  case unknownVersion(Int)
  case invalid(String)
  case failed(String)

  public var description: String {
    switch self {
    case .unknownAdapter(let name): return "no adapter named '\(name)' is loaded"
    case .backlogFull(let pending, _): return "\(pending) samples are waiting to be trained; push again later"
    case .unknownVersion(let v): return "no saved version \(v)"
    case .invalid(let message), .failed(let message): return message
    }
  }
}

public final class BackgroundTraining: @unchecked Sendable {
  // unchecked: `jobs`, `settings` and `running` are guarded by `condition`; a Job's trainer is
  // touched only by the training thread, its reported fields under `condition`.
  public let journal: SampleJournal
  /// Owns each adapter's pruning rate, paused flag, overrides, versions and serving version.
  public let catalog: AdapterCatalog
  private let engine: ServingEngine
  private let tokenizer: Tokenizer
  private let directory: String
  private let log: @Sendable (String) -> Void
  private let condition = NSCondition()
  private var settings: BackgroundTrainingSettings
  private var jobs: [String: Job] = [:]
  private var running = false
  private var thread: Thread?
  private let finished = DispatchSemaphore(value: 0)
  private let encoder: SampleEncoder?
  /// When the last step ended and how long it took (for the minimum share under load).
  private var lastStepEnded = DispatchTime.now().uptimeNanoseconds
  private var lastStepSeconds = 1.0
  /// A trainer was released (idle or deleted): the thread trims the heap once its step is over.
  private var trimPending = false

  /// `stateDirectory/training/<adapter>/` holds each adapter's checkpoint and versions; the
  /// journal is `stateDirectory/journal.sqlite`.
  public init(
    engine: ServingEngine, tokenizer: Tokenizer, stateDirectory: String, journal: SampleJournal,
    catalog: AdapterCatalog, settings: BackgroundTrainingSettings, log: @escaping @Sendable (String) -> Void
  ) {
    self.engine = engine
    self.tokenizer = tokenizer
    self.settings = settings
    self.log = log
    directory = stateDirectory + "/training"
    self.journal = journal
    self.catalog = catalog
    encoder = (try? tokenizer.chatTemplate()).map {
      SampleEncoder(tokenizer: tokenizer, template: $0, maxTokens: settings.maxSequenceLength)
    }
  }

  // MARK: - control (any thread)

  /// Serves each adapter's latest published version (from an earlier run) and starts the thread.
  public func start() {
    for entry in (try? catalog.all()) ?? [] where engine.registry.adapter(named: entry.name) != nil {
      guard let version = entry.servingVersion else { continue }
      do {
        try engine.registry.add(try readVersion(entry.name, version), name: entry.name)
      } catch {
        log("training '\(entry.name)': version \(version) does not load, serving the adapter's file: \(error)")
      }
    }
    condition.withLock {
      running = true
      let thread = Thread { [self] in loop() }
      thread.name = "droplorad-training"
      thread.stackSize = 8 << 20
      self.thread = thread
      thread.start()
    }
  }

  /// Ends the step in progress at its next micro-batch boundary, checkpoints and joins.
  public func stop() {
    let wasRunning = condition.withLock {
      let was = running
      running = false
      condition.broadcast()
      return was
    }
    if wasRunning { finished.wait() }
  }

  /// Threads a training step computes on.
  public var threads: Int { condition.withLock { settings.threads } }

  public func update(_ newSettings: BackgroundTrainingSettings) {
    condition.withLock {
      settings = newSettings
      condition.broadcast()
    }
  }

  /// Validates every line of a JSONL body and stores the good ones durably. A line may carry
  /// a string `"id"`; a line whose id was stored before is counted as a duplicate, not stored.
  /// Lines end at LF or CRLF; a line that is not UTF-8 is rejected alone, by its number.
  public func ingest(adapter: String, body: String) throws(TrainingControlError) -> IngestReport {
    try ingest(adapter: adapter, body: Array(body.utf8))
  }

  public func ingest(adapter: String, body: [UInt8]) throws(TrainingControlError) -> IngestReport {
    guard engine.registry.adapter(named: adapter) != nil else { throw .unknownAdapter(adapter) }
    let limit = condition.withLock { settings.maxBacklog }
    let counts = try counts(adapter)
    guard counts.pending < limit else {
      throw .backlogFull(pending: counts.pending, retryAfterSeconds: 30)
    }
    var good: [(clientID: String?, line: String)] = []
    var rejected: [IngestReport.Rejection] = []
    // Split on bytes (LF, and the CR of a CRLF goes with the trim), before decoding.
    let lines = body.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
    for (index, bytes) in lines.enumerated() {
      guard let line = String(validating: bytes, as: UTF8.self) else {
        rejected.append(.init(line: index + 1, reason: "not valid UTF-8"))
        continue
      }
      let trimmed = line.trimmingCharacters(in: .whitespacesAndNewlines)
      guard !trimmed.isEmpty else { continue }
      guard let object = (try? JSONSerialization.jsonObject(with: Data(trimmed.utf8))) as? [String: Any] else {
        rejected.append(.init(line: index + 1, reason: "not a JSON object"))
        continue
      }
      do {
        _ = try TrainingSample.parse(object: object)
      } catch {
        rejected.append(.init(line: index + 1, reason: error.reason))
        continue
      }
      if let id = object["id"], !(id is String) {
        rejected.append(.init(line: index + 1, reason: "\"id\" must be a string"))
        continue
      }
      good.append((object["id"] as? String, trimmed))
    }
    do {
      let outcome = try journal.append(adapter: adapter, lines: good)
      let job = job(for: adapter)
      condition.withLock {
        job.mayHavePending = true
        condition.broadcast()
      }
      return IngestReport(accepted: outcome.accepted, duplicates: outcome.duplicates, rejected: rejected)
    } catch {
      throw .failed("the journal could not store the samples: \(error)")
    }
  }

  public func status(adapter: String) throws(TrainingControlError) -> TrainingStatus {
    guard engine.registry.adapter(named: adapter) != nil else { throw .unknownAdapter(adapter) }
    let job = job(for: adapter)
    let counts = try counts(adapter, after: job.consumedSnapshot)
    return condition.withLock {
      var status = job.status
      status.adapter = adapter
      status.samplesReceived = counts.training + counts.heldOut
      status.samplesHeldOut = counts.heldOut
      status.samplesPending = counts.pending
      status.samplesTrained = counts.training - counts.pending
      // Pending samples and no step running: say so rather than "idle".
      if status.state == .idle, counts.pending > 0, !job.paused {
        status.state = .waiting
        status.reason =
          engine.isBusy
          ? "waiting for serving: \(counts.pending) samples pending" : "\(counts.pending) samples pending, next step soon"
      }
      // How many times the replay walk has gone through the trained samples.
      status.replayEpoch = status.samplesTrained > 0 ? job.replayed / status.samplesTrained : 0
      return status
    }
  }

  public enum Action: String, Sendable { case start, pause, resume, stop, publish }

  public func control(adapter: String, action: Action) throws(TrainingControlError) -> TrainingStatus {
    guard engine.registry.adapter(named: adapter) != nil else { throw .unknownAdapter(adapter) }
    let job = job(for: adapter)
    do {
      let paused: Bool? =
        switch action {
        case .start, .resume: false
        case .pause, .stop: true
        case .publish: nil
        }
      if let paused { try catalog.update(adapter) { $0.paused = paused } }
    } catch {
      throw Self.mapped(error)
    }
    condition.withLock {
      switch action {
      case .start, .resume:
        job.paused = false
        if job.status.state != .training { job.status.state = .idle }
        job.status.reason = nil
      case .pause:
        job.paused = true
        job.status.state = .paused
      case .stop:
        job.paused = true
        job.status.state = .stopped
      case .publish:
        job.publishRequested = true
      }
      condition.broadcast()
    }
    return try status(adapter: adapter)
  }

  /// Per-adapter hyper-parameters that differ from the daemon's training settings.
  public struct Overrides: Sendable, Codable, Equatable {
    public var learningRate: Float?
    public var batchSize: Int?
    public var publishEvery: Int?
    public init(learningRate: Float? = nil, batchSize: Int? = nil, publishEvery: Int? = nil) {
      self.learningRate = learningRate
      self.batchSize = batchSize
      self.publishEvery = publishEvery
    }
  }

  /// Changes the adapter's hyper-parameters from its next step on. A new learning rate
  /// rebuilds the trainer from a fresh checkpoint (the optimizer state carries over).
  public func change(adapter: String, _ changes: Overrides) throws(TrainingControlError) -> TrainingStatus {
    guard engine.registry.adapter(named: adapter) != nil else { throw .unknownAdapter(adapter) }
    let job = job(for: adapter)
    do {
      try catalog.update(adapter) {
        if let lr = changes.learningRate { $0.learningRate = Double(lr) }
        if let b = changes.batchSize { $0.batchSize = b }
        if let p = changes.publishEvery { $0.publishEvery = p }
      }
    } catch {
      throw Self.mapped(error)
    }
    condition.withLock {
      if changes.learningRate != nil { job.rebuild = true }
      condition.broadcast()
    }
    return try status(adapter: adapter)
  }

  public func versions(adapter: String) throws(TrainingControlError) -> [TrainingVersion] {
    guard engine.registry.adapter(named: adapter) != nil else { throw .unknownAdapter(adapter) }
    do {
      return try catalog.versions(of: adapter)
    } catch {
      throw Self.mapped(error)
    }
  }

  /// Serves saved version `version` again (training continues from where it is).
  public func rollback(adapter: String, to version: Int) throws(TrainingControlError) -> TrainingStatus {
    guard engine.registry.adapter(named: adapter) != nil else { throw .unknownAdapter(adapter) }
    let job = job(for: adapter)
    let versions = try versions(adapter: adapter)
    guard versions.contains(where: { $0.version == version }) else { throw .unknownVersion(version) }
    let weights: LoRAAdapter
    do {
      weights = try readVersion(adapter, version)
    } catch {
      throw .failed("version \(version) does not load: \(error)")
    }
    do {
      try catalog.rollback(adapter, to: version) { try engine.registry.add(weights, name: adapter) }
    } catch {
      throw Self.mapped(error)
    }
    condition.withLock {
      job.status.servingVersion = version
      job.status.servingEvalLoss = versions.first { $0.version == version }?.evalLoss
      job.status.lastDecision = "rolled back to version \(version)"
    }
    return try status(adapter: adapter)
  }

  // MARK: - the training thread

  private func loop() {
    while true {
      // Serving first: wait while generations are queued or running.
      var next: (String, Job)?
      condition.lock()
      while running {
        if trimPending {
          // A trainer was let go and this thread's step (the last user of its buffers) has
          // returned: give the freed pages back.
          trimPending = false
          FreedMemory.returnToSystem()
        }
        if !engine.isBusy || starvedLongEnough(), let candidate = nextJob() {
          next = candidate
          break
        }
        _ = condition.wait(until: Date(timeIntervalSinceNow: 0.05))
      }
      let keepGoing = running
      condition.unlock()
      guard keepGoing, let (name, job) = next else { break }
      trainOneStep(name, job)
      // Deleted during the step: whatever the step wrote for it (a version directory) goes too.
      if condition.withLock({ job.removed }) { try? FileManager.default.removeItem(atPath: directory + "/" + name) }
    }
    // Leave every trained adapter resumable.
    for (name, job) in condition.withLock({ jobs.map { ($0.key, $0.value) } }) where job.dirty {
      checkpoint(name, job)
    }
    finished.signal()
  }

  /// An adapter with untrained samples that is not paused, round robin. Called under `condition`.
  private func nextJob() -> (String, Job)? {
    let names = engine.registry.names
    guard !names.isEmpty else { return nil }
    for name in names {
      let job = jobs[name] ?? loadJob(name)
      jobs[name] = job
      guard job.status.state != .failed, !job.paused else { continue }
      // The journal is asked only while new samples may be waiting: an idle daemon polls no
      // database (ingest sets the flag again).
      if job.mayHavePending {
        let pending = (try? journal.counts(adapter: name, after: job.consumed).pending) ?? 0
        job.mayHavePending = pending > 0
      }
      if job.mayHavePending || job.publishRequested || job.dirty { return (name, job) }
    }
    return nil
  }

  private func trainOneStep(_ name: String, _ job: Job) {
    guard let entry = try? catalog.adapter(named: name) else { return }
    let (settings, rebuild) = condition.withLock { () -> (BackgroundTrainingSettings, Bool) in
      var s = self.settings
      s.learningRate = entry.learningRate.map(Float.init) ?? s.learningRate
      s.batchSize = entry.batchSize ?? s.batchSize
      s.publishEvery = entry.publishEvery ?? s.publishEvery
      let rebuild = job.rebuild
      job.rebuild = false
      return (s, rebuild)
    }
    if rebuild, job.trainer != nil {
      // The learning rate lives in the trainer's configuration: checkpoint, then build anew.
      checkpoint(name, job)
      job.trainer = nil
    }
    do {
      let trainer = try job.trainer ?? makeTrainer(name, job, settings, pruningRate: entry.pruningRate)
      job.trainer = trainer
      let fresh = try journal.trainingSamples(adapter: name, after: job.consumed, limit: settings.batchSize)
      if fresh.isEmpty {
        // Backlog drained (or a publish was asked for): decide on what has been trained.
        if job.dirty || job.publishRequested { try publish(name, job, trainer, settings) }
        releaseIfCheckpointed(job)
        return
      }
      let replayCount = job.consumed > 0 ? Int((Double(settings.batchSize) * settings.replayRatio).rounded()) : 0
      let replayed = try replay(name, job, count: min(replayCount, max(0, settings.batchSize - fresh.count)))
      let batch = try (fresh + replayed).map { try encode($0) }
      condition.withLock { job.status.state = .training }
      let started = DispatchTime.now().uptimeNanoseconds
      // A step taken for the minimum share runs to its end alongside generation.
      let forced = engine.isBusy
      guard
        let report = try trainer.step(
          batch, isCancelled: { [engine] in (!forced && engine.isBusy) || !self.isRunning })
      else {
        condition.withLock { job.status.state = .idle }
        return  // serving needs the cores; nothing consumed, retried later
      }
      let seconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
      condition.withLock {
        lastStepEnded = DispatchTime.now().uptimeNanoseconds
        lastStepSeconds = seconds
      }
      condition.withLock {
        job.consumed = fresh.last!.id
        job.dirty = true
        job.stepsSincePublish += 1
        job.status.step = report.step
        job.status.trainLoss = job.status.trainLoss.map { 0.9 * $0 + 0.1 * report.loss } ?? report.loss
        job.status.learningRate = Double(report.learningRate)
        job.status.tokensPerSecond = seconds > 0 ? Double(report.tokens) / seconds : nil
      }
      // Publish every publishEvery steps, and as soon as the backlog is drained (so "idle with
      // nothing pending" always means the latest training has been judged).
      let drained = try journal.counts(adapter: name, after: job.consumed).pending == 0
      if job.stepsSincePublish >= settings.publishEvery || drained { try publish(name, job, trainer, settings) }
      if drained { releaseIfCheckpointed(job) }
      condition.withLock { job.status.state = .idle }
    } catch {
      log("training '\(name)' failed: \(error)")
      condition.withLock {
        job.status.state = .failed
        job.status.reason = "\(error)"
      }
    }
  }

  private var isRunning: Bool { condition.withLock { running } }

  /// An idle trainer (nothing pending, its state in the checkpoint) gives its memory back; the
  /// next push rebuilds it from the checkpoint, optimizer state included.
  private func releaseIfCheckpointed(_ job: Job) {
    condition.withLock {
      guard !job.dirty, job.trainer != nil else { return }
      job.trainer = nil
      trimPending = true
    }
  }

  /// Under sustained load: whether training has waited long enough that a step now keeps its
  /// share of the time at `minComputeShare` (a step of s seconds every s(1-share)/share).
  /// Called under `condition`.
  private func starvedLongEnough() -> Bool {
    let share = settings.minComputeShare
    guard share > 0 else { return false }
    let waited = Double(DispatchTime.now().uptimeNanoseconds - lastStepEnded) / 1e9
    // Before any step has been timed, assume a second.
    return waited >= max(lastStepSeconds, 0.05) * (1 - share) / share
  }

  private func makeTrainer(
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

  private func replay(_ name: String, _ job: Job, count: Int) throws -> [JournalSample] {
    guard count > 0 else { return [] }
    let trained = try journal.counts(adapter: name, after: job.consumed)
    let available = trained.training - trained.pending
    guard available > 0 else { return [] }
    // A fixed walk through the trained samples (the position is checkpointed with the rest).
    let offset = job.replayed % available
    var samples = try journal.trainedSamples(adapter: name, upTo: job.consumed, offset: offset, limit: count)
    if samples.count < count {
      samples += try journal.trainedSamples(adapter: name, upTo: job.consumed, offset: 0, limit: count - samples.count)
    }
    job.replayed += samples.count
    return samples
  }

  private func encode(_ sample: JournalSample) throws -> EncodedSample {
    guard let encoder else { throw TrainingControlError.failed("the model has no chat template to render samples with") }
    return encoder.encode(try TrainingSample.parse(Substring(sample.line))).sample
  }

  private func publish(_ name: String, _ job: Job, _ trainer: Trainer, _ settings: BackgroundTrainingSettings) throws {
    let heldOut = try journal.heldOutSamples(adapter: name, limit: settings.evaluationSamples).map { try encode($0) }
    let candidate = heldOut.isEmpty ? nil : try trainer.evaluate(heldOut).loss
    var serving: Double?
    if !heldOut.isEmpty, let current = engine.registry.adapter(named: name) {
      serving = try Evaluator(
        model: engine.registry.base, adapter: current, maxSequenceLength: settings.maxSequenceLength,
        threads: settings.threads
      ).loss(heldOut).loss
    }
    let accept = candidate == nil || serving == nil || candidate! <= serving! + settings.publishMargin
    let snapshot = trainer.snapshot()
    let version = (try catalog.versions(of: name).map(\.version).max() ?? 0) + 1
    try writeVersion(name, version, snapshot)
    let entry = TrainingVersion(
      version: version, step: trainer.stepCount, evalLoss: candidate, trainLoss: job.status.trainLoss,
      created: Date().timeIntervalSince1970, published: accept)
    let describe = { (x: Double?) in x.map { String(format: "%.4f", $0) } ?? "n/a" }
    let decision =
      accept
      ? "published version \(version): held-out loss \(describe(candidate)) vs serving \(describe(serving))"
      : "kept version \(version) as a candidate: held-out loss \(describe(candidate)) is worse than the serving \(describe(serving)) by more than \(settings.publishMargin)"
    // One transaction: the version is recorded and (when published) swapped in, or, when the
    // adapter was deleted meanwhile, neither happens.
    let doomed = try catalog.recordVersion(name, entry, keep: settings.keepVersions) {
      try engine.registry.add(snapshot, name: name)
    }
    for old in doomed { try? FileManager.default.removeItem(atPath: versionPath(name, old)) }
    condition.withLock {
      job.status.evalLoss = candidate
      job.status.lastDecision = decision
      job.stepsSincePublish = 0
      job.publishRequested = false
      if accept {
        job.status.servingVersion = version
        job.status.servingEvalLoss = candidate
        job.status.lastPublish = entry.created
        job.status.candidateVersion = nil
      } else {
        job.status.candidateVersion = version
      }
    }
    log("training '\(name)': \(decision)")
    checkpoint(name, job)
  }

  private func checkpoint(_ name: String, _ job: Job) {
    guard let trainer = job.trainer, !condition.withLock({ job.removed }) else { return }
    let position = condition.withLock { DataPosition(epoch: job.replayed, cursor: Int(job.consumed)) }
    do {
      try FileManager.default.createDirectory(atPath: directory + "/" + name, withIntermediateDirectories: true)
      try trainer.saveCheckpoint(to: directory + "/" + name, dataPosition: position)
      condition.withLock { job.dirty = false }
    } catch {
      log("training '\(name)': checkpoint failed: \(error)")
    }
  }

  // MARK: - files

  private func versionPath(_ name: String, _ version: Int) -> String { "\(directory)/\(name)/versions/\(version)" }

  private func writeVersion(_ name: String, _ version: Int, _ adapter: LoRAAdapter) throws {
    let path = versionPath(name, version)
    let temporary = path + ".tmp"
    try DurableFile.removeTree(temporary)
    try PEFTFormat.write(adapter, to: temporary, base: engine.registry.base.hyper)
    // Synced whole before the rename, so a published version is never an empty directory after a crash.
    try DurableFile.install(directory: temporary, at: path, replacing: true)
  }

  private func readVersion(_ name: String, _ version: Int) throws -> LoRAAdapter {
    try AdapterFile.read(path: versionPath(name, version), base: engine.registry.base.hyper)
  }

  /// The job for `name`, loaded from its files on first use.
  private func job(for name: String) -> Job {
    condition.withLock {
      if let job = jobs[name] { return job }
      let job = loadJob(name)
      jobs[name] = job
      return job
    }
  }

  /// The adapter's training facts from the catalog (called under `condition`).
  private func loadJob(_ name: String) -> Job {
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

  private func counts(_ name: String, after: Int64 = .max) throws(TrainingControlError) -> JournalCounts {
    do {
      let job = job(for: name)
      return try journal.counts(adapter: name, after: after == .max ? job.consumedSnapshot : after)
    } catch {
      throw .failed("the journal cannot be read: \(error)")
    }
  }

  /// The adapter was deleted: its trainer is dropped (its memory freed once a step in progress
  /// ends), its checkpoint, versions and journal samples removed, so a new adapter of the same
  /// name starts afresh. The catalog entry is already gone, so nothing can publish it again.
  public func forget(adapter name: String) {
    condition.withLock {
      // The training thread owns the trainer: dropping the job lets it go once a step in
      // progress returns (nothing of it is written after that).
      jobs[name]?.removed = true
      jobs[name] = nil
      trimPending = true
    }
    try? FileManager.default.removeItem(atPath: directory + "/" + name)
    do {
      try journal.removeSamples(adapter: name)
    } catch {
      log("adapter '\(name)' deleted, but its samples stay in the journal: \(error)")
    }
  }

  static func mapped(_ error: any Error) -> TrainingControlError {
    switch error as? CatalogError {
    case .unknownAdapter(let name): return .unknownAdapter(name)
    case .unknownVersion(_, let version): return .unknownVersion(version)
    default: return .failed("\(error)")
    }
  }
}

private final class Job {
  /// Mirrors the catalog's flag for the scheduler (written together with it).
  var paused = false
  /// The adapter was deleted; nothing of it may be written any more.
  var removed = false
  var status = TrainingStatus(
    adapter: "", state: .idle, samplesReceived: 0, samplesTrained: 0, samplesPending: 0, samplesHeldOut: 0, step: 0,
    servingVersion: 0)
  var trainer: Trainer?
  /// The last journal id trained on.
  var consumed: Int64 = 0
  /// Replayed samples so far (the replay walk's position).
  var replayed = 0
  /// Trained since the last checkpoint.
  var dirty = false
  var stepsSincePublish = 0
  var publishRequested = false
  /// Untrained samples may be in the journal (unknown after a start, set by every push).
  var mayHavePending = true
  /// The learning rate changed: rebuild the trainer before the next step.
  var rebuild = false
  var consumedSnapshot: Int64 { consumed }
}
