// Stop strings over streamed text: text is released only once it can no longer be the start
// of a stop string, and generation ends at the first complete match (the stop string itself
// is not part of the output, as in OpenAI's API).
import Foundation

public struct StopMatcher: Sendable {
  public let stops: [String]
  private var pending = ""

  public init(stops: [String]) { self.stops = stops.filter { !$0.isEmpty } }

  /// Adds generated text; returns what may be shown now and whether a stop string matched.
  public mutating func push(_ text: String) -> (release: String, stopped: Bool) {
    pending += text
    guard !stops.isEmpty else {
      defer { pending = "" }
      return (pending, false)
    }
    if let cut = earliestMatch() {
      let release = String(pending[..<cut])
      pending = ""
      return (release, true)
    }
    // Hold back the longest tail that is a proper prefix of some stop string.
    let hold = stops.map { longestSuffixThatIsPrefix(of: $0) }.max() ?? 0
    let releaseEnd = pending.index(pending.endIndex, offsetBy: -hold)
    let release = String(pending[..<releaseEnd])
    pending.removeSubrange(..<releaseEnd)
    return (release, false)
  }

  /// Text still held back when generation ends for another reason.
  public mutating func finish() -> String {
    defer { pending = "" }
    return pending
  }

  private func earliestMatch() -> String.Index? {
    stops.compactMap { pending.range(of: $0)?.lowerBound }.min()
  }

  private func longestSuffixThatIsPrefix(of stop: String) -> Int {
    var length = min(stop.count - 1, pending.count)
    while length > 0 {
      if stop.hasPrefix(pending.suffix(length)) { return length }
      length -= 1
    }
    return 0
  }
}
