// A minimal binary min-heap for the merge queues of both encoders: the smallest element
// (by its `<`, which each bigram type defines as "must be merged first") comes out first.

struct BinaryHeap<Element: Comparable> {
  private var items: [Element] = []

  var isEmpty: Bool { items.isEmpty }

  mutating func removeAll() { items.removeAll(keepingCapacity: true) }

  mutating func push(_ e: Element) {
    items.append(e)
    var i = items.count - 1
    while i > 0 {
      let parent = (i - 1) / 2
      guard items[i] < items[parent] else { break }
      items.swapAt(i, parent)
      i = parent
    }
  }

  mutating func pop() -> Element? {
    guard !items.isEmpty else { return nil }
    items.swapAt(0, items.count - 1)
    let top = items.removeLast()
    var i = 0
    let n = items.count
    while true {
      let l = 2 * i + 1
      let r = l + 1
      var best = i
      if l < n && items[l] < items[best] { best = l }
      if r < n && items[r] < items[best] { best = r }
      if best == i { break }
      items.swapAt(i, best)
      i = best
    }
    return top
  }
}
