// The serving path for an unmerged adapter: y += s·B·(A x) at every targeted projection, with
// A (rank x in) and Bᵀ (rank x out) converted once to F16 into one buffer, contiguous per target
// (half the bytes of F32: decode is bound by reading memory). A single token hands the factors
// to the context (`lowRank`), which adds the update inside the projection's own parallel pass
// (MatMul.multiplyVector(adding:)); batches hand the factors over too, and the pass adds every
// adapter's update in the base product's pool job (MatMul.multiply(adding:)); `apply` runs the
// same grouped job for one adapter's rows alone.
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
    // The grouped job with one group and no base product: each thread takes chunks of ranks
    // of U = s·X Aᵀ for every row, then a slice of Y += U Bᵀ for every row, so each slice of
    // the factors is read from memory once per call, not once per row.
    let update = LowRankF16(a: t.a, bt: t.bt, rank: t.rank, rows: t.rows, columns: t.columns, scale: scale)
    MatMul.addLowRank(out, x, tokens: tokens, rows: rows, columns: columns, [(update, 0..<tokens)], pool: pool)
  }
}
