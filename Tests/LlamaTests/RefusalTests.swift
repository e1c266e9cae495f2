// No silent misreads: a file whose tensors or metadata ask for math this build does not
// implement is refused with an error naming the tensor or key, never run with other math.
import Foundation
import GGUF
import Llama
import Testing
import TinyModelSupport

struct RefusalTests {
  struct Case: CustomTestStringConvertible, Sendable {
    let name: String
    let architecture: String
    var metadata: [(String, GGUFValue)] = []
    var tensors: [(String, Int)] = []
    var queryKeyNorm = false
    /// The tensor or key the error must name.
    let named: String
    var testDescription: String { name }
  }

  static let cases: [Case] = [
    .init(
      name: "rope_freqs on mistral (not applied there)", architecture: "mistral",
      tensors: [("rope_freqs.weight", 8)], named: "rope_freqs.weight"),
    .init(
      name: "unknown rope scaling type", architecture: "llama",
      metadata: [("llama.rope.scaling.type", .string("yarn"))], named: "llama.rope.scaling.type"),
    .init(
      name: "longrope scaling", architecture: "llama",
      metadata: [("llama.rope.scaling.type", .string("longrope"))], named: "llama.rope.scaling.type"),
    .init(
      name: "attention logit softcapping", architecture: "llama",
      metadata: [("llama.attn_logit_softcapping", .float32(50))], named: "llama.attn_logit_softcapping"),
    .init(
      name: "final logit softcapping", architecture: "qwen2",
      metadata: [("qwen2.final_logit_softcapping", .float32(30))], named: "qwen2.final_logit_softcapping"),
    .init(
      name: "sliding window on a full-attention family", architecture: "qwen3",
      metadata: [("qwen3.attention.sliding_window", .uint32(4))], queryKeyNorm: true, named: "qwen3.attention.sliding_window"),
    .init(
      name: "attention scale", architecture: "llama",
      metadata: [("llama.attention.scale", .float32(0.1))], named: "llama.attention.scale"),
    .init(
      name: "experts", architecture: "llama",
      metadata: [("llama.expert_count", .uint32(8))], named: "llama.expert_count"),
    .init(
      name: "YaRN attention factor", architecture: "qwen2",
      metadata: [("qwen2.rope.scaling.attn_factor", .float32(1.2))], named: "qwen2.rope.scaling.attn_factor"),
    .init(
      name: "value length unlike key length", architecture: "llama",
      metadata: [("llama.attention.value_length", .uint32(32))], named: "llama.attention.value_length"),
    .init(
      name: "q/k norms on llama", architecture: "llama",
      tensors: [("blk.0.attn_q_norm.weight", 16), ("blk.0.attn_k_norm.weight", 16)],
      named: "blk.0.attn_q_norm.weight"),
    .init(
      name: "post-attention norm (Gemma-style)", architecture: "qwen3",
      tensors: [("blk.1.post_attention_norm.weight", 64)], queryKeyNorm: true, named: "blk.1.post_attention_norm.weight"),
    .init(
      name: "output bias", architecture: "llama",
      tensors: [("blk.0.attn_output.bias", 64)], named: "blk.0.attn_output.bias"),
    .init(
      name: "q bias on qwen3", architecture: "qwen3",
      tensors: [("blk.0.attn_q.bias", 64)], queryKeyNorm: true, named: "blk.0.attn_q.bias"),
  ]

  @Test("a file asking for unimplemented math is refused, naming the tensor or key", arguments: cases)
  func refused(_ c: Case) throws {
    var spec = TinyModelSpec(architecture: c.architecture, queryKeyNorm: c.queryKeyNorm)
    spec.extraMetadata = c.metadata
    spec.extraTensors = c.tensors
    let tiny = try TinyModel(spec)
    defer { try? FileManager.default.removeItem(atPath: tiny.path) }
    do {
      _ = try LlamaModel(path: tiny.path)
      Issue.record("loaded a file with \(c.named)")
    } catch let error as LlamaError {
      guard case .unsupportedFeature(let name, _) = error else {
        Issue.record("wrong error \(error)")
        return
      }
      #expect(name == c.named)
      #expect("\(error)".contains(c.named))
    }
  }

  @Test("neutral values of those keys are accepted")
  func neutralValues() throws {
    var spec = TinyModelSpec(architecture: "llama")
    spec.extraMetadata = [
      ("llama.rope.scaling.type", .string("none")), ("llama.expert_count", .uint32(0)),
      ("llama.rope.scaling.attn_factor", .float32(1)), ("llama.attention.value_length", .uint32(16)),
    ]
    let tiny = try TinyModel(spec)
    defer { try? FileManager.default.removeItem(atPath: tiny.path) }
    #expect(throws: Never.self) { try LlamaModel(path: tiny.path) }
  }

  @Test("qwen3 without its q/k norms is refused, naming the missing tensor")
  func missingNorm() throws {
    let tiny = try TinyModel(TinyModelSpec(architecture: "qwen3"))
    defer { try? FileManager.default.removeItem(atPath: tiny.path) }
    #expect(throws: LlamaError.missingTensor(name: "blk.0.attn_q_norm.weight")) {
      try LlamaModel(path: tiny.path)
    }
  }
}
