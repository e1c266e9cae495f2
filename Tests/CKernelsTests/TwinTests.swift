// The dispatching (AVX2) kernels against their scalar reference twins on random data, and the
// dot products against a double-precision dot of the dequantized operands.
//
// Tolerances. Both twins form the same exact integer sum inside each block; they differ only in
// how the per-block fp32 terms are added up (order, FMA's single rounding, int32 -> fp32 of
// partial sums). Recursive fp32 summation of k terms errs by at most about k * 2^-24 * sum|terms|,
// and sum|terms| <= S = sum_i |w_i| |x_i| (dequantized values), so we allow
// (blocks + 16) * 2^-23 * S: twice the bound, still orders of magnitude below what a wrong
// index or scale would cause (those move the result by about S / sqrt(n) or more).
import CKernels
import Foundation
import Testing

func magnitude(_ w: [Float], _ x: [Float]) -> Double {
  zip(w, x).reduce(0) { $0 + abs(Double($1.0)) * abs(Double($1.1)) }
}

func summationTolerance(n: Int, block: Int, _ s: Double) -> Double {
  Double(n / max(block, 8) + 16) * 0x1p-23 * s + 1e-30
}

@Suite struct TwinTests {
  /// Row lengths: several blocks for 32-blocks (32·k) and super-blocks (256·k).
  static func lengths(block: Int) -> [Int] {
    block == 1 ? [1, 7, 32, 33, 100, 576, 1536] : block == 32 ? [32, 64, 96, 160, 576, 1536] : [256, 512, 768, 1536]
  }

  @Test(arguments: weightTypeNames) func dequantizeTwinsAgree(name: String) {
    let (type, block) = weightType(name)
    var rng = SeededRNG(seed: 1000 + UInt64(type))
    for n in Self.lengths(block: block) {
      for _ in 0..<3 {
        let q = Quant.randomRow(type, n: n, rng: &rng)
        let ref = Quant.dequantize(type, q, n: n, ref: true)
        let fast = Quant.dequantize(type, q, n: n, ref: false)
        // bit-identical: the SIMD dequantizers do the same fp32 multiply and add, no FMA
        #expect(ref.map(\.bitPattern) == fast.map(\.bitPattern), "\(name) n=\(n)")
        #expect(ref.allSatisfy { $0.isFinite })
      }
    }
  }

  @Test(arguments: weightTypeNames) func dotTwinsAgree(name: String) {
    let (type, block) = weightType(name)
    var rng = SeededRNG(seed: 2000 + UInt64(type))
    for n in Self.lengths(block: block) {
      for _ in 0..<5 {
        let w = Quant.randomRow(type, n: n, rng: &rng)
        let xf = (0..<n).map { _ in rng.gaussian() }
        let x = Quant.activation(for: type, xf)
        let ref = Quant.dot(type, n: n, w, x, ref: true)
        let fast = Quant.dot(type, n: n, w, x, ref: false)
        let s = magnitude(Quant.dequantize(type, w, n: n), Quant.dequantize(dq_vec_dot_type(type), x, n: n))
        let tol = summationTolerance(n: n, block: block, s)
        #expect(abs(Double(ref) - Double(fast)) <= tol, "\(name) n=\(n): ref \(ref) fast \(fast) tol \(tol)")
      }
    }
  }

  /// sum_i w_i x_i over the dequantized operands, in double. Beyond summation order, the one
  /// approximation in the kernels is Q4_1/Q5_1's use of the activation block's stored
  /// s = fp16(d * sum q) for the min term: it errs by |m| * |s| * 2^-11 per block, and
  /// |m| <= max|w| and |s| ~ |sum x| over the block, so we add sum_b max|w_b| |sum x_b| 2^-10.
  @Test(arguments: weightTypeNames) func dotMatchesDequantizedDouble(name: String) {
    let (type, block) = weightType(name)
    let hasMin = type == UInt32(DQ_TYPE_Q4_1) || type == UInt32(DQ_TYPE_Q5_1)
    var rng = SeededRNG(seed: 3000 + UInt64(type))
    for n in Self.lengths(block: block) {
      for _ in 0..<5 {
        let w = Quant.randomRow(type, n: n, rng: &rng)
        let x = Quant.activation(for: type, (0..<n).map { _ in rng.gaussian() * 3 })
        let wd = Quant.dequantize(type, w, n: n)
        let xd = Quant.dequantize(dq_vec_dot_type(type), x, n: n)
        let exact = zip(wd, xd).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        var tol = summationTolerance(n: n, block: block, magnitude(wd, xd))
        if hasMin {
          for b in stride(from: 0, to: n, by: 32) {
            let mw = wd[b..<(b + 32)].map { abs(Double($0)) }.max()!
            let sx = abs(xd[b..<(b + 32)].reduce(0.0) { $0 + Double($1) })
            tol += mw * sx * 0x1p-10
          }
        }
        for ref in [true, false] {
          let got = Double(Quant.dot(type, n: n, w, x, ref: ref))
          #expect(abs(got - exact) <= tol, "\(name) n=\(n) ref=\(ref): \(got) vs \(exact), tol \(tol)")
        }
      }
    }
  }

