// Who is on the other end of a Unix socket (`SO_PEERCRED`), and whether the configured
// allow-list admits them. The socket's file mode is the first gate; this one holds even when
// the mode is loose.
import NIOCore

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#endif

public struct PeerCredentials: Sendable, Equatable {
  public var pid: Int32
  public var uid: UInt32
  public var gid: UInt32

  public init(pid: Int32, uid: UInt32, gid: UInt32) {
    self.pid = pid
    self.uid = uid
    self.gid = gid
  }
}

/// Admits a peer whose uid is in `uids`, or who is in a group in `gids` (its primary gid from
/// `SO_PEERCRED`, or a supplementary group of its user, as `SocketGroup=` users expect); both
/// empty admits everyone who can open the socket. A peer whose credentials can't be read is
/// refused when a list is set.
public struct PeerPolicy: Sendable, Equatable {
  public var uids: Set<UInt32>
  public var gids: Set<UInt32>

  public init(uids: Set<UInt32> = [], gids: Set<UInt32> = []) {
    self.uids = uids
    self.gids = gids
  }

  public var isOpen: Bool { uids.isEmpty && gids.isEmpty }

  public func admits(_ peer: PeerCredentials?) -> Bool {
    if isOpen { return true }
    guard let peer else { return false }
    if uids.contains(peer.uid) || gids.contains(peer.gid) { return true }
    guard !gids.isEmpty else { return false }
    return !gids.isDisjoint(with: groupMemberships(uid: peer.uid))
  }
}

#if os(Linux)
  /// Same layout as Linux's `struct ucred` (pid_t, uid_t, gid_t: three 32-bit fields).
  private struct RawUcred: Sendable {
    var pid: Int32 = 0
    var uid: UInt32 = 0
    var gid: UInt32 = 0
  }
#endif

/// Reads `SO_PEERCRED` through NIO's socket option provider; `nil` where unavailable.
func peerCredentials(of channel: any Channel) -> EventLoopFuture<PeerCredentials?> {
  #if os(Linux)
    // NIO's socket channels conform to SocketOptionProvider; the cast fails only for embedded/test channels.
    guard let provider = channel as? any SocketOptionProvider else {
      return channel.eventLoop.makeSucceededFuture(nil)
    }
    let raw: EventLoopFuture<RawUcred> = provider.unsafeGetSocketOption(
      level: SocketOptionLevel(SOL_SOCKET), name: SocketOptionName(SO_PEERCRED))
    return raw.map { PeerCredentials(pid: $0.pid, uid: $0.uid, gid: $0.gid) as PeerCredentials? }
      .recover { _ in nil }
  #else
    return channel.eventLoop.makeSucceededFuture(nil)
  #endif
}

/// Every group the user `uid` belongs to in the passwd and group databases (its passwd group
/// and its supplementary groups); empty when the uid has no passwd entry. Asked only when the
/// uid and the peer's own gid are not listed.
public func groupMemberships(uid: UInt32) -> Set<UInt32> {
  #if os(Linux)
    var pwd = passwd()
    var result: UnsafeMutablePointer<passwd>?
    var scratch = [CChar](repeating: 0, count: 16384)
    guard getpwuid_r(uid_t(uid), &pwd, &scratch, scratch.count, &result) == 0, result != nil,
      let name = pwd.pw_name
    else { return [] }
    var count: Int32 = 64
    // getgrouplist reports the needed size when the buffer is short; two tries cover a race.
    for _ in 0..<2 {
      var groups = [gid_t](repeating: 0, count: Int(count))
      if getgrouplist(name, pwd.pw_gid, &groups, &count) >= 0 {
        return Set(groups.prefix(Int(count)).map { UInt32($0) })
      }
      count = max(count, 64) * 2
    }
    return []
  #else
    return []
  #endif
}
