// Reads the samples of a Prometheus text exposition (what GET /metrics returns), enough for
// `droplora status` to show a few numbers: `name{label="value",...} number [timestamp]`.
// Comment and HELP/TYPE lines are skipped; a line that does not parse is skipped too.
import Foundation

public struct MetricSample: Sendable, Equatable {
  public var name: String
  public var labels: [String: String]
  public var value: Double

  public init(name: String, labels: [String: String] = [:], value: Double) {
    self.name = name
    self.labels = labels
    self.value = value
  }
}

public enum PrometheusText {
  public static func parse(_ text: String) -> [MetricSample] {
    text.split(whereSeparator: \.isNewline).compactMap { parseLine(Substring($0)) }
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
