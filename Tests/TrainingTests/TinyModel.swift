// A tiny random Llama-family model written with the GGUF writer (copied from LlamaTests'
// TinyModel: test targets cannot import each other), and an independent double-precision
// reference of the training loss with LoRA branches and given noise, for finite differences.
import CKernels
import Foundation
import GGUF
import Llama

struct TinyModelSpec {
  var architecture = "llama"
  var layers = 2
  var embedding = 64
  var heads = 4
  var kvHeads = 2
  var feedForward = 96
  var vocabulary = 61
  var ropeBase: Float = 10000
  var epsilon: Float = 1e-5
  var tiedOutput = false
  var biases = false
  /// Type of each projection matrix; norms are always F32.
  var matrixType: GGMLType = .f32
  var embeddingType: GGMLType = .f32
  var seed: UInt64 = 7

  var headDimension: Int { embedding / heads }
}

/// The tiny model's weights as dense doubles, as the reference sees them.
struct DenseWeights {
  var tensors: [String: [Double]] = [:]
  subscript(_ name: String) -> [Double] { tensors[name]! }
}

struct TinyModel {
  let spec: TinyModelSpec
  let path: String
  let dense: DenseWeights

  init(_ spec: TinyModelSpec) throws {
    self.spec = spec
    var writer = GGUFWriter()
    let arch = spec.architecture
    writer.set("general.architecture", .string(arch))
    writer.set("\(arch).block_count", .uint32(UInt32(spec.layers)))
    writer.set("\(arch).embedding_length", .uint32(UInt32(spec.embedding)))
    writer.set("\(arch).feed_forward_length", .uint32(UInt32(spec.feedForward)))
    writer.set("\(arch).attention.head_count", .uint32(UInt32(spec.heads)))
    writer.set("\(arch).attention.head_count_kv", .uint32(UInt32(spec.kvHeads)))
    writer.set("\(arch).rope.freq_base", .float32(spec.ropeBase))
    writer.set("\(arch).attention.layer_norm_rms_epsilon", .float32(spec.epsilon))
    writer.set("\(arch).context_length", .uint32(256))

    var random = SplitMix(seed: spec.seed)
    var dense = DenseWeights()
    func add(_ name: String, _ type: GGMLType, rows: Int, columns: Int, scale: Double, offset: Double = 0) throws {
      let values = (0..<(rows * columns)).map { _ in Float(offset + scale * random.symmetric()) }
      let rowBytes = Int(dq_row_size(type.rawValue, Int64(columns)))
      var bytes = [UInt8](repeating: 0, count: rows * rowBytes)
      var decoded = [Float](repeating: 0, count: rows * columns)
      bytes.withUnsafeMutableBytes { out in
        values.withUnsafeBufferPointer { src in
          decoded.withUnsafeMutableBufferPointer { dst in
            for r in 0..<rows {
              dq_quantize_row(type.rawValue, src.baseAddress! + r * columns, out.baseAddress! + r * rowBytes, Int64(columns))
              dq_dequantize_row_ref(type.rawValue, out.baseAddress! + r * rowBytes, dst.baseAddress! + r * columns, Int64(columns))
            }
          }
        }
      }
      let dims = rows == 1 ? [columns] : [columns, rows]
      try writer.addTensor(name: name, type: type, dimensions: dims, data: bytes)
      dense.tensors[name] = decoded.map(Double.init)
    }

    let d = spec.embedding
    let qDim = spec.heads * spec.headDimension
    let kvDim = spec.kvHeads * spec.headDimension
    try add("token_embd.weight", spec.embeddingType, rows: spec.vocabulary, columns: d, scale: 1)
    try add("output_norm.weight", .f32, rows: 1, columns: d, scale: 0.2, offset: 1)
    if !spec.tiedOutput {
      try add("output.weight", spec.matrixType, rows: spec.vocabulary, columns: d, scale: 0.3)
    }
    for l in 0..<spec.layers {
      let t = spec.matrixType
      try add("blk.\(l).attn_norm.weight", .f32, rows: 1, columns: d, scale: 0.2, offset: 1)
      try add("blk.\(l).ffn_norm.weight", .f32, rows: 1, columns: d, scale: 0.2, offset: 1)
      try add("blk.\(l).attn_q.weight", t, rows: qDim, columns: d, scale: 0.25)
      try add("blk.\(l).attn_k.weight", t, rows: kvDim, columns: d, scale: 0.25)
      try add("blk.\(l).attn_v.weight", t, rows: kvDim, columns: d, scale: 0.25)
      try add("blk.\(l).attn_output.weight", t, rows: d, columns: qDim, scale: 0.15)
      try add("blk.\(l).ffn_gate.weight", t, rows: spec.feedForward, columns: d, scale: 0.2)
      try add("blk.\(l).ffn_up.weight", t, rows: spec.feedForward, columns: d, scale: 0.2)
      try add("blk.\(l).ffn_down.weight", t, rows: d, columns: spec.feedForward, scale: 0.15)
      if spec.biases {
        try add("blk.\(l).attn_q.bias", .f32, rows: 1, columns: qDim, scale: 0.3)
        try add("blk.\(l).attn_k.bias", .f32, rows: 1, columns: kvDim, scale: 0.3)
        try add("blk.\(l).attn_v.bias", .f32, rows: 1, columns: kvDim, scale: 0.3)
      }
    }
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("droplora-tests")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    path = directory.appendingPathComponent("tiny-\(UUID().uuidString).gguf").path
    try writer.write(to: path)
    self.dense = dense
  }

