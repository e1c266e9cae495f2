// Learning-rate schedules with linear warm-up, as Hugging Face's get_linear_schedule_with_warmup
// and get_cosine_schedule_with_warmup define them: the rate of optimizer step s (0-based) is
// lr·s/warmup during warm-up, then decays linearly or along a half cosine to 0 at totalSteps.
import Foundation

public enum ScheduleKind: String, Sendable, Codable, CaseIterable {
  case linear
  case cosine
}

public struct LearningRateSchedule: Sendable, Codable, Equatable {
  public var kind: ScheduleKind
  public var peak: Float
  public var warmupSteps: Int
  public var totalSteps: Int

  public init(kind: ScheduleKind, peak: Float, warmupSteps: Int, totalSteps: Int) {
    self.kind = kind
    self.peak = peak
    self.warmupSteps = max(0, warmupSteps)
    self.totalSteps = max(1, totalSteps)
  }

  public func rate(atStep step: Int) -> Float {
    if step < warmupSteps { return peak * Float(step) / Float(max(1, warmupSteps)) }
    let span = Double(max(1, totalSteps - warmupSteps))
    let progress = min(1, Double(step - warmupSteps) / span)
    switch kind {
    case .linear:
      return peak * Float(max(0, 1 - progress))
    case .cosine:
      return peak * Float(max(0, 0.5 * (1 + cos(Double.pi * progress))))
    }
  }
}