  /// dq_matvec_rows over a sub-range of an odd number of rows equals the reference dot per row.
  @Test(arguments: weightTypeNames) func matvecRowsMatchesPerRowDots(name: String) {
    let (type, block) = weightType(name)
    var rng = SeededRNG(seed: 4000 + UInt64(type))
    for n in block == 256 ? [256, 512] : block == 1 ? [33, 96] : [32, 96, 576] {
    let rows = 7
    let rs = Quant.rowSize(type, n)
    let stride = rs + 8  // rows need not be packed
    var w = [UInt8](repeating: 0xEE, count: stride * rows)
    var rowBytes: [[UInt8]] = []
    for r in 0..<rows {
      let q = Quant.randomRow(type, n: n, rng: &rng)
      rowBytes.append(q)
      w.replaceSubrange((r * stride)..<(r * stride + rs), with: q)
    }
    let x = Quant.activation(for: type, (0..<n).map { _ in rng.gaussian() })
    let (begin, end) = (2, 7)
    var y = [Float](repeating: .nan, count: end - begin + 1)  // one sentinel past the end
    // hold the path steady: the matvec and the one-row dots below must use the same kernels
    dispatchPathLock.lock()
    defer { dispatchPathLock.unlock() }
    w.withUnsafeBytes { wp in
      x.withUnsafeBytes { xp in
        y.withUnsafeMutableBufferPointer { yp in
          dq_matvec_rows(type, Int64(n), wp.baseAddress!, stride, xp.baseAddress!, yp.baseAddress!,
                         Int64(begin), Int64(end))
        }
      }
    }
    #expect(y.last!.isNaN, "wrote past row_end")
    for r in begin..<end {
      let ref = Quant.dot(type, n: n, rowBytes[r], x, ref: true)
      let s = magnitude(Quant.dequantize(type, rowBytes[r], n: n), Quant.dequantize(dq_vec_dot_type(type), x, n: n))
      #expect(abs(Double(y[r - begin]) - Double(ref)) <= summationTolerance(n: n, block: block, s), "\(name) row \(r)")
      // the matvec kernels (two rows at a time for q4_1) keep each row's arithmetic, so they
      // give exactly the dispatching one-row dot
      let one = Quant.dot(type, n: n, rowBytes[r], x, ref: false)
      #expect(y[r - begin].bitPattern == one.bitPattern, "\(name) row \(r): \(y[r - begin]) vs \(one)")
    }
    }
  }

  @Test func vecDotTypes() {
    let q80 = UInt32(DQ_TYPE_Q8_0), q81 = UInt32(DQ_TYPE_Q8_1), q8k = UInt32(DQ_TYPE_Q8_K), f32 = UInt32(DQ_TYPE_F32)
    let want: [Int: UInt32] = [
      DQ_TYPE_F32: f32, DQ_TYPE_F16: f32, DQ_TYPE_BF16: f32, DQ_TYPE_Q4_0: q80, DQ_TYPE_Q5_0: q80,
      DQ_TYPE_Q8_0: q80, DQ_TYPE_Q4_1: q81, DQ_TYPE_Q5_1: q81, DQ_TYPE_Q4_K: q8k, DQ_TYPE_Q5_K: q8k,
      DQ_TYPE_Q6_K: q8k,
    ]
    for (t, v) in want { #expect(dq_vec_dot_type(UInt32(t)) == v, "type \(t)") }
  }
}

/// Held by the one test that flips the global scalar switch and by tests that need two
/// dispatching calls to take the same path. All other tests compare the dispatching kernels
/// with the reference bit-exactly where the scalar path is the reference itself, or with a
/// tolerance the scalar path meets too, so they may run while the switch is flipped.
let dispatchPathLock = NSLock()

/// The only test that flips the global scalar switch.
@Suite(.serialized) struct ScalarSwitchTests {
  @Test func forceScalarUsesTheReferences() {
    dispatchPathLock.lock()
    defer { dispatchPathLock.unlock() }
    let before = String(cString: dq_simd_path())
    #expect(before == "avx2" || before == "scalar")
    dq_force_scalar(true)
    defer { dq_force_scalar(false) }
    #expect(String(cString: dq_simd_path()) == "scalar")
    var rng = SeededRNG(seed: 5)
    for (name, type, block) in weightTypes {
      let n = block == 256 ? 512 : 128
      let w = Quant.randomRow(type, n: n, rng: &rng)
      let x = Quant.activation(for: type, (0..<n).map { _ in rng.gaussian() })
      #expect(Quant.dot(type, n: n, w, x, ref: false).bitPattern == Quant.dot(type, n: n, w, x, ref: true).bitPattern, "\(name)")
    }
    dq_force_scalar(false)
    #expect(String(cString: dq_simd_path()) == before)
  }

