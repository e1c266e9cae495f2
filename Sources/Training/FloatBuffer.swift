// A zero-initialised fp32 array with a stable address, for activations and gradients that
// kernels and thread-pool workers write through raw pointers (Swift arrays may move).
// calloc, not allocate + initialize: large blocks come from mmap already zero, so buffers
// sized for the longest run cost resident memory only for the pages a run touches.
import Foundation

public final class FloatBuffer: @unchecked Sendable {
  // unchecked: workers write disjoint slices; the owner serialises everything else.
  public let pointer: UnsafeMutablePointer<Float>
  public let count: Int

  public init(_ count: Int) {
    self.count = max(0, count)
    guard let raw = calloc(max(1, count), MemoryLayout<Float>.stride) else {
      fatalError("out of memory allocating \(count) floats")
    }
    pointer = raw.bindMemory(to: Float.self, capacity: max(1, count))
  }

  public convenience init(_ values: [Float]) {
    self.init(values.count)
    values.withUnsafeBufferPointer { pointer.update(from: $0.baseAddress!, count: values.count) }
  }

  deinit { free(pointer) }

  public func zero() { pointer.update(repeating: 0, count: count) }

  public var array: [Float] { Array(UnsafeBufferPointer(start: pointer, count: count)) }

  public subscript(_ i: Int) -> Float {
    get { pointer[i] }
    set { pointer[i] = newValue }
  }
}
