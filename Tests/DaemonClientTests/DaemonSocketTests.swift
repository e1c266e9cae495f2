// Where the client looks for the socket: --socket, then $DROPLORA_SOCKET, then the system
// config's server.socket_path, then the built-in default.
import DaemonClient
import Foundation
import Testing

@Suite struct DaemonSocketTests {
  @Test func resolutionOrder() throws {
    let dir = try temporaryDirectory("sockcfg")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let config = dir + "/droplorad.yaml"
    try "server:\n  socket_path: /srv/d/daemon.sock\n".write(toFile: config, atomically: true, encoding: .utf8)
    let env = ["DROPLORA_SOCKET": "/env/d.sock"]

    #expect(DaemonSocket.resolve(explicit: "/flag.sock", environment: env, configPath: config) == "/flag.sock")
    #expect(DaemonSocket.resolve(explicit: nil, environment: env, configPath: config) == "/env/d.sock")
    #expect(DaemonSocket.resolve(explicit: nil, environment: ["DROPLORA_SOCKET": ""], configPath: config) == "/srv/d/daemon.sock")
    #expect(DaemonSocket.resolve(explicit: nil, environment: [:], configPath: dir + "/missing.yaml") == "/run/droplora/droplorad.sock")

    // A config that does not parse is ignored here (the daemon reports it).
    try "server:\n  socket_path: [\n".write(toFile: config, atomically: true, encoding: .utf8)
    #expect(DaemonSocket.resolve(explicit: nil, environment: [:], configPath: config) == DaemonSocket.defaultPath)
  }
}
