// PEFT and GGUF-LoRA files: configuration decoding, the q/k row order, exact round trips
// PEFT → GGUF-LoRA → PEFT, and adapters that do not fit the base refused with what does not fit.
import Adapters
import CKernels
import Foundation
import GGUF
import Llama
import Testing

@Suite struct ConfigTests {
  @Test func decodesWhatPEFTWrites() throws {
    let json = #"""
      {"alpha_pattern": {}, "auto_mapping": null, "base_model_name_or_path": "HuggingFaceTB/SmolLM2-135M-Instruct",
       "bias": "none", "fan_in_fan_out": false, "inference_mode": true, "init_lora_weights": true,
       "layers_pattern": null, "lora_alpha": 16, "lora_dropout": 0.05, "modules_to_save": null,
       "peft_type": "LORA", "r": 8, "rank_pattern": {}, "revision": null,
       "target_modules": ["v_proj", "q_proj"], "task_type": "CAUSAL_LM", "use_dora": false, "use_rslora": true}
      """#
    let config = try AdapterConfig.decode(Data(json.utf8), path: "adapter_config.json")
    #expect(config.r == 8 && config.loraAlpha == 16 && config.useRSLoRA == true)
    #expect(config.targetModules == .names(["v_proj", "q_proj"]))
    #expect(abs(config.scale - 16 / Float(8).squareRoot()) < 1e-6)
    let full = try AdapterConfig.decode(
      Data(#"{"r": 4, "lora_alpha": 8, "target_modules": ["model.layers.0.self_attn.q_proj"]}"#.utf8), path: "c")
    #expect(full.scale == 2)
    // Encoding keeps the on-disk names.
    let text = String(decoding: config.encoded(), as: UTF8.self)
    #expect(text.contains("\"lora_alpha\"") && text.contains("\"use_rslora\"") && text.contains("\"target_modules\""))
  }

  @Test(arguments: [
    (#"{"r": 8}"#, "missing key 'lora_alpha'"),
    (#"{"r": "8", "lora_alpha": 16}"#, "'r'"),
    (#"{"r": 0, "lora_alpha": 16}"#, "r = 0"),
    (#"{"r": 8, "lora_alpha": 16, "use_dora": true}"#, "use_dora"),
    (#"{"r": 8, "lora_alpha": 16, "bias": "all"}"#, "bias"),
    (#"{"r": 8, "lora_alpha": 16, "rank_pattern": {"q_proj": 4}}"#, "rank_pattern"),
    (#"{"r": 8, "lora_alpha": 16, "modules_to_save": ["lm_head"]}"#, "modules_to_save"),
    (#"{"r": 8, "lora_alpha": 16, "peft_type": "IA3"}"#, "peft_type"),
    // Each of these was accepted and then made every chat empty.
    (#"{"r": 8, "lora_alpha": -16}"#, "lora_alpha = -16"),
    (#"{"r": 8, "lora_alpha": 1e999}"#, "bad adapter_config.json"),  // JSONDecoder refuses it already
    (#"{"r": 8, "lora_alpha": 16, "target_modules": []}"#, "target_modules is empty"),
    (#"{"r": 8, "lora_alpha": 16, "target_modules": ["q_proj", "lm_head"]}"#, "target_modules names 'lm_head'"),
    (#"{"r": 8, "lora_alpha": 16, "target_modules": "q_proj"}"#, "target_modules is the string 'q_proj'"),
  ])
  func refusesWhatItCannotApply(json: String, expected: String) {
    do {
      _ = try AdapterConfig.decode(Data(json.utf8), path: "adapter_config.json")
      Issue.record("\(json) was accepted")
    } catch {
      #expect("\(error)".contains(expected), "\(error)")
    }
  }
}

@Suite struct RowOrderTests {
  /// llama.cpp's converter: reshape(heads, 2, hd/2, ...).swapaxes(1, 2) — within a head the
  /// first half's rows go to even positions and the second half's to odd ones.
  @Test func matchesTheConvertersPermutation() {
    // One head of 8 rows: HF rows 0 1 2 3 | 4 5 6 7 → GGUF order 0 4 1 5 2 6 3 7.
    #expect((0..<8).map { RowOrder.hfRow(ofGGUFRow: $0, rows: 8, heads: 1) } == [0, 4, 1, 5, 2, 6, 3, 7])
    // Two heads of 4 rows each.
    #expect((0..<8).map { RowOrder.hfRow(ofGGUFRow: $0, rows: 8, heads: 2) } == [0, 2, 1, 3, 4, 6, 5, 7])
    let matrix = (0..<24).map(Float.init)  // 12 rows x 2
    let there = RowOrder.permute(matrix, rows: 12, width: 2, heads: 3, toGGUF: true)
    #expect(there != matrix)
    #expect(RowOrder.permute(there, rows: 12, width: 2, heads: 3, toGGUF: false) == matrix)
  }
}

@Suite(.enabled(if: defaultModelIsPresent, needsModel)) struct FormatTests {
  @Test(arguments: [SafetensorsDType.f32, .f16, .bf16])
  func peftToGGUFToPEFTIsExact(dtype: SafetensorsDType) throws {
    let model = try requireModel()
    let hyper = model.hyper
    let directory = try scratchDirectory("roundtrip")
    defer { try? FileManager.default.removeItem(atPath: directory) }
    var adapter = LoRAAdapter.random(
      base: hyper, rank: 4, projections: [.q, .k, .v, .down], layers: 0..<3, bScale: 0.5, seed: 7)
    adapter.storageType = dtype
    adapter.config.useRSLoRA = true
    adapter.config.baseModelNameOrPath = "HuggingFaceTB/SmolLM2-135M-Instruct"
    // A PEFT directory as PEFT would leave it.
    let peft = directory + "/peft"
    try PEFTFormat.write(adapter, to: peft, base: hyper)
    let original = try PEFTFormat.read(path: peft, base: hyper)
    #expect(original.storageType == dtype)
    // → GGUF-LoRA → PEFT.
    try AdapterFile.write(original, to: directory + "/a.gguf", base: hyper)
    let gguf = try AdapterFile.read(path: directory + "/a.gguf", base: hyper)
    #expect(gguf.factors == original.factors)
    #expect(abs(gguf.scale - original.scale) == 0)
    try AdapterFile.write(gguf, to: directory + "/back", base: hyper)
    for name in [PEFTFormat.configFileName, PEFTFormat.weightsFileName] {
      let before = try Data(contentsOf: URL(fileURLWithPath: peft + "/" + name))
      let after = try Data(contentsOf: URL(fileURLWithPath: directory + "/back/" + name))
      #expect(before == after, "\(name) changed in the round trip")
    }
    // llama.cpp's keys and shapes.
    let file = try GGUFFile(path: directory + "/a.gguf")
    #expect(try file.string("general.type") == "adapter")
    #expect(try file.string("adapter.type") == "lora")
    #expect(try file.string("general.architecture") == hyper.architecture)
    let alpha = try #require(try file.float("adapter.lora.alpha"))
    #expect(abs(Float(alpha) / 4 - adapter.scale) < 1e-6)  // llama.cpp: scale = alpha / rank
    let a = try #require(file.tensor(named: "blk.0.attn_q.weight.lora_a"))
    let b = try #require(file.tensor(named: "blk.0.attn_q.weight.lora_b"))
    #expect(a.dimensions == [hyper.embeddingLength, 4])
    #expect(b.dimensions == [4, hyper.queryDimension])
  }

  /// The q/k rows of lora_B move exactly as llama.cpp's converter moved the base's rows: an
  /// adapter whose B is one-hot on HF row j of q must land on the GGUF row holding HF row j.
  @Test func qAndKRowsArePermutedOnImportAndRestoredOnExport() throws {
    let hyper = try requireModel().hyper
    let directory = try scratchDirectory("rows")
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let d = hyper.embeddingLength
    var writer = SafetensorsWriter()
    for (module, rows, hfRow) in [("q_proj", hyper.queryDimension, 5), ("k_proj", hyper.kvDimension, 40), ("v_proj", hyper.kvDimension, 5)] {
      var b = [Float](repeating: 0, count: rows)
      b[hfRow] = 1
      let prefix = "base_model.model.model.layers.0.self_attn.\(module)"
      writer.add(name: prefix + ".lora_A.weight", dtype: .f32, shape: [1, d], values: [Float](repeating: 1, count: d))
      writer.add(name: prefix + ".lora_B.weight", dtype: .f32, shape: [rows, 1], values: b)
    }
    try writer.write(to: directory + "/" + PEFTFormat.weightsFileName)
    try AdapterConfig(r: 1, loraAlpha: 1, targetModules: ["q_proj", "k_proj", "v_proj"]).encoded()
      .write(to: URL(fileURLWithPath: directory + "/" + PEFTFormat.configFileName))
    let adapter = try PEFTFormat.read(path: directory, base: hyper)
    func hot(_ p: LlamaProjection) -> Int {
      adapter.factors[LoRATarget(layer: 0, projection: p)]!.b.firstIndex(of: 1)!
    }
    // hd = 64: HF row 5 (first half, j = 5) → GGUF row 10; HF row 40 (second half, j = 8) → 17.
    #expect(hot(.q) == 10)
    #expect(hot(.k) == 17)
    #expect(hot(.v) == 5)  // v is never permuted
    let out = PEFTFormat.safetensors(adapter, base: hyper).serialized()
    let reread = try SafetensorsFile(bytes: out)
    let qb = reread.floats(of: reread.tensor(named: "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight")!)
    #expect(qb.firstIndex(of: 1) == 5)
  }

  @Test func adaptersThatDoNotFitAreRefused() throws {
    let hyper = try requireModel().hyper
    let directory = try scratchDirectory("refuse")
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let d = hyper.embeddingLength
    func peft(_ tensors: [(String, [Int])], r: Int = 2) throws -> AdapterError? {
      var writer = SafetensorsWriter()
      for (name, shape) in tensors {
        writer.add(name: name, dtype: .f32, shape: shape, values: [Float](repeating: 0.1, count: shape.reduce(1, *)))
      }
      try writer.write(to: directory + "/" + PEFTFormat.weightsFileName)
      try AdapterConfig(r: r, loraAlpha: 4, targetModules: ["q_proj"]).encoded()
        .write(to: URL(fileURLWithPath: directory + "/" + PEFTFormat.configFileName))
      do {
        _ = try PEFTFormat.read(path: directory, base: hyper)
        return nil
      } catch {
        return error
      }
    }
    let q = "base_model.model.model.layers.0.self_attn.q_proj"
    // Wrong input dimension (an adapter for a wider model).
    #expect(try peft([(q + ".lora_A.weight", [2, 2048]), (q + ".lora_B.weight", [d, 2])])
      == .wrongShape(tensor: q + ".lora_A.weight", expected: [2, d], found: [2, 2048]))
    // Rank disagreeing with the config.
    #expect(try peft([(q + ".lora_A.weight", [3, d]), (q + ".lora_B.weight", [d, 3])])
      == .wrongShape(tensor: q + ".lora_A.weight", expected: [2, d], found: [3, d]))
    // A layer the model does not have.
    let deep = "base_model.model.model.layers.99.self_attn.q_proj"
    #expect(try peft([(deep + ".lora_A.weight", [2, d]), (deep + ".lora_B.weight", [d, 2])])
      == .layerOutOfRange(tensor: deep + ".lora_A.weight", layer: 99, layerCount: hyper.layerCount))
    // Only one factor.
    guard case .missingFactor = try peft([(q + ".lora_A.weight", [2, d])]) else {
      Issue.record("a lone lora_A was accepted")
      return
    }
    // A module that is not a projection here.
    guard case .unknownTensorName = try peft([("base_model.model.lm_head.lora_A.weight", [2, d])]) else {
      Issue.record("lm_head was accepted")
      return
    }

    // GGUF-LoRA for another architecture, and one whose lora_a is not transposed.
    var adapter = LoRAAdapter.random(base: hyper, rank: 2, projections: [.v], layers: 0..<1)
    adapter.architecture = "gemma"
    try GGUFLoRAFormat.write(adapter, to: directory + "/gemma.gguf", base: hyper)
    #expect(throws: AdapterError.architectureMismatch(adapter: "gemma", model: hyper.architecture)) {
      try AdapterFile.read(path: directory + "/gemma.gguf", base: hyper)
    }
    var writer = GGUFWriter()
    writer.set("general.architecture", .string(hyper.architecture))
    writer.set("general.type", .string("adapter"))
    writer.set("adapter.type", .string("lora"))
    writer.set("adapter.lora.alpha", .float32(4))
    let zeros = [UInt8](repeating: 0, count: 2 * d * 4)
    try writer.addTensor(name: "blk.0.attn_q.weight.lora_a", type: .f32, dimensions: [2, d], data: zeros)
    try writer.addTensor(name: "blk.0.attn_q.weight.lora_b", type: .f32, dimensions: [2, d], data: zeros)
    try writer.write(to: directory + "/flipped.gguf")
    #expect(throws: AdapterError.wrongShape(tensor: "blk.0.attn_q.weight.lora_a", expected: [d, d], found: [2, d])) {
      try AdapterFile.read(path: directory + "/flipped.gguf", base: hyper)
    }
    // A FIFO (as the adapter, or as its adapter_config.json) is refused before it is opened.
    let fifo = directory + "/fifo.gguf"
    #expect(mkfifo(fifo, 0o600) == 0)
    var fifoError: AdapterError?
    do { _ = try AdapterFile.read(path: fifo, base: hyper) } catch { fifoError = error }
    guard case .io(let fifoPath, _)? = fifoError, fifoPath == fifo else {
      Issue.record("a FIFO was not refused as an adapter")
      return
    }
    // A model file is not an adapter.
    #expect(throws: AdapterError.self) { try AdapterFile.read(path: defaultModelPath, base: hyper) }
  }

  /// NaN, ±Inf or absurdly large factors used to load (201) and then every chat came out empty.
  @Test func nonFiniteOrHugeFactorsAreRefusedNamingTheTensor() throws {
    let hyper = try requireModel().hyper
    let directory = try scratchDirectory("nonfinite")
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let d = hyper.embeddingLength
    let q = "base_model.model.model.layers.0.self_attn.q_proj"
    func peft(a: Float, b: Float, alpha: Double = 4, modules: [String] = ["q_proj"]) throws -> AdapterError? {
      var writer = SafetensorsWriter()
      var av = [Float](repeating: 0.01, count: 2 * d)
      var bv = [Float](repeating: 0.01, count: d * 2)
      av[7] = a
      bv[d] = b
      writer.add(name: q + ".lora_A.weight", dtype: .f32, shape: [2, d], values: av)
      writer.add(name: q + ".lora_B.weight", dtype: .f32, shape: [d, 2], values: bv)
      try writer.write(to: directory + "/" + PEFTFormat.weightsFileName)
      try AdapterConfig(r: 2, loraAlpha: alpha, targetModules: modules).encoded()
        .write(to: URL(fileURLWithPath: directory + "/" + PEFTFormat.configFileName))
      do {
        _ = try PEFTFormat.read(path: directory, base: hyper)
        return nil
      } catch {
        return error
      }
    }
    #expect(try peft(a: 0.5, b: -0.5) == nil)  // an ordinary adapter still loads
    #expect(try peft(a: .nan, b: 0) == .nonFiniteFactor(tensor: "blk.0.attn_q.weight", factor: "lora_A"))
    #expect(try peft(a: 0, b: .infinity) == .nonFiniteFactor(tensor: "blk.0.attn_q.weight", factor: "lora_B"))
    #expect(try peft(a: 0, b: -.infinity) == .nonFiniteFactor(tensor: "blk.0.attn_q.weight", factor: "lora_B"))
    guard case .factorsTooLarge(let tensor, _, _)? = try peft(a: 1e6, b: 1e3) else {
      Issue.record("huge factors were accepted")
      return
    }
    #expect(tensor == "blk.0.attn_q.weight")
    // A tensor for a module target_modules does not list.
    guard case .badConfig(_, let reason)? = try peft(a: 0.5, b: 0.5, modules: ["v_proj"]) else {
      Issue.record("a q_proj tensor under target_modules [v_proj] was accepted")
      return
    }
    #expect(reason.contains("q_proj"))
    // GGUF-LoRA files go through the same check.
    var adapter = LoRAAdapter.random(base: hyper, rank: 2, projections: [.v], layers: 0..<1)
    var f = adapter.factors.values.first!
    var b = f.b
    b[3] = .nan
    f = LoRAFactors(rank: f.rank, rows: f.rows, columns: f.columns, a: f.a, b: b)
    adapter.factors[adapter.factors.keys.first!] = f
    try GGUFLoRAFormat.write(adapter, to: directory + "/nan.gguf", base: hyper)
    #expect(throws: AdapterError.nonFiniteFactor(tensor: "blk.0.attn_v.weight", factor: "lora_B")) {
      try AdapterFile.read(path: directory + "/nan.gguf", base: hyper)
    }
  }

  @Test func truncatedAdapterFilesAreRefused() throws {
    let hyper = try requireModel().hyper
    let directory = try scratchDirectory("truncated")
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let adapter = LoRAAdapter.random(base: hyper, rank: 2, projections: [.q], layers: 0..<1)
    try GGUFLoRAFormat.write(adapter, to: directory + "/a.gguf", base: hyper)
    try PEFTFormat.write(adapter, to: directory + "/peft", base: hyper)
    for path in [directory + "/a.gguf", directory + "/peft/" + PEFTFormat.weightsFileName] {
      let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
      // The last 32 bytes may be the GGUF writer's optional padding after the last tensor.
      for cut in stride(from: 0, to: bytes.count - 32, by: max(1, bytes.count / 97)) {
        try bytes.prefix(cut).write(to: URL(fileURLWithPath: path))
        #expect(throws: AdapterError.self, "\(path) cut at \(cut) was accepted") {
          try AdapterFile.read(path: path.hasSuffix(".gguf") ? path : directory + "/peft", base: hyper)
        }
      }
    }
  }

  /// Seeded random byte flips in both formats: every file either reads as an adapter that fits
  /// the base or is refused with an AdapterError; nothing crashes.
  @Test func corruptedAdapterFilesNeverCrash() throws {
    let hyper = try requireModel().hyper
    let directory = try scratchDirectory("corrupt")
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let adapter = LoRAAdapter.random(base: hyper, rank: 2, projections: [.k, .up], layers: 0..<1)
    try GGUFLoRAFormat.write(adapter, to: directory + "/a.gguf", base: hyper)
    try PEFTFormat.write(adapter, to: directory + "/peft", base: hyper)
    var state: UInt64 = 0x5eed
    for (path, readPath) in [
      (directory + "/a.gguf", directory + "/a.gguf"),
      (directory + "/peft/" + PEFTFormat.weightsFileName, directory + "/peft"),
    ] {
      let original = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
      // Mostly in the header, where the readers decide what to touch.
      let header = min(original.count, 2048)
      var accepted = 0
      for _ in 0..<300 {
        var bytes = original
        for _ in 0..<3 {
          state = state &* 6364136223846793005 &+ 1442695040888963407
          bytes[Int(state >> 33) % header] ^= UInt8(truncatingIfNeeded: state >> 13) | 1
        }
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        do {
          let read = try AdapterFile.read(path: readPath, base: hyper)
          try read.validate(against: hyper)
          accepted += 1
        } catch {
          continue
        }
      }
      #expect(accepted < 300, "no corruption of \(path) was noticed")
    }
  }
}
