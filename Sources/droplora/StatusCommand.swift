// `droplora status`: is the daemon up and ready, what does it serve, and its metrics grouped by
// family and sorted (counters and gauges; histogram buckets are left to a Prometheus scraper),
// or all of it as one JSON object with --json.
import ArgumentParser
import DaemonClient
import Foundation
import HTTPAPI

struct StatusCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "status", abstract: "Show the daemon's health, models, adapters and main metrics.")

  @Flag(help: "Print one JSON object: socket, health, models, adapters and every metric family.")
  var json = false

  @OptionGroup var socketOptions: SocketOptions

  /// What --json prints.
  struct Report: Encodable {
    var socket: String
    var health: HealthStatus
    var models: [ModelEntry]
    var adapters: [AdapterInfo]
    var metrics: [MetricFamily]
  }

  func run() async throws {
    let client = socketOptions.client
    let health = try await client.health()
    let models = try await client.models()
    let adapters = try await client.adapters()
    let families = PrometheusText.families(try await client.metrics())
    if json {
      let report = Report(socket: client.socketPath, health: health, models: models, adapters: adapters, metrics: families)
      let encoder = JSONEncoder()
      encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
      // NaN and ±Inf are legal metric values but not JSON numbers: Prometheus's spelling.
      encoder.nonConformingFloatEncodingStrategy = .convertToString(
        positiveInfinity: "+Inf", negativeInfinity: "-Inf", nan: "NaN")
      print(String(decoding: try encoder.encode(report), as: UTF8.self))
    } else {
      print("droplorad on \(client.socketPath): \(health.status)\(health.ready ? "" : " (not ready)")")
      let base = models.filter { $0.kind == "base" }.map(\.id)
      print("base model: \(base.isEmpty ? "-" : base.joined(separator: ", "))")
      print("adapters: \(adapters.count) loaded")
      for a in adapters { print("  \(describe(a))") }
      let lines = Self.metricLines(families)
      if !lines.isEmpty {
        print("metrics:")
        let width = lines.compactMap { $0.value == nil ? nil : $0.label.count }.max() ?? 0
        for line in lines {
          guard let value = line.value else {
            print(line.label)
            continue
          }
          print("\(line.label.padding(toLength: width, withPad: " ", startingAt: 0))  \(formatNumber(value))")
        }
      }
    }
    if !health.ready { throw ExitCode(3) }
  }

  /// A family with one sample on one line (`  name{labels}`); with several, the family's name
  /// and then one indented line per sample (`    route=chat`, `    sum`). Buckets are left out.
  static func metricLines(_ families: [MetricFamily]) -> [(label: String, value: Double?)] {
    var lines: [(label: String, value: Double?)] = []
    for family in families {
      let shown = family.samples.filter { !$0.name.hasSuffix("_bucket") && !$0.name.hasSuffix("_created") }
      if shown.count == 1, let sample = shown.first {
        lines.append(("  " + sample.name + braced(labels(sample)), sample.value))
        continue
      }
      if !shown.isEmpty { lines.append(("  " + family.name, nil)) }
      for sample in shown {
        let suffix = sample.name == family.name ? "" : String(sample.name.dropFirst(family.name.count + 1))
        let parts = [suffix, labels(sample)].filter { !$0.isEmpty }
        lines.append(("    " + parts.joined(separator: " "), sample.value))
      }
    }
    return lines
  }

  private static func labels(_ sample: MetricSample) -> String {
    sample.labels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
  }

  private static func braced(_ text: String) -> String { text.isEmpty ? "" : "{\(text)}" }
}
