// An adapter made by PEFT itself (Fixtures/make_peft_fixture.py: transformers builds the HF
// model from the default GGUF, PEFT adds a random rank-4 rsLoRA on all seven projections and
// records its logits). Loaded here and merged in fp32, it must give PEFT's logits. This is what
// proves the q/k row order: the same adapter with lora_B of q/k left in HF order misses by far.
//
// Tolerance: the HF model computes in fp32 from the dequantized GGUF weights; here every layer
// matrix is fp32 too (merged), but the output matrix stays quantized (8-bit activations), and
// the summation orders differ. That base-model disagreement is measured on the same prompts
// (our base with W = dequant(W) in fp32 vs transformers' base) and the adapter's error may be at
// most 1.5× it plus 0.05. The adapter itself moves these logits by about 1 on average.
import Adapters
import Foundation
import Kernels
import Llama
import Testing

struct PEFTLogits: Decodable {
  struct Step: Decodable {
    let ids: [Int]
    let adapter: [Float]
    let base: [Float]
  }
  struct Case: Decodable {
    let prompt_tokens: [Int32]
    let steps: [Step]
  }
  let cases: [Case]
}

@Suite(.enabled(if: defaultModelIsPresent, needsModel), .serialized) struct PEFTFixtureTests {
  func load() throws -> (LoRAAdapter, PEFTLogits, LlamaModel) {
    let model = try requireModel()
    guard let weights = fixtureURL("peft_adapter/adapter_model.safetensors.bin"),
      let logits = fixtureURL("peft_logits.json")
    else { throw AdapterTestError.noFixture("peft_adapter") }
    let adapter = try PEFTFormat.read(path: weights.path, base: model.hyper)
    let reference = try JSONDecoder().decode(PEFTLogits.self, from: Data(contentsOf: logits))
    return (adapter, reference, model)
  }

  /// Mean |ours − reference| over the recorded ids of every position of every prompt.
  func error(_ model: LlamaModel, _ reference: PEFTLogits, adapter: Bool) throws -> Float {
    var total: Float = 0
    var count = 0
    let vocabulary = model.vocabularySize
    for c in reference.cases {
      let logits = try allLogits(model, c.prompt_tokens)
      for (t, step) in c.steps.enumerated() {
        for (k, id) in step.ids.enumerated() {
          total += abs(logits[t * vocabulary + id] - (adapter ? step.adapter[k] : step.base[k]))
          count += 1
        }
      }
    }
    return total / Float(count)
  }

  @Test func peftAdapterGivesPEFTsLogits() throws {
    let (adapter, reference, base) = try load()
    #expect(adapter.rank == 4 && adapter.config.useRSLoRA == true && adapter.storageType == .f16)
    #expect(adapter.factors.count == 7 * base.hyper.layerCount)
    let pool = ThreadPool(threads: 2)
    let zero = LoRAAdapter.random(base: base.hyper, rank: 1, bScale: 0)
    let fp32Base = try Merge.merge(zero, into: base, type: .f32, pool: pool)
    let baseError = try error(fp32Base, reference, adapter: false)
    let merged = try Merge.merge(adapter, into: base, type: .f32, pool: pool)
    let adapterError = try error(merged, reference, adapter: true)

    // The same factors with q/k lora_B rows left in Hugging Face order.
    var wrong = adapter
    for (target, f) in adapter.factors {
      guard let heads = RowOrder.permutedHeads(target.projection, base.hyper) else { continue }
      wrong.factors[target] = LoRAFactors(
        rank: f.rank, rows: f.rows, columns: f.columns, a: f.a,
        b: RowOrder.permute(f.b, rows: f.rows, width: f.rank, heads: heads, toGGUF: false))
    }
    let wrongError = try error(Merge.merge(wrong, into: base, type: .f32, pool: pool), reference, adapter: true)
    let ignoredError = try error(fp32Base, reference, adapter: true)
    print("PEFT fixture: mean |Δ| base \(baseError), adapter \(adapterError), q/k unpermuted \(wrongError), adapter ignored \(ignoredError)")
    #expect(adapterError <= 1.5 * baseError + 0.05)
    #expect(wrongError > 3 * adapterError, "the test must tell the right row order from the wrong one")
    #expect(ignoredError > 3 * adapterError)
  }

  @Test func peftFixtureRoundTripsThroughGGUFLoRA() throws {
    let (adapter, _, base) = try load()
    let directory = try scratchDirectory("peft-fixture")
    defer { try? FileManager.default.removeItem(atPath: directory) }
    try GGUFLoRAFormat.write(adapter, to: directory + "/a.gguf", base: base.hyper)
    let back = try GGUFLoRAFormat.read(path: directory + "/a.gguf", base: base.hyper)
    #expect(back.factors == adapter.factors && back.config == adapter.config)
    try PEFTFormat.write(back, to: directory + "/peft", base: base.hyper)
    let original = try SafetensorsFile(path: fixtureURL("peft_adapter/adapter_model.safetensors.bin")!.path)
    let written = try SafetensorsFile(path: directory + "/peft/" + PEFTFormat.weightsFileName)
    #expect(written.tensors.map(\.name) == original.tensors.map(\.name))
    for tensor in original.tensors {
      let mine = try #require(written.tensor(named: tensor.name))
      #expect(mine.shape == tensor.shape && mine.dtype == tensor.dtype)
      #expect(written.bytes(of: mine).elementsEqual(original.bytes(of: tensor)), "\(tensor.name)")
    }
    let config = try Data(contentsOf: URL(fileURLWithPath: directory + "/peft/" + PEFTFormat.configFileName))
    #expect(config == (try Data(contentsOf: fixtureURL("peft_adapter/adapter_config.json")!)))
  }
}
