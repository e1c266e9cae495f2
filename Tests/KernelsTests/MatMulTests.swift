// MatMul.multiply against a plain double-precision product of the dequantized weights (read
// back through the scalar reference dequantizer) and the activations, over every path: one
// token (quantized dot products), a few tokens or any quantized batch (dq_pool_matmul), and
// float weights with >= 8 tokens (dequantize + OpenBLAS sgemm). Also the layout contract
// (out is tokens x rows, nothing written past it, x untouched) and that batching does not
// change a quantized result at all.
import CKernels
import Foundation
import Kernels
import Testing

/// SplitMix64, so every case is reproducible.
struct SplitMix: RandomNumberGenerator {
  var state: UInt64
  init(seed: UInt64) { state = seed }
  mutating func next() -> UInt64 {
    state &+= 0x9E37_79B9_7F4A_7C15
    var z = state
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
  }
  mutating func gaussian() -> Float {
    let u1 = Double.random(in: Double.ulpOfOne..<1, using: &self)
    let u2 = Double.random(in: 0..<1, using: &self)
    return Float((-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2))
  }
}

/// A weight matrix in its stored type, plus its values as the reference dequantizer reads them.
final class TestMatrix {
  let type: UInt32
  let rows: Int
  let columns: Int
  let bytes: UnsafeMutableRawPointer
  let dense: [Double]  // rows x columns

  init(type: UInt32, rows: Int, columns: Int, rng: inout SplitMix) {
    self.type = type
    self.rows = rows
    self.columns = columns
    let rowBytes = Int(dq_row_size(type, Int64(columns)))
    precondition(rowBytes > 0, "type \(type) with \(columns) columns")
    bytes = .allocate(byteCount: rows * rowBytes, alignment: 64)
    var dense = [Double](repeating: 0, count: rows * columns)
    var source = [Float](repeating: 0, count: columns)
    var decoded = [Float](repeating: 0, count: columns)
    for r in 0..<rows {
      // Rows of different magnitudes, with an occasional outlier so blocks differ in scale.
      let scale = Float.random(in: 0.02...1, using: &rng)
      for c in 0..<columns {
        source[c] = rng.gaussian() * scale * (rng.next() % 50 == 0 ? 6 : 1)
      }
      dq_quantize_row(type, source, bytes + r * rowBytes, Int64(columns))
      dq_dequantize_row_ref(type, bytes + r * rowBytes, &decoded, Int64(columns))
      for c in 0..<columns { dense[r * columns + c] = Double(decoded[c]) }
    }
    self.dense = dense
  }

  deinit { bytes.deallocate() }

  var weights: WeightMatrix {
    WeightMatrix(type: type, rows: rows, columns: columns, base: UnsafeRawPointer(bytes))!
  }
}

/// `tokens` activation rows; token 1 (when there is one) is all zeros.
func randomActivations(tokens: Int, columns: Int, rng: inout SplitMix) -> [Float] {
  var x = (0..<(tokens * columns)).map { _ in rng.gaussian() * (rng.next() % 40 == 0 ? 5 : 1) }
  if tokens > 1 {
    for c in 0..<columns { x[columns + c] = 0 }
  }
  return x
}

/// x quantized to `type` and read back (the values a quantized dot product actually sees).
func roundTrip(_ x: ArraySlice<Float>, through type: UInt32) -> [Float] {
  let n = x.count
  var bytes = [UInt8](repeating: 0, count: Int(dq_row_size(type, Int64(n))))
  var out = [Float](repeating: 0, count: n)
  Array(x).withUnsafeBufferPointer { dq_quantize_row(type, $0.baseAddress!, &bytes, Int64(n)) }
  dq_dequantize_row_ref(type, bytes, &out, Int64(n))
  return out
}

func blockSize(_ type: UInt32) -> Int {
  var block: Int64 = 0
  var size: Int64 = 0
  precondition(dq_type_info(type, &block, &size))
  return Int(block)
}

