// Test helper for SystemdTests: prints what SocketActivation.listenFileDescriptors() finds, one
// `fd name listening-unix-stream` line per descriptor, or `error <message>`. Started under
// systemd-socket-activate (or with LISTEN_FDS/LISTEN_PID set by the test).
import Systemd

do {
  let fds = try SocketActivation.listenFileDescriptors()
  print("count \(fds.count)")
  for fd in fds {
    print("\(fd.fd) \(fd.name) \(SocketActivation.isUnixStreamListener(fd.fd))")
  }
} catch {
  print("error \(error)")
}
