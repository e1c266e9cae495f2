// Merged weights against the unmerged computation W x + s·B·(A x), on the real default model
// with random adapters of rank 8 and 32 on every projection of every layer.
//
// Tolerances. (1) F32 merge: the reference runs the same forward pass with W = dequant(W) in
// fp32 (merged with a zero adapter, which is exact) and adds s·B·(A x) at each projection; the
// merged run uses fp32 W + s·B·A. Inside the layers the two differ only in fp32 rounding order
// (about 1e-7 relative). The untargeted output matrix stays quantized, so its input is
// quantized to 8 bits, which absorbs such differences exactly at almost every position (the
// logits come out bit-identical) but can flip one quantization step of one element, moving
// that position's logits by up to a few hundredths (0.034 measured at rank 32). Hence: max
// |Δ| < 0.1 and mean |Δ| < 1e-3, while the adapter itself moves logits by more than 1.
// (2) Q8_0 merge: storing W' in Q8_0 rounds every weight to 1/127 of its block's largest, and
// the quantized dot products quantize activations to 8 bits as well. That noise is measured,
// not guessed: the base model requantized to Q8_0 (zero adapter) is compared to the fp32
// base, and the Q8_0-merged adapter may differ from its fp32 reference by at most 1.5× that
// floor plus 0.05. A wrong scale, transposed factor or swapped row moves logits by units.
import Adapters
import Foundation
import GGUF
import Kernels
import Llama
import Testing

