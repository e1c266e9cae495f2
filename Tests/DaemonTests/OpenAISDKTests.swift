// The OpenAI API end to end with the official OpenAI Python SDK over the socket
// (`httpx.HTTPTransport(uds=...)`): Python/openai_sdk_e2e.py checks every served field, streamed
// and not, sync and async, and every refusal's `param`. scripts/test.sh installs the SDK; without
// it this test fails and says so rather than passing quietly.
import Foundation
import Testing

extension DaemonTests {
  @Suite struct OpenAISDK {
    static let script = Paths.root.appendingPathComponent("Tests/DaemonTests/Python/openai_sdk_e2e.py").path

    @Test func theOfficialSDKGetsEveryFieldServedOrRefusedByName() throws {
      let probe = try runTool(["python3", "-c", "import openai"])
      try #require(probe.status == 0, "the OpenAI SDK is missing: python3 -m pip install openai (scripts/test.sh does)")
      // A random adapter with a clear effect (alpha/r = 16) for the adapter-scale checks.
      let directory = try makeTemporaryDirectory()
      try FileManager.default.createDirectory(atPath: directory + "/adapters", withIntermediateDirectories: true)
      let made = try runTool([
        Paths.cli, "adapter", "random", "--model", Paths.model, "--rank", "8", "--alpha", "128", "--seed", "7",
        directory + "/adapters/scaled.gguf",
      ])
      try #require(made.status == 0, "\(made.stdout)\n\(made.stderr)")
      let daemon = try DaemonProcess(directory: directory)
      defer { daemon.stop() }
      let run = try runTool(["python3", Self.script, daemon.socketPath, "SmolLM2-135M-Instruct.Q4_1"], timeout: 600)
      #expect(run.status == 0, "\(run.stdout)\n\(run.stderr)\ndaemon log:\n\(daemon.log.suffix(4000))")
    }
  }
}
