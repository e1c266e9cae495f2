// The publish gate: a snapshot is saved as a version and served only if its held-out loss is
// not worse than the serving version's by more than the margin; rollback serves an older one.
import Adapters
import Dispatch
import DurableFiles
import Engine
import Foundation
import Llama
import Tokenization
import Training

extension BackgroundTraining {
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


  func publish(_ name: String, _ job: Job, _ trainer: Trainer, _ settings: BackgroundTrainingSettings) throws {
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
}
