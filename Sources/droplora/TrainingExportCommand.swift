// `droplora training export --adapter NAME`: the way out to PEFT and vLLM. Reads the daemon's
// state directory (the adapter catalog and the journal, read while the daemon runs: SQLite in
// WAL mode) and writes the adapter's pushed samples as JSONL (each with an id and `held_out`)
// and every saved version as a PEFT directory whose adapter_config.json names the base model
// by its Hugging Face id, so `PeftModel.from_pretrained` and vLLM's `--lora-modules` take it.
import Adapters
import ArgumentParser
import DurableFiles
import Engine
import Foundation
import GGUF
import StreamedTraining

struct TrainingExportCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "export",
    abstract: "Write an adapter's pushed samples (JSONL) and its saved versions (PEFT) for PEFT and vLLM.",
    discussion: """
      Writes OUT/samples.jsonl (one pushed sample per line as it was pushed, with "id" — the \
      client's or "journal-N" — and "held_out") and OUT/versions/V/ (adapter_config.json and \
      adapter_model.safetensors) for each saved version, OUT/versions/serving pointing at the \
      one the daemon serves. base_model_name_or_path is --base-model, else the model's GGUF \
      metadata (general.base_model.0.repo_url, general.source.repo_url or \
      general.source.huggingface.repository).
      """)

  @Option(help: "The adapter to export.") var adapter: String
  @Option(help: "The daemon's state directory.") var stateDirectory = "/var/lib/droplora"
  @Option(help: "Directory to write (created; must be empty or absent). Default: ./NAME-export.") var out: String?
  @Option(help: "Hugging Face id of the base model, e.g. HuggingFaceTB/SmolLM2-135M-Instruct.")
  var baseModel: String?
  @OptionGroup var modelOptions: ModelOptions

  func run() throws {
    let baseID = try resolveBaseModel()
    let journalPath = stateDirectory + "/journal.sqlite"
    guard FileManager.default.fileExists(atPath: journalPath) else {
      throw CommandFailure("no journal at \(journalPath); pass --state-directory")
    }
    let journal: SampleJournal
    do {
      journal = try SampleJournal(path: journalPath, heldOutEvery: 10)
    } catch {
      throw CommandFailure("cannot open \(journalPath): \(error)")
    }
    let catalog = AdapterCatalog(journal: journal)
    guard let entry = try catalog.adapter(named: adapter) else {
      throw CommandFailure("no adapter named '\(adapter)' in \(stateDirectory) (has the daemon started on it since the catalog?)")
    }
    let output = out ?? adapter + "-export"
    if let existing = try? FileManager.default.contentsOfDirectory(atPath: output), !existing.isEmpty {
      throw CommandFailure("\(output) is not empty")
    }
    try FileManager.default.createDirectory(atPath: output + "/versions", withIntermediateDirectories: true)

    var lines: [String] = []
    let samples = try journal.allSamples(adapter: adapter)
    for (sample, clientID) in samples {
      guard var object = try JSONSerialization.jsonObject(with: Data(sample.line.utf8)) as? [String: Any] else { continue }
      object["id"] = clientID ?? "journal-\(sample.id)"
      object["held_out"] = sample.heldOut
      lines.append(String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self))
    }
    // Pushed data: readable by its owner only, like the journal it comes from.
    try DurableFile.write(
      Array((lines.joined(separator: "\n") + (lines.isEmpty ? "" : "\n")).utf8), to: output + "/samples.jsonl", mode: 0o600)

    let versions = try catalog.versions(of: adapter)
    var written: [Int] = []
    for version in versions {
      let source = "\(stateDirectory)/training/\(adapter)/versions/\(version.version)"
      guard FileManager.default.fileExists(atPath: source + "/adapter_config.json") else { continue }
      try PEFTFormat.copy(from: source, to: "\(output)/versions/\(version.version)", baseModel: baseID)
      written.append(version.version)
    }
    if let serving = entry.servingVersion, written.contains(serving) {
      try FileManager.default.createSymbolicLink(atPath: output + "/versions/serving", withDestinationPath: String(serving))
    }
    let held = samples.filter { $0.sample.heldOut }.count
    print(
      "\(output)/samples.jsonl: \(samples.count) samples (\(held) held out); versions \(written.map(String.init).joined(separator: ", "))"
        + (entry.servingVersion.map { " (serving \($0))" } ?? "") + "; base model \(baseID)")
  }

  func resolveBaseModel() throws -> String {
    if let baseModel { return baseModel }
    let file = try modelOptions.open()
    for key in ["general.base_model.0.repo_url", "general.source.repo_url", "general.source.huggingface.repository"] {
      guard let value = try? file.string(key), !value.isEmpty else { continue }
      return value.replacingOccurrences(of: "https://huggingface.co/", with: "")
    }
    throw CommandFailure(
      "\(file.path) names no Hugging Face repository in its metadata; pass --base-model ID (e.g. HuggingFaceTB/SmolLM2-135M-Instruct)")
  }
}
