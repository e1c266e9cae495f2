// A zero-initialised fp32 array with a stable address, for activations and gradients that
// kernels and thread-pool workers write through raw pointers (Swift arrays may move).

public final class FloatBuffer: @unchecked Sendable {
  // unchecked: workers write disjoint slices; the owner serialises everything else.
  public let pointer: UnsafeMutablePointer<Float>
  public let count: Int

  public init(_ count: Int) {
    self.count = max(0, count)
    pointer = .allocate(capacity: max(1, count))
    pointer.initialize(repeating: 0, count: max(1, count))
  }

  public convenience init(_ values: [Float]) {
    self.init(values.count)
    values.withUnsafeBufferPointer { pointer.update(from: $0.baseAddress!, count: values.count) }
  }

  deinit { pointer.deallocate() }

  public func zero() { pointer.update(repeating: 0, count: count) }

  public var array: [Float] { Array(UnsafeBufferPointer(start: pointer, count: count)) }

  public subscript(_ i: Int) -> Float {
    get { pointer[i] }
    set { pointer[i] = newValue }
  }
}
