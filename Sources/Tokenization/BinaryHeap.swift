// A minimal binary min-heap for the merge queues of both encoders: the smallest element
// (by its `<`, which each bigram type defines as "must be merged first") comes out first.

struct BinaryHeap<Element: Comparable> {
  private var items: [Element] = []

  var isEmpty: Bool { items.isEmpty }

  mutating func removeAll() { items.removeAll(keepingCapacity: true) }

  mutating func push(_ e: Element) {
    // Sift up, moving parents down into the hole (no generic swapAt in the hot loop).
    var i = items.count
    items.append(e)
    while i > 0 {
      let parent = (i - 1) / 2
      guard e < items[parent] else { break }
      items[i] = items[parent]
      i = parent
    }
    items[i] = e
  }

  mutating func pop() -> Element? {
    guard let last = items.popLast() else { return nil }
    guard !items.isEmpty else { return last }
    let top = items[0]
    // Sift the former last element down from the root.
    var i = 0
    let n = items.count
    while true {
      let l = 2 * i + 1
      guard l < n else { break }
      let r = l + 1
      let child = r < n && items[r] < items[l] ? r : l
      guard items[child] < last else { break }
      items[i] = items[child]
      i = child
    }
    items[i] = last
    return top
  }
}
