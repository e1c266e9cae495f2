// `droplora generate`: one completion on the command line. Without --raw the prompt is a user
// message rendered through the model's chat template; with --raw it is used verbatim and
// special-token text in it is parsed, like llama.cpp's raw completion.
import Adapters
import ArgumentParser
import Engine
import Foundation
import GGUF
import Grammar
import Kernels
import Llama
import Tokenization

struct GenerateCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "generate", abstract: "Generate a completion for PROMPT.")

  @OptionGroup var modelOptions: ModelOptions
  @Flag(help: "Use PROMPT verbatim (special-token text parsed) instead of the chat template.")
  var raw = false
  @Option(help: "Largest number of tokens to generate.") var maxTokens = 256
  @Option(help: "Sampling temperature; 0 is greedy.") var temperature: Float = 0.8
  @Option(help: "Keep the k most likely tokens (0 = off).") var topK = 40
  @Option(help: "Nucleus sampling threshold (1 = off).") var topP: Float = 0.95
  @Option(help: "Drop tokens below this fraction of the best token's probability (0 = off).")
  var minP: Float = 0.05
  @Option(help: "Penalty for recently seen tokens (1 = off).") var repeatPenalty: Float = 1.0
  @Option(help: "Random seed; the same seed gives the same output.") var seed: UInt64?
  @Option(help: "Stop when this text is generated (repeatable).") var stop: [String] = []
  @Option(help: "System message for the chat template.") var system: String?
  @Option(help: "Chat template to use instead of the model's: \(ChatTemplate.names.joined(separator: ", ")).")
  var chatTemplate: String?
  @Option(help: "LoRA adapter to merge in (PEFT directory or GGUF-LoRA file).") var adapter: String?
  @Option(help: "Type of the merged matrices: q8_0, f16, f32, or none (serve unmerged: the base weights stay as they are and the adapter is applied at each projection).") var adapterType = "q8_0"
  @Option(help: "Compute threads.") var threads = ProcessInfo.processInfo.activeProcessorCount
  @Option(help: "Context length (prompt plus generated tokens).") var ctxSize = 4096
  @Option(help: "Element type of the KV cache: f32 or f16.") var kvCacheType = KVCacheElement.f32
  @Option(help: "Constrain the output to JSON valid under the JSON Schema in this file.")
  var jsonSchema: String?
  @Option(help: "Constrain the output to the GBNF grammar (llama.cpp's format, start rule root) in this file.")
  var grammar: String?
  @Flag(help: "Constrain the output to a JSON object (any keys and values).") var jsonObject = false
  @Flag(help: "Print {\"prompt_tokens\":[...],\"tokens\":[...],\"text\":\"...\"} when done.")
  var json = false
  @Argument(help: "The prompt, or - to read standard input.") var prompt: String

  func validate() throws {
    if maxTokens < 0 { throw ValidationError("--max-tokens must be >= 0") }
    if threads < 1 { throw ValidationError("--threads must be >= 1") }
    if ctxSize < 1 { throw ValidationError("--ctx-size must be >= 1") }
    if let problem = sampling.validationError { throw ValidationError(problem) }
    if [jsonSchema != nil, grammar != nil, jsonObject].filter({ $0 }).count > 1 {
      throw ValidationError("--json-schema, --grammar and --json-object exclude each other")
    }
  }

  /// The output grammar the options ask for, compiled (errors name the file and the problem).
  func outputGrammar() throws -> Grammar? {
    if jsonObject { return JSONSchemaCompiler.anyObjectGrammar() }
    if let jsonSchema {
      do {
        return try JSONSchemaCompiler.grammar(schema: String(contentsOfFile: jsonSchema, encoding: .utf8))
      } catch let error as JSONSchemaError {
        throw CommandFailure("\(jsonSchema): \(error)")
      }
    }
    if let grammar {
      do {
        return try Grammar(gbnf: String(contentsOfFile: grammar, encoding: .utf8))
      } catch let error as GrammarError {
        throw CommandFailure("\(grammar): \(error)")
      }
    }
    return nil
  }

  var sampling: SamplingParameters {
    SamplingParameters(
      temperature: temperature, topK: topK, topP: topP, minP: minP,
      repeatPenalty: repeatPenalty, seed: seed)
  }

  func run() throws {
    // A merge, and the prefill of float (F32/F16/BF16) weights, run OpenBLAS's sgemm: its fast
    // kernels need the core type set before the library loads (as the daemon does).
    OpenBLASCoreType.ensureSet()
    let constraint = try outputGrammar()
    let file = try modelOptions.open()
    let tokenizer: Tokenizer
    var model: LlamaModel
    do {
      tokenizer = try Tokenizer(gguf: file)
      model = try LlamaModel(file: file)
    } catch {
      throw CommandFailure("\(file.path): \(error)")
    }
    var hook: LoRAHook?
    if let adapter {
      let lora = try readAdapter(adapter, model: model)
      do {
        let type = try MergeType(parsing: adapterType)
        if type == .none {
          hook = LoRAHook(adapter: lora)  // base weights as they are, the adapter at each projection
        } else {
          model = try Merge.merge(lora, into: model, type: type, pool: ThreadPool(threads: threads))
        }
      } catch {
        throw CommandFailure("cannot merge \(adapter): \(error)")
      }
    }
    let promptTokens = try encodePrompt(readTextArgument(prompt), tokenizer: tokenizer)
    guard promptTokens.count < ctxSize else {
      throw CommandFailure(
        "the prompt has \(promptTokens.count) tokens but --ctx-size is \(ctxSize)")
    }
    let contextLength = min(ctxSize, promptTokens.count + maxTokens + 1)
    let generator = Generator(
      model: model, tokenizer: tokenizer, contextLength: contextLength, threads: threads,
      kvCache: kvCacheType)
    generator.context.projectionHook = hook
    let options = GenerationOptions(maxTokens: maxTokens, sampling: sampling, stop: stop, grammar: constraint)
    let result = try generator.generate(promptTokens: promptTokens, options: options) { text in
      if !json {
        FileHandle.standardOutput.write(Data(text.utf8))
      }
      return true
    }
    if json {
      try printJSON(
        GenerateOutput(promptTokens: result.promptTokens, tokens: result.tokens, text: result.text))
    } else {
      FileHandle.standardOutput.write(Data("\n".utf8))
    }
  }

  func encodePrompt(_ text: String, tokenizer: Tokenizer) throws -> [Int32] {
    if raw {
      return tokenizer.encode(text, parseSpecial: true, addSpecial: true)
    }
    let template: ChatTemplate
    do {
      template = try tokenizer.chatTemplate(named: chatTemplate)
    } catch {
      throw CommandFailure("\(error)")
    }
    var messages: [ChatMessage] = []
    if let system { messages.append(ChatMessage(role: "system", content: system)) }
    messages.append(ChatMessage(role: "user", content: text))
    return tokenizer.encode(template.render(messages, addGenerationPrompt: true), addSpecial: true)
  }
}

struct GenerateOutput: Encodable {
  let promptTokens: [Int32]
  let tokens: [Int32]
  let text: String

  enum CodingKeys: String, CodingKey {
    case promptTokens = "prompt_tokens"
    case tokens, text
  }
}

extension KVCacheElement: ExpressibleByArgument {}
