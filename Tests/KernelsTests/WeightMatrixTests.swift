// WeightMatrix: only computable types with whole blocks per row make a matrix; the row stride
// is ggml's (bytes per block from ggml's block layouts, restated here as published numbers).
import CKernels
import Kernels
import Testing

struct WeightMatrixTests {
  nonisolated(unsafe) static let memory = UnsafeMutableRawPointer.allocate(byteCount: 1 << 16, alignment: 64)

  @Test(
    "types this build cannot compute with give nil",
    arguments: [
      UInt32(DQ_TYPE_Q2_K), UInt32(DQ_TYPE_Q3_K),  // K-quants without kernels here
      UInt32(DQ_TYPE_Q8_1), UInt32(DQ_TYPE_Q8_K),  // activation-only formats
      4, 5,  // ids ggml retired (Q4_2, Q4_3)
      16, 24, 28,  // IQ2_XXS, I8, F64
      31, 40, 1000, UInt32.max,  // ids no ggml type has
    ] as [UInt32])
  func unsupportedTypes(type: UInt32) {
    #expect(WeightMatrix(type: type, rows: 4, columns: 256, base: Self.memory) == nil)
  }

  @Test(
    "columns that are not a whole number of blocks give nil",
    arguments: [
      (UInt32(DQ_TYPE_Q4_1), 33), (UInt32(DQ_TYPE_Q8_0), 16), (UInt32(DQ_TYPE_Q5_0), 48),
      (UInt32(DQ_TYPE_Q4_K), 128), (UInt32(DQ_TYPE_Q6_K), 288), (UInt32(DQ_TYPE_Q4_K), 32),
    ] as [(UInt32, Int)])
  func partialBlocks(type: UInt32, columns: Int) {
    #expect(WeightMatrix(type: type, rows: 4, columns: columns, base: Self.memory) == nil)
  }

  @Test(
    "supported types take ggml's bytes per row",
    arguments: [
      // (type, columns, bytes per row): ggml block sizes F32 4/1, F16 and BF16 2/1, Q4_0 18/32,
      // Q4_1 20/32, Q5_0 22/32, Q5_1 24/32, Q8_0 34/32, Q4_K 144/256, Q5_K 176/256, Q6_K 210/256.
      (UInt32(DQ_TYPE_F32), 7, 28), (UInt32(DQ_TYPE_F16), 7, 14), (UInt32(DQ_TYPE_BF16), 3, 6),
      (UInt32(DQ_TYPE_Q4_0), 64, 36), (UInt32(DQ_TYPE_Q4_1), 96, 60), (UInt32(DQ_TYPE_Q5_0), 32, 22),
      (UInt32(DQ_TYPE_Q5_1), 64, 48), (UInt32(DQ_TYPE_Q8_0), 576, 612),
      (UInt32(DQ_TYPE_Q4_K), 512, 288), (UInt32(DQ_TYPE_Q5_K), 256, 176),
      (UInt32(DQ_TYPE_Q6_K), 768, 630),
    ] as [(UInt32, Int, Int)])
  func rowStride(type: UInt32, columns: Int, bytes: Int) throws {
    let w = try #require(WeightMatrix(type: type, rows: 5, columns: columns, base: Self.memory))
    #expect(w.rowStride == bytes)
    #expect(w.byteCount == 5 * bytes)
    #expect(w.rows == 5 && w.columns == columns && w.type == type)
  }

  @Test("float types are not quantized; block types are, with ggml's activation types")
  func activationTypes() throws {
    let expected: [(UInt32, UInt32)] = [
      (UInt32(DQ_TYPE_F32), UInt32(DQ_TYPE_F32)), (UInt32(DQ_TYPE_F16), UInt32(DQ_TYPE_F32)),
      (UInt32(DQ_TYPE_BF16), UInt32(DQ_TYPE_F32)), (UInt32(DQ_TYPE_Q4_0), UInt32(DQ_TYPE_Q8_0)),
      (UInt32(DQ_TYPE_Q8_0), UInt32(DQ_TYPE_Q8_0)), (UInt32(DQ_TYPE_Q4_1), UInt32(DQ_TYPE_Q8_1)),
      (UInt32(DQ_TYPE_Q4_K), UInt32(DQ_TYPE_Q8_K)), (UInt32(DQ_TYPE_Q6_K), UInt32(DQ_TYPE_Q8_K)),
    ]
    for (type, activation) in expected {
      let w = try #require(WeightMatrix(type: type, rows: 1, columns: 256, base: Self.memory))
      #expect(w.activationType == activation)
      #expect(w.isQuantized == (activation != UInt32(DQ_TYPE_F32)))
    }
  }

  @Test("dequantizeRow reads the row at its stride", arguments: ["F16", "Q8_0", "Q4_K"])
  func dequantizeRow(typeName: String) {
    var rng = SplitMix(seed: 3)
    let matrix = TestMatrix(type: matmulType(typeName), rows: 9, columns: 256, rng: &rng)
    var row = [Float](repeating: .nan, count: 256)
    for r in [0, 4, 8] {
      matrix.weights.dequantizeRow(r, into: &row)
      #expect(row.map(Double.init) == Array(matrix.dense[(r * 256)..<((r + 1) * 256)]))
    }
  }

  @Test("a column range of a row reads the same values as the whole row", arguments: ["F16", "Q8_0", "Q4_K"])
  func dequantizeColumns(typeName: String) throws {
    var rng = SplitMix(seed: 5)
    let matrix = TestMatrix(type: matmulType(typeName), rows: 3, columns: 512, rng: &rng)
    let w = matrix.weights
    for range in [0..<256, 256..<512, 0..<512] where range.lowerBound % w.blockSize == 0 {
      var part = [Float](repeating: .nan, count: range.count)
      part.withUnsafeMutableBufferPointer { w.dequantizeRow(2, columns: range, into: $0.baseAddress!) }
      #expect(part.map(Double.init) == Array(matrix.dense[(2 * 512 + range.lowerBound)..<(2 * 512 + range.upperBound)]))
    }
    #expect(w.blockSize == (typeName == "F16" ? 1 : typeName == "Q8_0" ? 32 : 256))
  }
}
