// droplora: the client and offline tools of droplorad. Each subcommand lives in its own file.
import ArgumentParser

@main
struct Droplora: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "droplora",
    abstract: "Run, inspect and benchmark a quantized GGUF model (the offline tools of droplorad).",
    subcommands: [
      TokenizeCommand.self, GenerateCommand.self, BenchCommand.self, AdapterCommand.self,
      TrainCommand.self, EvalCommand.self,
    ])
}
