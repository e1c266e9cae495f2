// Durable writes, in one place for every file that must survive a crash (published adapter
// versions, checkpoints, created adapters, PEFT exports, GGUF files): write a temporary file
// next to the target, fsync it, rename it over the target, fsync the directory. A crash leaves
// the old file or the complete new one, never a torn one, and a failure removes the temporary.
// Directories are assembled under a temporary name, synced whole, then renamed into place.
#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#endif

/// A failed system call while writing `path`; `errno` says why (ENOSPC/EDQUOT: the disk is full).
public struct DurableWriteError: Error, Sendable, Equatable, CustomStringConvertible {
  public var path: String
  /// The call that failed: open, write, fsync, rename, mkdir, ...
  public var operation: String
  public var errno: Int32

  public init(path: String, operation: String, errno: Int32) {
    self.path = path
    self.operation = operation
    self.errno = errno
  }

  /// The file system (or the user's quota) has no room left.
  public var isDiskFull: Bool { errno == ENOSPC || errno == EDQUOT }

  public var description: String { "cannot \(operation) \(path): \(String(cString: strerror(errno)))" }
}

public enum DurableFile {
  /// Where `write(to:mode:_:)` puts the bytes of the file being written.
  public struct Sink {
    fileprivate let fd: Int32
    fileprivate let path: String

    /// Appends `bytes`, retrying short writes and EINTR.
    public func write(_ bytes: UnsafeRawBufferPointer) throws(DurableWriteError) {
      var offset = 0
      while offset < bytes.count {
        let n = posixWrite(fd, bytes.baseAddress! + offset, bytes.count - offset)
        if n < 0 {
          if errno == EINTR { continue }
          throw DurableWriteError(path: path, operation: "write", errno: errno)
        }
        offset += n
      }
    }

    public func write(_ bytes: some Collection<UInt8>) throws(DurableWriteError) {
      let contiguous = bytes.withContiguousStorageIfAvailable { buffer in
        Result { () throws(DurableWriteError) in try write(UnsafeRawBufferPointer(buffer)) }
      }
      if let contiguous { return try contiguous.get() }
      let copy = Array(bytes)
      try copy.withUnsafeBytes { raw in
        Result { () throws(DurableWriteError) in try write(raw) }
      }.get()
    }
  }

  /// Replaces (or creates) `path` with `bytes`, durably. The file gets `mode` exactly when one
  /// is given; without, 0666 less the umask, as open(2) and every other tool would create it.
  public static func write(_ bytes: some Collection<UInt8>, to path: String, mode: mode_t? = nil)
    throws(DurableWriteError)
  {
    try write(to: path, mode: mode) { (sink) throws(DurableWriteError) in try sink.write(bytes) }
  }

  /// Replaces (or creates) `path` with what `produce` writes into the sink, durably: the
  /// target changes only if `produce` and every sync succeed; otherwise the temporary is gone
  /// and the error (typed, with its errno) propagates.
  public static func write(
    to path: String, mode: mode_t? = nil, _ produce: (Sink) throws(DurableWriteError) -> Void
  ) throws(DurableWriteError) {
    let (fd, temporary) = try createTemporary(next: path)
    do throws(DurableWriteError) {
      defer { close(fd) }
      try produce(Sink(fd: fd, path: temporary))
      if let mode, fchmod(fd, mode) != 0 { throw DurableWriteError(path: temporary, operation: "chmod", errno: errno) }
      guard fsync(fd) == 0 else { throw DurableWriteError(path: temporary, operation: "fsync", errno: errno) }
    } catch {
      unlink(temporary)
      throw error
    }
    guard posixRename(temporary, path) == 0 else {
      let e = errno
      unlink(temporary)
      throw DurableWriteError(path: path, operation: "rename \(temporary) to", errno: e)
    }
    try syncDirectory(containing: path)
  }

