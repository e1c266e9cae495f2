// `droplora adapter convert|merge|random|bench`: LoRA adapter files offline. convert moves an
// adapter between PEFT (a directory) and llama.cpp's GGUF-LoRA (a .gguf file); merge writes a
// standalone GGUF with the adapter merged in; random writes a seeded random adapter (benchmarks). The base model is needed for both: it decides
// the q/k row order and every adapter is checked against it.
import Adapters
import ArgumentParser
import Dispatch
import Foundation
import GGUF
import Kernels
import Llama

struct AdapterCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "adapter", abstract: "Convert, merge and benchmark LoRA adapters.",
    subcommands: [Convert.self, MergeCommand.self, RandomCommand.self, AdapterBenchCommand.self])

  struct Convert: ParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Convert between PEFT (directory) and GGUF-LoRA (.gguf file).",
      discussion: "OUT ending in .gguf is written as GGUF-LoRA, anything else as a PEFT directory.")

    @OptionGroup var modelOptions: ModelOptions
    @Argument(help: "The adapter: a PEFT directory or .safetensors file, or a GGUF-LoRA file.")
    var input: String
    @Argument(help: "Where to write: NAME.gguf for GGUF-LoRA, a directory for PEFT.") var output: String

    func run() throws {
      let model = try loadModel(modelOptions)
      let adapter = try readAdapter(input, model: model)
      do {
        try AdapterFile.write(adapter, to: output, base: model.hyper)
      } catch {
        throw CommandFailure("\(error)")
      }
      print("wrote \(output): rank \(adapter.rank), scale \(adapter.scale), \(adapter.factors.count) matrices")
    }
  }

  struct MergeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
      commandName: "merge", abstract: "Write a standalone GGUF with the adapter merged in.")

    @OptionGroup var modelOptions: ModelOptions
    @Option(help: "The adapter (PEFT directory or GGUF-LoRA file).") var adapter: String
    @Option(help: "The merged GGUF to write.") var out: String
    @Option(help: "Type of the merged matrices: q8_0, f16 or f32.") var type = "q8_0"
    @Option(help: "Compute threads.") var threads = ProcessInfo.processInfo.activeProcessorCount

    func run() throws {
      OpenBLASCoreType.ensureSet()  // the merge's sgemm, as in the daemon
      let model = try loadModel(modelOptions)
      let lora = try readAdapter(adapter, model: model)
      do {
        let merged = try Merge.merge(
          lora, into: model, type: MergeType(parsing: type), pool: ThreadPool(threads: threads))
        try MergedFile.write(merged, to: out)
      } catch {
        throw CommandFailure("\(error)")
      }
      print("wrote \(out): \(lora.factors.count) matrices merged as \(type)")
    }
  }

  struct RandomCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
      commandName: "random",
      abstract: "Write a random adapter (seeded) on every projection of every layer, for benchmarks.",
      discussion: "A ~ U(-1, 1)/sqrt(in), B ~ U(-0.01, 0.01): a small, nonzero delta. OUT ending in .gguf is written as GGUF-LoRA, anything else as a PEFT directory.")

    @OptionGroup var modelOptions: ModelOptions
    @Option(help: "LoRA rank r.") var rank = 16
    @Option(help: "LoRA alpha (scale alpha/r); default 2r.") var alpha: Double?
    @Option(help: "Seed: the same seed, rank and base give the same factors.") var seed: UInt64 = 1
    @Argument(help: "Where to write: NAME.gguf for GGUF-LoRA, a directory for PEFT.") var output: String

    func validate() throws {
      guard rank >= 1 else { throw ValidationError("--rank must be at least 1") }
    }

    func run() throws {
      let model = try loadModel(modelOptions)
      let adapter = LoRAAdapter.random(base: model.hyper, rank: rank, alpha: alpha, seed: seed)
      do {
        try AdapterFile.write(adapter, to: output, base: model.hyper)
      } catch {
        throw CommandFailure("\(error)")
      }
      print("wrote \(output): rank \(adapter.rank), scale \(adapter.scale), \(adapter.factors.count) matrices")
    }
  }
}

func loadModel(_ options: ModelOptions) throws -> LlamaModel {
  let file = try options.open()
  do {
    return try LlamaModel(file: file)
  } catch {
    throw CommandFailure("\(file.path): \(error)")
  }
}

func readAdapter(_ path: String, model: LlamaModel) throws -> LoRAAdapter {
  do {
    return try AdapterFile.read(path: path, base: model.hyper)
  } catch {
    throw CommandFailure("cannot use adapter: \(error)")
  }
}
