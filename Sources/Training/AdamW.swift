// AdamW over every LoRA factor, as PyTorch's torch.optim.AdamW computes it (decoupled weight
// decay p ← p·(1 − lr·λ), then p ← p − lr·m̂/(√v̂ + ε)), plus global-norm gradient clipping as
// torch.nn.utils.clip_grad_norm_ does it. Moments are fp32 like the parameters.
import Foundation
import Kernels

public struct AdamWConfig: Sendable, Codable, Equatable {
  public var beta1: Float = 0.9
  public var beta2: Float = 0.999
  public var epsilon: Float = 1e-8
  public var weightDecay: Float = 0
  /// Clip the global gradient norm to this (0 = no clipping).
  public var maxGradNorm: Float = 1

  public init(weightDecay: Float = 0, maxGradNorm: Float = 1) {
    self.weightDecay = weightDecay
    self.maxGradNorm = maxGradNorm
  }
}

public final class AdamW: @unchecked Sendable {
  // unchecked: owned by one trainer; workers touch disjoint slices.
  public let config: AdamWConfig
  /// Optimizer steps taken (bias correction uses step + 1 for the next one).
  public internal(set) var step = 0
  /// First and second moments, two buffers (A, B) per module in the parameters' order.
  let moments: [(m: FloatBuffer, v: FloatBuffer)]

  public init(config: AdamWConfig, parameters: LoRAParameters) {
    self.config = config
    moments = parameters.modules.flatMap { module in
      [module.a.count, module.b.count].map { (FloatBuffer($0), FloatBuffer($0)) }
    }
  }

  /// The global L2 norm of all gradients (accumulated in double).
  public static func gradientNorm(_ parameters: LoRAParameters) -> Double {
    var sum = 0.0
    for module in parameters.modules {
      for g in [module.gradA, module.gradB] {
        for i in 0..<g.count { sum += Double(g[i]) * Double(g[i]) }
      }
    }
    return sum.squareRoot()
  }

  /// Clips, then applies one update with learning rate `lr`. Returns the norm before clipping.
  @discardableResult
  public func update(_ parameters: LoRAParameters, lr: Float, pool: ThreadPool) -> Double {
    let norm = Self.gradientNorm(parameters)
    var clip: Float = 1
    if config.maxGradNorm > 0, norm > Double(config.maxGradNorm) {
      clip = Float(Double(config.maxGradNorm) / (norm + 1e-6))
    }
    step += 1
    let b1 = config.beta1
    let b2 = config.beta2
    let correction1 = 1 - Float(pow(Double(b1), Double(step)))
    let correction2 = 1 - Float(pow(Double(b2), Double(step)))
    let stepSize = lr / correction1
    let decay = 1 - lr * config.weightDecay
    let eps = config.epsilon
    var index = 0
    for module in parameters.modules {
      for (p, g) in [(module.a, module.gradA), (module.b, module.gradB)] {
        let (m, v) = moments[index]
        index += 1
        pool.parallelFor(p.count, align: 64) { range, _ in
          for i in range {
            let grad = g[i] * clip
            m[i] = b1 * m[i] + (1 - b1) * grad
            v[i] = b2 * v[i] + (1 - b2) * grad * grad
            let denominator = (v[i] / correction2).squareRoot() + eps
            p[i] = p[i] * decay - stepSize * m[i] / denominator
          }
        }
      }
    }
    return norm
  }
}
