// Each op's backward on its own, against central differences of a float64 reimplementation of
// its forward: L = Σ c ⊙ op(inputs) for random c, so dL/dinput is what the backward returns
// given dy = c. The ops compute in fp32; the tolerance (1e-3 of the entry + 1e-4 of the largest
// gradient) covers their rounding, the float64 differences are exact to ~1e-9.
import CKernels
import Foundation
import Kernels
import Testing
import Training
import TinyModelSupport

private func randomValues(_ count: Int, seed: UInt64, scale: Double = 1) -> [Double] {
  var random = SplitMix(seed: seed)
  return (0..<count).map { _ in scale * random.symmetric() }
}

/// Central differences of `loss` at every entry of `x`.
private func finiteDifferences(_ x: [Double], _ loss: ([Double]) -> Double) -> [Double] {
  let h = 1e-5
  return x.indices.map { i in
    var plus = x
    var minus = x
    plus[i] += h
    minus[i] -= h
    return (loss(plus) - loss(minus)) / (2 * h)
  }
}

private func expectClose(_ ours: [Float], _ reference: [Double], _ label: String) {
  let largest = reference.map(abs).max()!
  #expect(largest > 0, "\(label): no gradient")
  for (i, (a, b)) in zip(ours, reference).enumerated() {
    #expect(abs(Double(a) - b) <= 1e-3 * abs(b) + 1e-4 * largest, "\(label)[\(i)]: \(a) vs \(b)")
  }
}

/// Rounds through Float, as the op sees its inputs.
private func asFloat(_ x: [Double]) -> [Float] { x.map { Float($0) } }
private func rounded(_ x: [Double]) -> [Double] { x.map { Double(Float($0)) } }

extension TrainingSuites {
@Suite(.serialized)
struct OpGradientTests {
  let pool = ThreadPool(threads: 2)

  @Test func rmsNorm() async throws {
    try await offCooperativePool {
    let (rows, n, eps) = (3, 16, 1e-5)
    let x = rounded(randomValues(rows * n, seed: 1, scale: 2))
    let w = rounded(randomValues(n, seed: 2).map { 1 + 0.3 * $0 })
    let c = rounded(randomValues(rows * n, seed: 3))
    func loss(_ x: [Double]) -> Double {
      var sum = 0.0
      for r in 0..<rows {
        let row = x[(r * n)..<((r + 1) * n)]
        let scale = 1 / (row.map { $0 * $0 }.reduce(0, +) / Double(n) + eps).squareRoot()
        for (i, v) in row.enumerated() { sum += c[r * n + i] * v * scale * w[i] }
      }
      return sum
    }
    var dx = [Float](repeating: 0, count: rows * n)
    let (xf, wf, cf) = (asFloat(x), asFloat(w), asFloat(c))
    RMSNormOp.backward(dx: &dx, dy: cf, x: xf, weight: wf, width: n, tokens: rows, epsilon: Float(eps), pool: pool)
    expectClose(dx, finiteDifferences(x, loss), "rmsnorm dx")
    }
  }

  @Test(arguments: [false, true])
  func rope(neox: Bool) async throws {
    try await offCooperativePool {
    let (tokens, heads, hd) = (4, 2, 8)
    let width = heads * hd
    var angles = [Float](repeating: 0, count: tokens * hd)
    for t in 0..<tokens { dq_rope_angles(&angles[t * hd], Int64(t + 3), Int32(hd), 10000, 1) }
    let x = rounded(randomValues(tokens * width, seed: 4))
    let c = rounded(randomValues(tokens * width, seed: 5))
    func loss(_ x: [Double]) -> Double {
      var sum = 0.0
      for t in 0..<tokens {
        for h in 0..<heads {
          for i in 0..<(hd / 2) {
            let (cs, sn) = (Double(angles[t * hd + 2 * i]), Double(angles[t * hd + 2 * i + 1]))
            let base = t * width + h * hd
            let a = neox ? base + i : base + 2 * i
            let b = neox ? base + i + hd / 2 : base + 2 * i + 1
            let ya: Double = x[a] * cs - x[b] * sn
            let yb: Double = x[a] * sn + x[b] * cs
            sum += c[a] * ya + c[b] * yb
          }
        }
      }
      return sum
    }
    var dy = asFloat(c)
    RoPEOp.backward(&dy, rowWidth: width, heads: heads, headDim: hd, rotDim: hd, angles: angles, neox: neox, tokens: tokens, pool: pool)
    expectClose(dy, finiteDifferences(x, loss), "rope dx")
    }
  }

  @Test func swiGLU() async throws {
    try await offCooperativePool {
    let n = 40
    let gate = rounded(randomValues(n, seed: 6, scale: 4))
    let up = rounded(randomValues(n, seed: 7, scale: 2))
    let c = rounded(randomValues(n, seed: 8))
    func loss(_ gate: [Double], _ up: [Double]) -> Double {
      var sum = 0.0
      for i in 0..<n {
        let silu: Double = gate[i] / (1 + exp(-gate[i]))
        sum += c[i] * silu * up[i]
      }
      return sum
    }
    var dGate = [Float](repeating: 0, count: n)
    var dUp = [Float](repeating: 0, count: n)
    SwiGLUOp.backward(dGate: &dGate, dUp: &dUp, dh: asFloat(c), gate: asFloat(gate), up: asFloat(up), count: n, pool: pool)
    expectClose(dGate, finiteDifferences(gate) { loss($0, up) }, "swiglu dgate")
    expectClose(dUp, finiteDifferences(up) { loss(gate, $0) }, "swiglu dup")
    }
  }

