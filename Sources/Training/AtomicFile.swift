// Durable, atomic file replacement: write a temporary file next to the target, fsync it,
// rename it over the target, fsync the directory. A crash leaves the old file or the new
// one, never a torn one.
import Foundation

public enum AtomicFile {
  public static func write(_ data: Data, to path: String) throws(TrainingError) {
    let temporary = path + ".tmp-\(getpid())"
    let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
    guard fd >= 0 else { throw .io(path: temporary, reason: String(cString: strerror(errno))) }
    var ok = true
    data.withUnsafeBytes { raw in
      var offset = 0
      while offset < raw.count {
        let n = Foundation.write(fd, raw.baseAddress! + offset, raw.count - offset)
        if n < 0 {
          if errno == EINTR { continue }
          ok = false
          return
        }
        offset += n
      }
    }
    ok = ok && fsync(fd) == 0
    close(fd)
    guard ok, rename(temporary, path) == 0 else {
      let reason = String(cString: strerror(errno))
      unlink(temporary)
      throw .io(path: path, reason: reason)
    }
    syncDirectory(of: path)
  }

  /// fsyncs every regular file directly inside `directory`, then the directory itself: a
  /// directory written this way can be renamed into place and survive a crash whole.
  public static func syncTree(_ directory: String) throws(TrainingError) {
    let names: [String]
    do {
      names = try FileManager.default.contentsOfDirectory(atPath: directory)
    } catch {
      throw .io(path: directory, reason: "\(error)")
    }
    for name in names + ["."] {
      let fd = open(directory + "/" + name, O_RDONLY | O_CLOEXEC)
      guard fd >= 0 else { throw .io(path: directory + "/" + name, reason: String(cString: strerror(errno))) }
      let ok = fsync(fd) == 0
      let reason = String(cString: strerror(errno))
      close(fd)
      guard ok else { throw .io(path: directory + "/" + name, reason: reason) }
    }
  }

  public static func syncDirectory(of path: String) {
    let directory = (path as NSString).deletingLastPathComponent
    let fd = open(directory.isEmpty ? "." : directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    if fd >= 0 {
      fsync(fd)
      close(fd)
    }
  }
}
