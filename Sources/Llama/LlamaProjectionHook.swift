// A hook a context calls after every layer projection, to add an unmerged low-rank update
// (LoRA applied at each projection, y = W x + s·B·(A x)) without touching the weights.
// The Adapters module implements it; the context only knows this protocol. The context's pool
// is passed so the update can use the same threads as the projection.
import Kernels

public protocol LlamaProjectionHook: AnyObject {
  /// out (tokens x rows) += the update for `projection` of `layer` at input x (tokens x columns).
  func apply(
    layer: Int, projection: LlamaProjection, out: UnsafeMutablePointer<Float>,
    x: UnsafePointer<Float>, tokens: Int, rows: Int, columns: Int, pool: ThreadPool)
}
