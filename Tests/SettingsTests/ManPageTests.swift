// man/droplorad.yaml.5 renders with groff's warnings on (-ww) and prints nothing on stderr.
import Foundation
import Testing

let groffPath = ["/usr/bin/groff", "/usr/local/bin/groff"].first { FileManager.default.isExecutableFile(atPath: $0) }

@Suite struct ManPageTests {
  @Test(.enabled(if: groffPath != nil, "needs groff (scripts/install-deps.sh)"))
  func rendersWithoutWarnings() throws {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: groffPath!)
    process.arguments = ["-ww", "-man", "-Tutf8", manPage]
    let out = Pipe()
    let err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    let rendered = out.fileHandleForReading.readDataToEndOfFile()
    let warnings = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    #expect(process.terminationStatus == 0)
    #expect(warnings == "")
    #expect(rendered.count > 1000)
  }
}
