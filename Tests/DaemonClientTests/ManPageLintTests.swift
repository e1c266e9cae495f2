// Every man page renders with groff's warnings on (-ww) without a message, and each command
// the client offers appears in droplora(1), each route in droplorad(8).
import Foundation
import Testing

let groff = tool("/usr/bin/groff", "/usr/local/bin/groff")
let manDirectory = packageRoot.appendingPathComponent("man").path

@Suite(.enabled(if: groff != nil, "needs groff (scripts/install-deps.sh)"))
struct ManPageLintTests {
  /// Every page in man/, so a page added later is linted too.
  static let pages: [String] = ((try? FileManager.default.contentsOfDirectory(atPath: manDirectory)) ?? [])
    .filter { !$0.hasPrefix(".") }.sorted()

  @Test(arguments: pages) func rendersWithoutWarnings(page: String) async throws {
    let path = manDirectory + "/" + page
    let lint = try await runTool([groff!, "-ww", "-man", "-z", path])
    #expect(lint.status == 0)
    #expect(lint.stderr == "", "\(page): \(lint.stderr)")
    // -z renders nothing; make sure the page really has content.
    let text = try await runTool([groff!, "-man", "-Tutf8", path], environment: ["GROFF_NO_SGR": "1"])
    #expect(text.stdout.count > 2000)
  }

  /// The lint itself: a page with a mistake must be reported.
  @Test func lintReportsAMistake() async throws {
    let dir = try temporaryDirectory("manlint")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    try ".TH X 1\n.SH NAME\nx \\- y\n.BOGUS\n\\*(ZZ\n".write(toFile: dir + "/x.1", atomically: true, encoding: .utf8)
    let lint = try await runTool([groff!, "-ww", "-man", "-z", dir + "/x.1"])
    #expect(lint.stderr != "")
  }

  @Test func theIssuesPagesAreThere() {
    for page in ["droplora.1", "droplorad.8", "droplorad.yaml.5"] {
      #expect(Self.pages.contains(page), "man/\(page) is missing")
    }
  }

  @Test func pagesNameTheCommandsAndRoutes() throws {
    let client = try String(contentsOfFile: manDirectory + "/droplora.1", encoding: .utf8)
    for word in ["droplora chat", "droplora ask", "droplora adapters", "droplora status", "\\-\\-socket", "DROPLORA_SOCKET"] {
      #expect(client.contains(word), "droplora.1 lacks \(word)")
    }
    let daemon = try String(contentsOfFile: manDirectory + "/droplorad.8", encoding: .utf8)
    for word in [
      "/v1/chat/completions", "/v1/completions", "/v1/models", "/v1/adapters", "/default", "/health", "/metrics",
      "SIGHUP", "SIGTERM", "READY=1", "WATCHDOG=1", "RELOADING=1", "STOPPING=1", "LISTEN_FDS", "NOTIFY_SOCKET",
      "\\-\\-check\\-config", "\\-\\-set", "\\-\\-adapters\\-directory", "\\-\\-state\\-directory", "\\-\\-log\\-level",
    ] {
      #expect(daemon.contains(word), "droplorad.8 lacks \(word)")
    }
  }
}
