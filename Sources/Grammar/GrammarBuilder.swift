// Builds a `Grammar` from rules written as trees of sequences, alternations, repetitions,
// literals and Unicode character classes: lowers classes to UTF-8 byte sequences, expands
// repetitions into helper rules (llama.cpp's scheme), flattens, and checks references and left
// recursion. Both the GBNF parser and the JSON Schema compiler feed it.

/// A grammar expression before lowering.
indirect enum GrammarExpression: Sendable {
  case literal([UInt8])
  /// Unicode scalar ranges (inclusive); `negated` matches every other scalar.
  case characters([ClosedRange<UInt32>], negated: Bool)
  case reference(String, line: Int, column: Int)
  case sequence([GrammarExpression])
  case choice([GrammarExpression])
  /// `min...max` repetitions; `max == nil` is unbounded.
  case repeated(GrammarExpression, min: Int, max: Int?)

  static let empty = GrammarExpression.sequence([])
  static func text(_ s: String) -> GrammarExpression { .literal(Array(s.utf8)) }
}

struct GrammarBuilder {
  /// Largest number of elements a grammar may lower to (repetition counts multiply).
  static let elementLimit = 2_000_000

  private var names: [String] = []
  private var ids: [String: Int] = [:]
  private var bodies: [[[LoweredElement]]?] = []
  private var byteSets: [ByteSet] = []
  private var byteSetIDs: [ByteSet: Int32] = [:]
  private var elementCount = 0
  private var classCache: [String: LoweredElement] = [:]

  private enum LoweredElement: Hashable {
    case bytes(Int32)
    case rule(Int)
    case reference(String, line: Int, column: Int)
  }

  init() {}

  /// Whether a rule of this name has been defined.
  func isDefined(_ name: String) -> Bool { ids[name].map { bodies[$0] != nil } ?? false }

  mutating func define(_ name: String, _ expression: GrammarExpression) throws(GrammarError) {
    let id = ruleID(name)
    bodies[id] = try alternativesOf(expression)
  }

  private mutating func ruleID(_ name: String) -> Int {
    if let id = ids[name] { return id }
    names.append(name)
    bodies.append(nil)
    ids[name] = names.count - 1
    return names.count - 1
  }

  private mutating func freshRule(_ base: String, _ alternatives: [[LoweredElement]]) -> Int {
    var n = names.count
    var name = "\(base)-\(n)"
    while ids[name] != nil {
      n += 1
      name = "\(base)-\(n)"
    }
    let id = ruleID(name)
    bodies[id] = alternatives
    return id
  }

  private mutating func byteSet(_ set: ByteSet) -> Int32 {
    if let id = byteSetIDs[set] { return id }
    byteSets.append(set)
    byteSetIDs[set] = Int32(byteSets.count - 1)
    return Int32(byteSets.count - 1)
  }

  private mutating func count(_ n: Int) throws(GrammarError) {
    elementCount += n
    if elementCount > Self.elementLimit {
      throw .tooLarge("more than \(Self.elementLimit) elements after expanding repetitions")
    }
  }

  private mutating func alternativesOf(_ e: GrammarExpression) throws(GrammarError) -> [[LoweredElement]] {
    if case .choice(let options) = e {
      var result: [[LoweredElement]] = []
      for option in options { result += try alternativesOf(option) }
      return result
    }
    return [try sequenceOf(e)]
  }

  private mutating func sequenceOf(_ e: GrammarExpression) throws(GrammarError) -> [LoweredElement] {
    switch e {
    case .literal(let bytes):
      try count(bytes.count)
      return bytes.map { .bytes(byteSet(ByteSet($0))) }
    case .reference(let name, let line, let column):
      try count(1)
      return [.reference(name, line: line, column: column)]
    case .sequence(let parts):
      var out: [LoweredElement] = []
      for p in parts { out += try sequenceOf(p) }
      return out
    case .characters(let ranges, let negated):
      try count(1)
      return [characterClass(ranges, negated: negated)]
    case .choice:
      try count(1)
      return [.rule(freshRule("alt", try alternativesOf(e)))]
    case .repeated(let inner, let min, let max):
      return try repetition(inner, min: min, max: max)
    }
  }

  /// x{m,n} as m copies then nested optionals (x (x x?)?)?; x{m,} as m copies then a star.
  private mutating func repetition(_ inner: GrammarExpression, min: Int, max: Int?) throws(GrammarError) -> [LoweredElement] {
    let item = try sequenceOf(inner)
    if let max, max < min { throw .tooLarge("repetition with max \(max) below min \(min)") }
    try count(item.count * (min + (max.map { $0 - min } ?? 1)))
    var out: [LoweredElement] = []
    for _ in 0..<min { out += item }
    if let max {
      guard max > min else { return out }
      // Innermost first: opt_k ::= item opt_{k-1} | ε.
      var tail: Int? = nil
      for _ in 0..<(max - min) {
        let body = item + (tail.map { [LoweredElement.rule($0)] } ?? [])
        tail = freshRule("rep", [body, []])
      }
      return out + [.rule(tail!)]
    }
    // star ::= item star | ε (right recursion; the matcher's tail calls keep stacks bounded).
    let star = freshRule("star", [])
    bodies[star] = [item + [.rule(star)], []]
    return out + [.rule(star)]
  }

