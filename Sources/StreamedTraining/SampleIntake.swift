// Intake: a push is checked line by line (UTF-8, JSON, a sample the chat template can render)
// and the good lines are committed to the journal before the reply; the backlog limit applies.
import Adapters
import Dispatch
import DurableFiles
import Engine
import Foundation
import Llama
import Tokenization
import Training

extension BackgroundTraining {
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
}
