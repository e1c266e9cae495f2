// The daemon's long-running parts as swift-service-lifecycle services, so SIGTERM/SIGINT shut
// them down in order: the HTTP server (drain, then stop the engine), the watchdog pinger and
// the SIGHUP reloader.
import DaemonCore
import Engine
import Foundation
import HTTPAPI
import Logging
import ServiceLifecycle
import StreamedTraining
import Systemd
import UnixSignals

/// Serves until a graceful shutdown: then says STOPPING=1, stops accepting, lets generations in
/// flight finish within the grace period, and stops the engine.
struct HTTPService: Service {
  let server: HTTPServer
  let engine: ServingEngine
  let training: BackgroundTraining
  let backend: EngineBackend
  let notifier: Notifier
  let gracePeriod: Duration
  let logger: Logger

  func run() async throws {
    await withGracefulShutdownHandler {
      await server.run()
    } onGracefulShutdown: {
      logger.notice("stopping: draining requests for up to \(gracePeriod)")
      backend.setStatus("stopping", ready: false)
      _ = try? notifier.stopping(status: "stopping")
      Task { await server.shutdown(gracePeriod: gracePeriod) }
    }
    // The training step in progress ends at its next micro-batch and is checkpointed; then
    // anything still queued or running after the drain is cancelled.
    try? await offCooperativePool {
      training.stop()
      engine.stop()
    }
    logger.notice("stopped")
  }
}

/// Sends WATCHDOG=1 at half the unit's WatchdogSec= while the compute thread goes round its
/// loop; a wedged engine stops the pings and systemd restarts the daemon.
struct WatchdogService: Service {
  let engine: ServingEngine
  let notifier: Notifier
  let interval: Duration
  let logger: Logger

  func run() async throws {
    let stall = Double(interval.components.seconds)
    while !Task.isShuttingDownGracefully {
      if engine.secondsSinceHeartbeat < stall {
        _ = try? notifier.watchdog()
      } else {
        logger.critical("the compute thread has not gone round its loop for \(engine.secondsSinceHeartbeat) s")
      }
      let half = interval / 2
      try? await cancelWhenGracefulShutdown { try await Task.sleep(for: half) }
    }
  }
}

/// SIGHUP: RELOADING=1, re-read the configuration, apply what can change live, READY=1.
struct ReloadService: Service {
  let reload: @Sendable () async -> String
  let notifier: Notifier
  let logger: Logger

  func run() async throws {
    let signals = await UnixSignalsSequence(trapping: .sighup)
    for await _ in signals.cancelOnGracefulShutdown() {
      _ = try? notifier.reloading(status: "reloading configuration")
      let outcome = await reload()
      _ = try? notifier.ready(status: outcome)
    }
  }
}
