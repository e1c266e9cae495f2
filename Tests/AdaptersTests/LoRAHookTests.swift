// The fast unmerged path (LoRAHook: F16 factors, C kernels, threads) against the fp32 reference
// hook and against the F32-merged weights, on the real default model with random adapters of
// rank 8 and 32 on every projection of every layer; the prompt is evaluated both as one batch
// (each thread takes whole tokens) and token by token (decode: rank, then rows, split).
//
// Tolerances. All runs use W = dequant(W) in fp32 (a zero adapter merged as F32), so the 8-bit
// activations of quantized dot products cannot amplify rounding. LoRAHook rounds A and B to F16
// (2^-11 relative per element), so its update differs from the fp32 one by about 1e-3 of the
// update's size; the adapter moves logits by a few units, hence max |Δ| < 0.1 and mean |Δ| < 0.01.
// A transposed factor, wrong scale or mixed-up row chunk moves logits by units.
import Adapters
import Kernels
import Llama
import Testing

@Suite(.enabled(if: defaultModelIsPresent, needsModel), .serialized) struct LoRAHookTests {
  /// Logits after each token evaluated one at a time (the decode path).
  func decodeLogits(_ model: LlamaModel, _ tokens: [Int32], hook: LlamaProjectionHook?) throws -> [Float] {
    let context = LlamaContext(model: model, contextLength: tokens.count + 1, threads: 2)
    context.projectionHook = hook
    var logits: [Float] = []
    for token in tokens {
      try context.evaluate([token])
      logits += Array(context.lastLogits)
    }
    return logits
  }

  @Test(arguments: [8, 32])
  func fastHookMatchesReferenceAndMergedF32(rank: Int) throws {
    let base = try requireModel()
    let pool = ThreadPool(threads: 2)
    let adapter = LoRAAdapter.random(base: base.hyper, rank: rank, bScale: 0.02, seed: UInt64(rank))
    let fp32Base = try Merge.merge(
      LoRAAdapter.random(base: base.hyper, rank: 1, bScale: 0), into: base, type: .f32, pool: pool)
    let reference = try allLogits(fp32Base, testPrompt, hook: LoRAProjectionHook(adapter: adapter))
    let merged = try allLogits(Merge.merge(adapter, into: base, type: .f32, pool: pool), testPrompt)
    let hook = LoRAHook(adapter: adapter)
    let batch = try allLogits(fp32Base, testPrompt, hook: hook)
    let decoded = try decodeLogits(fp32Base, testPrompt, hook: hook)
    let referenceDecoded = try decodeLogits(fp32Base, testPrompt, hook: LoRAProjectionHook(adapter: adapter))
    let effect = maxAbsDifference(reference, try allLogits(fp32Base, testPrompt))
    print("rank \(rank): LoRAHook batch vs fp32 reference max |Δ| \(maxAbsDifference(batch, reference)), "
      + "mean \(meanAbsDifference(batch, reference)); vs merged F32 max \(maxAbsDifference(batch, merged)); "
      + "decode vs reference decode max \(maxAbsDifference(decoded, referenceDecoded)); effect \(effect)")
    for (a, b) in [(batch, reference), (batch, merged), (decoded, referenceDecoded)] {
      #expect(maxAbsDifference(a, b) < 0.1)
      #expect(meanAbsDifference(a, b) < 0.01)
    }
    #expect(effect > 1, "the adapter must change the logits for the test to mean anything")
  }

  @Test func untargetedProjectionsAreLeftAlone() throws {
    let base = try requireModel()
    let adapter = LoRAAdapter.random(base: base.hyper, rank: 4, projections: [.v], layers: 0..<1, bScale: 0)
    // A zero B: the hook adds exactly 0 where it applies and nothing elsewhere.
    #expect(try allLogits(base, testPrompt, hook: LoRAHook(adapter: adapter)) == (try allLogits(base, testPrompt)))
  }
}
