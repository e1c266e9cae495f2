// What sets one supported architecture's forward pass apart from the plain Llama one. A family
// is a description the one generic forward (LlamaContext, the training graph) reads; adding an
// architecture means adding a row here, not a copy of the forward.
import GGUF

/// The gated feed-forward's activation: act(x Wgateᵀ) ⊙ (x Wupᵀ).
public enum FeedForwardActivation: String, Sendable, Equatable {
  /// SwiGLU (Llama, Qwen).
  case silu
  /// GeGLU with the tanh approximation of GELU (Gemma).
  case geluTanh
}

public struct ModelFamily: Sendable, Equatable {
  public let architecture: String
  /// RoPE rotates pairs (i, i + d/2) (NeoX) instead of (2i, 2i+1) (GGUF Llama's permuted rows).
  public let ropeIsNeox: Bool
  /// q and k are RMS-normed per head (weights `attn_q_norm` / `attn_k_norm`) before RoPE.
  public let hasQueryKeyNorm: Bool
  /// Files may carry q/k/v biases (`attn_q.bias` ...), added after the projection.
  public let allowsQKVBias: Bool
  /// Files may carry `rope_freqs.weight` (Llama 3.1 "llama3" RoPE scaling).
  public let allowsRoPEFrequencyFactors: Bool
  public var activation: FeedForwardActivation = .silu
  /// Token embeddings are multiplied by √d (Gemma).
  public var scalesEmbedding = false
  /// RMSNorms after the attention and feed-forward blocks, before the residual add
  /// (`post_attention_norm`, `post_ffw_norm`; Gemma).
  public var hasPostNorms = false
  /// Reads `attention.sliding_window` (+ `sliding_window_pattern`, `rope.freq_base_swa`):
  /// local layers attend to the last `window` positions with their own RoPE base (Gemma 3).
  public var hasSlidingWindow = false

  /// Keys this family implements that other families refuse.
  var implementedKeys: Set<String> {
    hasSlidingWindow ? ["attention.sliding_window"] : []
  }

  public static let all: [String: ModelFamily] = [
    "llama": .init(
      architecture: "llama", ropeIsNeox: false, hasQueryKeyNorm: false, allowsQKVBias: false,
      allowsRoPEFrequencyFactors: true),
    "mistral": .init(
      architecture: "mistral", ropeIsNeox: false, hasQueryKeyNorm: false, allowsQKVBias: false,
      allowsRoPEFrequencyFactors: false),
    "qwen2": .init(
      architecture: "qwen2", ropeIsNeox: true, hasQueryKeyNorm: false, allowsQKVBias: true,
      allowsRoPEFrequencyFactors: false),
    "qwen3": .init(
      architecture: "qwen3", ropeIsNeox: true, hasQueryKeyNorm: true, allowsQKVBias: false,
      allowsRoPEFrequencyFactors: false),
    "gemma3": .init(
      architecture: "gemma3", ropeIsNeox: true, hasQueryKeyNorm: true, allowsQKVBias: false,
      allowsRoPEFrequencyFactors: false, activation: .geluTanh, scalesEmbedding: true, hasPostNorms: true,
      hasSlidingWindow: true),
  ]

  /// Metadata keys (after the `<arch>.` prefix) that change the computation and that no family
  /// here implements: a file carrying one is refused rather than run with the wrong math.
  /// A key whose value is the neutral one (0, or 1 for multipliers) is accepted.
  static let unimplementedKeys: [(suffix: String, neutral: Double)] = [
    ("attn_logit_softcapping", 0), ("final_logit_softcapping", 0), ("router_logit_softcapping", 0),
    ("attention.scale", 0), ("embedding_scale", 0), ("residual_scale", 0), ("logit_scale", 0),
    ("attention.sliding_window", 0), ("expert_count", 0), ("expert_used_count", 0),
    ("attention.layer_norm_epsilon", 0), ("attention.clamp_kqv", 0), ("attention.q_lora_rank", 0),
    ("attention.kv_lora_rank", 0), ("rope.scaling.attn_factor", 1),
    ("rope.scaling.yarn_log_multiplier", 0), ("rope.dimension_sections", 0),
  ]

  /// Throws for the first unimplemented key `file` carries with a non-neutral value.
  func rejectUnimplementedMetadata(in file: GGUFFile) throws {
    for (suffix, neutral) in Self.unimplementedKeys where !implementedKeys.contains(suffix) {
      let key = "\(architecture).\(suffix)"
      guard let value = file.metadata[key] else { continue }
      if let number = try? file.float(key), number == neutral { continue }
      throw LlamaError.unsupportedFeature(
        name: key, reason: "changes the computation (value \(value)) and is not implemented for \(architecture)")
    }
  }
}
