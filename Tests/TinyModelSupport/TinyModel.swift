// A tiny random Llama-family model written with the GGUF writer, and a plain reference
// forward pass in double precision over its dequantized weights, shared by the inference and
// training tests. The reference is written for clarity (naive loops, no cache, no batching),
// independently of LlamaContext and the training graph.
import CKernels
import Foundation
import GGUF

public struct TinyModelSpec: Sendable {
  public var architecture: String
  public var layers: Int
  public var embedding: Int
  public var heads: Int
  public var kvHeads: Int
  public var feedForward: Int
  public var vocabulary: Int
  public var ropeBase: Float
  public var epsilon: Float
  public var tiedOutput: Bool
  public var biases: Bool
  /// Per-head RMSNorm of q and k before RoPE (`attn_q_norm` / `attn_k_norm`, as qwen3 has).
  public var queryKeyNorm: Bool
  /// Writes `rope_freqs.weight` (Llama 3.1 RoPE scaling factors, one per rotated pair).
  public var ropeFrequencyFactors: Bool
  /// Gemma 3's options: embeddings × √d, post-norms, GeGLU (tanh GELU), and, when
  /// `slidingWindow` > 0, layers l with l % slidingPattern < slidingPattern - 1 attending to the
  /// last `slidingWindow` positions with RoPE base `slidingRopeBase`.
  public var gemma: Bool = false
  public var slidingWindow: Int = 0
  public var slidingPattern: Int = 2
  public var slidingRopeBase: Float = 10000
  /// Extra metadata written as is (tests of refused keys).
  public var extraMetadata: [(String, GGUFValue)] = []
  /// Extra F32 vectors of the given length written after the model's own (refused tensors).
  public var extraTensors: [(String, Int)] = []
  /// Type of each projection matrix; norms are always F32.
  public var matrixType: GGMLType
  public var embeddingType: GGMLType
  public var seed: UInt64

  public init(
    architecture: String = "llama", layers: Int = 2, embedding: Int = 64, heads: Int = 4,
    kvHeads: Int = 2, feedForward: Int = 96, vocabulary: Int = 61, ropeBase: Float = 10000,
    epsilon: Float = 1e-5, tiedOutput: Bool = false, biases: Bool = false,
    queryKeyNorm: Bool = false, ropeFrequencyFactors: Bool = false,
    matrixType: GGMLType = .f32, embeddingType: GGMLType = .f32, seed: UInt64 = 7
  ) {
    self.queryKeyNorm = queryKeyNorm
    self.ropeFrequencyFactors = ropeFrequencyFactors
    self.architecture = architecture
    self.layers = layers
    self.embedding = embedding
    self.heads = heads
    self.kvHeads = kvHeads
    self.feedForward = feedForward
    self.vocabulary = vocabulary
    self.ropeBase = ropeBase
    self.epsilon = epsilon
    self.tiedOutput = tiedOutput
    self.biases = biases
    self.matrixType = matrixType
    self.embeddingType = embeddingType
    self.seed = seed
  }

  public var headDimension: Int { embedding / heads }

  /// A tiny Gemma 3: q/k norms, post-norms, GeGLU, √d embedding scale, tied output, and
  /// layer 0 of each pair sliding over a window of 4 (the tests' 12 tokens cross it).
  public static func gemma3(matrixType: GGMLType = .f32, seed: UInt64 = 7) -> TinyModelSpec {
    var spec = TinyModelSpec(
      architecture: "gemma3", ropeBase: 1_000_000, epsilon: 1e-6, tiedOutput: true, queryKeyNorm: true,
      matrixType: matrixType, embeddingType: matrixType, seed: seed)
    spec.gemma = true
    spec.slidingWindow = 4
    spec.slidingPattern = 2
    return spec
  }
}

/// The tiny model's weights as dense doubles, as the reference sees them.
public struct DenseWeights: Sendable {
  public var tensors: [String: [Double]] = [:]
  public subscript(_ name: String) -> [Double] { tensors[name]! }
}

public struct TinyModel: Sendable {
  public let spec: TinyModelSpec
  public let path: String
  public let dense: DenseWeights

