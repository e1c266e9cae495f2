// Encoding speed on a few KB of mixed text. The bound is loose enough for debug builds;
// run `swift test -c release --filter PerformanceTests` for the real figure (printed).

import Testing
import Tokenization

@Suite struct PerformanceTests {
  static let sample: String = {
    let texts = Fixtures.golden.vocabs["smollm"]?.cases.map(\.text) ?? []
    var s = ""
    while s.utf8.count < 8192 { s += texts.joined(separator: "\n") }
    return s
  }()

  @Test(arguments: ["smollm", "llama-bpe", "qwen2", "llama-spm"])
  func encodesKilobytesQuickly(_ name: String) throws {
    try Fixtures.skipUnlessPresent(name)
    let tok = try Fixtures.tokenizer(name)
    let kb = Double(Self.sample.utf8.count) / 1024
    _ = tok.encode(Self.sample)  // warm up
    let clock = ContinuousClock()
    var best = Duration.seconds(1000)
    var count = 0
    for _ in 0..<3 {
      let t = clock.measure { count = tok.encode(Self.sample).count }
      best = min(best, t)
    }
    let msPerKB = Double(best.components.attoseconds) / 1e15 / kb + Double(best.components.seconds) * 1000 / kb
    print("encode \(name): \(Self.sample.utf8.count) bytes → \(count) tokens, \(msPerKB) ms/KB")
    #if DEBUG
      #expect(msPerKB < 50)
    #else
      #expect(msPerKB < 2)
    #endif
  }
}
