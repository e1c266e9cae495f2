// Scheduling: the training thread picks the next adapter with new samples (round robin),
// waits while serving is busy (save for the minimum compute share) and takes one optimizer
// step on fresh and replayed samples.
import Adapters
import Dispatch
import DurableFiles
import Engine
import Foundation
import Llama
import Tokenization
import Training

extension BackgroundTraining {
  func loop() {
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
  func nextJob() -> (String, Job)? {
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

  func trainOneStep(_ name: String, _ job: Job) {
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

  var isRunning: Bool { condition.withLock { running } }

  /// Under sustained load: whether training has waited long enough that a step now keeps its
  /// share of the time at `minComputeShare` (a step of s seconds every s(1-share)/share).
  /// Called under `condition`.
  func starvedLongEnough() -> Bool {
    let share = settings.minComputeShare
    guard share > 0 else { return false }
    let waited = Double(DispatchTime.now().uptimeNanoseconds - lastStepEnded) / 1e9
    // Before any step has been timed, assume a second.
    return waited >= max(lastStepSeconds, 0.05) * (1 - share) / share
  }

  func replay(_ name: String, _ job: Job, count: Int) throws -> [JournalSample] {
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

  func encode(_ sample: JournalSample) throws -> EncodedSample {
    guard let encoder else { throw TrainingControlError.failed("the model has no chat template to render samples with") }
    return encoder.encode(try TrainingSample.parse(Substring(sample.line))).sample
  }
}