  public init(_ spec: TinyModelSpec) throws {
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
    for (key, value) in spec.extraMetadata { writer.set(key, value) }
    if spec.slidingWindow > 0 {
      writer.set("\(arch).attention.sliding_window", .uint32(UInt32(spec.slidingWindow)))
      writer.set("\(arch).attention.sliding_window_pattern", .uint32(UInt32(spec.slidingPattern)))
      writer.set("\(arch).rope.freq_base_swa", .float32(spec.slidingRopeBase))
    }

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
    if spec.ropeFrequencyFactors {
      // Factors from 1 to 19, as Llama 3.1's range from 1 (fast pairs) to 8 or 32 (slow ones).
      try add("rope_freqs.weight", .f32, rows: 1, columns: spec.headDimension / 2, scale: 9, offset: 10)
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
      if spec.queryKeyNorm {
        try add("blk.\(l).attn_q_norm.weight", .f32, rows: 1, columns: spec.headDimension, scale: 0.3, offset: 1)
        try add("blk.\(l).attn_k_norm.weight", .f32, rows: 1, columns: spec.headDimension, scale: 0.3, offset: 1)
      }
      if spec.gemma {
        try add("blk.\(l).post_attention_norm.weight", .f32, rows: 1, columns: d, scale: 0.2, offset: 0.5)
        try add("blk.\(l).post_ffw_norm.weight", .f32, rows: 1, columns: d, scale: 0.2, offset: 0.5)
      }
    }
    for (name, count) in spec.extraTensors {
      try add(name, .f32, rows: 1, columns: count, scale: 0.1, offset: 1)
    }
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("droplora-tests")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    path = directory.appendingPathComponent("tiny-\(UUID().uuidString).gguf").path
    try writer.write(to: path)
    self.dense = dense
  }

  /// W·x for the weight `name` (rows x x.count), in double.
  public func matvec(_ name: String, _ x: [Double], rows: Int) -> [Double] {
    let m = dense[name]
    let columns = x.count
    return (0..<rows).map { r in (0..<columns).reduce(0.0) { $0 + m[r * columns + $1] * x[$1] } }
  }