  #if arch(x86_64) && os(Linux)
    /// The dispatcher's CPU check against the kernel's own report of the CPU flags.
    @Test func avx2PathIsTakenWhenTheCPUHasIt() throws {
      dispatchPathLock.lock()
      defer { dispatchPathLock.unlock() }
      let cpuinfo = try String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)
      let flagsLine = try #require(cpuinfo.split(separator: "\n").first { $0.hasPrefix("flags") })
      let flags = Set(flagsLine.split(separator: " ").map(String.init))
      let has = flags.contains("avx2") && flags.contains("fma") && flags.contains("f16c") && dq_simd_compiled()
      #expect(String(cString: dq_simd_path()) == (has ? "avx2" : "scalar"))
    }
  #endif
}

/// A Q8_0 weight row from a file may hold any int8 code, -128 included (ggml's quantizer never
/// writes it, but nothing forbids it); both twins must still agree with the exact dot.
@Test func q8_0WeightsWithMinus128() {
  let type = UInt32(DQ_TYPE_Q8_0)
  var rng = SeededRNG(seed: 77)
  for nb in [1, 2, 3, 18, 48] {
    let n = nb * 32
    var w = [UInt8]()
    for _ in 0..<nb {
      let d = dq_fp32_to_fp16(Float.random(in: 1e-3...1e-1, using: &rng))
      w += [UInt8(d & 0xFF), UInt8(d >> 8)]
      w += (0..<32).map { j in j % 3 == 0 ? 0x80 : UInt8.random(in: 0...255, using: &rng) }
    }
    let x = Quant.activation(for: type, (0..<n).map { _ in rng.gaussian() })
    let wd = Quant.dequantize(type, w, n: n)
    let xd = Quant.dequantize(type, x, n: n)
    #expect(wd.allSatisfy { $0.isFinite })
    let exact = zip(wd, xd).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
    let tol = summationTolerance(n: n, block: 32, magnitude(wd, xd))
    for ref in [true, false] {
      let got = Double(Quant.dot(type, n: n, w, x, ref: ref))
      #expect(abs(got - exact) <= tol, "nb=\(nb) ref=\(ref): \(got) vs \(exact)")
    }
  }
}

/// The dispatching quantizers (AVX2 for Q8_0 / Q8_1) write the reference's bytes, including on
/// exact halves, which roundf sends away from zero (a half-to-even SIMD rounding would not).
@Test(arguments: ["F32", "F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q8_1", "Q8_K", "Q4_K", "Q5_K", "Q6_K"])
func quantizeTwinsAgree(name: String) {
  let activationTypes = ["Q8_1": UInt32(DQ_TYPE_Q8_1), "Q8_K": UInt32(DQ_TYPE_Q8_K)]
  let t = activationTypes[name] ?? weightType(name).type
  var rng = SeededRNG(seed: 6000 + UInt64(t))
  for n in [256, 512, 1536] {
    var x = (0..<n).map { _ in rng.gaussian() * Float.random(in: 0.01...10, using: &rng) }
    // a block whose scale is exactly 1 (amax 127), filled with exact halves
    x[0] = 127
    for i in 1..<32 { x[i] = Float(Int.random(in: -126...125, using: &rng)) + 0.5 }
    // just below a half (0.49999997 + 0.5 rounds to 1 in fp32), and the smallest halves
    x[1] = 0.5 - 0x1p-25
    x[2] = -(0.5 - 0x1p-25)
    x[3] = 0.5
    x[4] = -0.5
    x[5] = 1.5 - 0x1p-23
    x[32..<64] = ArraySlice(repeating: 0, count: 32)  // an all-zero block
    let ref = Quant.quantize(t, x, ref: true)
    let fast = Quant.quantize(t, x, ref: false)
    #expect(ref == fast, "\(name) n=\(n)")
  }
}
