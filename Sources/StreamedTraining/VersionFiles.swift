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
  /// `<state>/training/<name>`, created (or narrowed) 0700 with `training/` itself: what is
  /// trained from pushed data is as private as the journal, whatever the umask.
  @discardableResult
  func adapterDirectory(_ name: String) throws -> String {
    for path in [directory, directory + "/" + name] {
      var info = stat()
      if stat(path, &info) != 0 {
        guard mkdir(path, 0o700) == 0 || errno == EEXIST else {
          throw DurableWriteError(path: path, operation: "create the directory", errno: errno)
        }
      } else if info.st_mode & 0o077 != 0 {
        chmod(path, info.st_mode & 0o700)
      }
    }
    return directory + "/" + name
  }

  func versionPath(_ name: String, _ version: Int) -> String { "\(directory)/\(name)/versions/\(version)" }

  func writeVersion(_ name: String, _ version: Int, _ adapter: LoRAAdapter) throws {
    try adapterDirectory(name)
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