  /// Summed cross-entropy of predicting tokens[t+1] at every t with lossMask[t+1], with LoRA
  /// branches y += s·B·(m ⊙ (A·(x ⊙ dropout))), computed naively in double.
  func referenceLoss(
    _ tokens: [Int32], lossMask: [Bool], lora: [String: ReferenceLoRA], scale: Double
  ) -> Double {
    let s = spec
    let d = s.embedding
    let hd = s.headDimension
    let group = s.heads / s.kvHeads
    let w = dense
    let neox = s.architecture == "qwen2"

    func matvec(_ name: String, _ x: [Double], rows: Int) -> [Double] {
      let m = w[name]
      let columns = x.count
      return (0..<rows).map { r in (0..<columns).reduce(0.0) { $0 + m[r * columns + $1] * x[$1] } }
    }
    /// W·x plus the LoRA branch of `name` at token `t`.
    func project(_ name: String, _ x: [Double], rows: Int, token t: Int) -> [Double] {
      var y = matvec(name, x, rows: rows)
      guard let branch = lora[name] else { return y }
      let n = x.count
      let r = branch.rank
      let xd = (0..<n).map { x[$0] * (branch.dropout?[t * n + $0] ?? 1) }
      var u = [Double](repeating: 0, count: r)
      for k in 0..<r {
        var sum = 0.0
        for c in 0..<n { sum += branch.a[k * n + c] * xd[c] }
        u[k] = sum * (branch.mask?[t * r + k] ?? branch.stepMask?[k] ?? 1)
      }
      for row in 0..<rows {
        var sum = 0.0
        for k in 0..<r { sum += branch.b[row * r + k] * u[k] }
        y[row] += scale * sum
      }
      return y
    }
    func rmsnorm(_ x: [Double], _ name: String) -> [Double] {
      let scale = 1 / (x.map { $0 * $0 }.reduce(0, +) / Double(x.count) + Double(s.epsilon)).squareRoot()
      return zip(x, w[name]).map { $0 * scale * $1 }
    }
    func rope(_ v: inout [Double], heads: Int, position: Int) {
      for h in 0..<heads {
        for i in 0..<(hd / 2) {
          let theta = Double(position) * pow(Double(s.ropeBase), -2.0 * Double(i) / Double(hd))
          let (a, b) = neox ? (h * hd + i, h * hd + i + hd / 2) : (h * hd + 2 * i, h * hd + 2 * i + 1)
          let (x0, x1) = (v[a], v[b])
          v[a] = x0 * cos(theta) - x1 * sin(theta)
          v[b] = x0 * sin(theta) + x1 * cos(theta)
        }
      }
    }

    var xs: [[Double]] = tokens.map { Array(w["token_embd.weight"][Int($0) * d..<(Int($0) + 1) * d]) }
    for l in 0..<s.layers {
      var qs: [[Double]] = [], ks: [[Double]] = [], vs: [[Double]] = []
      for (p, x) in xs.enumerated() {
        let h = rmsnorm(x, "blk.\(l).attn_norm.weight")
        var q = project("blk.\(l).attn_q.weight", h, rows: s.heads * hd, token: p)
        var k = project("blk.\(l).attn_k.weight", h, rows: s.kvHeads * hd, token: p)
        var v = project("blk.\(l).attn_v.weight", h, rows: s.kvHeads * hd, token: p)
        if s.biases {
          q = zip(q, w["blk.\(l).attn_q.bias"]).map(+)
          k = zip(k, w["blk.\(l).attn_k.bias"]).map(+)
          v = zip(v, w["blk.\(l).attn_v.bias"]).map(+)
        }
        rope(&q, heads: s.heads, position: p)
        rope(&k, heads: s.kvHeads, position: p)
        qs.append(q); ks.append(k); vs.append(v)
      }
      for p in 0..<xs.count {
        var attended = [Double](repeating: 0, count: s.heads * hd)
        for head in 0..<s.heads {
          let kvHead = head / group
          var scores = (0...p).map { j in
            (0..<hd).reduce(0.0) { $0 + qs[p][head * hd + $1] * ks[j][kvHead * hd + $1] } / Double(hd).squareRoot()
          }
          let maxScore = scores.max()!
          scores = scores.map { exp($0 - maxScore) }
          let total = scores.reduce(0, +)
          for j in 0...p {
            for i in 0..<hd { attended[head * hd + i] += scores[j] / total * vs[j][kvHead * hd + i] }
          }
        }
        let projected = project("blk.\(l).attn_output.weight", attended, rows: d, token: p)
        xs[p] = zip(xs[p], projected).map(+)
        let h = rmsnorm(xs[p], "blk.\(l).ffn_norm.weight")
        let gate = project("blk.\(l).ffn_gate.weight", h, rows: s.feedForward, token: p)
        let up = project("blk.\(l).ffn_up.weight", h, rows: s.feedForward, token: p)
        let hidden = zip(gate, up).map { $0 / (1 + exp(-$0)) * $1 }
        xs[p] = zip(xs[p], project("blk.\(l).ffn_down.weight", hidden, rows: d, token: p)).map(+)
      }
    }
    let outputName = s.tiedOutput ? "token_embd.weight" : "output.weight"
    var loss = 0.0
    for t in 0..<(tokens.count - 1) where lossMask[t + 1] {
      let logits = matvec(outputName, rmsnorm(xs[t], "output_norm.weight"), rows: s.vocabulary)
      let m = logits.max()!
      let lse = m + log(logits.map { exp($0 - m) }.reduce(0, +))
      loss += lse - logits[Int(tokens[t + 1])]
    }
    return loss
  }
}

/// One LoRA branch as the reference sees it (GGUF tensor name → factors and noise).
struct ReferenceLoRA {
  var rank: Int
  var a: [Double]
  var b: [Double]
  /// tokens x columns dropout factors.
  var dropout: [Double]?
  /// tokens x rank mask factors (`token` granularity).
  var mask: [Double]?
  /// rank mask factors shared by all tokens (`step` granularity).
  var stepMask: [Double]?
}

/// A seeded generator for test data (SplitMix64).
struct SplitMix {
  var state: UInt64
  init(seed: UInt64) { state = seed }
  mutating func next() -> UInt64 {
    state &+= 0x9E37_79B9_7F4A_7C15
    var z = state
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
  }
  /// Uniform in [-1, 1).
  mutating func symmetric() -> Double { Double(next() >> 11) * 0x1.0p-52 - 1 }
}
