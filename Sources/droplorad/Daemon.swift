// Wiring: checks the socket path and the TCP listeners' addresses and keys (so a misconfigured start fails
// before the model is mapped), maps the model, builds the adapter registry and the serving
// engine, binds the socket and the TCP listeners (or takes systemd's), says READY=1 and runs the
// services until SIGTERM/SIGINT. SIGHUP re-reads the configuration and applies what can change
// without a restart.
import Adapters
import DaemonCore
import Engine
import Foundation
import GGUF
import HTTPAPI
import Llama
import Logging
import ServiceLifecycle
import Settings
import StreamedTraining
import Systemd
import Tokenization
import Training

#if canImport(Glibc)
  import Glibc
#endif

struct DaemonStartupError: Error, CustomStringConvertible {
  var description: String
  init(_ description: String) { self.description = description }
}

final class Daemon: Sendable {
  let initial: DaemonSettings
  /// Re-reads the configuration (file and flags) on SIGHUP.
  let reread: @Sendable () throws -> DaemonSettings
  let notifier = Notifier()
  /// How long running generations may finish after SIGTERM before they are cancelled.
  static let shutdownGracePeriod: Duration = .seconds(10)

  init(settings: DaemonSettings, reread: @escaping @Sendable () throws -> DaemonSettings) {
    initial = settings
    self.reread = reread
  }

  func run() async throws {
    let settings = initial
    LiveLogLevel.bootstrap(settings.logLevel)
    let logger = Logger(label: "droplorad")
    let signals = ShutdownSignals(notifier: notifier, logger: logger)

    // Everything that can refuse the start without the model is checked first.
    let activated = try SocketActivation.listenFileDescriptors()
    let keys = try Self.apiKeys(settings.server)
    try Self.checkListeners(settings.server, keys: keys)
    if !activated.contains(where: { SocketActivation.isUnixStreamListener($0.fd) }) {
      do {
        try HTTPServer.checkSocketPath(settings.server.socketPath)
      } catch {
        throw DaemonStartupError("\(error)")
      }
    }
    // Each TCP address systemd did not pass: a taken port is found now, not after the model.
    for address in settings.server.listen
    where !activated.contains(where: { SocketActivation.isTCPListener($0.fd, port: UInt16(address.port)) }) {
      do {
        try HTTPServer.checkTCPAddress(host: address.host, port: address.port)
      } catch {
        throw DaemonStartupError("\(error)")
      }
    }

    logger.info("loading \(settings.model.path)")
    _ = try? notifier.status("loading \(settings.model.path)")

    let threads = settings.model.threads == 0 ? ProcessInfo.processInfo.activeProcessorCount : settings.model.threads
    let file: GGUFFile
    let model: LlamaModel
    let tokenizer: Tokenizer
    do {
      file = try GGUFFile(path: settings.model.path)
      model = try LlamaModel(file: file)
      tokenizer = try Tokenizer(gguf: file)
    } catch {
      throw DaemonStartupError("cannot load the model \(settings.model.path): \(error)")
    }
    let baseID = URL(fileURLWithPath: settings.model.path).deletingPathExtension().lastPathComponent
    logger.info("model \(baseID) mapped: \(model.hyper.layerCount) layers, vocabulary \(model.vocabularySize)")
    // From here on durable state is opened: a signal waits for the services' orderly shutdown.
    signals.beginStateChanges()

    let registry = AdapterRegistry(
      base: model, cacheCapacity: settings.adapters.mergedCacheSize,
      mergeType: Self.mergeType(settings.adapters.mergeType), threads: threads)
    // The journal's database also holds the adapter catalog, which everything below follows.
    let journal: SampleJournal
    do {
      journal = try SampleJournal(
        path: settings.stateDirectory + "/journal.sqlite", heldOutEvery: settings.training.heldOutEvery)
    } catch {
      throw DaemonStartupError("cannot open the training journal in \(settings.stateDirectory): \(error)")
    }
    let catalog = AdapterCatalog(journal: journal)
    let library = AdapterLibrary(
      registry: registry, catalog: catalog, directory: settings.adapters.directory,
      stateDirectory: settings.stateDirectory, limits: settings.adapters, logger: logger)
    library.restore(configuredDefault: settings.adapters.defaultAdapter)

    let metrics = DaemonMetrics()
    let engine: ServingEngine
    do {
      engine = try ServingEngine(
        registry: registry, tokenizer: tokenizer,
        configuration: Self.servingConfiguration(settings, threads: threads), observer: metrics)
    } catch {
      throw DaemonStartupError("cannot serve \(baseID): \(error)")
    }
    engine.start()
    let training = BackgroundTraining(
      engine: engine, tokenizer: tokenizer, stateDirectory: settings.stateDirectory, journal: journal,
      catalog: catalog, settings: Self.trainingSettings(settings, threads: threads),
      log: { logger.notice("\($0)") })
    training.start()
    let backend = EngineBackend(
      engine: engine, library: library, training: training, metrics: metrics, baseID: baseID, settings: settings)

    let server = try await bind(settings, activated: activated, keys: keys, backend: backend, logger: logger)
    var where_ = server.socketPath ?? "the socket systemd passed"
    for listener in server.tcpListeners {
      where_ += " and tcp \(listener.description)" + (keys == nil ? " (no API keys: loopback only)" : "")
    }
    logger.notice("serving \(baseID) on \(where_) with \(threads) threads")
    _ = try? notifier.ready(status: "serving \(baseID) on \(where_)")

    var services: [any Service] = [
      HTTPService(
        server: server, engine: engine, training: training, backend: backend, notifier: notifier,
        gracePeriod: Self.shutdownGracePeriod, logger: logger)
    ]
    if let interval = try? notifier.watchdogInterval() {
      services.append(WatchdogService(engine: engine, notifier: notifier, interval: interval, logger: logger))
    }
    let reread = self.reread
    services.append(
      ReloadService(
        reload: {
          Self.reload(
            reread: reread, current: settings, backend: backend, library: library, server: server, logger: logger)
        },
        notifier: notifier, logger: logger))
    let group = ServiceGroup(
      configuration: ServiceGroupConfiguration(
        services: services.map { ServiceGroupConfiguration.ServiceConfiguration(service: $0) },
        logger: logger))
    // SIGTERM/SIGINT (ShutdownSignals) start the group's graceful shutdown, also one that came
    // during the start.
    signals.attach(group)
    try await group.run()
  }

