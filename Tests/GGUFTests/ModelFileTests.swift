// The real default model, when present (models/ is not committed; scripts fetch it). Skipped
// with a message otherwise.
import GGUF
import Testing

@Suite(
  .enabled(
    if: defaultModelPath != nil,
    "models/SmolLM2-135M-Instruct.Q4_1.gguf is absent: fetch the model to run these tests"))
struct ModelFileTests {
  let file: GGUFFile

  init() throws {
    file = try GGUFFile(path: try #require(defaultModelPath))
  }

  @Test func header() throws {
    #expect(file.version == 3)
    #expect(file.alignment == 32)
    #expect(file.architecture == "llama")
    #expect(try file.int("llama.block_count") == 30)
    #expect(try file.int("llama.embedding_length") == 576)
    #expect(file.tensors.count == 272)
  }

  @Test func vocabulary() throws {
    let tokens = try #require(try file.stringArray("tokenizer.ggml.tokens"))
    #expect(tokens.count == 49152)
    #expect(tokens.count == Set(tokens).count)
  }

  @Test func tensors() throws {
    let embedding = try #require(file.tensor(named: "token_embd.weight"))
    #expect(embedding.type == .q8_0)
    #expect(embedding.dimensions == [576, 49152])
    #expect(embedding.byteCount == 49152 * 576 / 32 * 34)
    var end = 0
    for tensor in file.tensors {
      #expect(tensor.offset >= file.dataOffset)
      #expect(tensor.offset % file.alignment == 0)
      #expect(tensor.offset + tensor.byteCount <= file.fileSize)
      #expect(tensor.type.isKnown)
      #expect(file.bytes(of: tensor).count == tensor.byteCount)
      end = max(end, tensor.offset + tensor.byteCount)
    }
    #expect(end <= file.fileSize)
  }
}