  private mutating func characterClass(_ ranges: [ClosedRange<UInt32>], negated: Bool) -> LoweredElement {
    let scalars = UTF8Ranges.normalize(ranges, negated: negated)
    let key = scalars.map { "\($0.lowerBound)-\($0.upperBound)" }.joined(separator: ",")
    if let cached = classCache[key] { return cached }
    let sequences = UTF8Ranges.byteSequences(scalars)
    var single = ByteSet()
    var longer: [[LoweredElement]] = []
    for s in sequences {
      if s.count == 1 {
        single.insert(s[0])
      } else {
        longer.append(s.map { .bytes(byteSet(ByteSet($0))) })
      }
    }
    let element: LoweredElement
    if longer.isEmpty {
      element = .bytes(byteSet(single))
    } else {
      var alternatives = longer
      if !single.isEmpty { alternatives.insert([.bytes(byteSet(single))], at: 0) }
      element = .rule(freshRule("char", alternatives))
    }
    classCache[key] = element
    return element
  }

  /// Flattens the rules, resolving references; fails on undefined rules and left recursion.
  func build(root: String) throws(GrammarError) -> Grammar {
    guard let rootID = ids[root], bodies[rootID] != nil else { throw .missingRoot(root) }
    var elements: [GrammarElement] = []
    var alternatives: [[Int32]] = []
    var ruleRefs: [[[Int]]] = []  // per rule, per alternative, referenced rule ids in order (nil for bytes)
    for (id, body) in bodies.enumerated() {
      guard let body else {
        // Referenced only; the reference site reports it.
        alternatives.append([])
        ruleRefs.append([])
        _ = id
        continue
      }
      var starts: [Int32] = []
      var refs: [[Int]] = []
      for alt in body {
        starts.append(Int32(elements.count))
        var altRefs: [Int] = []
        for element in alt {
          switch element {
          case .bytes(let set):
            elements.append(.bytes(set))
            altRefs.append(-1)
          case .rule(let r):
            elements.append(.rule(Int32(r)))
            altRefs.append(r)
          case .reference(let name, let line, let column):
            guard let r = ids[name], bodies[r] != nil else { throw .undefinedRule(name, line: line, column: column) }
            elements.append(.rule(Int32(r)))
            altRefs.append(r)
          }
        }
        elements.append(.end)
        refs.append(altRefs)
      }
      alternatives.append(starts)
      ruleRefs.append(refs)
    }
    try Self.checkLeftRecursion(ruleRefs, names: names)
    return Grammar(ruleNames: names, root: rootID, elements: elements, alternatives: alternatives, byteSets: byteSets)
  }

  /// A rule that can reach itself without consuming a byte, through a reference that is not
  /// the last element of its alternative, would make the matcher's stacks grow forever (tail
  /// references push nothing, so cycles of those are harmless).
  private static func checkLeftRecursion(_ refs: [[[Int]]], names: [String]) throws(GrammarError) {
    let n = refs.count
    var nullable = [Bool](repeating: false, count: n)
    var changed = true
    while changed {
      changed = false
      for r in 0..<n where !nullable[r] {
        if refs[r].contains(where: { alt in alt.allSatisfy { $0 >= 0 && nullable[$0] } }) {
          nullable[r] = true
          changed = true
        }
      }
    }
    // Edges r -> s when s can start r (everything before it nullable); `tail` when s ends the alternative.
    var edges = [[(to: Int, tail: Bool)]](repeating: [], count: n)
    for r in 0..<n {
      for alt in refs[r] {
        for (i, s) in alt.enumerated() {
          guard s >= 0 else { break }
          edges[r].append((s, i == alt.count - 1))
          if !nullable[s] { break }
        }
      }
    }
    // Strongly connected components (iterative Tarjan); a non-tail edge inside one is the error.
    var index = [Int](repeating: -1, count: n)
    var low = [Int](repeating: 0, count: n)
    var component = [Int](repeating: -1, count: n)
    var onStack = [Bool](repeating: false, count: n)
    var stack: [Int] = []
    var next = 0
    var components = 0
    for start in 0..<n where index[start] < 0 {
      var call: [(node: Int, edge: Int)] = [(start, 0)]
      index[start] = next
      low[start] = next
      next += 1
      stack.append(start)
      onStack[start] = true
      while let (v, e) = call.last {
        if e < edges[v].count {
          call[call.count - 1].edge += 1
          let w = edges[v][e].to
          if index[w] < 0 {
            index[w] = next
            low[w] = next
            next += 1
            stack.append(w)
            onStack[w] = true
            call.append((w, 0))
          } else if onStack[w] {
            low[v] = min(low[v], index[w])
          }
        } else {
          call.removeLast()
          if let parent = call.last { low[parent.node] = min(low[parent.node], low[v]) }
          if low[v] == index[v] {
            while let w = stack.popLast() {
              onStack[w] = false
              component[w] = components
              if w == v { break }
            }
            components += 1
          }
        }
      }
    }
    for r in 0..<n {
      for edge in edges[r] where !edge.tail && component[edge.to] == component[r] {
        throw .leftRecursion(names[edge.to])
      }
    }
  }
}