  /// The sockets systemd passed (a Unix socket and TCP ports), `server.socket_path` bound here
  /// when systemd passed no Unix socket, and each `server.listen` address systemd did not pass.
  private func bind(
    _ settings: DaemonSettings, activated: [SocketActivation.ListenFileDescriptor], keys: APIKeys?,
    backend: EngineBackend, logger: Logger
  ) async throws -> HTTPServer {
    let configuration = Self.httpConfiguration(
      settings, peerPolicy: try Self.peerPolicy(settings.server), apiKeys: keys, logger: logger)
    let server = HTTPServer(backend: backend, configuration: configuration)
    var haveSocket = false
    for passed in activated {
      if SocketActivation.isUnixStreamListener(passed.fd) {
        guard !haveSocket else {
          logger.warning("systemd passed more than one Unix socket; ignoring fd \(passed.fd) (\(passed.name))")
          continue
        }
        try await server.adopt(descriptor: passed.fd)
        haveSocket = true
      } else if SocketActivation.isTCPListener(passed.fd) {
        try await server.adopt(descriptor: passed.fd)
      } else {
        throw DaemonStartupError(
          "the socket systemd passed (fd \(passed.fd), \(passed.name)) is neither a listening Unix stream socket nor a TCP one")
      }
    }
    for address in settings.server.listen
    where !server.tcpListeners.contains(where: { $0.port == address.port && $0.host == address.host }) {
      try await server.listen(host: address.host, port: address.port)
    }
    if haveSocket { return server }
    let path = settings.server.socketPath
    let directory = URL(fileURLWithPath: path).deletingLastPathComponent()
    try? FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    try await server.listen(unixPath: path)
    if let group = settings.server.socketGroup {
      guard let gid = Self.groupID(group) else { throw DaemonStartupError("server.socket_group: no group '\(group)'") }
      guard chown(path, uid_t.max, gid) == 0 else {
        throw DaemonStartupError("cannot give \(path) to group \(group): \(String(cString: strerror(errno)))")
      }
    }
    return server
  }

