// SIGTERM and SIGINT for the daemon's whole life, in one place. While the model loads nothing
// durable is open and a load cannot be interrupted, so a signal ends the process at once with
// status 0 (systemd sees a clean stop, not a kill). Once durable state is being opened (journal,
// catalog, trainer) a signal is remembered and becomes the service group's graceful shutdown,
// which runs as soon as the group exists.
import Dispatch
import Foundation
import Logging
import ServiceLifecycle
import Systemd

#if canImport(Glibc)
  import Glibc
#endif

final class ShutdownSignals: @unchecked Sendable {
  // unchecked: `phase` and `requested` are guarded by `lock`; the sources are set once in init.
  private enum Phase {
    case loading
    case starting
    case running(ServiceGroup)
  }
  private let lock = NSLock()
  private var phase = Phase.loading
  private var requested = false
  private var sources: [any DispatchSourceSignal] = []
  private let notifier: Notifier
  private let logger: Logger

  init(notifier: Notifier, logger: Logger) {
    self.notifier = notifier
    self.logger = logger
    for number in [SIGTERM, SIGINT] {
      // The default action would kill the process; the dispatch source receives it instead.
      signal(number, SIG_IGN)
      let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
      source.setEventHandler { [weak self] in self?.received(number) }
      source.resume()
      sources.append(source)
    }
  }

  /// Durable state is about to be opened: from now on a signal waits for an orderly shutdown.
  func beginStateChanges() {
    lock.withLock { if case .loading = phase { phase = .starting } }
  }

  /// Hands signals (and one that already came) to `group`'s graceful shutdown.
  func attach(_ group: ServiceGroup) {
    let pending = lock.withLock {
      phase = .running(group)
      return requested
    }
    if pending { Task { await group.triggerGracefulShutdown() } }
  }

  private func received(_ number: Int32) {
    let name = number == SIGINT ? "SIGINT" : "SIGTERM"
    let action: Phase = lock.withLock {
      requested = true
      return phase
    }
    switch action {
    case .loading:
      logger.notice("\(name) while loading the model: stopping")
      _ = try? notifier.stopping(status: "stopping")
      exit(0)
    case .starting:
      logger.notice("\(name) during start-up: stopping once the services are up")
    case .running(let group):
      Task { await group.triggerGracefulShutdown() }
    }
  }
}
