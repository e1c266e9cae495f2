// The real default model against llama.cpp: the same prompt token ids must give the same
// greedy continuation and logits within tolerance. The reference was made by
// Fixtures/make_reference.py with llama-cpp-python (see that script for how).
import Foundation
import GGUF
import Llama
import Testing
import TinyModelSupport

struct ReferenceFile: Decodable {
  struct Step: Decodable {
    let top: [[Double]]  // [id, logit] pairs, best first
    let probe: [Double]  // logits at `probe_ids`
  }
  struct Case: Decodable {
    let prompt: String
    let prompt_tokens: [Int32]
    let greedy_tokens: [Int32]
    let steps: [Step]
  }
  let probe_ids: [Int]
  let cases: [Case]
}

struct ExactReferenceFile: Decodable {
  struct Case: Decodable { let steps: [[Double]] }  // exact logits at the llama.cpp ids
  let cases: [Case]
}

/// Why these tolerances. Exact logits (float64 over the dequantized weights, made by
/// Fixtures/make_exact_reference.py) are the yardstick. llama.cpp and this engine both quantize
/// activations to 8 bits for the dot products of every matmul, which moves logits by a few
/// tenths on average and by more than a unit at sensitive positions; the two engines round
/// differently in places (summation order, exp/silu, the fp32 prompt path), so each carries its
/// own noise. The test therefore asks that this engine be no further from exact than llama.cpp
/// is (with a small allowance), and compares with llama.cpp directly only loosely. A real
/// error — a wrong RoPE pair, norm, mask or quant layout — moves logits by several units
/// everywhere and fails both bounds by a wide margin.
let accuracyAllowance = 1.25  // our mean error vs exact may exceed llama.cpp's by 25 %
let meanErrorVersusLlamaCpp = 0.5
/// A greedy step may pick differently from llama.cpp only when its top two logits are within
/// the two engines' combined noise at that step.
let nearTieMargin = 0.5

@Suite(.enabled(if: defaultModelIsPresent, "needs models/SmolLM2-135M-Instruct.Q4_1.gguf (scripts/fetch-model.sh)"))
struct ReferenceTests {
  static let reference: ReferenceFile = {
    let data = try! fixtureData("reference_smollm2_q4_1.json")
    return try! JSONDecoder().decode(ReferenceFile.self, from: data)
  }()
  static let model = try! LlamaModel(path: defaultModelPath)

  static let exact: ExactReferenceFile = {
    let data = try! fixtureData("reference_exact_smollm2_q4_1.json")
    return try! JSONDecoder().decode(ExactReferenceFile.self, from: data)
  }()

  @Test("logits are as close to exact as llama.cpp's, greedy tokens agree", arguments: 0..<6)
  func matchesLlamaCpp(caseIndex: Int) throws {
    let reference = Self.reference
    let testCase = reference.cases[caseIndex]
    let exactSteps = Self.exact.cases[caseIndex].steps
    let context = LlamaContext(model: Self.model, contextLength: 512, threads: 2)
    try context.evaluate(testCase.prompt_tokens)

    var ours = ErrorStats()  // this engine vs exact
    var theirs = ErrorStats()  // llama.cpp vs exact
    var between = ErrorStats()  // this engine vs llama.cpp
    for (step, expected) in testCase.steps.enumerated() {
      let logits = context.lastLogits
      let ids = expected.top.map { Int($0[0]) } + reference.probe_ids
      let llamaCpp = expected.top.map { $0[1] } + expected.probe
      for (i, id) in ids.enumerated() {
        let value = Double(logits[id])
        ours.add(value - exactSteps[step][i])
        theirs.add(llamaCpp[i] - exactSteps[step][i])
        between.add(value - llamaCpp[i])
      }
      // Our choice must be llama.cpp's, unless llama.cpp itself had a near tie.
      let chosen = argmax(logits)
      let expectedToken = testCase.greedy_tokens[step]
      let gap = expected.top[0][1] - expected.top[1][1]
      #expect(chosen == expectedToken || gap < nearTieMargin,
              "step \(step): chose \(chosen), llama.cpp \(expectedToken) (its top-2 gap \(gap))")
      // Teacher-force llama.cpp's token so one near tie can't derail the rest of the case.
      try context.evaluate([expectedToken])
    }
    print("case \(caseIndex): vs exact: ours \(ours), llama.cpp \(theirs); ours vs llama.cpp \(between)")
    #expect(ours.mean <= theirs.mean * accuracyAllowance)
    #expect(ours.worst <= theirs.worst * accuracyAllowance * 2)
    #expect(between.mean < meanErrorVersusLlamaCpp)
  }

  @Test("the fixture's prompts leave enough confident steps to compare free-running")
  func fixtureHasConfidentSteps() {
    let confident = Self.reference.cases.map { c in
      c.steps.firstIndex { $0.top[0][1] - $0.top[1][1] < nearTieMargin } ?? c.steps.count
    }
    #expect(confident.reduce(0, +) >= 30, "\(confident)")
  }

  @Test("free-running greedy continuations equal llama.cpp's up to its first near tie", arguments: 0..<6)
  func greedyContinuation(caseIndex: Int) throws {
    // No teacher forcing: our own choices feed back. After a near tie either engine's pick is
    // a coin toss of rounding, so the comparison stops at llama.cpp's first near tie.
    let testCase = Self.reference.cases[caseIndex]
    let firstNearTie = testCase.steps.firstIndex { $0.top[0][1] - $0.top[1][1] < nearTieMargin }
    let compared = firstNearTie ?? testCase.greedy_tokens.count
    let context = LlamaContext(model: Self.model, contextLength: 256, threads: 2)
    try context.evaluate(testCase.prompt_tokens)
    var generated: [Int32] = []
    for _ in 0..<compared {
      let token = argmax(context.lastLogits)
      generated.append(token)
      try context.evaluate([token])
    }
    #expect(generated == Array(testCase.greedy_tokens.prefix(compared)))
    print("case \(caseIndex): \(compared) free-running greedy tokens equal llama.cpp's")
  }
}

func argmax(_ logits: UnsafeBufferPointer<Float>) -> Int32 {
  var best = 0
  for i in 1..<logits.count where logits[i] > logits[best] { best = i }
  return Int32(best)
}

struct ErrorStats: CustomStringConvertible {
  var sum = 0.0
  var count = 0
  var worst = 0.0
  mutating func add(_ difference: Double) {
    sum += abs(difference)
    count += 1
    worst = max(worst, abs(difference))
  }
  var mean: Double { sum / Double(max(1, count)) }
  var description: String {
    "mean |Δ| \((mean * 1000).rounded() / 1000), max \((worst * 1000).rounded() / 1000)"
  }
}