  /// The server's limits from the settings: one mapping for the start and every reload.
  static func httpConfiguration(
    _ settings: DaemonSettings, peerPolicy: PeerPolicy, apiKeys: APIKeys?, logger: Logger
  ) -> HTTPServerConfiguration {
    let limits = settings.limits
    return HTTPServerConfiguration(
      maxBodyBytes: limits.maxRequestBytes, maxPushBytes: limits.maxPushBytes, socketMode: settings.server.socketMode,
      peerPolicy: peerPolicy, requestTimeout: .milliseconds(Int64((limits.requestTimeoutSeconds * 1000).rounded())),
      maxConnections: limits.maxConnections, maxConnectionsPerUser: limits.maxConnectionsPerUser,
      reservedConnections: limits.reservedConnections, apiKeys: apiKeys, logger: logger)
  }

  /// The keys of `server.api_keys_file`, checked (permissions, owner, format); nil when unset.
  static func apiKeys(_ server: ServerSettings) throws(APIKeyFileError) -> APIKeys? {
    try server.apiKeysFile.map { path throws(APIKeyFileError) in try APIKeys.load(path: path) }
  }

  /// A TCP listener must not open the daemon to more than the socket does: a non-loopback
  /// address needs keys, and so does any address when the socket's peer lists restrict it
  /// (every local user can reach 127.0.0.1).
  static func servingConfiguration(_ settings: DaemonSettings, threads: Int) -> ServingConfiguration {
    ServingConfiguration(
      contextSize: settings.model.contextSize, threads: threads,
      maxConcurrentGenerations: settings.limits.maxConcurrentGenerations, queueLimit: settings.limits.queueLimit,
      batchTokens: settings.limits.batchTokens, kvCache: settings.model.kvCacheType == .f16 ? .f16 : .f32,
      kvCacheBudgetBytes: settings.limits.kvCacheMiB > 0 ? settings.limits.kvCacheMiB << 20 : nil)
  }

  /// `limits.kv_cache_mib` (when set) must hold one sequence of the whole context of this model
  /// at `model.kv_cache_type`: a smaller budget could never serve a long prompt, so the start
  /// refuses it (the engine would) and --check-config says so, from the model file's header. A
  /// model that cannot be read is left for the start to report.
  static func checkKVBudget(_ settings: DaemonSettings, source: String?) throws {
    guard settings.limits.kvCacheMiB > 0, let file = try? GGUFFile(path: settings.model.path),
      let hyper = try? LlamaHyperParameters(file: file)
    else { return }
    let minimum = ServingEngine.minimumKVCacheBudgetBytes(
      hyper: hyper, configuration: servingConfiguration(settings, threads: 1))
    guard settings.limits.kvCacheMiB << 20 < minimum else { return }
    let minimumMiB = (minimum + (1 << 20) - 1) >> 20
    throw SettingsError(
      .outOfRange(
        "\(settings.limits.kvCacheMiB) MiB cannot hold one sequence of the whole context: at least \(minimumMiB) MiB "
          + "for model.context_size \(settings.model.contextSize) at model.kv_cache_type "
          + "\(settings.model.kvCacheType.rawValue) on this model (or 0 for max_concurrent_generations full slots)"),
      keyPath: "limits.kv_cache_mib", source: source)
  }

  static func checkListeners(_ server: ServerSettings, keys: APIKeys?) throws {
    guard keys == nil else { return }
    for address in server.listen where !isLoopbackAddress(address.host) {
      throw DaemonStartupError(HTTPServerError.keysRequired(address: address.description).description)
    }
    if let address = server.listen.first, !server.allowedUIDs.isEmpty || !server.allowedGroups.isEmpty {
      throw DaemonStartupError(
        "server.listen \(address) without server.api_keys_file would let every local user past "
          + "server.allowed_uids / allowed_groups; set server.api_keys_file")
    }
  }

  /// The configured uids and groups; when any are listed, root and the daemon's own user are
  /// always allowed too.
  static func peerPolicy(_ server: ServerSettings) throws -> PeerPolicy {
    var gids = Set<UInt32>()
    for name in server.allowedGroups {
      guard let gid = groupID(name) else { throw DaemonStartupError("server.allowed_groups: no group '\(name)'") }
      gids.insert(gid)
    }
    let policy = PeerPolicy(uids: Set(server.allowedUIDs), gids: gids)
    guard !policy.isOpen else { return policy }
    return PeerPolicy(uids: policy.uids.union([0, getuid()]), gids: gids)
  }

  /// A group name or a number.
  static func groupID(_ name: String) -> gid_t? {
    if let number = UInt32(name) { return number }
    guard let entry = getgrnam(name) else { return nil }
    return entry.pointee.gr_gid
  }

