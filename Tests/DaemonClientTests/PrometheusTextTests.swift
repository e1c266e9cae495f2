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
}
