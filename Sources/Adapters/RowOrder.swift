// Hugging Face ↔ GGUF names of the projections, and the row order of q and k.
//
// llama.cpp's converter permutes the rows of the q and k weights of Llama-family models so that
// RoPE rotates adjacent pairs: within each head of hd rows, GGUF row h·hd + 2j + i holds
// Hugging Face row h·hd + i·hd/2 + j (i ∈ {0,1}, j < hd/2); k uses the kv head count. A PEFT
// adapter's lora_B rows follow the HF order, so they are permuted the same way on import and
// un-permuted on export. Architectures with NeoX-style RoPE (qwen2) are converted unpermuted.
import Llama

enum HFNames {
  /// HF module name (`q_proj`) and its parent (`self_attn`) for each projection.
  static func module(_ projection: LlamaProjection) -> (parent: String, name: String) {
    switch projection {
    case .q: return ("self_attn", "q_proj")
    case .k: return ("self_attn", "k_proj")
    case .v: return ("self_attn", "v_proj")
    case .o: return ("self_attn", "o_proj")
    case .gate: return ("mlp", "gate_proj")
    case .up: return ("mlp", "up_proj")
    case .down: return ("mlp", "down_proj")
    }
  }

  static func projection(module name: String) -> LlamaProjection? {
    LlamaProjection.allCases.first { self.module($0).name == name }
  }

  /// `base_model.model.model.layers.N.self_attn.q_proj.lora_A.weight`, as PEFT saves it.
  static func tensorName(_ target: LoRATarget, factor: Factor) -> String {
    let module = module(target.projection)
    return "base_model.model.model.layers.\(target.layer).\(module.parent).\(module.name)."
      + "\(factor == .a ? "lora_A" : "lora_B").weight"
  }

  enum Factor { case a, b }

  /// Parses a PEFT tensor name (…layers.N.<parent>.<module>.lora_A|lora_B[.<adapter>].weight).
  static func parse(_ name: String) -> (target: LoRATarget, factor: Factor)? {
    let parts = name.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
    guard let layers = parts.firstIndex(of: "layers"), layers + 5 < parts.count,
      let layer = Int(parts[layers + 1]), layer >= 0, layer < 100_000,
      let projection = projection(module: parts[layers + 3]),
      parts[layers + 2] == module(projection).parent, parts.last == "weight"
    else { return nil }
    let factor: Factor
    switch parts[layers + 4] {
    case "lora_A": factor = .a
    case "lora_B": factor = .b
    default: return nil
    }
    // Nothing but an optional adapter name may sit between lora_X and weight.
    guard parts.count - (layers + 5) <= 2 else { return nil }
    return (LoRATarget(layer: layer, projection: projection), factor)
  }
}

enum GGUFLoRANames {
  static func tensorName(_ target: LoRATarget, factor: HFNames.Factor) -> String {
    target.ggufName + (factor == .a ? ".lora_a" : ".lora_b")
  }

  static func parse(_ name: String) -> (target: LoRATarget, factor: HFNames.Factor)? {
    let factor: HFNames.Factor
    let base: Substring
    if name.hasSuffix(".weight.lora_a") {
      factor = .a
      base = name.dropLast(".lora_a".count)
    } else if name.hasSuffix(".weight.lora_b") {
      factor = .b
      base = name.dropLast(".lora_b".count)
    } else {
      return nil
    }
    let parts = base.split(separator: ".").map(String.init)
    guard parts.count == 4, parts[0] == "blk", let layer = Int(parts[1]), layer >= 0,
      layer < 100_000, let projection = LlamaProjection(rawValue: parts[2])
    else { return nil }
    return (LoRATarget(layer: layer, projection: projection), factor)
  }
}

public enum RowOrder {
  /// Heads whose rows the converter permuted for `projection`, or nil when rows stay in order.
  public static func permutedHeads(_ projection: LlamaProjection, _ hyper: LlamaHyperParameters)
    -> Int?
  {
    guard !hyper.ropeIsNeox else { return nil }
    switch projection {
    case .q: return hyper.headCount
    case .k: return hyper.kvHeadCount
    default: return nil
    }
  }

  /// The HF row that GGUF row `row` holds, for a matrix of `rows` rows in `heads` heads.
  public static func hfRow(ofGGUFRow row: Int, rows: Int, heads: Int) -> Int {
    let headDimension = rows / heads
    let half = headDimension / 2
    let head = row / headDimension
    let within = row % headDimension
    return head * headDimension + (within % 2) * half + within / 2
  }

  /// Rows of a row-major (rows x width) matrix reordered from HF to GGUF order (`toGGUF`) or
  /// back. Requires rows = heads · (an even head dimension).
  public static func permute(
    _ matrix: [Float], rows: Int, width: Int, heads: Int, toGGUF: Bool
  ) -> [Float] {
    precondition(rows % heads == 0 && (rows / heads) % 2 == 0, "rows do not split into heads")
    var out = [Float](repeating: 0, count: matrix.count)
    for row in 0..<rows {
      let hf = hfRow(ofGGUFRow: row, rows: rows, heads: heads)
      let (source, destination) = toGGUF ? (hf, row) : (row, hf)
      for c in 0..<width { out[destination * width + c] = matrix[source * width + c] }
    }
    return out
  }
}