/// Runs MatMul.multiply into a buffer with guard cells on both sides; returns the result and
/// whether the guards survived.
func multiply(
  _ matrix: TestMatrix, _ x: [Float], tokens: Int, pool: ThreadPool, workspace: MatMulWorkspace
) -> (out: [Float], guardsIntact: Bool) {
  let guardCount = 64
  let sentinel = Float(bitPattern: 0x7FC0_1234)  // a NaN no kernel computes
  var buffer = [Float](repeating: sentinel, count: tokens * matrix.rows + 2 * guardCount)
  buffer.withUnsafeMutableBufferPointer { out in
    x.withUnsafeBufferPointer { xp in
      MatMul.multiply(
        out.baseAddress! + guardCount, matrix.weights, xp.baseAddress!, tokens: tokens, pool: pool,
        workspace: workspace)
    }
  }
  let guards = buffer[..<guardCount] + buffer[(buffer.count - guardCount)...]
  let intact = guards.allSatisfy { $0.bitPattern == sentinel.bitPattern }
  return (Array(buffer[guardCount..<(guardCount + tokens * matrix.rows)]), intact)
}

let matmulTypes: [(name: String, type: UInt32)] = [
  ("F32", UInt32(DQ_TYPE_F32)), ("F16", UInt32(DQ_TYPE_F16)), ("BF16", UInt32(DQ_TYPE_BF16)),
  ("Q8_0", UInt32(DQ_TYPE_Q8_0)), ("Q4_1", UInt32(DQ_TYPE_Q4_1)), ("Q5_0", UInt32(DQ_TYPE_Q5_0)),
  ("Q4_K", UInt32(DQ_TYPE_Q4_K)), ("Q6_K", UInt32(DQ_TYPE_Q6_K)),
]
func matmulType(_ name: String) -> UInt32 { matmulTypes.first { $0.name == name }!.type }

let unitRoundoff = 0x1p-24  // half an ulp of 1 in fp32

