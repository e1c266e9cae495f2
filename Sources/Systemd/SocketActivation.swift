// Socket activation: the listening descriptors systemd (or systemd-socket-activate) passed
// through LISTEN_FDS / LISTEN_PID / LISTEN_FDNAMES, via sd_listen_fds_with_names. Empty when
// the process was not socket-activated, in which case the daemon binds the path itself.
// The descriptors are owned by the caller from then on (they get FD_CLOEXEC set).
import CSystemd

#if canImport(Glibc)
  import Glibc
#endif

public enum SocketActivation {
  public struct ListenFileDescriptor: Sendable, Equatable {
    public var fd: Int32
    /// FileDescriptorName= of the socket unit, or "unknown" when none was given.
    public var name: String
  }

  /// The passed descriptors, starting at SD_LISTEN_FDS_START (3). `unsetEnvironment` removes
  /// the LISTEN_* variables so child processes don't see them.
  public static func listenFileDescriptors(unsetEnvironment: Bool = true) throws(SystemdError)
    -> [ListenFileDescriptor]
  {
    var names: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = nil
    let count = try SystemdError.check(
      "sd_listen_fds_with_names", sd_listen_fds_with_names(unsetEnvironment ? 1 : 0, &names))
    defer {
      if let names {
        var i = 0
        while let name = names[i] {
          free(name)
          i += 1
        }
        free(names)
      }
    }
    return (0..<Int(count)).map { i in
      ListenFileDescriptor(
        fd: SD_LISTEN_FDS_START + Int32(i), name: names?[i].map { String(cString: $0) } ?? "unknown")
    }
  }

  /// Whether `fd` is a listening Unix stream socket (what droplorad.socket passes).
  public static func isUnixStreamListener(_ fd: Int32) -> Bool {
    sd_is_socket_unix(fd, Int32(SOCK_STREAM.rawValue), 1, nil, 0) > 0
  }

  /// Whether `fd` is a listening TCP socket, IPv4 or IPv6 (a `ListenStream=` port), on `port`
  /// when it is not 0.
  public static func isTCPListener(_ fd: Int32, port: UInt16 = 0) -> Bool {
    sd_is_socket_inet(fd, AF_UNSPEC, Int32(SOCK_STREAM.rawValue), 1, port) > 0
  }
}
