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
  public var threads = 1
  /// Held-out samples (the newest) a publish decision is measured on.
  public var evaluationSamples = 64
  public init() {}
}

public enum TrainingState: String, Sendable, Codable { case idle, training, paused, stopped, failed }

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

  /// `stateDirectory/training/<adapter>/` holds each adapter's checkpoint and versions; the
  /// journal is `stateDirectory/journal.sqlite`.
  public init(
    engine: ServingEngine, tokenizer: Tokenizer, stateDirectory: String, heldOutEvery: Int,
    settings: BackgroundTrainingSettings, log: @escaping @Sendable (String) -> Void
  ) throws {
    self.engine = engine
    self.tokenizer = tokenizer
    self.settings = settings
    self.log = log
    directory = stateDirectory + "/training"
    journal = try SampleJournal(path: stateDirectory + "/journal.sqlite", heldOutEvery: heldOutEvery)
    encoder = (try? tokenizer.chatTemplate()).map {
      SampleEncoder(tokenizer: tokenizer, template: $0, maxTokens: settings.maxSequenceLength)
    }
  }

  // MARK: - control (any thread)

  /// Serves each adapter's latest published version (from an earlier run) and starts the thread.
  public func start() {
    for name in engine.registry.names {
      let job = job(for: name)
      if let version = job.meta.servingVersion, let adapter = try? readVersion(name, version) {
        try? engine.registry.add(adapter, name: name)
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
  public func ingest(adapter: String, body: String) throws(TrainingControlError) -> IngestReport {
    guard engine.registry.adapter(named: adapter) != nil else { throw .unknownAdapter(adapter) }
    let limit = condition.withLock { settings.maxBacklog }
    let counts = try counts(adapter)
    guard counts.pending < limit else {
      throw .backlogFull(pending: counts.pending, retryAfterSeconds: 30)
    }
    var good: [(clientID: String?, line: String)] = []
    var rejected: [IngestReport.Rejection] = []
    for (index, line) in body.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
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
      // How many times the replay walk has gone through the trained samples.
      status.replayEpoch = status.samplesTrained > 0 ? job.replayed / status.samplesTrained : 0
      return status
    }
  }

  public enum Action: String, Sendable { case start, pause, resume, stop, publish }

  public func control(adapter: String, action: Action) throws(TrainingControlError) -> TrainingStatus {
    guard engine.registry.adapter(named: adapter) != nil else { throw .unknownAdapter(adapter) }
    let job = job(for: adapter)
    condition.withLock {
      switch action {
      case .start, .resume:
        job.meta.paused = false
        if job.status.state != .training { job.status.state = .idle }
        job.status.reason = nil
      case .pause:
        job.meta.paused = true
        job.status.state = .paused
      case .stop:
        job.meta.paused = true
        job.status.state = .stopped
      case .publish:
        job.publishRequested = true
      }
      condition.broadcast()
    }
    saveMeta(adapter, job)
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
    condition.withLock {
      if let lr = changes.learningRate {
        job.meta.overrides.learningRate = lr
        job.rebuild = true
      }
      if let b = changes.batchSize { job.meta.overrides.batchSize = b }
      if let p = changes.publishEvery { job.meta.overrides.publishEvery = p }
      condition.broadcast()
    }
    saveMeta(adapter, job)
    return try status(adapter: adapter)
  }

  public func versions(adapter: String) throws(TrainingControlError) -> [TrainingVersion] {
    guard engine.registry.adapter(named: adapter) != nil else { throw .unknownAdapter(adapter) }
    let job = job(for: adapter)
    return condition.withLock { job.meta.versions }
  }

  /// Serves saved version `version` again (training continues from where it is).
  public func rollback(adapter: String, to version: Int) throws(TrainingControlError) -> TrainingStatus {
    guard engine.registry.adapter(named: adapter) != nil else { throw .unknownAdapter(adapter) }
    let job = job(for: adapter)
    guard condition.withLock({ job.meta.versions.contains { $0.version == version } }) else {
      throw .unknownVersion(version)
    }
    do {
      try engine.registry.add(try readVersion(adapter, version), name: adapter)
    } catch {
      throw .failed("version \(version) does not load: \(error)")
    }
    condition.withLock {
      job.meta.servingVersion = version
      job.status.servingVersion = version
      job.status.servingEvalLoss = job.meta.versions.first { $0.version == version }?.evalLoss
      job.status.lastDecision = "rolled back to version \(version)"
    }
    saveMeta(adapter, job)
    return try status(adapter: adapter)
  }

  // MARK: - the training thread

  private func loop() {
    while true {
      // Serving first: wait while generations are queued or running.
      var next: (String, Job)?
      condition.lock()
      while running {
        if !engine.isBusy, let candidate = nextJob() {
          next = candidate
          break
        }
        _ = condition.wait(until: Date(timeIntervalSinceNow: 0.05))
      }
      let keepGoing = running
      condition.unlock()
      guard keepGoing, let (name, job) = next else { break }
      trainOneStep(name, job)
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
      guard job.status.state != .failed, !job.meta.paused else { continue }
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
    let (settings, rebuild) = condition.withLock { () -> (BackgroundTrainingSettings, Bool) in
      var s = self.settings
      let o = job.meta.overrides
      s.learningRate = o.learningRate ?? s.learningRate
      s.batchSize = o.batchSize ?? s.batchSize
      s.publishEvery = o.publishEvery ?? s.publishEvery
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
      let trainer = try job.trainer ?? makeTrainer(name, job, settings)
      job.trainer = trainer
      let fresh = try journal.trainingSamples(adapter: name, after: job.consumed, limit: settings.batchSize)
      if fresh.isEmpty {
        // Backlog drained (or a publish was asked for): decide on what has been trained.
        if job.dirty || job.publishRequested { try publish(name, job, trainer, settings) }
        return
      }
      let replayCount = job.consumed > 0 ? Int((Double(settings.batchSize) * settings.replayRatio).rounded()) : 0
      let replayed = try replay(name, job, count: min(replayCount, max(0, settings.batchSize - fresh.count)))
      let batch = try (fresh + replayed).map { try encode($0) }
      condition.withLock { job.status.state = .training }
      let started = DispatchTime.now().uptimeNanoseconds
      guard let report = try trainer.step(batch, isCancelled: { [engine] in engine.isBusy || !self.isRunning }) else {
        condition.withLock { job.status.state = .idle }
        return  // serving needs the cores; nothing consumed, retried later
      }
      let seconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
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

  private func makeTrainer(_ name: String, _ job: Job, _ settings: BackgroundTrainingSettings) throws -> Trainer {
    guard let adapter = engine.registry.adapter(named: name) else { throw TrainingControlError.unknownAdapter(name) }
    let targets = Array(Set(adapter.targets.map(\.projection)))
    let lora = LoRATrainingConfig(
      rank: adapter.rank, alpha: adapter.config.loraAlpha, useRSLoRA: adapter.config.useRSLoRA ?? false,
      dropout: settings.loraDropout, targets: LlamaProjection.allCases.filter(targets.contains),
      method: job.meta.pruningRate > 0 ? .droplora : .lora, pruningRate: Float(job.meta.pruningRate),
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
    let version = condition.withLock { (job.meta.versions.map(\.version).max() ?? 0) + 1 }
    try writeVersion(name, version, snapshot)
    let entry = TrainingVersion(
      version: version, step: trainer.stepCount, evalLoss: candidate, trainLoss: job.status.trainLoss,
      created: Date().timeIntervalSince1970, published: accept)
    let describe = { (x: Double?) in x.map { String(format: "%.4f", $0) } ?? "n/a" }
    let decision =
      accept
      ? "published version \(version): held-out loss \(describe(candidate)) vs serving \(describe(serving))"
      : "kept version \(version) as a candidate: held-out loss \(describe(candidate)) is worse than the serving \(describe(serving)) by more than \(settings.publishMargin)"
    if accept { try engine.registry.add(snapshot, name: name) }
    condition.withLock {
      job.meta.versions.append(entry)
      job.status.evalLoss = candidate
      job.status.lastDecision = decision
      job.stepsSincePublish = 0
      job.publishRequested = false
      if accept {
        job.meta.servingVersion = version
        job.status.servingVersion = version
        job.status.servingEvalLoss = candidate
        job.status.lastPublish = entry.created
        job.status.candidateVersion = nil
      } else {
        job.status.candidateVersion = version
      }
    }
    log("training '\(name)': \(decision)")
    pruneVersions(name, job, keep: settings.keepVersions)
    checkpoint(name, job)
  }

  private func checkpoint(_ name: String, _ job: Job) {
    guard let trainer = job.trainer else { return }
    let position = condition.withLock { DataPosition(epoch: job.replayed, cursor: Int(job.consumed)) }
    do {
      try FileManager.default.createDirectory(atPath: directory + "/" + name, withIntermediateDirectories: true)
      try trainer.saveCheckpoint(to: directory + "/" + name, dataPosition: position)
      condition.withLock { job.dirty = false }
      saveMeta(name, job)
    } catch {
      log("training '\(name)': checkpoint failed: \(error)")
    }
  }

  // MARK: - files

  private func versionPath(_ name: String, _ version: Int) -> String { "\(directory)/\(name)/versions/\(version)" }

  private func writeVersion(_ name: String, _ version: Int, _ adapter: LoRAAdapter) throws {
    let path = versionPath(name, version)
    let temporary = path + ".tmp"
    try? FileManager.default.removeItem(atPath: temporary)
    try FileManager.default.createDirectory(atPath: temporary, withIntermediateDirectories: true)
    try AdapterFile.write(adapter, to: temporary, format: .peft, base: engine.registry.base.hyper)
    try? FileManager.default.removeItem(atPath: path)
    try FileManager.default.moveItem(atPath: temporary, toPath: path)
  }

  private func readVersion(_ name: String, _ version: Int) throws -> LoRAAdapter {
    try AdapterFile.read(path: versionPath(name, version), base: engine.registry.base.hyper)
  }

  private func pruneVersions(_ name: String, _ job: Job, keep: Int) {
    let doomed: [Int] = condition.withLock {
      let sorted = job.meta.versions.map(\.version).sorted()
      let kept = Set(sorted.suffix(keep) + [job.meta.servingVersion].compactMap { $0 })
      let gone = sorted.filter { !kept.contains($0) }
      job.meta.versions.removeAll { gone.contains($0.version) }
      return gone
    }
    for version in doomed { try? FileManager.default.removeItem(atPath: versionPath(name, version)) }
  }

  private func metaPath(_ name: String) -> String { "\(directory)/\(name)/training.json" }

  private func saveMeta(_ name: String, _ job: Job) {
    let meta = condition.withLock { job.meta }
    do {
      try FileManager.default.createDirectory(atPath: directory + "/" + name, withIntermediateDirectories: true)
      try AtomicFile.write(try JSONEncoder().encode(meta), to: metaPath(name))
    } catch {
      log("training '\(name)': cannot save \(metaPath(name)): \(error)")
    }
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

  /// Reads the adapter's training.json (called under `condition`).
  private func loadJob(_ name: String) -> Job {
    let job = Job()
    if let data = FileManager.default.contents(atPath: metaPath(name)),
      let meta = try? JSONDecoder().decode(Meta.self, from: data)
    {
      job.meta = meta
    }
    job.status.servingVersion = job.meta.servingVersion ?? 0
    job.status.servingEvalLoss = job.meta.versions.first { $0.version == job.meta.servingVersion }?.evalLoss
    job.status.state = job.meta.paused ? .paused : .idle
    job.status.lastPublish = job.meta.versions.last { $0.published }?.created
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

  /// The pruning rate recorded for a new adapter (the daemon's adapter library knows it).
  public func setPruningRate(_ rate: Double, for name: String) {
    let job = job(for: name)
    condition.withLock { job.meta.pruningRate = rate }
    saveMeta(name, job)
  }
}

/// What survives a restart besides the checkpoint.
private struct Meta: Codable {
  var paused = false
  var servingVersion: Int?
  var versions: [TrainingVersion] = []
  var pruningRate = 0.5
  var overrides = BackgroundTraining.Overrides()

  init() {}

  // Files from before a field existed still load.
  init(from decoder: any Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    paused = try c.decodeIfPresent(Bool.self, forKey: .paused) ?? false
    servingVersion = try c.decodeIfPresent(Int.self, forKey: .servingVersion)
    versions = try c.decodeIfPresent([TrainingVersion].self, forKey: .versions) ?? []
    pruningRate = try c.decodeIfPresent(Double.self, forKey: .pruningRate) ?? 0.5
    overrides = try c.decodeIfPresent(BackgroundTraining.Overrides.self, forKey: .overrides) ?? .init()
  }
}

private final class Job {
  var meta = Meta()
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
