// `droplora adapters list|load|create|unload|default`: the daemon's loaded adapters. (The
// offline `droplora adapter ...` works on adapter files without a daemon.)
import ArgumentParser
import DaemonClient
import Foundation
import HTTPAPI

struct DaemonAdaptersCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "adapters", abstract: "List, load, create, unload the daemon's adapters and set its default.",
    subcommands: [List.self, Load.self, Create.self, Unload.self, Default.self], defaultSubcommand: List.self)

  struct List: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List the loaded adapters.")
    @OptionGroup var socketOptions: SocketOptions
    @Flag(help: "Print {\"data\":[...]} as the daemon sends it.") var json = false

    func run() async throws {
      let adapters = try await socketOptions.client.adapters()
      if json {
        struct Out: Encodable { var data: [AdapterInfo] }
        try printJSON(Out(data: adapters))
      } else {
        printAdapterTable(adapters)
      }
    }
  }

  struct Load: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Load an adapter file (PEFT directory or GGUF-LoRA) under the daemon's adapters directory.")
    @OptionGroup var socketOptions: SocketOptions
    @Argument(help: "Name to serve it under (the model field of requests).") var name: String
    @Argument(help: "Its path relative to the daemon's adapters directory.") var path: String

    func run() async throws {
      let info = try await socketOptions.client.loadAdapter(name: name, path: path)
      print("loaded \(describe(info))")
    }
  }

  struct Create: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Create an empty adapter for training (unset values: the daemon's defaults).")
    @OptionGroup var socketOptions: SocketOptions
    @Argument(help: "The new adapter's name.") var name: String
    @Option(help: "LoRA rank r.") var rank: Int?
    @Option(help: "LoRA alpha (scale alpha/r).") var alpha: Double?
    @Option(help: "Comma-separated projections to adapt, e.g. q,k,v,up,down.") var targets: String?
    @Option(help: "DropLoRA pruning rate p in [0, 1); 0 is plain LoRA.") var pruningRate: Double?

    func run() async throws {
      let list = targets.map { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } }
      let info = try await socketOptions.client.createAdapter(
        name: name, rank: rank, alpha: alpha, targets: list, pruningRate: pruningRate)
      print("created \(describe(info))")
    }
  }

  struct Unload: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Unload an adapter.")
    @OptionGroup var socketOptions: SocketOptions
    @Argument(help: "The adapter's name.") var name: String

    func run() async throws {
      try await socketOptions.client.unloadAdapter(name: name)
      print("unloaded \(name)")
    }
  }

  struct Default: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Set the adapter used when a request names none, or --clear to serve the base model.")
    @OptionGroup var socketOptions: SocketOptions
    @Argument(help: "The adapter to make the default.") var name: String?
    @Flag(help: "Serve the base model by default.") var clear = false

    func validate() throws {
      if clear == (name != nil) { throw ValidationError("give either an adapter NAME or --clear") }
    }

    func run() async throws {
      let client = socketOptions.client
      if let name {
        try await client.setDefaultAdapter(name: name)
        print("default adapter: \(name)")
      } else {
        try await client.clearDefaultAdapter()
        print("default: the base model")
      }
    }
  }
}

func describe(_ a: AdapterInfo) -> String {
  "\(a.name) (rank \(a.rank), alpha \(formatNumber(a.alpha)), pruning rate \(formatNumber(a.pruningRate)), "
    + "targets \(a.targets.joined(separator: ",")), version \(a.version)\(a.isDefault ? ", default" : ""))"
}

func printAdapterTable(_ adapters: [AdapterInfo]) {
  guard !adapters.isEmpty else {
    print("no adapters loaded")
    return
  }
  let rows =
    [["NAME", "RANK", "ALPHA", "PRUNING", "VERSION", "DEFAULT", "TARGETS"]]
    + adapters.map {
      [$0.name, String($0.rank), formatNumber($0.alpha), formatNumber($0.pruningRate), String($0.version),
       $0.isDefault ? "yes" : "", $0.targets.joined(separator: ",")]
    }
  let widths = (0..<rows[0].count).map { c in rows.map { $0[c].count }.max() ?? 0 }
  for row in rows {
    let cells = row.enumerated().map { c, cell in
      c == row.count - 1 ? cell : cell.padding(toLength: widths[c], withPad: " ", startingAt: 0)
    }
    print(cells.joined(separator: "  "))
  }
}

/// 16 rather than 16.0, 0.1 rather than 0.10000000000000001.
func formatNumber(_ x: Double) -> String {
  if x == x.rounded(), abs(x) < 1e15 { return String(Int(x)) }
  return String(format: "%g", x)
}
