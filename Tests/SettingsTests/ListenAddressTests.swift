// server.listen: numeric IPv4 / bracketed IPv6 addresses with a port, anything else refused
// with the key path.
import Testing

import Settings

@Suite struct ListenAddressTests {
  @Test func parsesNumericAddresses() throws {
    var s = DaemonSettings()
    try s.apply(overrides: ["server.listen": #"["127.0.0.1:8080", "[::1]:9000"]"#, "server.api_keys_file": "/k"])
    #expect(s.server.listen.map(\.description) == ["127.0.0.1:8080", "[::1]:9000"])
    #expect(s.server.listen.map(\.host) == ["127.0.0.1", "::1"])
    #expect(s.server.listen.map(\.port) == [8080, 9000])
    #expect(s.server.apiKeysFile == "/k")
    #expect(DaemonSettings().server.listen.isEmpty && DaemonSettings().server.apiKeysFile == nil)
  }

  @Test func refusesNamesAndBadPorts() {
    for bad in ["localhost:8080", "127.0.0.1", "127.0.0.1:99999", "::1:8080", "[::1]8080", "127.0.0.1:http"] {
      var s = DaemonSettings()
      #expect(throws: SettingsError.self, "\(bad)") { try s.apply(overrides: ["server.listen": "[\"\(bad)\"]"]) }
      do {
        try s.apply(overrides: ["server.listen": "[\"\(bad)\"]"])
      } catch {
        #expect("\(error)".contains("server.listen[0]"), "\(error)")
      }
    }
  }
}