  static func trainingSettings(_ settings: DaemonSettings, threads: Int) -> BackgroundTrainingSettings {
    var t = BackgroundTrainingSettings()
    let d = settings.training
    t.learningRate = Float(d.learningRate)
    t.pruningRate = Float(d.pruningRate)
    t.granularity = d.maskGranularity == .step ? .step : .token
    t.computeType = computeType(d.computeType)
    t.loraDropout = Float(d.loraDropout)
    t.batchSize = d.batchSize
    t.microBatch = d.microBatch
    t.maxSequenceLength = d.maxSequenceLength
    t.publishEvery = d.publishEvery
    t.replayRatio = d.replayRatio
    t.publishMargin = d.publishMargin
    t.keepVersions = d.keepVersions
    t.maxBacklog = d.maxBacklog
    t.minComputeShare = d.minComputeShare
    t.threads = threads
    return t
  }

  static func computeType(_ name: ComputeTypeName) -> Training.ComputeType {
    switch name {
    case .f32: return .f32
    case .bf16: return .bf16
    case .int8: return .int8
    }
  }

  static func mergeType(_ name: MergeTypeName) -> MergeType {
    switch name {
    case .q8_0: return .q8_0
    case .f16: return .f16
    case .f32: return .f32
    case .none: return .none
    }
  }

  /// Applies what can change live; returns the one-line status for STATUS=.
  static func reload(
    reread: () throws -> DaemonSettings, current: DaemonSettings, backend: EngineBackend, library: AdapterLibrary,
    server: HTTPServer, logger: Logger
  ) -> String {
    let settings: DaemonSettings
    do {
      settings = try reread()
    } catch {
      logger.error("reload refused, keeping the running configuration: \(error)")
      return "serving (reload failed: \(error))"
    }
    LiveLogLevel.shared.level = LiveLogLevel.level(settings.logLevel)
    backend.update(settings)
    var training = trainingSettings(settings, threads: backend.training.threads)
    // Trainers already made keep theirs, so every adapter keeps the start's until a restart.
    training.computeType = computeType(current.training.computeType)
    backend.training.update(training)
    library.registry.cacheCapacity = settings.adapters.mergedCacheSize
    library.update(limits: settings.adapters)
    if settings.adapters.defaultAdapter != current.adapters.defaultAdapter {
      do {
        try library.setDefault(settings.adapters.defaultAdapter)
      } catch {
        logger.error("adapters.default: \(error)")
      }
    }
    let policy: PeerPolicy
    do {
      policy = try peerPolicy(settings.server)
    } catch {
      logger.error("access lists not changed: \(error)")
      policy = server.peerPolicy
    }
    var keys = server.apiKeys
    do {
      keys = try apiKeys(settings.server)
    } catch {
      logger.error("API keys not changed: \(error)")
    }
    // Body limits, keys, connection caps and the request deadline apply from the next request/connection.
    server.update(httpConfiguration(settings, peerPolicy: policy, apiKeys: keys, logger: logger))
    let needRestart: [(String, Bool)] = [
      ("model.path", settings.model.path != current.model.path),
      ("model.context_size", settings.model.contextSize != current.model.contextSize),
      ("model.threads", settings.model.threads != current.model.threads),
      ("model.kv_cache_type", settings.model.kvCacheType != current.model.kvCacheType),
      ("limits.kv_cache_mib", settings.limits.kvCacheMiB != current.limits.kvCacheMiB),
      ("server.socket_path", settings.server.socketPath != current.server.socketPath),
      ("server.socket_mode", settings.server.socketMode != current.server.socketMode),
      ("server.socket_group", settings.server.socketGroup != current.server.socketGroup),
      ("server.listen", settings.server.listen != current.server.listen),
      ("adapters.directory", settings.adapters.directory != current.adapters.directory),
      ("adapters.merge_type", settings.adapters.mergeType != current.adapters.mergeType),
      ("state_directory", settings.stateDirectory != current.stateDirectory),
      ("training.compute_type", settings.training.computeType != current.training.computeType),
    ]
    let pending = needRestart.filter(\.1).map(\.0)
    if pending.isEmpty {
      logger.notice("configuration reloaded")
      return "serving (configuration reloaded)"
    }
    let restart = "changes to \(pending.joined(separator: ", ")) need a restart and do not apply yet"
    logger.warning("configuration reloaded; \(restart)")
    return "serving (configuration reloaded; \(restart))"
  }
}