struct MatMulTests {
  /// Tolerances.
  ///
  /// Float weights (F32, F16, BF16) are multiplied with fp32 activations: the only error is
  /// fp32 rounding in the dot product, in any summation order (SIMD lanes, sgemm's blocking)
  /// at most γ_n · Σ|w_i x_i| with γ_n = n·u / (1 − n·u), plus the final rounding to fp32.
  ///
  /// Quantized weights take x quantized to 8 bits per block (Q8_0 / Q8_1: blocks of 32, scale
  /// d = max|x|/127 stored as fp16; Q8_K: blocks of 256, fp32 scale). Each element moves by at
  /// most d/2 from rounding plus 127·d·2⁻¹¹ from the fp16 scale, so the result moves by at most
  /// Σ_blocks 0.57·d_b · Σ_{i∈b}|w_i| against the unquantized x. Q8_1 also carries each block's
  /// sum s rounded to fp16, which Q4_1 multiplies by its block minimum m (|m| ≤ max|w| in the
  /// block, since the smallest element is stored as m): up to |m|·2⁻¹⁰·|Σx̂| more. The integer
  /// dot products are exact; the fp32 arithmetic around them (block scales, accumulation over
  /// blocks, sub-block scales and minimums of the K-quants, whose partial sums may exceed
  /// Σ|w x̂| a few times) is allowed 4·n·u·Σ|w_i x̂_i|. Against x̂ — the activation as the
  /// kernel sees it — only these last two terms remain: a tight check that catches any wrong
  /// row, column, block or token offset, which moves a result by about its own size.
  @Test(
    "multiply equals the double-precision product of the dequantized weights",
    arguments: matmulTypes.map(\.name), [1, 3, 8, 20])
  func matchesReference(typeName: String, tokens: Int) throws {
    let type = matmulType(typeName)
    let dotType = dq_vec_dot_type(type)
    let isQuantized = dotType != UInt32(DQ_TYPE_F32)
    let dotBlock = blockSize(dotType)
    var rng = SplitMix(seed: UInt64(type) &* 1000 &+ UInt64(tokens))
    for (rows, columns) in [(67, 256), (131, 512)] {
      let matrix = TestMatrix(type: type, rows: rows, columns: columns, rng: &rng)
      let x = randomActivations(tokens: tokens, columns: columns, rng: &rng)
      let workspace = MatMulWorkspace(maxColumns: columns, maxTokens: tokens, threads: 3)
      for threads in [1, 2, 3] {
        let pool = ThreadPool(threads: threads)
        let (out, guardsIntact) = multiply(matrix, x, tokens: tokens, pool: pool, workspace: workspace)
        #expect(guardsIntact, "\(typeName): wrote outside tokens x rows")
        var worst = (ratio: 0.0, t: 0, r: 0, got: Float(0), want: 0.0, tolerance: 0.0)
        for t in 0..<tokens {
          let xt = x[(t * columns)..<((t + 1) * columns)]
          let xq = isQuantized ? roundTrip(xt, through: dotType) : Array(xt)
          for r in 0..<rows {
            let w = matrix.dense[(r * columns)..<((r + 1) * columns)]
            var exact = 0.0, seen = 0.0, magnitude = 0.0, seenMagnitude = 0.0
            var activationBound = 0.0, sumBound = 0.0
            for (i, (wi, xi)) in zip(w, xt).enumerated() {
              exact += wi * Double(xi)
              seen += wi * Double(xq[i])
              magnitude += abs(wi * Double(xi))
              seenMagnitude += abs(wi * Double(xq[i]))
            }
            if isQuantized {
              for b in stride(from: 0, to: columns, by: dotBlock) {
                let block = b..<(b + dotBlock)
                let wb = block.map { w[w.startIndex + $0] }
                let d = block.map { abs(Double(xt[xt.startIndex + $0])) }.max()! / 127
                activationBound += 0.57 * d * wb.map(abs).reduce(0, +)
                if dotType == UInt32(DQ_TYPE_Q8_1) {
                  sumBound += wb.map(abs).max()! * 0x1p-10 * 1.001 * abs(block.map { Double(xq[$0]) }.reduce(0, +))
                }
              }
            }
            let n = Double(columns)
            let rounding = isQuantized
              ? 4 * n * unitRoundoff * seenMagnitude
              : n * unitRoundoff / (1 - n * unitRoundoff) * magnitude + unitRoundoff * abs(exact)
            let got = out[t * rows + r]
            #expect(got.isFinite)
            // Against x̂ (tight) and against x (what a caller asked for).
            let tight = rounding + sumBound + 1e-30
            let loose = rounding + sumBound + activationBound + 1e-30
            if abs(Double(got) - seen) / tight > worst.ratio {
              worst = (abs(Double(got) - seen) / tight, t, r, got, seen, tight)
            }
            #expect(abs(Double(got) - exact) <= loose, "\(typeName) t \(t) r \(r): \(got) vs \(exact) ± \(loose)")
            if t == 1 && tokens > 1 { #expect(got == 0, "an all-zero token gives zeros") }
          }
        }
        #expect(worst.ratio <= 1, "\(typeName) \(rows)x\(columns) tokens \(tokens) threads \(threads): worst \(worst)")
      }
    }
  }

  // The batch runs the tile kernels and a single token the decode dots; on AVX-512 machines the
  // two sum in different orders (TileTests checks the tiles bit for bit against the AVX2 dots),
  // so equal here means equal up to fp32 summation order.
  @Test(
    "a quantized batch gives each token its single-token result",
    arguments: matmulTypes.map(\.name).filter { $0.hasPrefix("Q") }, [3, 8, 20])
  func batchEqualsSingle(typeName: String, tokens: Int) {
    let type = matmulType(typeName)
    var rng = SplitMix(seed: 99 &+ UInt64(type) &* 31 &+ UInt64(tokens))
    let (rows, columns) = (131, 512)
    let matrix = TestMatrix(type: type, rows: rows, columns: columns, rng: &rng)
    let x = randomActivations(tokens: tokens, columns: columns, rng: &rng)
    let workspace = MatMulWorkspace(maxColumns: columns, maxTokens: tokens, threads: 2)
    let pool = ThreadPool(threads: 2)
    let batch = multiply(matrix, x, tokens: tokens, pool: pool, workspace: workspace).out
    for t in 0..<tokens {
      let single = multiply(
        matrix, Array(x[(t * columns)..<((t + 1) * columns)]), tokens: 1, pool: pool,
        workspace: workspace
      ).out
      // Summation-order error scales with the sum of |terms|, not with one (possibly cancelled) output.
      let scale = 1 + (single.map { abs($0) }.max() ?? 0)
      let mismatches = (0..<rows).filter { abs(batch[t * rows + $0] - single[$0]) > 1e-5 * scale }
      #expect(mismatches.isEmpty, "\(typeName) token \(t): rows \(mismatches.prefix(8)) differ")
    }
  }

  @Test("multiply leaves the activations untouched", arguments: ["F32", "Q4_1"], [1, 3, 8])
  func activationsUntouched(typeName: String, tokens: Int) {
    var rng = SplitMix(seed: 5)
    let matrix = TestMatrix(type: matmulType(typeName), rows: 70, columns: 256, rng: &rng)
    let x = randomActivations(tokens: tokens, columns: 256, rng: &rng)
    let copy = x
    let workspace = MatMulWorkspace(maxColumns: 256, maxTokens: tokens, threads: 2)
    _ = multiply(matrix, x, tokens: tokens, pool: ThreadPool(threads: 2), workspace: workspace)
    #expect(x.map(\.bitPattern) == copy.map(\.bitPattern))
  }

  // The pool splits the targets' chunks of rows into one share per thread and lets a thread that
  // finished its share take chunks from the others'. Matrices long enough for many chunks, in
  // counts that leave the shares uneven, must come out with every row written once, each equal
  // to the one-thread product (a row's arithmetic does not depend on which thread runs it).
  @Test("several matrices of many chunks: every row once, as with one thread", arguments: [2, 3, 5])
  func manyTargetsAcrossShares(threads: Int) {
    var rng = SplitMix(seed: 4242 &+ UInt64(threads))
    let columns = 64
    let matrices = [700, 257, 1100].map { TestMatrix(type: UInt32(DQ_TYPE_Q8_0), rows: $0, columns: columns, rng: &rng) }
    let x = randomActivations(tokens: 1, columns: columns, rng: &rng)
    let workspace = MatMulWorkspace(maxColumns: columns, maxTokens: 1, threads: threads)
    func run(_ pool: ThreadPool) -> [[Float]] {
      let sentinel = Float(bitPattern: 0x7FC0_1234)
      let outs = matrices.map { UnsafeMutablePointer<Float>.allocate(capacity: $0.rows) }
      defer { outs.forEach { $0.deallocate() } }
      for (out, m) in zip(outs, matrices) { out.initialize(repeating: sentinel, count: m.rows) }
      let fused = x.withUnsafeBufferPointer { xp in
        MatMul.multiplyVectors(Array(zip(outs, matrices.map(\.weights))), xp.baseAddress!, pool: pool, workspace: workspace)
      }
      #expect(fused)
      return zip(outs, matrices).map { Array(UnsafeBufferPointer(start: $0.0, count: $0.1.rows)) }
    }
    let one = run(ThreadPool(threads: 1))
    let many = ThreadPool(threads: threads)
    for _ in 0..<20 {
      let got = run(many)
      for k in matrices.indices {
        let differing = (0..<matrices[k].rows).filter { got[k][$0].bitPattern != one[k][$0].bitPattern }
        #expect(differing.isEmpty, "matrix \(k), \(threads) threads: rows \(differing.prefix(8)) differ or were not written")
      }
    }
    #expect(one.allSatisfy { $0.allSatisfy(\.isFinite) })
  }

  @Test("a workspace larger than needed works for smaller matrices and batches")
  func smallerThanWorkspace() {
    var rng = SplitMix(seed: 11)
    let workspace = MatMulWorkspace(maxColumns: 1024, maxTokens: 32, threads: 2)
    let pool = ThreadPool(threads: 2)
    for (type, tokens) in [(UInt32(DQ_TYPE_F16), 9), (UInt32(DQ_TYPE_Q8_0), 5), (UInt32(DQ_TYPE_F32), 1)] {
      let matrix = TestMatrix(type: type, rows: 5, columns: 64, rng: &rng)
      let x = randomActivations(tokens: tokens, columns: 64, rng: &rng)
      let (out, intact) = multiply(matrix, x, tokens: tokens, pool: pool, workspace: workspace)
      #expect(intact)
      for t in 0..<tokens {
        for r in 0..<5 {
          let exact = (0..<64).reduce(0.0) { $0 + matrix.dense[r * 64 + $1] * Double(x[t * 64 + $1]) }
          let magnitude = (0..<64).reduce(0.0) { $0 + abs(matrix.dense[r * 64 + $1] * Double(x[t * 64 + $1])) }
          // Q8_0 activations: 0.57 · (max|x| / 127) · Σ|w| bounds the quantization error.
          let bound = 0.57 * (x[(t * 64)..<((t + 1) * 64)].map { abs(Double($0)) }.max()! / 127)
            * (0..<64).reduce(0.0) { $0 + abs(matrix.dense[r * 64 + $1]) } + 1e-4 * magnitude + 1e-30
          #expect(abs(Double(out[t * 5 + r]) - exact) <= bound)
        }
      }
    }
  }
}
