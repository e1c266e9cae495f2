// The incremental matcher: a byte-level pushdown automaton run on a set of stacks at once
// (llama.cpp's stack-set idea), with three caches that make masks cheap:
// - stacks are hash-consed persistent lists (a stack is an id: top position + parent id), so a
//   set of stacks is a sorted id array, itself interned as a state id;
// - the byte transition of a state is memoised in a flat table, so after warm-up advancing by a
//   byte is one array load;
// - the mask of a state is memoised, so a state seen before (e.g. "inside a string") costs a copy.
// A mask is one preorder scan of the vocabulary trie carrying a state per depth; a dead state
// skips its whole subtree. Stack entries are continuation positions with tail calls not
// pushed, so right recursion (repetitions) keeps stacks bounded.

public final class GrammarMatcher {
  public let grammar: Grammar
  public let vocabulary: TokenVocabulary

  // Stack arena: id 0 is the empty stack (the grammar is complete).
  private var stackPosition: [Int32] = [-1]
  private var stackParent: [Int32] = [-1]
  private var stackIDs: [Int64: Int32] = [:]
  // Interned states (sets of stacks).
  private var stateStacks: [[Int32]] = []
  private var stateIDs: [[Int32]: Int32] = [:]
  /// transitions[state * 256 + byte]: the next state, `dead`, or `unknown`.
  private var transitions: [Int32] = []
  private var maskCache: [Int32: TokenMask] = [:]
  private static let unknown: Int32 = -2
  private static let dead: Int32 = -1
  /// Masks kept per matcher (each is vocabulary/8 bytes).
  private static let maskCacheLimit = 512

  private var initial: Int32
  private var state: Int32

  public init(grammar: Grammar, vocabulary: TokenVocabulary) {
    self.grammar = grammar
    self.vocabulary = vocabulary
    initial = 0
    state = 0
    var start: [Int32] = []
    var visited = Set<Int32>()
    for a in grammar.alternatives[grammar.root] { normalize(intern(a, 0), into: &start, visited: &visited) }
    let s = internState(start)
    initial = s
    state = s
  }

  /// Back to the start of the grammar (caches are kept).
  public func reset() { state = initial }

  /// Whether the output so far is a complete sentence (an end token is allowed).
  public var canEnd: Bool { stateStacks[Int(state)].first == 0 }
  /// Whether the output is complete and nothing may follow (only an end token is allowed).
  public var isComplete: Bool { stateStacks[Int(state)] == [0] }

  /// The tokens allowed next: those whose bytes keep the output a prefix of the grammar's
  /// language, plus the end tokens when `canEnd`.
  public func allowedTokens() -> TokenMask {
    if let cached = maskCache[state] { return cached }
    var mask = TokenMask(count: vocabulary.count)
    if canEnd { for t in vocabulary.endTokens { mask.insert(t) } }
    if !isComplete { scanTrie(into: &mask) }
    if maskCache.count >= Self.maskCacheLimit { maskCache.removeAll(keepingCapacity: true) }
    maskCache[state] = mask
    return mask
  }

  /// Advances by one token; returns false (and changes nothing) when the grammar does not
  /// allow it. An end token is accepted only when `canEnd` and leaves the state as it is.
  @discardableResult
  public func accept(_ token: Int32) -> Bool {
    if vocabulary.endTokens.contains(token) { return canEnd }
    let piece = vocabulary.piece(token)
    return !piece.isEmpty && accept(bytes: piece)
  }

  /// Advances by raw bytes; returns false (and changes nothing) when they leave the grammar.
  @discardableResult
  public func accept(bytes: some Sequence<UInt8>) -> Bool {
    var s = state
    for b in bytes {
      s = transition(s, b)
      if s == Self.dead { return false }
    }
    state = s
    return true
  }

  /// Whether `bytes` would be accepted now (the state does not change).
  public func canAccept(bytes: some Sequence<UInt8>) -> Bool {
    var s = state
    for b in bytes {
      s = transition(s, b)
      if s == Self.dead { return false }
    }
    return true
  }

  /// Whether `bytes` (from the start) form a complete sentence of the grammar.
  public func matches(_ bytes: some Sequence<UInt8>) -> Bool {
    let saved = state
    defer { state = saved }
    state = initial
    return accept(bytes: bytes) && canEnd
  }

  // MARK: - Masks

  private func scanTrie(into mask: inout TokenMask) {
    let v = vocabulary
    var states = [Int32](repeating: 0, count: v.maxDepth + 1)
    states[0] = state
    let n = v.nodeByte.count
    var i = 0
    v.nodeByte.withUnsafeBufferPointer { bytes in
      v.nodeDepth.withUnsafeBufferPointer { depth in
        v.nodeEnd.withUnsafeBufferPointer { ends in
          while i < n {
            let d = Int(depth[i])
            let parent = states[d - 1]
            let index = Int(parent) &* 256 &+ Int(bytes[i])
            var next = transitions[index]
            if next == Self.unknown { next = transition(parent, bytes[i]) }
            if next == Self.dead {
              i = Int(ends[i])
              continue
            }
            states[d] = next
            let first = Int(v.nodeTokens[i])
            let last = Int(v.nodeTokens[i + 1])
            for t in first..<last { mask.insert(v.tokenIDs[t]) }
            i += 1
          }
        }
      }
    }
  }

  // MARK: - The automaton

  private func intern(_ position: Int32, _ parent: Int32) -> Int32 {
    let key = Int64(position) << 32 | Int64(UInt32(bitPattern: parent))
    if let id = stackIDs[key] { return id }
    stackPosition.append(position)
    stackParent.append(parent)
    let id = Int32(stackPosition.count - 1)
    stackIDs[key] = id
    return id
  }

  private func internState(_ stacks: [Int32]) -> Int32 {
    let sorted = Array(Set(stacks)).sorted()
    if let id = stateIDs[sorted] { return id }
    stateStacks.append(sorted)
    let id = Int32(stateStacks.count - 1)
    stateIDs[sorted] = id
    transitions.append(contentsOf: repeatElement(Self.unknown, count: 256))
    return id
  }

  /// Expands `stack` until every resulting stack has a byte set on top (or is empty), into `result`.
  private func normalize(_ stack: Int32, into result: inout [Int32], visited: inout Set<Int32>) {
    var work = [stack]
    while let s = work.popLast() {
      guard visited.insert(s).inserted else { continue }
      if s == 0 {
        result.append(0)
        continue
      }
      let position = Int(stackPosition[Int(s)])
      let parent = stackParent[Int(s)]
      switch grammar.elements[position] {
      case .bytes: result.append(s)
      case .end: work.append(parent)
      case .rule(let r):
        // Tail call: nothing to return to in this alternative, so push no continuation.
        let rest = grammar.elements[position + 1] == .end ? parent : intern(Int32(position + 1), parent)
        for a in grammar.alternatives[Int(r)] { work.append(intern(a, rest)) }
      }
    }
  }

  private func transition(_ from: Int32, _ byte: UInt8) -> Int32 {
    let index = Int(from) * 256 + Int(byte)
    let cached = transitions[index]
    if cached != Self.unknown { return cached }
    var next: [Int32] = []
    var visited = Set<Int32>()
    for s in stateStacks[Int(from)] where s != 0 {
      let position = Int(stackPosition[Int(s)])
      guard case .bytes(let set) = grammar.elements[position], grammar.byteSets[Int(set)].contains(byte) else { continue }
      normalize(intern(Int32(position + 1), stackParent[Int(s)]), into: &next, visited: &visited)
    }
    let result = next.isEmpty ? Self.dead : internState(next)
    transitions[index] = result
    return result
  }
}
