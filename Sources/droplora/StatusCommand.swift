// `droplora status`: is the daemon up and ready, what does it serve, and a few numbers from
// its metrics (counters and gauges; histogram buckets are left to a Prometheus scraper).
import ArgumentParser
import DaemonClient
import Foundation
import HTTPAPI

struct StatusCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "status", abstract: "Show the daemon's health, models, adapters and main metrics.")

  @OptionGroup var socketOptions: SocketOptions

  func run() async throws {
    let client = socketOptions.client
    let health = try await client.health()
    print("droplorad on \(client.socketPath): \(health.status)\(health.ready ? "" : " (not ready)")")
    let models = try await client.models()
    let base = models.filter { $0.kind == "base" }.map(\.id)
    print("base model: \(base.isEmpty ? "-" : base.joined(separator: ", "))")
    let adapters = try await client.adapters()
    print("adapters: \(adapters.count) loaded")
    for a in adapters { print("  \(describe(a))") }
    let samples = PrometheusText.parse(try await client.metrics())
    let shown = samples.filter { !$0.name.hasSuffix("_bucket") && !$0.name.hasSuffix("_created") }
    if !shown.isEmpty {
      print("metrics:")
      let width = shown.map { label(for: $0).count }.max() ?? 0
      for s in shown {
        print("  \(label(for: s).padding(toLength: width, withPad: " ", startingAt: 0))  \(formatNumber(s.value))")
      }
    }
    if !health.ready { throw ExitCode(3) }
  }

  private func label(for sample: MetricSample) -> String {
    guard !sample.labels.isEmpty else { return sample.name }
    let pairs = sample.labels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
    return "\(sample.name){\(pairs.joined(separator: ","))}"
  }
}
