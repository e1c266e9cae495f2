// Random adapters from a seed, for tests and benchmarks: A ~ U(-1, 1)/sqrt(in) so A·x keeps
// x's scale, B ~ U(-bScale, bScale). Deterministic (SplitMix64) on every platform.
import Llama

extension LoRAAdapter {
  public static func random(
    base hyper: LlamaHyperParameters, rank: Int, alpha: Double? = nil,
    projections: [LlamaProjection] = LlamaProjection.allCases, layers: Range<Int>? = nil,
    bScale: Float = 0.01, seed: UInt64 = 1
  ) -> LoRAAdapter {
    var state = seed
    func next() -> Float {  // SplitMix64 → uniform in [-1, 1)
      state &+= 0x9E37_79B9_7F4A_7C15
      var z = state
      z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
      z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
      z ^= z >> 31
      return Float(z >> 40) / Float(1 << 23) - 1
    }
    var factors: [LoRATarget: LoRAFactors] = [:]
    for layer in layers ?? 0..<hyper.layerCount {
      for projection in projections {
        let shape = projection.shape(hyper)
        let aScale = 1 / Float(shape.columns).squareRoot()
        let a = (0..<rank * shape.columns).map { _ in next() * aScale }
        let b = (0..<shape.rows * rank).map { _ in next() * bScale }
        factors[LoRATarget(layer: layer, projection: projection)] = LoRAFactors(
          rank: rank, rows: shape.rows, columns: shape.columns, a: a, b: b)
      }
    }
    let names = projections.map { HFNames.module($0).name }
    return LoRAAdapter(
      config: AdapterConfig(r: rank, loraAlpha: alpha ?? Double(2 * rank), targetModules: names),
      factors: factors)
  }
}
