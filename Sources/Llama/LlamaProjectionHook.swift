// A hook a context calls after every layer projection, to add an unmerged low-rank update
// (LoRA applied at each projection, y = W x + s·B·(A x)) without touching the weights.
// The Adapters module implements it; the context only knows this protocol. The context's pool
// is passed so the update can use the same threads as the projection. A hook that can hand out
// its update as F16 factors (`lowRank`) has it fused into the projection's own parallel pass
// when a single token is decoded.
import Kernels

public protocol LlamaProjectionHook: AnyObject {
  /// out (tokens x rows) += the update for `projection` of `layer` at input x (tokens x columns).
  func apply(
    layer: Int, projection: LlamaProjection, out: UnsafeMutablePointer<Float>,
    x: UnsafePointer<Float>, tokens: Int, rows: Int, columns: Int, pool: ThreadPool)

  /// The update for `projection` of `layer` as F16 factors, for the context to add inside the
  /// projection's matrix-vector pass (decode). nil makes the context call `apply` instead
  /// (the default, for hooks that only implement `apply`).
  func lowRank(layer: Int, projection: LlamaProjection) -> LowRankF16?
}

extension LlamaProjectionHook {
  public func lowRank(layer: Int, projection: LlamaProjection) -> LowRankF16? { nil }
}
