// GGUFTensorInfo: one entry of a file's tensor directory, already validated against the file
// (known type, sizes computed from the C type table, data inside the mapping).

public struct GGUFTensorInfo: Sendable, Hashable {
  public let name: String
  public let type: GGMLType
  /// ggml order: `dimensions[0]` is ne[0], the innermost (input) dimension.
  public let dimensions: [Int]
  public let elementCount: Int
  public let byteCount: Int
  /// Absolute offset of the tensor's data in the file.
  public let offset: Int

  public init(
    name: String, type: GGMLType, dimensions: [Int], elementCount: Int, byteCount: Int,
    offset: Int
  ) {
    self.name = name
    self.type = type
    self.dimensions = dimensions
    self.elementCount = elementCount
    self.byteCount = byteCount
    self.offset = offset
  }

  /// Number of rows of ne[0] elements (the product of the outer dimensions).
  public var rowCount: Int { dimensions.isEmpty ? 0 : elementCount / dimensions[0] }
}
