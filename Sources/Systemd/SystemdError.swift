// The one error type of the Systemd module: a libsystemd call that returned a negative errno.

#if canImport(Glibc)
  import Glibc
#endif

public struct SystemdError: Error, Sendable, Equatable, CustomStringConvertible {
  /// The libsystemd function that failed.
  public var call: String
  /// The positive errno value (libsystemd returns it negated).
  public var errno: Int32

  public init(call: String, returned value: Int32) {
    self.call = call
    self.errno = -value
  }

  public var description: String { "\(call) failed: \(String(cString: strerror(errno))) (errno \(errno))" }

  /// Turns libsystemd's `-errno` convention into a thrown error; non-negative results pass through.
  @discardableResult
  static func check(_ call: String, _ result: Int32) throws(SystemdError) -> Int32 {
    guard result >= 0 else { throw SystemdError(call: call, returned: result) }
    return result
  }
}
