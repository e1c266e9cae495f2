// The one table of configuration keys: dotted path, how its value is read and checked, and
// where it lands in DaemonSettings. The file decoder and the command-line overrides both go
// through it, so a key is named, validated and documented (droplorad.yaml(5)) in one place.

struct SettingKey {
  let path: String
  let apply: (inout DaemonSettings, YAMLNode) throws(SettingsError) -> Void
}

enum SettingsKeys {
  typealias D = ScalarDecoding
  typealias S = DaemonSettings

  static func int(_ path: String, _ kp: WritableKeyPath<S, Int>, _ range: ClosedRange<Int>) -> SettingKey {
    SettingKey(path: path) { (s: inout S, n: YAMLNode) throws(SettingsError) in s[keyPath: kp] = try D.int(n, path, range) }
  }
  static func double(_ path: String, _ kp: WritableKeyPath<S, Double>, _ range: ClosedRange<Double>) -> SettingKey {
    SettingKey(path: path) { (s: inout S, n: YAMLNode) throws(SettingsError) in
      s[keyPath: kp] = try D.double(n, path, range)
    }
  }
  static func string(_ path: String, _ kp: WritableKeyPath<S, String>) -> SettingKey {
    SettingKey(path: path) { (s: inout S, n: YAMLNode) throws(SettingsError) in s[keyPath: kp] = try D.string(n, path) }
  }
  static func optionalString(_ path: String, _ kp: WritableKeyPath<S, String?>) -> SettingKey {
    SettingKey(path: path) { (s: inout S, n: YAMLNode) throws(SettingsError) in
      s[keyPath: kp] = try D.optionalString(n, path)
    }
  }
  static func choice<E: RawRepresentable & CaseIterable>(_ path: String, _ kp: WritableKeyPath<S, E>) -> SettingKey
  where E.RawValue == String {
    SettingKey(path: path) { (s: inout S, n: YAMLNode) throws(SettingsError) in
      s[keyPath: kp] = try D.choice(n, path, E.self)
    }
  }

  /// Every key, in the order of the shipped config file.
  static var all: [SettingKey] {
    [
      string("model.path", \.model.path),
      int("model.context_size", \.model.contextSize, 16...1_048_576),
      int("model.threads", \.model.threads, 0...1024),
      choice("model.kv_cache_type", \.model.kvCacheType),

      string("server.socket_path", \.server.socketPath),
      SettingKey(path: "server.socket_mode") { (s: inout S, n: YAMLNode) throws(SettingsError) in
        s.server.socketMode = try D.fileMode(n, "server.socket_mode")
      },
      optionalString("server.socket_group", \.server.socketGroup),
      SettingKey(path: "server.allowed_uids") { (s: inout S, n: YAMLNode) throws(SettingsError) in
        s.server.allowedUIDs = try D.list(n, "server.allowed_uids") { (item, path) throws(SettingsError) in
          UInt32(try D.int(item, path, 0...Int(UInt32.max - 1)))
        }
      },
      SettingKey(path: "server.allowed_groups") { (s: inout S, n: YAMLNode) throws(SettingsError) in
        s.server.allowedGroups = try D.list(n, "server.allowed_groups") { (item, path) throws(SettingsError) in
          try D.string(item, path, maxLength: 256)
        }
      },
      SettingKey(path: "server.listen") { (s: inout S, n: YAMLNode) throws(SettingsError) in
        s.server.listen = try D.list(n, "server.listen", maxCount: 16) { (item, path) throws(SettingsError) in
          let text = try D.string(item, path, maxLength: 64)
          do {
            return try ListenAddress(parsing: text)
          } catch {
            throw SettingsError(.invalidValue("\(error)"), keyPath: path, mark: item.mark)
          }
        }
      },
      optionalString("server.api_keys_file", \.server.apiKeysFile),

      string("adapters.directory", \.adapters.directory),
      optionalString("adapters.default", \.adapters.defaultAdapter),
      choice("adapters.merge_type", \.adapters.mergeType),
      int("adapters.merged_cache_size", \.adapters.mergedCacheSize, 0...256),
      int("adapters.max_rank", \.adapters.maxRank, 1...4096),
      int("adapters.max_count", \.adapters.maxCount, 1...100_000),
      int("adapters.max_directory_bytes", \.adapters.maxDirectoryBytes, (1 << 20)...(1 << 50)),

      double("generation.temperature", \.generation.temperature, 0...10),
      double("generation.top_p", \.generation.topP, 0...1),
      int("generation.top_k", \.generation.topK, 0...1_000_000),
      double("generation.min_p", \.generation.minP, 0...1),
      double("generation.repeat_penalty", \.generation.repeatPenalty, 0.01...10),
      int("generation.max_tokens", \.generation.maxTokens, 1...1_048_576),

      int("limits.max_request_bytes", \.limits.maxRequestBytes, 1024...(1 << 30)),
      int("limits.max_push_bytes", \.limits.maxPushBytes, 1024...(1 << 34)),
      int("limits.max_tokens", \.limits.maxTokens, 1...1_048_576),
      int("limits.max_concurrent_generations", \.limits.maxConcurrentGenerations, 1...1024),
      int("limits.queue_limit", \.limits.queueLimit, 0...1_000_000),
      int("limits.batch_tokens", \.limits.batchTokens, 1...65536),
      int("limits.kv_cache_mib", \.limits.kvCacheMiB, 0...1_048_576),
      int("limits.max_connections", \.limits.maxConnections, 1...65536),
      int("limits.max_connections_per_user", \.limits.maxConnectionsPerUser, 1...65536),
      int("limits.reserved_connections", \.limits.reservedConnections, 0...65536),
      double("limits.request_timeout_seconds", \.limits.requestTimeoutSeconds, 0.1...86400),
      int("limits.max_choices", \.limits.maxChoices, 1...128),

      int("training.rank", \.training.rank, 1...1024),
      double("training.alpha", \.training.alpha, 0.001...100_000),
      // p = 1 would drop every direction: nothing would ever train.
      double("training.pruning_rate", \.training.pruningRate, 0...0.99),
      choice("training.mask_granularity", \.training.maskGranularity),
      choice("training.compute_type", \.training.computeType),
      double("training.lora_dropout", \.training.loraDropout, 0...0.99),
      double("training.learning_rate", \.training.learningRate, 1e-9...1),
      int("training.publish_every", \.training.publishEvery, 1...1_000_000),
      int("training.batch_size", \.training.batchSize, 1...4096),
      int("training.micro_batch", \.training.microBatch, 1...256),
      int("training.max_sequence_length", \.training.maxSequenceLength, 16...65536),
      int("training.held_out_every", \.training.heldOutEvery, 2...1_000_000),
      double("training.replay_ratio", \.training.replayRatio, 0...0.95),
      double("training.publish_margin", \.training.publishMargin, 0...100),
      int("training.keep_versions", \.training.keepVersions, 1...1000),
      int("training.max_backlog", \.training.maxBacklog, 1...100_000_000),
      double("training.min_compute_share", \.training.minComputeShare, 0...0.9),

      string("state_directory", \.stateDirectory),
      choice("log_level", \.logLevel),
    ]
  }
}
