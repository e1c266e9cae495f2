// droplora: the client and offline tools of droplorad. Each subcommand lives in its own file.
import ArgumentParser

@main
struct Droplora: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "droplora",
    abstract: "Talk to droplorad over its socket, or run, inspect and benchmark a GGUF model offline.",
    subcommands: [
      TokenizeCommand.self, GenerateCommand.self, BenchCommand.self, AdapterCommand.self,
      TrainCommand.self, EvalCommand.self,
      ChatCommand.self, AskCommand.self, DaemonAdaptersCommand.self, StatusCommand.self,
      PushCommand.self, TrainingCommand.self,
    ])
}
