// Version files: each saved version is a PEFT directory under
// `<state>/training/<name>/versions/<v>`, written durably and read back for rollback.
import Adapters
import Dispatch
import DurableFiles
import Engine
import Foundation
import Llama
import Tokenization
import Training

extension BackgroundTraining {
  func versionPath(_ name: String, _ version: Int) -> String { "\(directory)/\(name)/versions/\(version)" }

  func writeVersion(_ name: String, _ version: Int, _ adapter: LoRAAdapter) throws {
    let path = versionPath(name, version)
    let temporary = path + ".tmp"
    try DurableFile.removeTree(temporary)
    try PEFTFormat.write(adapter, to: temporary, base: engine.registry.base.hyper)
    // Synced whole before the rename, so a published version is never an empty directory after a crash.
    try DurableFile.install(directory: temporary, at: path, replacing: true)
  }

  func readVersion(_ name: String, _ version: Int) throws -> LoRAAdapter {
    try AdapterFile.read(path: versionPath(name, version), base: engine.registry.base.hyper)
  }
}
