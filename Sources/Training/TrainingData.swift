// The order samples are seen in: a fresh seeded shuffle per epoch (derived from the seed and
// the epoch number alone, so a resumed run needs only its position to continue identically),
// batches taken in that order and wrapping into the next epoch.

/// Where the next batch starts.
public struct DataPosition: Sendable, Codable, Equatable {
  public var epoch = 0
  /// Index into the epoch's permutation of the next sample.
  public var cursor = 0

  public init(epoch: Int = 0, cursor: Int = 0) {
    self.epoch = epoch
    self.cursor = cursor
  }
}

public struct TrainingData: Sendable {
  public let samples: [EncodedSample]
  public let seed: UInt64
  private var cachedEpoch = -1
  private var order: [Int] = []

  public init(samples: [EncodedSample], seed: UInt64) {
    self.samples = samples
    self.seed = seed
  }

  public static func permutation(count: Int, seed: UInt64, epoch: Int) -> [Int] {
    var random = TrainingRandom(seed: seed ^ (0xD1B5_4A32_D192_ED03 &* UInt64(epoch + 1)))
    var order = Array(0..<count)
    if count > 1 {
      for i in stride(from: count - 1, to: 0, by: -1) {
        order.swapAt(i, Int(random.next() % UInt64(i + 1)))
      }
    }
    return order
  }

  /// The next `size` samples from `position`, advancing it (into later epochs as needed).
  public mutating func nextBatch(size: Int, position: inout DataPosition) -> [EncodedSample] {
    var batch: [EncodedSample] = []
    while batch.count < size && !samples.isEmpty {
      if position.cursor >= samples.count {
        position.epoch += 1
        position.cursor = 0
      }
      if cachedEpoch != position.epoch {
        order = Self.permutation(count: samples.count, seed: seed, epoch: position.epoch)
        cachedEpoch = position.epoch
      }
      batch.append(samples[order[position.cursor]])
      position.cursor += 1
    }
    return batch
  }

  /// Splits off a held-out set of round(fraction · count) samples, chosen by the seed.
  public static func split(_ samples: [EncodedSample], evalFraction: Double, seed: UInt64)
    -> (train: [EncodedSample], eval: [EncodedSample])
  {
    let evalCount = min(samples.count - 1, max(0, Int((evalFraction * Double(samples.count)).rounded())))
    guard evalCount > 0 else { return (samples, []) }
    let order = permutation(count: samples.count, seed: seed ^ 0x5EED_E7A1, epoch: 0)
    let evalSet = Set(order.prefix(evalCount))
    return (
      samples.indices.filter { !evalSet.contains($0) }.map { samples[$0] },
      order.prefix(evalCount).sorted().map { samples[$0] }
    )
  }
}
