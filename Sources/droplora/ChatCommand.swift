// `droplora chat`: an interactive, streamed, multi-turn chat with the daemon. Each line of
// standard input is a user message (piped input works the same); the answer streams to
// standard output. The history goes with every request. /exit or end of input ends the chat,
// /reset forgets the history.
import ArgumentParser
import DaemonClient
import HTTPAPI

struct ChatCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "chat", abstract: "Chat with the daemon, streamed, with history (/exit or end of input ends it).")

  @OptionGroup var socketOptions: SocketOptions
  @Option(help: "Adapter to chat with (default: the daemon's default adapter, else the base model).")
  var adapter: String?
  @Option(help: "System message at the start of the conversation.") var system: String?
  @OptionGroup var generation: SamplingFlags

  func run() async throws {
    let client = socketOptions.client
    var conversation = Conversation(system: system)
    let interactive = Terminal.inputIsInteractive
    if interactive {
      Terminal.note("Chatting with droplorad on \(client.socketPath) (\(adapter ?? "default model")). /exit ends, /reset forgets.\n")
    }
    var failures = 0
    while true {
      if interactive { Terminal.note("> ") }
      guard let line = await LineReader.next() else { break }
      let question = line.trimmingCharacters(in: .whitespaces)
      if question.isEmpty { continue }
      if question == "/exit" { break }
      if question == "/reset" {
        conversation.reset()
        continue
      }
      let request = ChatCompletionRequest(
        model: adapter, messages: conversation.messages(asking: question), sampling: generation.sampling)
      var answer = ""
      do {
        for try await chunk in client.streamChat(request) {
          answer += chunk.text
          Terminal.write(chunk.text)
        }
        Terminal.write("\n")
        conversation.record(question: question, answer: answer)
      } catch let error as DaemonClientError {
        if !answer.isEmpty { Terminal.write("\n") }
        // A refused request leaves the history as it was and the chat goes on; a daemon that
        // cannot be reached ends it.
        guard case .server = error else { throw error }
        Terminal.note("Error: \(error)\n")
        failures += 1
      }
    }
    if interactive { Terminal.note("\n") }
    if failures > 0 { throw ExitCode.failure }
  }
}
