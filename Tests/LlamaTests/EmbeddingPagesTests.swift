// Embedding lookups do not keep the file's table pages mapped when no product reads the table:
// the kernel maps the 64 KiB around every row a lookup faults in, and the model gives those
// pages back each pass (a long-running daemon would otherwise come to hold the whole table).
// Nor are the header's pages (given back once parsed) or the norm vectors' (copied out at load).
import Foundation
import Llama
import Testing
import TinyModelSupport

struct EmbeddingPagesTests {
  /// Pages of [start, start + count) present in this process's page table (/proc/self/pagemap,
  /// bit 63 of each page's entry).
  static func presentPages(_ start: UnsafeRawPointer, count: Int) throws -> Int {
    let page = Int(sysconf(Int32(_SC_PAGESIZE)))
    let first = Int(bitPattern: start) / page
    let last = (Int(bitPattern: start) + count - 1) / page
    let handle = try FileHandle(forReadingFrom: URL(fileURLWithPath: "/proc/self/pagemap"))
    defer { try? handle.close() }
    try handle.seek(toOffset: UInt64(first * 8))
    let data = try handle.read(upToCount: (last - first + 1) * 8) ?? Data()
    return data.withUnsafeBytes { raw in
      (0..<(raw.count / 8)).filter { raw.loadUnaligned(fromByteOffset: $0 * 8, as: UInt64.self) >> 63 == 1 }.count
    }
  }

  @Test("embedding lookups leave none of the table's pages mapped when no product reads the table")
  func lookupPagesReleased() throws {
    for tied in [false, true] {
      var spec = TinyModelSpec(vocabulary: 8192)  // 8192 rows of 64 f32: a 2 MiB table, 512 pages
      spec.tiedOutput = tied
      let tiny = try TinyModel(spec)
      defer { try? FileManager.default.removeItem(atPath: tiny.path) }
      let model = try LlamaModel(path: tiny.path)
      let context = LlamaContext(model: model, contextLength: 64, threads: 1)
      var random = SplitMix(seed: 3)
      try context.evaluate((0..<48).map { _ in Int32(random.next() % 8192) })
      let table = model.weights.tokenEmbedding
      let present = try Self.presentPages(table.base, count: table.byteCount)
      if tied {
        let pages = table.byteCount / Int(sysconf(Int32(_SC_PAGESIZE)))
        #expect(present >= pages, "the tied f32 output's product reads every page")
      } else {
        // at most the partial pages at the table's two ends, which neighbouring tensors share
        #expect(present <= 2, "\(present) pages of the table still mapped after the lookups")
      }
    }
  }

  @Test(
    "after load the header's pages are given back and the norms are read from copies, not the file",
    .enabled(if: defaultModelIsPresent, "needs models/SmolLM2-135M-Instruct.Q4_1.gguf (scripts/fetch-model.sh)"))
  func headerAndVectorsOffTheMapping() throws {
    let model = try LlamaModel(path: defaultModelPath)  // 49152 tokens and their merges: a header of 1.7 MiB
    let context = LlamaContext(model: model, contextLength: 16, threads: 1)
    try context.evaluate([1, 2, 3])
    let embedding = try #require(model.file.tensor(named: "token_embd.weight"))
    let fileStart = model.weights.tokenEmbedding.base - embedding.offset
    let page = Int(sysconf(Int32(_SC_PAGESIZE)))
    #expect(model.file.dataOffset >= 3 * page, "the test needs a header of several pages")
    // at most the page the header shares with the first tensor
    let present = try Self.presentPages(fileStart, count: model.file.dataOffset)
    #expect(present <= 1, "\(present) header pages still mapped")
    let fileEnd = fileStart + model.file.fileSize
    for vector in [model.weights.outputNorm] + model.weights.layers.flatMap({ [$0.attentionNorm, $0.feedForwardNorm] }) {
      let address = UnsafeRawPointer(vector.base)
      #expect(address < fileStart || address >= fileEnd, "a norm is read from the mapping")
    }
  }
}