  /// A new file next to `path` (`path.tmp-XXXXXX`), created 0666 so the kernel applies the
  /// umask (mkstemp would make it 0600 whatever the umask, and reading the umask races).
  private static func createTemporary(next path: String) throws(DurableWriteError) -> (Int32, String) {
    let letters = Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
    for _ in 0..<100 {
      let temporary = path + ".tmp-" + String((0..<6).map { _ in letters.randomElement()! })
      let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o666)
      if fd >= 0 { return (fd, temporary) }
      if errno != EEXIST { throw DurableWriteError(path: path, operation: "create a temporary file for", errno: errno) }
    }
    throw DurableWriteError(path: path, operation: "create a temporary file for", errno: EEXIST)
  }

  /// Renames the directory `temporary` (complete, written by this process) to `path`: every
  /// file in it and the directory itself are fsynced first, the parent after. With
  /// `replacing`, an existing `path` is removed first (the caller keeps its own old copy if it
  /// needs one); without, an existing `path` is an error (EEXIST/ENOTEMPTY) and nothing moves.
  public static func install(directory temporary: String, at path: String, replacing: Bool = false)
    throws(DurableWriteError)
  {
    try syncTree(temporary)
    if replacing { try removeTree(path) }
    guard posixRename(temporary, path) == 0 else {
      throw DurableWriteError(path: path, operation: "rename \(temporary) to", errno: errno)
    }
    try syncDirectory(containing: path)
  }

  /// Renames `source` to `target` and fsyncs the directories of both.
  public static func rename(_ source: String, to target: String) throws(DurableWriteError) {
    guard posixRename(source, target) == 0 else {
      throw DurableWriteError(path: target, operation: "rename \(source) to", errno: errno)
    }
    try syncDirectory(containing: target)
    if parent(of: source) != parent(of: target) { try syncDirectory(containing: source) }
  }

  /// fsyncs every file and directory under `directory` (not following symbolic links), then
  /// `directory` itself: a tree written this way can be renamed into place and survive a crash.
  public static func syncTree(_ directory: String) throws(DurableWriteError) {
    guard let stream = opendir(directory) else {
      throw DurableWriteError(path: directory, operation: "open the directory", errno: errno)
    }
    var names: [String] = []
    var kinds: [UInt8] = []
    while let entry = readdir(stream) {
      let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
        String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
      }
      if name == "." || name == ".." { continue }
      names.append(name)
      kinds.append(entry.pointee.d_type)
    }
    closedir(stream)
    for (name, kind) in zip(names, kinds) {
      let child = directory + "/" + name
      if kind == UInt8(DT_DIR) {
        try syncTree(child)
      } else if kind == UInt8(DT_REG) {
        try sync(child, flags: O_RDONLY)
      }
    }
    try sync(directory, flags: O_RDONLY | O_DIRECTORY)
  }

  /// fsyncs the directory that holds `path`, so a rename or creation in it is durable.
  public static func syncDirectory(containing path: String) throws(DurableWriteError) {
    try sync(parent(of: path), flags: O_RDONLY | O_DIRECTORY)
  }

  /// Removes `path` and everything under it (not following symbolic links); absent is fine.
  public static func removeTree(_ path: String) throws(DurableWriteError) {
    var st = stat()
    guard lstat(path, &st) == 0 else {
      if errno == ENOENT { return }
      throw DurableWriteError(path: path, operation: "stat", errno: errno)
    }
    if (st.st_mode & S_IFMT) == S_IFDIR {
      guard let stream = opendir(path) else { throw DurableWriteError(path: path, operation: "open the directory", errno: errno) }
      var names: [String] = []
      while let entry = readdir(stream) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
          String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
        if name != "." && name != ".." { names.append(name) }
      }
      closedir(stream)
      for name in names { try removeTree(path + "/" + name) }
      guard rmdir(path) == 0 else { throw DurableWriteError(path: path, operation: "remove", errno: errno) }
    } else {
      guard unlink(path) == 0 else { throw DurableWriteError(path: path, operation: "remove", errno: errno) }
    }
  }

  /// Creates `path` and its missing parents with `mode` (umask applies, as for mkdir -p).
  public static func makeDirectories(_ path: String, mode: mode_t = 0o755) throws(DurableWriteError) {
    var st = stat()
    if stat(path, &st) == 0 {
      guard (st.st_mode & S_IFMT) == S_IFDIR else { throw DurableWriteError(path: path, operation: "create the directory", errno: ENOTDIR) }
      return
    }
    let up = parent(of: path)
    if up != path && up != "." && up != "/" { try makeDirectories(up, mode: mode) }
    guard mkdir(path, mode) == 0 || errno == EEXIST else {
      throw DurableWriteError(path: path, operation: "create the directory", errno: errno)
    }
  }

  private static func sync(_ path: String, flags: Int32) throws(DurableWriteError) {
    let fd = open(path, flags | O_CLOEXEC)
    guard fd >= 0 else { throw DurableWriteError(path: path, operation: "open", errno: errno) }
    defer { close(fd) }
    // Some file systems cannot fsync a directory (EINVAL); that is not a failed write.
    guard fsync(fd) == 0 || errno == EINVAL else { throw DurableWriteError(path: path, operation: "fsync", errno: errno) }
  }

  private static func parent(of path: String) -> String {
    guard let slash = path.lastIndex(of: "/") else { return "." }
    return slash == path.startIndex ? "/" : String(path[..<slash])
  }
}

// The C calls, named apart from DurableFile's own write and rename.
private func posixWrite(_ fd: Int32, _ buffer: UnsafeRawPointer, _ count: Int) -> Int { write(fd, buffer, count) }
private func posixRename(_ source: String, _ target: String) -> Int32 { rename(source, target) }
