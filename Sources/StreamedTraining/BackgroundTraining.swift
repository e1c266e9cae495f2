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

public final class BackgroundTraining: @unchecked Sendable {
  // unchecked: `jobs`, `settings` and `running` are guarded by `condition`; a Job's trainer is
  // touched only by the training thread, its reported fields under `condition`.
  public let journal: SampleJournal
  /// Owns each adapter's pruning rate, paused flag, overrides, versions and serving version.
  public let catalog: AdapterCatalog
  let engine: ServingEngine
  let tokenizer: Tokenizer
  let directory: String
  let log: @Sendable (String) -> Void
  let condition = NSCondition()
  var settings: BackgroundTrainingSettings
  var jobs: [String: Job] = [:]
  var running = false
  var thread: Thread?
  let finished = DispatchSemaphore(value: 0)
  let encoder: SampleEncoder?
  /// When the last step ended and how long it took (for the minimum share under load).
  var lastStepEnded = DispatchTime.now().uptimeNanoseconds
  var lastStepSeconds = 1.0
  /// A trainer was released (idle or deleted): the thread trims the heap once its step is over.
  var trimPending = false

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

  func counts(_ name: String, after: Int64 = .max) throws(TrainingControlError) -> JournalCounts {
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

final class Job {
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
