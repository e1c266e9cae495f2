// Reads the samples of a Prometheus text exposition (what GET /metrics returns), enough for
// `droplora status` to show a few numbers: `name{label="value",...} number [timestamp]`.
// Comments are skipped, `# TYPE` lines give the family a sample belongs to (a histogram's
// _bucket/_sum/_count lines), and a line that does not parse is skipped too. `families` puts
// the samples in a stable order: families by name, samples by name and then labels.
import Foundation

public struct MetricSample: Sendable, Equatable, Codable {
  public var name: String
  public var labels: [String: String]
  public var value: Double

  public init(name: String, labels: [String: String] = [:], value: Double) {
    self.name = name
    self.labels = labels
    self.value = value
  }
}

/// A metric and its samples: one sample for an unlabelled counter or gauge, one per label set
/// otherwise, and a histogram's or summary's _bucket/_sum/_count series under its own name.
public struct MetricFamily: Sendable, Equatable, Codable {
  public var name: String
  /// counter, gauge, histogram, summary or untyped, as the `# TYPE` line says (untyped without one).
  public var type: String
  public var samples: [MetricSample]

  public init(name: String, type: String, samples: [MetricSample]) {
    self.name = name
    self.type = type
    self.samples = samples
  }
}

public enum PrometheusText {
  public static func parse(_ text: String) -> [MetricSample] {
    text.split(whereSeparator: \.isNewline).compactMap { parseLine(Substring($0)) }
  }

  /// The samples of `text` grouped into families and sorted (families by name; within one,
  /// by sample name, then by labels, label values that are numbers in numeric order).
  public static func families(_ text: String) -> [MetricFamily] {
    var types: [String: String] = [:]
    var samples: [MetricSample] = []
    for raw in text.split(whereSeparator: \.isNewline) {
      let fields = raw.split(separator: " ", omittingEmptySubsequences: true)
      if fields.count >= 4, fields[0] == "#", fields[1] == "TYPE" {
        types[String(fields[2])] = String(fields[3])
      } else if let sample = parseLine(Substring(raw)) {
        samples.append(sample)
      }
    }
    var grouped: [String: [MetricSample]] = [:]
    for sample in samples { grouped[family(of: sample.name, types: types), default: []].append(sample) }
    return grouped.keys.sorted().map { name in
      MetricFamily(
        name: name, type: types[name] ?? "untyped",
        samples: grouped[name]!.sorted(by: precedes))  // a key of the dictionary
    }
  }

  /// The family a sample name belongs to: itself, or the histogram/summary it is a series of.
  private static func family(of name: String, types: [String: String]) -> String {
    if types[name] != nil { return name }
    for suffix in ["_bucket", "_sum", "_count", "_created"] where name.hasSuffix(suffix) {
      let base = String(name.dropLast(suffix.count))
      if let type = types[base], type == "histogram" || type == "summary" { return base }
    }
    return name
  }

  private static func precedes(_ a: MetricSample, _ b: MetricSample) -> Bool {
    if a.name != b.name { return a.name < b.name }
    let keys = Set(a.labels.keys).union(b.labels.keys).sorted()
    for key in keys {
      let (x, y) = (a.labels[key] ?? "", b.labels[key] ?? "")
      if x == y { continue }
      if let u = parseValue(Substring(x)), let v = parseValue(Substring(y)) { return u < v }
      return x < y
    }
    return false
  }

  static func parseLine(_ raw: Substring) -> MetricSample? {
    let line = raw.drop { $0 == " " || $0 == "\t" }
    guard let first = line.first, first != "#" else { return nil }
    let nameEnd = line.firstIndex { $0 == "{" || $0 == " " || $0 == "\t" } ?? line.endIndex
    let name = String(line[..<nameEnd])
    guard !name.isEmpty else { return nil }
    var rest = line[nameEnd...]
    var labels: [String: String] = [:]
    if rest.first == "{" {
      guard let (parsed, after) = parseLabels(rest.dropFirst()) else { return nil }
      labels = parsed
      rest = after
    }
    let fields = rest.split(whereSeparator: { $0 == " " || $0 == "\t" })
    guard let valueText = fields.first, let value = parseValue(valueText) else { return nil }
    return MetricSample(name: name, labels: labels, value: value)
  }

  /// `a="x",b="y\"z"}` → labels and the text after the closing brace.
  private static func parseLabels(_ text: Substring) -> ([String: String], Substring)? {
    var labels: [String: String] = [:]
    var i = text.startIndex
    func skipSpaces() { while i < text.endIndex, text[i] == " " || text[i] == "," { i = text.index(after: i) } }
    while true {
      skipSpaces()
      guard i < text.endIndex else { return nil }
      if text[i] == "}" { return (labels, text[text.index(after: i)...]) }
      guard let eq = text[i...].firstIndex(of: "=") else { return nil }
      let key = text[i..<eq].trimmingCharacters(in: .whitespaces)
      i = text.index(after: eq)
      guard i < text.endIndex, text[i] == "\"" else { return nil }
      i = text.index(after: i)
      var value = ""
      var closed = false
      while i < text.endIndex {
        let c = text[i]
        i = text.index(after: i)
        if c == "\"" {
          closed = true
          break
        }
        if c == "\\", i < text.endIndex {
          let e = text[i]
          i = text.index(after: i)
          value.append(e == "n" ? "\n" : e)
        } else {
          value.append(c)
        }
      }
      guard closed else { return nil }
      labels[key] = value
    }
  }

  private static func parseValue(_ text: Substring) -> Double? {
    switch text {
    case "+Inf": return .infinity
    case "-Inf": return -.infinity
    case "NaN": return .nan
    default: return Double(text)
    }
  }
}