  /// 150 tokens span three blocks of query rows (the last one partial); there a sample of
  /// entries is checked, the loss being too slow to difference at every one.
  @Test(arguments: [6, 150])
  func causalGroupedQueryAttention(tokens T: Int) async throws {
    try await offCooperativePool {
    let shape = AttentionShape(heads: 4, kvHeads: 2, headDim: 8)
    let (qDim, kvDim, hd) = (shape.qDim, shape.kvDim, shape.headDim)
    let q = rounded(randomValues(T * qDim, seed: 9))
    let k = rounded(randomValues(T * kvDim, seed: 10))
    let v = rounded(randomValues(T * kvDim, seed: 11))
    let c = rounded(randomValues(T * qDim, seed: 12))
    func loss(_ q: [Double], _ k: [Double], _ v: [Double]) -> Double {
      var sum = 0.0
      for h in 0..<shape.heads {
        let g = h / shape.group
        for i in 0..<T {
          var scores: [Double] = []
          for j in 0...i {
            var dot = 0.0
            for d in 0..<hd { dot += q[i * qDim + h * hd + d] * k[j * kvDim + g * hd + d] }
            scores.append(dot / Double(hd).squareRoot())
          }
          let m = scores.max()!
          scores = scores.map { exp($0 - m) }
          let total = scores.reduce(0, +)
          for d in 0..<hd {
            var out = 0.0
            for j in 0...i { out += scores[j] / total * v[j * kvDim + g * hd + d] }
            sum += c[i * qDim + h * hd + d] * out
          }
        }
      }
      return sum
    }
    var dq = [Float](repeating: 0, count: T * qDim)
    var dk = [Float](repeating: 0, count: T * kvDim)
    var dv = [Float](repeating: 0, count: T * kvDim)
    let workspace = AttentionWorkspace(shape: shape, maxTokens: T, threads: pool.threadCount)
    AttentionOp.backward(
      dq: &dq, dk: &dk, dv: &dv, dOut: asFloat(c), q: asFloat(q), k: asFloat(k), v: asFloat(v),
      shape: shape, tokens: T, pool: pool, workspace: workspace)
    if T <= 8 {
      expectClose(dq, finiteDifferences(q) { loss($0, k, v) }, "attention dq")
      expectClose(dk, finiteDifferences(k) { loss(q, $0, v) }, "attention dk")
      expectClose(dv, finiteDifferences(v) { loss(q, k, $0) }, "attention dv")
    } else {
      var pick = SplitMix(seed: 17)
      for (ours, x, label) in [(dq, q, "dq"), (dk, k, "dk"), (dv, v, "dv")] {
        let largest = Double(ours.map(abs).max()!)
        #expect(largest > 0, "attention \(label): no gradient")
        for _ in 0..<16 {
          let i = Int(pick.next() % UInt64(x.count))
          let h = 1e-5
          var plus = x
          var minus = x
          plus[i] += h
          minus[i] -= h
          func at(_ y: [Double]) -> Double {
            label == "dq" ? loss(y, k, v) : label == "dk" ? loss(q, y, v) : loss(q, k, y)
          }
          let fd = (at(plus) - at(minus)) / (2 * h)
          #expect(abs(Double(ours[i]) - fd) <= 1e-3 * abs(fd) + 1e-4 * largest, "attention \(label)[\(i)]: \(ours[i]) vs \(fd)")
        }
      }
    }

    // And the forward against the same reference (the loss is linear in the output).
    var out = [Float](repeating: 0, count: T * qDim)
    AttentionOp.forward(out: &out, q: asFloat(q), k: asFloat(k), v: asFloat(v), shape: shape, tokens: T, pool: pool, workspace: workspace)
    var ours = 0.0
    for (o, weight) in zip(out, c) { ours += Double(o) * weight }
    #expect(abs(ours - loss(q, k, v)) <= 1e-5 * max(1, abs(ours)))
    }
  }

  @Test func crossEntropy() async throws {
    try await offCooperativePool {
    let (rows, V) = (3, 11)
    let z = rounded(randomValues(rows * V, seed: 13, scale: 3))
    let labels: [Int32] = [4, 0, 10]
    func loss(_ z: [Double]) -> Double {
      var sum = 0.0
      for r in 0..<rows {
        let row = z[(r * V)..<((r + 1) * V)]
        let m = row.max()!
        let lse: Double = m + log(row.map { exp($0 - m) }.reduce(0, +))
        sum += lse - z[r * V + Int(labels[r])]
      }
      return sum
    }
    var logits = asFloat(z)
    let total = CrossEntropyOp.lossAndGradient(logits: &logits, labels: labels, vocabulary: V, weight: 0.5, pool: pool)
    #expect(abs(total - loss(z)) <= 1e-5 * loss(z))
    expectClose(logits.map { $0 * 2 }, finiteDifferences(z, loss), "cross-entropy dz")
    }
  }
}
}
