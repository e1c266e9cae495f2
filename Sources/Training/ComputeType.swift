// Precision of the products through the frozen base weights in training (the LoRA branches,
// attention, norms, the loss and the optimizer stay fp32 either way).
import CKernels

public enum ComputeType: String, Sendable, Codable, CaseIterable {
  /// fp32 tiles and OpenBLAS sgemm: the gradients of exactly the function inference computes.
  case f32
  /// Weights and activations rounded to bf16 (8-bit mantissa) with fp32 sums, on AVX512-BF16
  /// (`vdpbf16ps`, twice sgemm's rate): QLoRA's usual compute type. The gradients are those of
  /// a slightly perturbed function (relative error ~2⁻⁹ per product).
  case bf16
  /// The forward's products as inference computes them (activations rounded to the weight's
  /// 8-bit dot type, integer dot products: about 4x sgemm's rate with AVX512-VNNI); the
  /// backward's stay fp32, so the gradient passes straight through the activation rounding.
  /// Quantized matrices only (float matrices keep the f32 path).
  case int8

  /// Whether this CPU runs it (f32 and int8 run everywhere).
  public var isSupported: Bool { self != .bf16 || dq_cpu_has_avx512bf16() }

  /// Why this CPU cannot run it (the message every front end shows), or nil.
  public var unsupportedReason: String? {
    isSupported ? nil : "\(rawValue) needs a CPU with AVX512-BF16 (this one has none); use f32"
  }
}