/// Unicode scalar ranges lowered to UTF-8 byte-range sequences.
enum UTF8Ranges {
  static let maxScalar: UInt32 = 0x10FFFF

  /// Sorted, merged, surrogate-free scalar ranges; complemented when `negated`.
  static func normalize(_ ranges: [ClosedRange<UInt32>], negated: Bool) -> [ClosedRange<UInt32>] {
    var sorted = ranges.map { $0.lowerBound...min($0.upperBound, maxScalar) }.filter { $0.lowerBound <= maxScalar }
      .sorted { $0.lowerBound < $1.lowerBound }
    var merged: [ClosedRange<UInt32>] = []
    for r in sorted {
      if let last = merged.last, r.lowerBound <= last.upperBound &+ 1 {
        merged[merged.count - 1] = last.lowerBound...max(last.upperBound, r.upperBound)
      } else {
        merged.append(r)
      }
    }
    if negated {
      var complement: [ClosedRange<UInt32>] = []
      var next: UInt32 = 0
      for r in merged {
        if r.lowerBound > next { complement.append(next...(r.lowerBound - 1)) }
        next = r.upperBound + 1
      }
      if next <= maxScalar { complement.append(next...maxScalar) }
      merged = complement
    }
    sorted = []
    for r in merged {  // drop surrogates, which UTF-8 cannot encode
      if r.upperBound < 0xD800 || r.lowerBound > 0xDFFF {
        sorted.append(r)
      } else {
        if r.lowerBound < 0xD800 { sorted.append(r.lowerBound...0xD7FF) }
        if r.upperBound > 0xDFFF { sorted.append(0xE000...r.upperBound) }
      }
    }
    return sorted
  }

  /// Each scalar range as sequences of byte ranges whose concatenations are exactly its UTF-8 encodings.
  static func byteSequences(_ ranges: [ClosedRange<UInt32>]) -> [[ClosedRange<UInt8>]] {
    var out: [[ClosedRange<UInt8>]] = []
    var work = ranges.reversed().map { ($0.lowerBound, $0.upperBound) }
    while let (lo, hi) = work.popLast() {
      // Same encoded length on both ends.
      var split = false
      for limit: UInt32 in [0x7F, 0x7FF, 0xFFFF] where lo <= limit && hi > limit {
        work.append((limit + 1, hi))
        work.append((lo, limit))
        split = true
        break
      }
      if split { continue }
      let n = encode(lo).count
      // Split until each continuation position spans a whole aligned block or a single prefix.
      for i in 1..<max(n, 1) {
        let m: UInt32 = (1 << (6 * UInt32(i))) - 1
        if lo & ~m != hi & ~m {
          if lo & m != 0 {
            work.append(((lo | m) + 1, hi))
            work.append((lo, lo | m))
            split = true
            break
          }
          if hi & m != m {
            work.append((hi & ~m, hi))
            work.append((lo, (hi & ~m) - 1))
            split = true
            break
          }
        }
      }
      if split { continue }
      let a = encode(lo)
      let b = encode(hi)
      out.append(zip(a, b).map { $0...$1 })
    }
    return out
  }

  static func encode(_ scalar: UInt32) -> [UInt8] {
    switch scalar {
    case 0..<0x80: return [UInt8(scalar)]
    case 0x80..<0x800: return [UInt8(0xC0 | (scalar >> 6)), UInt8(0x80 | (scalar & 0x3F))]
    case 0x800..<0x10000:
      return [UInt8(0xE0 | (scalar >> 12)), UInt8(0x80 | ((scalar >> 6) & 0x3F)), UInt8(0x80 | (scalar & 0x3F))]
    default:
      return [
        UInt8(0xF0 | (scalar >> 18)), UInt8(0x80 | ((scalar >> 12) & 0x3F)), UInt8(0x80 | ((scalar >> 6) & 0x3F)),
        UInt8(0x80 | (scalar & 0x3F)),
      ]
    }
  }
}
