// Constrained decoding in the engine, in one place: a grammar carried by GenerationOptions
// becomes, per sequence, a GrammarMatcher that masks the logits to -infinity before the
// sampler (so every sampling stage sees only allowed tokens) and advances after each token.
// The tokenizer's vocabulary trie is built once per tokenizer and shared.
import Foundation
import Grammar
import Tokenization

/// A sequence's grammar state: masks logits, then follows the sampled token.
public struct ConstrainedSampling {
  public let matcher: GrammarMatcher
  private var masked: [Float] = []

  public init(grammar: Grammar, tokenizer: Tokenizer) {
    matcher = GrammarMatcher(grammar: grammar, vocabulary: TokenVocabularies.vocabulary(for: tokenizer))
  }

  /// Whether the output is complete and only an end token may follow.
  public var isComplete: Bool { matcher.isComplete }

  /// Samples among the tokens the grammar allows (end tokens only when it is complete) and
  /// advances the grammar past the token; nil when no token of the vocabulary can continue.
  public mutating func sample(
    _ sampler: inout Sampler, logits: UnsafeBufferPointer<Float>, history: ArraySlice<Int32>
  ) -> Int32? {
    let mask = matcher.allowedTokens()
    guard mask.allowedCount > 0 else { return nil }
    if masked.count != logits.count { masked = [Float](repeating: 0, count: logits.count) }
    let token = masked.withUnsafeMutableBufferPointer { buffer in
      _ = buffer.initialize(from: logits)
      mask.apply(to: buffer)
      return sampler.sample(logits: UnsafeBufferPointer(buffer), history: history)
    }
    // The mask allowed it, so the matcher takes it (end tokens leave the state as it is).
    let accepted = matcher.accept(token)
    assert(accepted, "the sampler chose token \(token), which the mask excluded")
    return token
  }
}

/// The matcher's view of each tokenizer's vocabulary, built on first use (~50 ms for 49k
/// tokens) and kept for the life of the process (there are one or two tokenizers).
public enum TokenVocabularies {
  private static let lock = NSLock()
  nonisolated(unsafe) private static var built: [(Tokenizer, TokenVocabulary)] = []

  public static func vocabulary(for tokenizer: Tokenizer) -> TokenVocabulary {
    lock.lock()
    defer { lock.unlock() }
    if let found = built.first(where: { $0.0 === tokenizer }) { return found.1 }
    let pieces = (0..<Int32(tokenizer.vocabularySize)).map { tokenizer.tokenPiece($0) }
    let vocabulary = TokenVocabulary(pieces: pieces, endTokens: tokenizer.endOfGeneration)
    built.append((tokenizer, vocabulary))
    return vocabulary
  }
}
