// GET /metrics: the daemon's Prometheus metrics. Request outcomes and timings arrive from the
// engine as reports (this is its ServingObserver); gauges of the current state are read when
// scraped. The exposition format is swift-prometheus's.
import Adapters
import Engine
import Foundation
import Prometheus

final class DaemonMetrics: ServingObserver, @unchecked Sendable {
  // unchecked: every field is a swift-prometheus metric (thread-safe) or immutable.
  private let registry: PrometheusCollectorRegistry
  private let requestsOK: Counter
  private let requestsCancelled: Counter
  private let requestsFailed: Counter
  private let promptTokens: Counter
  private let reusedPromptTokens: Counter
  private let generatedTokens: Counter
  private let promptSeconds: Counter
  private let decodeSeconds: Counter
  private let promptRate: Gauge
  private let decodeRate: Gauge
  private let timeToFirstToken: ValueHistogram
  private let queueDepth: Gauge
  private let running: Gauge
  private let adaptersLoaded: Gauge
  private let cacheHits: Counter
  private let cacheMisses: Counter
  private let residentBytes: Gauge

  init() {
    let registry = PrometheusCollectorRegistry()
    self.registry = registry
    func counter(_ name: String, _ help: String) -> Counter {
      registry.makeCounter(descriptor: Self.metric(name, help))
    }
    func gauge(_ name: String, _ help: String) -> Gauge {
      registry.makeGauge(descriptor: Self.metric(name, help))
    }
    func requests(_ outcome: String) -> Counter {
      registry.makeCounter(
        descriptor: Self.metric(
          "droplorad_requests_total",
          "Generation requests that ran, by outcome (ok, cancelled by the client, failed)."),
        labels: [("outcome", outcome)])
    }
    requestsOK = requests("ok")
    requestsCancelled = requests("cancelled")
    requestsFailed = requests("failed")
    promptTokens = counter("droplorad_prompt_tokens_total", "Prompt tokens of finished requests.")
    reusedPromptTokens = counter(
      "droplorad_prompt_tokens_reused_total", "Prompt tokens served from a previous turn's KV cache.")
    generatedTokens = counter("droplorad_generated_tokens_total", "Tokens generated.")
    promptSeconds = counter("droplorad_prompt_seconds_total", "Compute time spent on prompts.")
    decodeSeconds = counter("droplorad_decode_seconds_total", "Compute time spent decoding.")
    promptRate = gauge("droplorad_prompt_tokens_per_second", "Prompt evaluation speed of the last request.")
    decodeRate = gauge("droplorad_decode_tokens_per_second", "Decode speed of the last request.")
    timeToFirstToken = registry.makeValueHistogram(
      descriptor: Self.metric(
        "droplorad_time_to_first_token_seconds",
        "From a request's arrival to its first token, queueing and merging included."),
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60])
    queueDepth = gauge("droplorad_queue_depth", "Requests waiting for a generation slot.")
    running = gauge("droplorad_running_generations", "Generations computing now.")
    adaptersLoaded = gauge("droplorad_adapters_loaded", "Adapters loaded.")
    cacheHits = counter("droplorad_merged_cache_hits_total", "Requests served by an already merged weight set.")
    cacheMisses = counter("droplorad_merged_cache_misses_total", "Requests that had to merge their adapter first.")
    residentBytes = gauge("droplorad_resident_memory_bytes", "Resident set size of the daemon.")
  }

  func requestFinished(_ report: RequestReport) {
    if report.failed {
      requestsFailed.increment()
    } else if report.finishReason == .cancelled {
      requestsCancelled.increment()
    } else {
      requestsOK.increment()
    }
    promptTokens.increment(by: Int64(report.promptTokens))
    reusedPromptTokens.increment(by: Int64(report.reusedPromptTokens))
    generatedTokens.increment(by: Int64(report.completionTokens))
    promptSeconds.increment(by: report.promptSeconds)
    decodeSeconds.increment(by: report.decodeSeconds)
    if let rate = report.promptTokensPerSecond { promptRate.set(rate) }
    if let rate = report.decodeTokensPerSecond { decodeRate.set(rate) }
    if !report.failed { timeToFirstToken.record(report.timeToFirstToken) }
  }

  /// Per-adapter training gauges, read from each adapter's training status.
  private func recordTraining(_ training: BackgroundTraining, adapters: [String]) {
    for name in adapters {
      guard let status = try? training.status(adapter: name) else { continue }
      let values: [(String, String, Double?)] = [
        ("droplorad_training_samples_received", "Training samples pushed to the adapter.", Double(status.samplesReceived)),
        ("droplorad_training_samples_trained", "Pushed samples trained on.", Double(status.samplesTrained)),
        ("droplorad_training_samples_pending", "Pushed samples waiting to be trained on.", Double(status.samplesPending)),
        ("droplorad_training_samples_held_out", "Pushed samples held out for evaluation.", Double(status.samplesHeldOut)),
        ("droplorad_training_step", "Optimizer steps taken.", Double(status.step)),
        ("droplorad_training_loss", "Moving average of the training loss.", status.trainLoss),
        ("droplorad_training_eval_loss", "Held-out loss of the latest snapshot.", status.evalLoss),
        ("droplorad_training_tokens_per_second", "Training speed of the last step.", status.tokensPerSecond),
        ("droplorad_training_serving_version", "The adapter version being served.", Double(status.servingVersion)),
        ("droplorad_training_active", "1 while a training step runs for the adapter.", status.state == .training ? 1 : 0),
      ]
      for (metric, help, value) in values {
        guard let value else { continue }
        registry.makeGauge(descriptor: Self.metric(metric, help), labels: [("adapter", name)]).set(value)
      }
    }
  }

  /// A metric's full name and help text (no namespace or unit parts: the names carry them).
  static func metric(_ name: String, _ help: String) -> MetricNameDescriptor {
    MetricNameDescriptor(metricName: name, unitName: "", helpText: help)
  }

  /// The exposition text, with the state gauges read now.
  func render(engine: ServingEngine, training: BackgroundTraining) -> String {
    recordTraining(training, adapters: engine.registry.names)
    queueDepth.set(Int64(engine.queueDepth))
    running.set(Int64(engine.runningGenerations))
    adaptersLoaded.set(Int64(engine.registry.names.count))
    let counts = engine.registry.cacheCounts
    cacheHits.reset()
    cacheHits.increment(by: Int64(counts.hits))
    cacheMisses.reset()
    cacheMisses.increment(by: Int64(counts.misses))
    if let rss = ProcessMemory.residentBytes() { residentBytes.set(Int64(rss)) }
    return registry.emitToString()
  }
}

enum ProcessMemory {
  /// VmRSS from /proc/self/status (reported in kB).
  static func residentBytes() -> Int? {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return nil }
    for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
      let fields = line.split(separator: " ", omittingEmptySubsequences: true)
      if fields.count >= 2, let kilobytes = Int(fields[1]) { return kilobytes * 1024 }
    }
    return nil
  }
}
