// The systemd units pass `systemd-analyze verify` without a single message, carry the settings
// issue 5 asks for, and the sysusers file creates the droplora user and group. verify needs
// ExecStart's binary to exist and checks the Documentation= man pages, so it runs on a copy
// whose ExecStart points at a stand-in binary, with MANPATH on this checkout's man pages.
import Foundation
import Testing

let systemdAnalyze = tool("/usr/bin/systemd-analyze", "/bin/systemd-analyze")
let systemdSysusers = tool("/usr/bin/systemd-sysusers", "/bin/systemd-sysusers")
let unitDirectory = packageRoot.appendingPathComponent("systemd").path

/// Copies the units into a temporary directory ready for verify; `edit` changes the service text.
func stageUnits(edit: (String) -> String = { $0 }) throws -> String {
  let dir = try temporaryDirectory("units")
  let fm = FileManager.default
  try fm.copyItem(atPath: "/bin/true", toPath: dir + "/droplorad")
  var service = try String(contentsOfFile: unitDirectory + "/droplorad.service", encoding: .utf8)
  #expect(service.contains("ExecStart=/usr/local/bin/droplorad "))
  service = service.replacingOccurrences(of: "ExecStart=/usr/local/bin/droplorad ", with: "ExecStart=\(dir)/droplorad ")
  try edit(service).write(toFile: dir + "/droplorad.service", atomically: true, encoding: .utf8)
  try fm.copyItem(atPath: unitDirectory + "/droplorad.socket", toPath: dir + "/droplorad.socket")
  // man/NAME.SECTION → man/manSECTION/NAME.SECTION, the layout man(1) searches.
  for page in try fm.contentsOfDirectory(atPath: packageRoot.appendingPathComponent("man").path) {
    guard let section = page.split(separator: ".").last, section.count == 1 else { continue }
    let sub = "\(dir)/man/man\(section)"
    try fm.createDirectory(atPath: sub, withIntermediateDirectories: true)
    try fm.copyItem(atPath: packageRoot.appendingPathComponent("man/\(page)").path, toPath: "\(sub)/\(page)")
  }
  return dir
}

func verify(_ dir: String) async throws -> RunResult {
  try await runTool(
    // Without man(1) the Documentation= pages cannot be looked up; everything else still is.
    [systemdAnalyze!, "verify", "--generators=no"] + (tool("/usr/bin/man", "/bin/man") == nil ? ["--man=no"] : [])
      + ["\(dir)/droplorad.socket", "\(dir)/droplorad.service"],
    environment: ["MANPATH": dir + "/man"], directory: dir)
}

@Suite(.enabled(if: systemdAnalyze != nil, "needs systemd-analyze (scripts/install-deps.sh)"))
struct UnitFileTests {
  @Test func verifyIsSilent() async throws {
    let dir = try stageUnits()
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let r = try await verify(dir)
    #expect(r.status == 0)
    #expect(r.stderr == "", "systemd-analyze verify: \(r.stderr)")
    #expect(r.stdout == "")
  }

  /// The harness itself: a unit with a mistake must be reported, or the test above proves nothing.
  @Test func verifyReportsAMistake() async throws {
    let dir = try stageUnits { $0.replacingOccurrences(of: "[Service]\n", with: "[Service]\nProtectSystm=strict\n") }
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let r = try await verify(dir)
    #expect(r.stderr.contains("ProtectSystm"))
  }

  @Test func serviceHasTheRequiredSettings() throws {
    let text = try String(contentsOfFile: unitDirectory + "/droplorad.service", encoding: .utf8)
    let settings = Set(text.split(separator: "\n").filter { !$0.hasPrefix("#") && $0.contains("=") }.map(String.init))
    for line in [
      "Type=notify", "NotifyAccess=main", "WatchdogSec=30",
      "ExecStart=/usr/local/bin/droplorad --config /etc/droplora/droplorad.yaml",
      "ExecReload=/bin/kill -HUP $MAINPID", "StateDirectory=droplora", "RuntimeDirectory=droplora",
      "RuntimeDirectoryPreserve=yes", "ConfigurationDirectory=droplora", "User=droplora", "Group=droplora",
      "Requires=droplorad.socket", "After=droplorad.socket", "ProtectSystem=strict", "ProtectHome=yes",
      "PrivateTmp=yes", "PrivateDevices=yes", "NoNewPrivileges=yes", "RestrictAddressFamilies=AF_UNIX",
      "ProtectKernelTunables=yes", "ProtectKernelModules=yes", "ProtectKernelLogs=yes", "ProtectControlGroups=yes",
      "RestrictNamespaces=yes", "LockPersonality=yes", "MemoryDenyWriteExecute=yes",
      "SystemCallFilter=@system-service", "CapabilityBoundingSet=", "TimeoutStopSec=30",
    ] {
      #expect(settings.contains(line), "droplorad.service lacks \(line)")
    }
    let socket = try String(contentsOfFile: unitDirectory + "/droplorad.socket", encoding: .utf8)
    for line in ["ListenStream=/run/droplora/droplorad.sock", "SocketMode=0660", "SocketGroup=droplora", "RemoveOnStop=yes"] {
      #expect(socket.split(separator: "\n").contains(Substring(line)), "droplorad.socket lacks \(line)")
    }
  }

  @Test(.enabled(if: systemdSysusers != nil)) func sysusersCreatesUserAndGroup() async throws {
    let root = try temporaryDirectory("sysroot")
    defer { try? FileManager.default.removeItem(atPath: root) }
    let r = try await runTool([systemdSysusers!, "--dry-run", "--root=\(root)", unitDirectory + "/droplorad.sysusers"])
    #expect(r.status == 0, "\(r.stderr)")
    let said = r.stdout + r.stderr
    #expect(said.contains("Creating group 'droplora'"))
    #expect(said.contains("Creating user 'droplora'"))
  }
}