@Suite(.enabled(if: defaultModelIsPresent, needsModel), .serialized) struct MergeTests {
  func zeroAdapter(_ hyper: LlamaHyperParameters, rank: Int) -> LoRAAdapter {
    LoRAAdapter.random(base: hyper, rank: rank, bScale: 0)
  }

  @Test(arguments: [8, 32])
  func mergedF32EqualsUnmergedComputation(rank: Int) throws {
    let base = try requireModel()
    let pool = ThreadPool(threads: 2)
    let adapter = LoRAAdapter.random(base: base.hyper, rank: rank, bScale: 0.02, seed: UInt64(rank))
    // W in fp32 exactly: a zero adapter merged adds 0 to every dequantized weight.
    let fp32Base = try Merge.merge(zeroAdapter(base.hyper, rank: 1), into: base, type: .f32, pool: pool)
    let unmerged = try allLogits(fp32Base, testPrompt, hook: LoRAProjectionHook(adapter: adapter))
    let merged = try allLogits(Merge.merge(adapter, into: base, type: .f32, pool: pool), testPrompt)
    let without = try allLogits(fp32Base, testPrompt)
    let difference = maxAbsDifference(merged, unmerged)
    let effect = maxAbsDifference(unmerged, without)
    print("rank \(rank): merged F32 vs unmerged max |Δ| \(difference); adapter effect max |Δ| \(effect)")
    #expect(difference < 0.1)
    #expect(meanAbsDifference(merged, unmerged) < 1e-3)
    #expect(effect > 1, "the adapter must change the logits for the test to mean anything")
  }

  @Test(arguments: [8, 32])
  func mergedQ8_0StaysWithinItsQuantizationNoise(rank: Int) throws {
    let base = try requireModel()
    let pool = ThreadPool(threads: 2)
    let adapter = LoRAAdapter.random(base: base.hyper, rank: rank, bScale: 0.02, seed: UInt64(rank))
    let fp32Base = try Merge.merge(zeroAdapter(base.hyper, rank: 1), into: base, type: .f32, pool: pool)
    let q8Base = try Merge.merge(zeroAdapter(base.hyper, rank: 1), into: base, type: .q8_0, pool: pool)
    let floor = meanAbsDifference(try allLogits(q8Base, testPrompt), try allLogits(fp32Base, testPrompt))
    let unmerged = try allLogits(fp32Base, testPrompt, hook: LoRAProjectionHook(adapter: adapter))
    let merged = try allLogits(Merge.merge(adapter, into: base, type: .q8_0, pool: pool), testPrompt)
    let difference = meanAbsDifference(merged, unmerged)
    print("rank \(rank): merged Q8_0 vs unmerged mean |Δ| \(difference); Q8_0 floor \(floor)")
    #expect(difference <= 1.5 * floor + 0.05)
    // The quantized base with the unmerged adapter at each projection agrees as well.
    let hooked = try allLogits(base, testPrompt, hook: LoRAProjectionHook(adapter: adapter))
    let baseFloor = meanAbsDifference(try allLogits(base, testPrompt), try allLogits(fp32Base, testPrompt))
    #expect(meanAbsDifference(hooked, unmerged) <= 1.5 * baseFloor + 0.05)
  }

  @Test func untargetedMatricesStayTheMappedOriginals() throws {
    let base = try requireModel()
    let adapter = LoRAAdapter.random(base: base.hyper, rank: 2, projections: [.q, .v], layers: 0..<2)
    let merged = try Merge.merge(adapter, into: base, type: .f16, pool: ThreadPool(threads: 1))
    for layer in 0..<base.hyper.layerCount {
      for projection in LlamaProjection.allCases {
        let original = base.weights.layers[layer].matrix(projection)
        let now = merged.weights.layers[layer].matrix(projection)
        let targeted = layer < 2 && (projection == .q || projection == .v)
        #expect((now.base == original.base) == !targeted)
        #expect(now.type == (targeted ? 1 : original.type))  // F16
      }
    }
    #expect(merged.weights.tokenEmbedding.base == base.weights.tokenEmbedding.base)
  }

  /// The standalone merged GGUF: the base's metadata and tensors, the merged matrices in their
  /// type, and exactly the in-memory merged model's logits when loaded back.
  @Test func mergedFileReloadsToTheSameModel() throws {
    let base = try requireModel()
    let directory = try scratchDirectory("merged")
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let adapter = LoRAAdapter.random(base: base.hyper, rank: 8, projections: [.q, .k, .down], bScale: 0.02)
    let merged = try Merge.merge(adapter, into: base, type: .q8_0, pool: ThreadPool(threads: 2))
    try MergedFile.write(merged, to: directory + "/merged.gguf")
    let file = try GGUFFile(path: directory + "/merged.gguf")
    #expect(file.metadataKeys == base.file.metadataKeys)
    #expect(file.tensors.map(\.name) == base.file.tensors.map(\.name))
    #expect(file.tensor(named: "blk.3.attn_k.weight")?.type == .q8_0)
    #expect(file.tensor(named: "blk.3.attn_v.weight")?.type == base.file.tensor(named: "blk.3.attn_v.weight")?.type)
    let reloaded = try LlamaModel(file: file)
    #expect(try allLogits(reloaded, testPrompt) == (try allLogits(merged, testPrompt)))
  }

  /// A merge into a kept buffer (stale bytes of another adapter's set) writes the same matrices
  /// as a merge into fresh memory; the buffer is kept only once its set is dropped.
  @Test func reusedBufferMergesLikeFreshMemory() throws {
    let base = try requireModel()
    let pool = ThreadPool(threads: 2)
    let buffers = MergeBufferPool(capacity: 1)
    let projections: [LlamaProjection] = [.q, .v, .down]
    let first = LoRAAdapter.random(base: base.hyper, rank: 4, projections: projections, bScale: 0.5, seed: 1)
    let second = LoRAAdapter.random(base: base.hyper, rank: 8, projections: projections, bScale: 0.02, seed: 2)
    var held: LlamaModel? = try Merge.merge(first, into: base, type: .q8_0, pool: pool, buffers: buffers)
    let firstAddress = (held!.owner as! MergedWeights).matrices.values.map(\.base).min()!
    #expect(buffers.keptBytes == 0)
    held = nil
    #expect(buffers.keptBytes > 0)
    let reused = try Merge.merge(second, into: base, type: .q8_0, pool: pool, buffers: buffers)
    let owner = reused.owner as! MergedWeights
    #expect(owner.matrices.values.map(\.base).min()! == firstAddress)
    #expect(buffers.keptBytes == 0)
    let fresh = try Merge.merge(second, into: base, type: .q8_0, pool: pool)
    let freshOwner = fresh.owner as! MergedWeights
    for (target, matrix) in owner.matrices {
      let other = freshOwner.matrices[target]!
      #expect(memcmp(matrix.base, other.base, matrix.rows * matrix.rowStride) == 0, "\(target)")
    }
  }
}
