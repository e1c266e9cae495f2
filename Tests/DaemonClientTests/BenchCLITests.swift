// `droplora bench` as scripts/bench.sh runs it: the JSON fields the table is made from, and the
// options' refusals (a benchmark that quietly measured something else would mislead).
import Foundation
import Testing

@Suite(.enabled(if: FileManager.default.fileExists(atPath: defaultModel), "needs scripts/fetch-model.sh"))
struct BenchCLITests {
  private func bench(_ options: [String]) async throws -> RunResult {
    try await droplora(["bench", "--model", defaultModel, "--threads", "2", "--repetitions", "1"] + options)
  }

  /// `text` as a --prompt-ids file in a new directory (removed by the caller).
  private func writeIds(_ text: String) throws -> (directory: String, file: String) {
    let directory = try temporaryDirectory("bench-ids")
    let file = directory + "/ids.txt"
    try text.write(toFile: file, atomically: true, encoding: .utf8)
    return (directory, file)
  }

  @Test func jsonReportsWhatWasMeasured() async throws {
    let ids = try writeIds("1 17 2034\n 49151\t5 ")
    defer { try? FileManager.default.removeItem(atPath: ids.directory) }
    let r = try await bench(["--prompt-ids", ids.file, "--gen-tokens", "3", "--depth", "20", "--kv-cache-type", "f16", "--json"])
    #expect(r.status == 0, "\(r.stderr)")
    let object = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
    #expect(object["engine"] as? String == "droplorad")
    #expect(object["threads"] as? Int == 2)
    #expect(object["prompt_tokens"] as? Int == 5)  // the file's ids, every one of them
    #expect(object["gen_tokens"] as? Int == 3)
    #expect(object["depth"] as? Int == 20)
    for key in ["prefill_tps", "decode_tps", "ttft_ms"] {
      let value = try #require(object[key] as? Double, "\(key)")
      #expect(value.isFinite && value > 0, "\(key) = \(value)")
    }
    // The process holds at least the model's mapped pages it computed with.
    let rss = try #require(object["peak_rss_mib"] as? Double)
    let model = try #require(object["model_mib"] as? Double)
    #expect(model > 50 && rss > model / 2, "rss \(rss) MiB, model \(model) MiB")
  }

  /// A word that is not a token id, and an id outside the vocabulary (49152 for the default
  /// model): each refused with a message that names it.
  @Test(arguments: [("1 2 three 4", ["word 3", "three"]), ("1 2 49152", ["49152", "vocabulary"])])
  func aPromptIdsFileWithABadWordIsRefused(text: String, mentions: [String]) async throws {
    let ids = try writeIds(text)
    defer { try? FileManager.default.removeItem(atPath: ids.directory) }
    let r = try await bench(["--prompt-ids", ids.file, "--gen-tokens", "2"])
    #expect(r.status != 0)
    #expect(mentions.allSatisfy { r.stderr.contains($0) }, "\(r.stderr)")
  }

  @Test(arguments: [
    (["--depth", "-1"], "--depth"), (["--gen-tokens", "0"], "--gen-tokens"), (["--prompt-tokens", "0"], "--prompt-tokens"),
    (["--threads", "0"], "--threads"), (["--repetitions", "0"], "--repetitions"),
  ])
  func outOfRangeOptionsAreRefused(options: [String], named: String) async throws {
    let r = try await bench(options)
    #expect(r.status != 0)
    #expect(r.stderr.contains(named), "\(r.stderr)")
  }
}
