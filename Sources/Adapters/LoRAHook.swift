// The serving path for an unmerged adapter: y += s·B·(A x) at every targeted projection, with
// A (rank x in) and Bᵀ (rank x out) converted once to F16 into one buffer, contiguous per target
// (half the bytes of F32: decode is bound by reading memory). A single token hands the factors
// to the context (`lowRank`), which adds the update inside the projection's own parallel pass
// (MatMul.multiplyVector(adding:)); `apply` serves batches as two small products over all
// the rows of a run (one slice of the factors per thread, read once for every row).
// Immutable after init, so contexts on different threads may share one hook.
// `scaled(by:)` makes a hook on the same factors at another scale (a request's `adapter_scale`):
// the scale is a property of the hook instance, so sequences at different scales of one adapter
// each carry their own hook and the batched pass adds each one's update to its own rows.
import CKernels
import Kernels
import Llama

public final class LoRAHook: LlamaProjectionHook, @unchecked Sendable {
  // unchecked: the factor buffer is written in init and only read afterwards.
  /// The F16 factors of every target, shared by the hooks `scaled(by:)` makes.
  final class Factors: @unchecked Sendable {
    let storage: UnsafeMutablePointer<UInt16>
    init(count: Int) { storage = .allocate(capacity: max(1, count)) }
    deinit { storage.deallocate() }
  }

  struct Target {
    let rank: Int
    let rows: Int
    let columns: Int
    let a: UnsafeMutablePointer<UInt16>  // rank x columns
    let bt: UnsafeMutablePointer<UInt16>  // rank x rows (B transposed)
  }

  /// s in y += s·B·(A x): the adapter's alpha/r times the request's scale (1 unless `scaled`).
  public let scale: Float
  /// Bytes of F16 factors read per token when every target is applied.
  public let byteCount: Int
  private let layerCount: Int
  private let targets: [Target?]  // [layer * projections + projection's index]
  private let factors: Factors
  private static let projections = LlamaProjection.allCases

  public init(adapter: LoRAAdapter) {
    scale = adapter.scale
    layerCount = (adapter.targets.map(\.layer).max() ?? -1) + 1
    var count = 0
    for f in adapter.factors.values { count += f.rank * (f.rows + f.columns) }
    factors = Factors(count: count)
    byteCount = count * 2
    var targets = [Target?](repeating: nil, count: layerCount * Self.projections.count)
    var next = factors.storage
    var transposed: [Float] = []
    for target in adapter.targets {
      let f = adapter.factors[target]!  // from targets
      let a = next
      let bt = next + f.rank * f.columns
      next += f.rank * (f.rows + f.columns)
      f.a.withUnsafeBufferPointer {
        dq_quantize_row(UInt32(DQ_TYPE_F16), $0.baseAddress!, a, Int64(f.a.count))
      }
      transposed.removeAll(keepingCapacity: true)
      transposed.reserveCapacity(f.b.count)
      for k in 0..<f.rank {
        for i in 0..<f.rows { transposed.append(f.b[i * f.rank + k]) }
      }
      transposed.withUnsafeBufferPointer {
        dq_quantize_row(UInt32(DQ_TYPE_F16), $0.baseAddress!, bt, Int64(f.b.count))
      }
      targets[target.layer * Self.projections.count + Self.projections.firstIndex(of: target.projection)!] =
        Target(rank: f.rank, rows: f.rows, columns: f.columns, a: a, bt: bt)
    }
    self.targets = targets
  }

  private init(sharing other: LoRAHook, scale: Float) {
    self.scale = scale
    byteCount = other.byteCount
    layerCount = other.layerCount
    targets = other.targets
    factors = other.factors
  }

  /// A hook on the same factors (no copy) whose update is `factor` times this one's.
  public func scaled(by factor: Float) -> LoRAHook {
    LoRAHook(sharing: self, scale: scale * factor)
  }

  /// Whether `other` adds exactly the update this hook adds (same factors, same scale), so a
  /// KV cache computed under one is valid under the other.
  public func computesSameUpdate(as other: LoRAHook) -> Bool {
    factors === other.factors && scale == other.scale
  }

  public func lowRank(layer: Int, projection: LlamaProjection) -> LowRankF16? {
    guard layer < layerCount,
      let t = targets[layer * Self.projections.count + Self.projections.firstIndex(of: projection)!]
    else { return nil }
    return LowRankF16(a: t.a, bt: t.bt, rank: t.rank, rows: t.rows, columns: t.columns, scale: scale)
  }

  public func apply(
    layer: Int, projection: LlamaProjection, out: UnsafeMutablePointer<Float>,
    x: UnsafePointer<Float>, tokens: Int, rows: Int, columns: Int, pool: ThreadPool
  ) {
    guard layer < layerCount,
      let t = targets[layer * Self.projections.count + Self.projections.firstIndex(of: projection)!]
    else { return }
    precondition(t.rows == rows && t.columns == columns, "adapter shape does not match the weights")
    let rank = t.rank
    let scale = self.scale
    withUnsafeTemporaryAllocation(of: Float.self, capacity: tokens * rank) { buffer in
      let u = buffer.baseAddress!
      if tokens == 1 {
        pool.parallelFor(rank) { ks, _ in
          dq_lora_down_f16(
            u + ks.lowerBound, t.a + ks.lowerBound * columns, Int64(ks.count), x, Int64(columns), scale)
        }
        // Chunks of 32 rows keep every thread on the vector path.
        pool.parallelFor(rows, align: 32) { js, _ in
          dq_lora_up_f16(
            out + js.lowerBound, t.bt + js.lowerBound, Int64(rows), u, Int64(rank), Int64(js.count))
        }
      } else {
        // Grouped low-rank product over all the run's rows (S-LoRA/Punica's shape on a CPU):
        // U = s·X Aᵀ, then Y += U Bᵀ, each thread taking a slice of the factors and every row,
        // so each slice of A and Bᵀ is read from memory once per step (it stays in cache across
        // the rows) instead of once per row.
        pool.parallelFor(rank, align: 2) { ks, _ in
          for i in 0..<tokens {
            dq_lora_down_f16(
              u + i * rank + ks.lowerBound, t.a + ks.lowerBound * columns, Int64(ks.count), x + i * columns,
              Int64(columns), scale)
          }
        }
        pool.parallelFor(rows, align: 32) { js, _ in
          for i in 0..<tokens {
            dq_lora_up_f16(
              out + i * rows + js.lowerBound, t.bt + js.lowerBound, Int64(rows), u + i * rank, Int64(rank),
              Int64(js.count))
          }
        }
      }
    }
  }
}
