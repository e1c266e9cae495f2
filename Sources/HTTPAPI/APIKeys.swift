// API keys for the TCP listeners (issue 17): read from a file only the service may read, and
// matched against `Authorization: Bearer KEY` in time that does not depend on where a guess
// goes wrong. Each key has a name, which is the client's identity for the per-user caps.
import Foundation

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#endif

public struct APIKeys: Sendable, Equatable {
  public struct Key: Sendable, Equatable {
    public var name: String
    var bytes: [UInt8]
  }
  public private(set) var keys: [Key]

  /// Keys shorter than this are refused: they could be guessed.
  public static let minimumLength = 16

  public init(_ keys: [(name: String, key: String)]) throws(APIKeyFileError) {
    self.keys = []
    for (index, entry) in keys.enumerated() {
      guard entry.key.utf8.count >= Self.minimumLength else { throw .keyTooShort(line: index + 1) }
      self.keys.append(Key(name: entry.name, bytes: Array(entry.key.utf8)))
    }
    guard !self.keys.isEmpty else { throw .empty }
  }

  /// Reads `path`: one key per line, `KEY` or `NAME KEY`; blank lines and `#` comments skipped.
  /// Refuses a file that is not regular, not owned by this user or root, or open to group/others.
  public static func load(path: String) throws(APIKeyFileError) -> APIKeys {
    let fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)
    guard fd >= 0 else { throw .unreadable(path: path, reason: String(cString: strerror(errno))) }
    defer { close(fd) }
    var info = stat()
    guard fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else { throw .notARegularFile(path: path) }
    if info.st_mode & 0o077 != 0 {
      throw .tooOpen(path: path, mode: UInt32(info.st_mode & 0o777))
    }
    guard info.st_uid == geteuid() || info.st_uid == 0 else { throw .wrongOwner(path: path, uid: info.st_uid) }
    guard info.st_size <= 1 << 20 else { throw .unreadable(path: path, reason: "larger than 1 MiB") }
    var data = [UInt8]()
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
      let n = read(fd, &chunk, chunk.count)
      if n < 0 && errno == EINTR { continue }
      guard n >= 0 else { throw .unreadable(path: path, reason: String(cString: strerror(errno))) }
      if n == 0 { break }
      data.append(contentsOf: chunk[0..<n])
    }
    guard let text = String(validating: data, as: UTF8.self) else {
      throw .malformed(path: path, line: 0, reason: "not UTF-8")
    }
    var entries: [(name: String, key: String)] = []
    for (index, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
      let line = raw.trimmingCharacters(in: .whitespacesAndNewlines)
      if line.isEmpty || line.hasPrefix("#") { continue }
      let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
      switch fields.count {
      case 1: entries.append((name: "key\(entries.count + 1)", key: String(fields[0])))
      case 2: entries.append((name: String(fields[0]), key: String(fields[1])))
      default: throw .malformed(path: path, line: index + 1, reason: "expected KEY or NAME KEY")
      }
      if entries.last!.key.utf8.count < minimumLength {
        throw .malformed(path: path, line: index + 1, reason: "a key needs at least \(minimumLength) characters")
      }
    }
    do {
      return try APIKeys(entries)
    } catch .empty {
      throw .malformed(path: path, line: 0, reason: "no keys")
    } catch {
      throw error
    }
  }

  /// The name of the key an `Authorization` header carries, or nil. Every key is compared over
  /// the whole presented value, so the time taken depends only on its length and the key count.
  public func identify(authorization: String?) -> String? {
    guard let authorization else { return nil }
    let prefix = "bearer "
    guard authorization.utf8.count > prefix.utf8.count,
      authorization.prefix(prefix.count).lowercased() == prefix
    else { return nil }
    let presented = Array(authorization.utf8.dropFirst(prefix.utf8.count))
    var match: String? = nil
    for key in keys where Self.constantTimeEqual(presented, key.bytes) && match == nil {
      match = key.name
    }
    return match
  }

  /// Equal bytes, without an early exit on the first difference.
  static func constantTimeEqual(_ presented: [UInt8], _ key: [UInt8]) -> Bool {
    var difference = UInt64(presented.count ^ key.count)
    for i in 0..<presented.count {
      let k = key.isEmpty ? 0 : key[i % key.count]
      difference |= UInt64(presented[i] ^ k)
    }
    return difference == 0
  }
}

public enum APIKeyFileError: Error, Sendable, Equatable, CustomStringConvertible {
  case unreadable(path: String, reason: String)
  case notARegularFile(path: String)
  case tooOpen(path: String, mode: UInt32)
  case wrongOwner(path: String, uid: UInt32)
  case malformed(path: String, line: Int, reason: String)
  case keyTooShort(line: Int)
  case empty

  public var description: String {
    switch self {
    case let .unreadable(path, reason): return "cannot read the API keys file \(path): \(reason)"
    case let .notARegularFile(path): return "the API keys file \(path) is not a regular file"
    case let .tooOpen(path, mode):
      return "the API keys file \(path) has mode 0\(String(mode, radix: 8)): group or others may read or change it; "
        + "run chmod 600 \(path)"
    case let .wrongOwner(path, uid):
      return "the API keys file \(path) belongs to uid \(uid), not to the daemon's user or root"
    case let .malformed(path, line, reason):
      return "the API keys file \(path)" + (line > 0 ? ", line \(line)" : "") + ": \(reason)"
    case let .keyTooShort(line): return "API key \(line) is shorter than \(APIKeys.minimumLength) characters"
    case .empty: return "no API keys"
    }
  }
}
