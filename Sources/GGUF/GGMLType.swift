// GGMLType: a ggml tensor type id as stored in a GGUF file. Names and sizes come from the C
// type table (`dq_type_info`, `dq_type_name`, `dq_row_size`); this file never re-declares a
// block layout. Unknown ids are representable (a file may name them), they just have no sizes.
import CKernels

public struct GGMLType: Sendable, Hashable, CustomStringConvertible {
  public let rawValue: UInt32

  public init(rawValue: UInt32) { self.rawValue = rawValue }

  public static let f32 = GGMLType(rawValue: UInt32(DQ_TYPE_F32))
  public static let f16 = GGMLType(rawValue: UInt32(DQ_TYPE_F16))
  public static let bf16 = GGMLType(rawValue: UInt32(DQ_TYPE_BF16))
  public static let q4_0 = GGMLType(rawValue: UInt32(DQ_TYPE_Q4_0))
  public static let q4_1 = GGMLType(rawValue: UInt32(DQ_TYPE_Q4_1))
  public static let q5_0 = GGMLType(rawValue: UInt32(DQ_TYPE_Q5_0))
  public static let q5_1 = GGMLType(rawValue: UInt32(DQ_TYPE_Q5_1))
  public static let q8_0 = GGMLType(rawValue: UInt32(DQ_TYPE_Q8_0))
  public static let q8_1 = GGMLType(rawValue: UInt32(DQ_TYPE_Q8_1))
  public static let q2_K = GGMLType(rawValue: UInt32(DQ_TYPE_Q2_K))
  public static let q3_K = GGMLType(rawValue: UInt32(DQ_TYPE_Q3_K))
  public static let q4_K = GGMLType(rawValue: UInt32(DQ_TYPE_Q4_K))
  public static let q5_K = GGMLType(rawValue: UInt32(DQ_TYPE_Q5_K))
  public static let q6_K = GGMLType(rawValue: UInt32(DQ_TYPE_Q6_K))
  public static let q8_K = GGMLType(rawValue: UInt32(DQ_TYPE_Q8_K))

  /// Short ggml name ("Q4_1"), or "type N" for an id the type table does not know.
  public var name: String {
    guard let cName = dq_type_name(rawValue) else { return "type \(rawValue)" }
    return String(cString: cName)
  }

  public var description: String { name }

  /// True when the type table knows this id (its sizes are defined).
  public var isKnown: Bool { dq_type_name(rawValue) != nil }

  /// True when CKernels can dequantize this type and take dot products with it.
  public var isSupported: Bool { dq_type_is_supported(rawValue) }

  /// Elements per block and bytes per block, or nil for an unknown id.
  public var blockLayout: (blockSize: Int, typeSize: Int)? {
    var blockSize: Int64 = 0
    var typeSize: Int64 = 0
    guard dq_type_info(rawValue, &blockSize, &typeSize) else { return nil }
    return (Int(blockSize), Int(typeSize))
  }

  /// Bytes of a row of `count` elements; nil when the type is unknown, `count` is negative or
  /// not a multiple of the block size.
  public func rowSize(_ count: Int) -> Int? {
    let size = dq_row_size(rawValue, Int64(count))
    return size < 0 ? nil : Int(size)
  }
}
