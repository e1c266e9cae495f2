// Options shared by the commands that talk to the daemon: which socket, and the sampling
// knobs of a generation (unset ones are left to the daemon's configured defaults).
import ArgumentParser
import DaemonClient
import Foundation
import HTTPAPI

struct SocketOptions: ParsableArguments {
  @Option(
    help: ArgumentHelp(
      "The daemon's Unix socket (default: $DROPLORA_SOCKET, else server.socket_path of "
        + "\(DaemonSocket.systemConfigPath), else \(DaemonSocket.defaultPath)).",
      valueName: "path"))
  var socket: String?

  var client: DaemonClient { DaemonClient(socketPath: DaemonSocket.resolve(explicit: socket)) }
}

struct SamplingFlags: ParsableArguments {
  @Option(help: "Largest number of tokens to generate (default: the daemon's generation.max_tokens).")
  var maxTokens: Int?
  @Option(help: "Sampling temperature; 0 is greedy.") var temperature: Double?
  @Option(help: "Nucleus sampling threshold (1 = off).") var topP: Double?
  @Option(help: "Keep the k most likely tokens (0 = off).") var topK: Int?
  @Option(help: "Drop tokens below this fraction of the best token's probability (0 = off).")
  var minP: Double?
  @Option(help: "Penalty for recently seen tokens (1 = off).") var repeatPenalty: Double?
  @Option(help: "Random seed; the same seed gives the same output.") var seed: UInt64?
  @Option(help: "Stop when this text is generated (repeatable).") var stop: [String] = []

  func validate() throws {
    if let maxTokens, maxTokens < 1 { throw ValidationError("--max-tokens must be at least 1") }
    if let temperature, !(temperature >= 0) { throw ValidationError("--temperature must be 0 or more") }
  }

  var sampling: HTTPAPI.SamplingParameters {
    HTTPAPI.SamplingParameters(
      maxTokens: maxTokens, temperature: temperature, topP: topP, topK: topK, minP: minP,
      repeatPenalty: repeatPenalty, seed: seed, stop: stop)
  }
}

/// Unbuffered writes, so streamed text shows up token by token even on a pipe.
enum Terminal {
  static func write(_ text: String) {
    FileHandle.standardOutput.write(Data(text.utf8))
  }
  static func note(_ text: String) {
    FileHandle.standardError.write(Data(text.utf8))
  }
  static var inputIsInteractive: Bool { isatty(STDIN_FILENO) == 1 }
}
