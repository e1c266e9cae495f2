// An adapter droplora trained on Gemma 3 270M, run by PEFT (scripts/check_gemma_adapter.py
// --write-fixture: transformers' float32 model dequantized from the GGUF, the reference). The
// fixture keeps, per prompt, PEFT's greedy tokens, its top-two ids and the logit margin between
// them. Here the same PEFT files are loaded and served unmerged (as the daemon and `droplora
// generate --adapter-type none` do), teacher-forced on PEFT's tokens: at each step our logit
// margin between PEFT's two ids must be PEFT's within a tolerance, and our pick PEFT's wherever
// its margin is clear. Gemma's seven projections, its q/k row order (4 query heads, 1 KV head of
// 256) and PEFT's Gemma3ForCausalLM names are covered by no other adapter test.
//
// Tolerance: our base differs from PEFT's fp32 model (8-bit activations into every quantized
// matrix, including the 262 144-row output; summation order), and Gemma's logits are large
// (tens). Measured over the fixture's 144 steps (2 threads): margin error max 0.60, mean 0.11
// logits, with no pick differing where PEFT's margin is 0.5 or more; the bounds below are about
// 1.7x that. The adapter itself moves these margins by 6.5 logits on average (max 21): served
// without it, the same comparison misses by that much, so the check sees the adapter.
import Adapters
import Foundation
import Llama
import Testing

let gemma3Path =
  ProcessInfo.processInfo.environment["DROPLORA_GEMMA3_MODEL"]
  ?? packageRoot.appendingPathComponent("models/gemma-3-270m-q4_k_m.gguf").path
var gemma3IsPresent: Bool { FileManager.default.fileExists(atPath: gemma3Path) }

struct GemmaParityFixture: Decodable {
  struct Case: Decodable {
    let prompt: String
    let prompt_tokens: [Int32]
    let peft: [Int32]
    let margins: [Double]
    let second: [Int32]
  }
  let margin: Double
  let cases: [Case]
}

@Suite(.enabled(if: gemma3IsPresent, "needs models/gemma-3-270m-q4_k_m.gguf or DROPLORA_GEMMA3_MODEL (scripts/fetch-gemma3.sh)"))
struct GemmaParityTests {
  /// Largest |our margin − PEFT's margin| allowed at any step, in logits.
  static let marginTolerance = 1.0
  /// Mean of the same over all steps.
  static let meanMarginTolerance = 0.2

  struct Errors {
    var maxError = 0.0, sum = 0.0, count = 0
    var disagreements: [String] = []
  }

  /// Teacher-forces every case's prompt + PEFT's tokens and compares margins and picks.
  func compare(
    _ model: LlamaModel, _ fixture: GemmaParityFixture, hook: LlamaProjectionHook?
  ) throws -> Errors {
    var errors = Errors()
    let V = model.vocabularySize
    for (index, c) in fixture.cases.enumerated() {
      let tokens = c.prompt_tokens + c.peft.dropLast()
      let logits = try allLogits(model, tokens, hook: hook)
      for step in 0..<c.peft.count {
        let row = (c.prompt_tokens.count - 1 + step) * V
        let first = Int(c.peft[step]), second = Int(c.second[step])
        let ours = Double(logits[row + first]) - Double(logits[row + second])
        let error = abs(ours - c.margins[step])
        errors.maxError = max(errors.maxError, error)
        errors.sum += error
        errors.count += 1
        var best = 0
        for v in 0..<V where logits[row + v] > logits[row + best] { best = v }
        if best != first && c.margins[step] >= fixture.margin {
          errors.disagreements.append(
            "case \(index) step \(step): chose \(best), PEFT \(first) at margin \(c.margins[step])")
        }
      }
    }
    return errors
  }

  @Test func unmergedAdapterFollowsPEFT() throws {
    let model = try LlamaModel(path: gemma3Path)
    guard let weights = fixtureURL("gemma3_parity/adapter_model.safetensors.bin"),
      let json = fixtureURL("gemma3_parity/parity.json")
    else { throw AdapterTestError.noFixture("gemma3_parity") }
    let adapter = try PEFTFormat.read(path: weights.path, base: model.hyper)
    #expect(adapter.rank == 4 && adapter.factors.count == 7 * model.hyper.layerCount)
    let fixture = try JSONDecoder().decode(GemmaParityFixture.self, from: Data(contentsOf: json))

    let adapted = try compare(model, fixture, hook: LoRAHook(adapter: adapter))
    let ignored = try compare(model, fixture, hook: nil)
    let mean = adapted.sum / Double(adapted.count)
    print(
      "Gemma PEFT parity over \(adapted.count) steps: margin error max \(adapted.maxError) mean \(mean); "
        + "adapter ignored: max \(ignored.maxError) mean \(ignored.sum / Double(ignored.count))")
    #expect(adapted.disagreements.isEmpty, "\(adapted.disagreements)")
    #expect(adapted.maxError <= Self.marginTolerance)
    #expect(mean <= Self.meanMarginTolerance)
    // The adapter moves these margins far more than the tolerance: the check sees it.
    #expect(ignored.sum / Double(ignored.count) > 10 * Self.meanMarginTolerance)
    #expect(ignored.maxError > 10 * Self.marginTolerance)
  }
}
