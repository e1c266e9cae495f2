// `droplora ask PROMPT`: one chat answer from the daemon, streamed to standard output, or with
// --json the final chat.completion object.
import ArgumentParser
import DaemonClient
import Foundation
import HTTPAPI

struct AskCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "ask", abstract: "Ask the daemon one question; the answer streams to standard output.")

  @OptionGroup var socketOptions: SocketOptions
  @Option(help: "Adapter to answer with (default: the daemon's default adapter, else the base model).")
  var adapter: String?
  @Option(help: "System message before the prompt.") var system: String?
  @OptionGroup var generation: SamplingFlags
  @Flag(help: "Print the final chat.completion response object as JSON instead of streaming text.")
  var json = false
  @Argument(help: "The question, or - to read standard input.") var prompt: String

  func run() async throws {
    let client = socketOptions.client
    let request = ChatCompletionRequest(
      model: adapter, messages: Conversation(system: system).messages(asking: readTextArgument(prompt)),
      sampling: generation.sampling)
    if json {
      try printJSON(try await client.chat(request))
      return
    }
    var wroteAny = false
    do {
      for try await chunk in client.streamChat(request) {
        Terminal.write(chunk.text)
        wroteAny = wroteAny || !chunk.text.isEmpty
      }
    } catch {
      if wroteAny { Terminal.write("\n") }
      throw error
    }
    Terminal.write("\n")
  }
}