  /// Logits of every position of `tokens`, computed from scratch (no cache), in double. Every
  /// layer projection goes through `project(name, x, rows, position)`, by default W·x; callers
  /// add their own terms there (the training tests' LoRA branches).
  public func referenceLogits(
    _ tokens: [Int32], project: ((String, [Double], Int, Int) -> [Double])? = nil
  ) -> [[Double]] {
    let s = spec
    let d = s.embedding
    let hd = s.headDimension
    let group = s.heads / s.kvHeads
    let w = dense
    let neox = ["qwen2", "qwen3", "gemma3"].contains(s.architecture)
    let factors = s.ropeFrequencyFactors ? w["rope_freqs.weight"] : nil
    let project = project ?? { name, x, rows, _ in matvec(name, x, rows: rows) }
    func headNorm(_ v: inout [Double], heads: Int, _ name: String) {
      for h in 0..<heads {
        let normed = rmsnorm(Array(v[(h * hd)..<((h + 1) * hd)]), name)
        v.replaceSubrange((h * hd)..<((h + 1) * hd), with: normed)
      }
    }
    func rmsnorm(_ x: [Double], _ name: String) -> [Double] {
      let scale = 1 / (x.map { $0 * $0 }.reduce(0, +) / Double(x.count) + Double(s.epsilon)).squareRoot()
      return zip(x, w[name]).map { $0 * scale * $1 }
    }
    func sliding(_ l: Int) -> Bool { s.slidingWindow > 0 && l % s.slidingPattern < s.slidingPattern - 1 }
    func rope(_ v: inout [Double], heads: Int, position: Int, layer: Int) {
      let base = Double(sliding(layer) ? s.slidingRopeBase : s.ropeBase)
      for h in 0..<heads {
        for i in 0..<(hd / 2) {
          let theta = Double(position) * pow(base, -2.0 * Double(i) / Double(hd)) / (factors?[i] ?? 1)
          let (a, b) = neox ? (h * hd + i, h * hd + i + hd / 2) : (h * hd + 2 * i, h * hd + 2 * i + 1)
          let (x0, x1) = (v[a], v[b])
          v[a] = x0 * cos(theta) - x1 * sin(theta)
          v[b] = x0 * sin(theta) + x1 * cos(theta)
        }
      }
    }

    let embeddingScale = s.gemma ? Double(Float(d).squareRoot()) : 1
    var xs: [[Double]] = tokens.map {
      w["token_embd.weight"][Int($0) * d..<(Int($0) + 1) * d].map { $0 * embeddingScale }
    }
    for l in 0..<s.layers {
      var qs: [[Double]] = [], ks: [[Double]] = [], vs: [[Double]] = []
      for (p, x) in xs.enumerated() {
        let h = rmsnorm(x, "blk.\(l).attn_norm.weight")
        var q = project("blk.\(l).attn_q.weight", h, s.heads * hd, p)
        var k = project("blk.\(l).attn_k.weight", h, s.kvHeads * hd, p)
        var v = project("blk.\(l).attn_v.weight", h, s.kvHeads * hd, p)
        if s.biases {
          q = zip(q, w["blk.\(l).attn_q.bias"]).map(+)
          k = zip(k, w["blk.\(l).attn_k.bias"]).map(+)
          v = zip(v, w["blk.\(l).attn_v.bias"]).map(+)
        }
        if s.queryKeyNorm {
          headNorm(&q, heads: s.heads, "blk.\(l).attn_q_norm.weight")
          headNorm(&k, heads: s.kvHeads, "blk.\(l).attn_k_norm.weight")
        }
        rope(&q, heads: s.heads, position: p, layer: l)
        rope(&k, heads: s.kvHeads, position: p, layer: l)
        qs.append(q); ks.append(k); vs.append(v)
      }
      for p in 0..<xs.count {
        var attended = [Double](repeating: 0, count: s.heads * hd)
        for head in 0..<s.heads {
          let kvHead = head / group
          let first = sliding(l) ? max(0, p - s.slidingWindow + 1) : 0
          var scores = (0...p).map { j in
            (0..<hd).reduce(0.0) { $0 + qs[p][head * hd + $1] * ks[j][kvHead * hd + $1] } / Double(hd).squareRoot()
          }
          let maxScore = scores.max()!
          scores = scores.enumerated().map { j, score in j < first ? 0 : exp(score - maxScore) }
          let total = scores.reduce(0, +)
          for j in 0...p {
            for i in 0..<hd { attended[head * hd + i] += scores[j] / total * vs[j][kvHead * hd + i] }
          }
        }
        var projected = project("blk.\(l).attn_output.weight", attended, d, p)
        if s.gemma { projected = rmsnorm(projected, "blk.\(l).post_attention_norm.weight") }
        xs[p] = zip(xs[p], projected).map(+)
        let h = rmsnorm(xs[p], "blk.\(l).ffn_norm.weight")
        let gate = project("blk.\(l).ffn_gate.weight", h, s.feedForward, p)
        let up = project("blk.\(l).ffn_up.weight", h, s.feedForward, p)
        let hidden = zip(gate, up).map { g, u in
          s.gemma
            ? 0.5 * g * (1 + tanh((2 / Double.pi).squareRoot() * (g + 0.044715 * g * g * g))) * u
            : g / (1 + exp(-g)) * u
        }
        var down = project("blk.\(l).ffn_down.weight", hidden, d, p)
        if s.gemma { down = rmsnorm(down, "blk.\(l).post_ffw_norm.weight") }
        xs[p] = zip(xs[p], down).map(+)
      }
    }
    let outputName = s.tiedOutput ? "token_embd.weight" : "output.weight"
    return xs.map { matvec(outputName, rmsnorm($0, "output_norm.weight"), rows: s.vocabulary) }
  }
}

/// A seeded generator for test data (SplitMix64).
public struct SplitMix: Sendable {
  public var state: UInt64
  public init(seed: UInt64) { state = seed }
  public mutating func next() -> UInt64 {
    state &+= 0x9E37_79B9_7F4A_7C15
    var z = state
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
  }
  /// Uniform in [-1, 1).
  public mutating func symmetric() -> Double { Double(next() >> 11) * 0x1.0p-52 - 1 }
}
