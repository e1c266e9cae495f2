// The real Gemma 3 270M (Q4_K_M) against llama.cpp: the fixture (make_reference.py --gemma3)
// holds llama.cpp's prompt ids, greedy tokens and logits for turn-format prompts and one prompt
// of 819 tokens (past the 512-position sliding window). Teacher-forced like ReferenceTests:
// our greedy pick must be llama.cpp's except at its near ties, logits close on average.
import Foundation
import Llama
import Testing
import TinyModelSupport

let gemma3Path =
  ProcessInfo.processInfo.environment["DROPLORA_GEMMA3_MODEL"]
  ?? packageRoot.appendingPathComponent("models/gemma-3-270m-q4_k_m.gguf").path
let gemma3IsPresent = FileManager.default.fileExists(atPath: gemma3Path)

@Suite(.enabled(if: gemma3IsPresent, "needs models/gemma-3-270m-q4_k_m.gguf or DROPLORA_GEMMA3_MODEL (scripts/fetch-gemma3.sh)"))
struct GemmaReferenceTests {
  static let reference: ReferenceFile = {
    try! JSONDecoder().decode(ReferenceFile.self, from: try! fixtureData("reference_gemma3_270m_q4_k_m.json"))
  }()
  static let model = try! LlamaModel(path: gemma3Path)

  @Test("greedy tokens and logits agree with llama.cpp", arguments: 0..<5)
  func matchesLlamaCpp(caseIndex: Int) throws {
    try check(caseIndex: caseIndex, maxBatch: 512)
  }

  /// The daemon's prefill chunk of 128: sliding layers keep 511 + 128 positions, so the
  /// 819-token prompt and its decode move their slots (the case above never does).
  @Test("the long prompt agrees with llama.cpp with window-sized sliding caches")
  func longPromptWithWindowSizedCaches() throws {
    try check(caseIndex: 4, maxBatch: 128)
  }

  func check(caseIndex: Int, maxBatch: Int) throws {
    let testCase = Self.reference.cases[caseIndex]
    let context = LlamaContext(model: Self.model, contextLength: 1024, threads: 2, maxBatch: maxBatch)
    if maxBatch < 512 { #expect(context.slidingSlots == 511 + maxBatch) }
    try context.evaluate(testCase.prompt_tokens)
    var between = ErrorStats()
    var agreed = 0
    for (step, expected) in testCase.steps.enumerated() {
      let logits = context.lastLogits
      let ids = expected.top.map { Int($0[0]) } + Self.reference.probe_ids
      let llamaCpp = expected.top.map { $0[1] } + expected.probe
      for (i, id) in ids.enumerated() { between.add(Double(logits[id]) - llamaCpp[i]) }
      let chosen = argmax(logits)
      let expectedToken = testCase.greedy_tokens[step]
      let gap = expected.top[0][1] - expected.top[1][1]
      if chosen == expectedToken { agreed += 1 }
      #expect(chosen == expectedToken || gap < nearTieMargin,
              "step \(step): chose \(chosen), llama.cpp \(expectedToken) (its top-2 gap \(gap))")
      try context.evaluate([expectedToken])
    }
    print("gemma3 case \(caseIndex) (\(testCase.prompt_tokens.count) prompt tokens): ours vs llama.cpp \(between), \(agreed)/\(testCase.steps.count) greedy picks equal")
    #expect(between.mean < meanErrorVersusLlamaCpp)
  }
}
