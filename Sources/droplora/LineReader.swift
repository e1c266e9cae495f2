// Standard input one line at a time without blocking the concurrency pool: each readLine runs
// on its own thread (the pool has only as many threads as cores).
import Foundation

enum LineReader {
  /// The next line without its line end, or nil at end of input.
  static func next() async -> String? {
    await withCheckedContinuation { continuation in
      Thread { continuation.resume(returning: readLine(strippingNewline: true)) }.start()
    }
  }
}
