// The tokenizer's vocabulary as the matcher needs it: each token's bytes, arranged as a byte
// trie stored in depth-first preorder so a mask is one forward scan that skips a whole
// subtree (every token sharing a rejected prefix) by jumping to the node's `end`. Built once
// per tokenizer and shared (immutable, Sendable).

public struct TokenVocabulary: Sendable {
  /// Number of token ids (the logits' length).
  public let count: Int
  /// Tokens that end generation (EOS, EOT...): allowed only when the grammar is complete.
  public let endTokens: [Int32]
  let pieces: [[UInt8]]
  // Trie nodes in preorder (the virtual root is not stored; top-level nodes have depth 1).
  let nodeByte: [UInt8]
  let nodeDepth: [UInt16]
  /// Index just past the node's subtree.
  let nodeEnd: [Int32]
  /// Tokens whose bytes end at node i are tokenIDs[nodeTokens[i]..<nodeTokens[i + 1]].
  let nodeTokens: [Int32]
  let tokenIDs: [Int32]
  let maxDepth: Int

  /// `pieces[id]` are the bytes token `id` decodes to; empty pieces (control tokens) are
  /// never allowed by a grammar. `endTokens` are the end-of-generation ids.
  public init(pieces: [[UInt8]], endTokens: some Sequence<Int32>) {
    count = pieces.count
    self.pieces = pieces
    self.endTokens = Array(Set(endTokens)).filter { $0 >= 0 && Int($0) < pieces.count }.sorted()
    let end = Set(self.endTokens)
    let order = (0..<Int32(pieces.count)).filter { !pieces[Int($0)].isEmpty && !end.contains($0) }
      .sorted { pieces[Int($0)].lexicographicallyPrecedes(pieces[Int($1)]) }
    var bytes: [UInt8] = []
    var depth: [UInt16] = []
    var ends: [Int32] = []
    var tokens: [Int32] = [0]
    var ids: [Int32] = []
    var path: [Int] = []  // node index at each depth - 1
    var previous: [UInt8] = []
    var deepest = 0
    for id in order {
      let piece = pieces[Int(id)]
      var common = 0
      while common < min(piece.count, previous.count) && piece[common] == previous[common] { common += 1 }
      if common == piece.count && piece.count == previous.count {
        ids.append(id)  // same bytes as the previous token: same node
        tokens[tokens.count - 1] += 1
        continue
      }
      while path.count > common { ends[path.removeLast()] = Int32(bytes.count) }
      for d in common..<piece.count {
        path.append(bytes.count)
        bytes.append(piece[d])
        depth.append(UInt16(min(d + 1, Int(UInt16.max))))
        ends.append(0)
        tokens.append(tokens[tokens.count - 1])
      }
      ids.append(id)
      tokens[tokens.count - 1] += 1
      deepest = max(deepest, piece.count)
      previous = piece
    }
    while let last = path.popLast() { ends[last] = Int32(bytes.count) }
    nodeByte = bytes
    nodeDepth = depth
    nodeEnd = ends
    nodeTokens = tokens
    tokenIDs = ids
    maxDepth = deepest
  }

  public func piece(_ id: Int32) -> [UInt8] { id >= 0 && Int(id) < count ? pieces[Int(id)] : [] }
}

/// A set of token ids, one bit each.
public struct TokenMask: Sendable, Equatable {
  public let count: Int
  var words: [UInt64]

  public init(count: Int) {
    self.count = count
    words = [UInt64](repeating: 0, count: (count + 63) / 64)
  }

  public func contains(_ id: Int32) -> Bool {
    id >= 0 && Int(id) < count && words[Int(id) >> 6] & (1 << UInt64(id & 63)) != 0
  }

  mutating func insert(_ id: Int32) { words[Int(id) >> 6] |= 1 << UInt64(id & 63) }

  /// The allowed ids in increasing order.
  public var allowed: [Int32] {
    var out: [Int32] = []
    for (w, word) in words.enumerated() where word != 0 {
      var bits = word
      while bits != 0 {
        out.append(Int32(w * 64 + bits.trailingZeroBitCount))
        bits &= bits - 1
      }
    }
    return out
  }

  public var allowedCount: Int { words.reduce(0) { $0 + $1.nonzeroBitCount } }

  /// Sets the logits of tokens not in the mask to -infinity (ids past `count` too).
  public func apply(to logits: UnsafeMutableBufferPointer<Float>) {
    for i in 0..<logits.count {
      if i >= count || words[i >> 6] & (1 << UInt64(i & 63)) == 0 { logits[i] = -.infinity }
    }
  }
}
