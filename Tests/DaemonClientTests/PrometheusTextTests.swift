// Reading samples out of the Prometheus text format for `droplora status`.
import DaemonClient
import Testing

@Suite struct PrometheusTextTests {
  @Test func samplesLabelsAndSpecialValues() {
    let text = """
      # HELP a_total Things.
      # TYPE a_total counter
      a_total 12
      b{x="1", y="q\\"uote\\\\"} 2.5 1700000000000
      c_bucket{le="+Inf"} 4
      d NaN
      e +Inf
      not a sample line
      f{unterminated="x} 1

      """
    let samples = PrometheusText.parse(text)
    #expect(samples.map(\.name) == ["a_total", "b", "c_bucket", "d", "e"])
    #expect(samples[0] == MetricSample(name: "a_total", value: 12))
    #expect(samples[1] == MetricSample(name: "b", labels: ["x": "1", "y": "q\"uote\\"], value: 2.5))
    #expect(samples[2].labels == ["le": "+Inf"])
    #expect(samples[3].value.isNaN)
    #expect(samples[4].value == .infinity)
  }

  /// Samples come in hash order; families sort by name, a histogram's series stay under it,
  /// and numeric label values sort as numbers.
  @Test func familiesAreGroupedAndSorted() {
    let text = """
      # TYPE z_seconds histogram
      z_seconds_sum 2
      z_seconds_bucket{le="10"} 4
      z_seconds_bucket{le="+Inf"} 5
      z_seconds_bucket{le="9"} 3
      z_seconds_count 5
      # TYPE a_total counter
      a_total{route="models"} 2
      a_total{route="chat"} 7
      m_count 1
      b 3

      """
    let families = PrometheusText.families(text)
    #expect(families.map(\.name) == ["a_total", "b", "m_count", "z_seconds"])
    #expect(families.map(\.type) == ["counter", "untyped", "untyped", "histogram"])
    #expect(families[0].samples.map { $0.labels["route"] } == ["chat", "models"])
    #expect(families[3].samples.map(\.name) == [
      "z_seconds_bucket", "z_seconds_bucket", "z_seconds_bucket", "z_seconds_count", "z_seconds_sum",
    ])
    #expect(families[3].samples.prefix(3).map { $0.labels["le"] } == ["9", "10", "+Inf"])
  }
}
