// A weight matrix as the kernels see it: a typed, row-major view (rows = outputs, columns =
// inputs, GGUF's ne[1] x ne[0]) into memory someone else owns (usually the model's mmap).
import CKernels

public struct WeightMatrix: @unchecked Sendable {
  // unchecked: a read-only view; the owner (the mapped file or a merged buffer) outlives it.
  public let type: UInt32
  public let rows: Int
  public let columns: Int
  public let base: UnsafeRawPointer
  public let rowStride: Int
  /// Elements per quantization block (1 for float types): column ranges must align to it.
  public let blockSize: Int
  /// What the products (MatMul) read: these rows as they are, or a copy repacked for faster
  /// kernels (`productType` then names the copy's layout, DQ_TYPE_R16 | type or
  /// DQ_TYPE_Q4_0_X16). Everything else (dequantizing, merges, export) reads `base`.
  public private(set) var productType: UInt32
  public private(set) var productBase: UnsafeRawPointer
  public private(set) var productRowStride: Int

  /// Returns nil when the type is not computable or `columns` is not a whole number of blocks.
  public init?(type: UInt32, rows: Int, columns: Int, base: UnsafeRawPointer) {
    let stride = dq_row_size(type, Int64(columns))
    guard dq_type_is_supported(type), stride > 0, rows > 0 else { return nil }
    self.type = type
    self.rows = rows
    self.columns = columns
    self.base = base
    self.rowStride = Int(stride)
    var block: Int64 = 1
    var typeSize: Int64 = 0
    _ = dq_type_info(type, &block, &typeSize)
    blockSize = Int(block)
    productType = type
    productBase = base
    productRowStride = Int(stride)
  }

  /// The same matrix with its products reading a repacked copy that the caller keeps alive:
  /// `productType` a repacked layout's id (DQ_TYPE_R16 | type: groups of 16 rows, `rowStride`
  /// a sixteenth of a group; DQ_TYPE_Q4_0_X16: rows of the file's size).
  public func repacked(as productType: UInt32, base: UnsafeRawPointer, rowStride: Int) -> WeightMatrix {
    var copy = self
    copy.productType = productType
    copy.productBase = base
    copy.productRowStride = rowStride
    return copy
  }

  /// Whether the products read a repacked copy.
  public var isRepacked: Bool { productType != type }

  public var byteCount: Int { rows * rowStride }

  /// Block-quantized (integer dot products) rather than a float type (F32, F16, BF16, whose
  /// batches go to sgemm on dequantized tiles; their one-token dots still take activations in
  /// `activationType`).
  public var isQuantized: Bool { blockSize > 1 }

  /// The type activations are quantized to before a dot product with this matrix's rows.
  public var activationType: UInt32 { dq_vec_dot_type(type) }

  /// Bytes one activation row of `columns` elements takes in `activationType`.
  public var activationRowSize: Int { Int(dq_row_size(activationType, Int64(columns))) }

  /// Dequantizes row `row` into `out[0..<columns]`.
  public func dequantizeRow(_ row: Int, into out: UnsafeMutablePointer<Float>) {
    dq_dequantize_row(type, base + row * rowStride, out, Int64(columns))
  }

  /// Dequantizes `columns` (whole blocks) of row `row` into `out[0..<columns.count]`.
  public func dequantizeRow(_ row: Int, columns range: Range<Int>, into out: UnsafeMutablePointer<Float>) {
    precondition(range.lowerBound % blockSize == 0 && range.count % blockSize == 0 && range.upperBound <= columns)
    let offset = range.lowerBound == 0 ? 0 : Int(dq_row_size(type, Int64(range.lowerBound)))
    dq_dequantize_row(type, base + row * rowStride + offset, out, Int64(range.count))
  }
}
