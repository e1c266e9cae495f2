// The daemon's validated configuration as plain value types, one struct per section of
// droplorad.yaml, with the defaults the shipped config/droplorad.yaml documents. Nothing here
// reads files or knows YAML (SettingsLoader and SettingsKeys do); the enums keep the on-disk
// spellings as raw values.

public enum KVCacheType: String, Sendable, CaseIterable { case f32, f16 }
/// The tensor type adapters are merged into (the Adapters module's MergeType spellings);
/// `none` serves them unmerged, applied at each projection.
public enum MergeTypeName: String, Sendable, CaseIterable { case q8_0, f16, f32, none }
/// DropLoRA mask granularity: one rank mask per training step, or one per token and rank element.
public enum MaskGranularity: String, Sendable, CaseIterable { case step, token }
/// Precision of the products through the frozen base in training (bf16 needs AVX512-BF16).
public enum ComputeTypeName: String, Sendable, CaseIterable { case f32, bf16, int8 }
/// swift-log's levels, spelled as in swift-log.
public enum LogLevelName: String, Sendable, CaseIterable {
  case trace, debug, info, notice, warning, error, critical
}

public struct ModelSettings: Sendable, Equatable {
  public var path = "/var/lib/droplora/models/SmolLM2-135M-Instruct.Q4_1.gguf"
  /// Tokens of context per sequence.
  public var contextSize = 2048
  /// Compute threads; 0 = one per available core.
  public var threads = 0
  public var kvCacheType = KVCacheType.f32
  public init() {}
}

public struct ServerSettings: Sendable, Equatable {
  public var socketPath = "/run/droplora/droplorad.sock"
  /// File mode of the socket the daemon binds itself (ignored under socket activation).
  public var socketMode: UInt32 = 0o660
  /// Group of that socket; nil leaves the daemon's own group.
  public var socketGroup: String? = nil
  /// Peer uids (SO_PEERCRED) allowed besides the daemon's own uid and root; empty with empty
  /// `allowedGroups` means anyone who can open the socket.
  public var allowedUIDs: [UInt32] = []
  /// Groups (names or numeric gids) whose members are allowed.
  public var allowedGroups: [String] = []
  /// Optional TCP listeners besides the socket (issue 17); each request on them must carry an
  /// API key from `apiKeysFile` (a non-loopback address without keys is refused at start).
  public var listen: [ListenAddress] = []
  /// One API key per line (`KEY` or `NAME KEY`); must not be readable by group or others.
  public var apiKeysFile: String? = nil
  public init() {}
}

public struct AdapterSettings: Sendable, Equatable {
  public var directory = "/var/lib/droplora/adapters"
  /// Adapter used when a request names none; nil = the base model.
  public var defaultAdapter: String? = nil
  public var mergeType = MergeTypeName.q8_0
  /// Merged weight sets kept in memory (least recently used out); 0 disables the cache.
  public var mergedCacheSize = 4
  // Limits on what clients may make (issue 18): past them a create or load gets 400.
  /// Largest rank an adapter may be created or loaded with.
  public var maxRank = 256
  /// Adapters in the catalog at once.
  public var maxCount = 64
  /// Bytes the adapters directory may hold; a create that would pass it is refused.
  public var maxDirectoryBytes = 8 << 30
  public init() {}
}

public struct GenerationDefaults: Sendable, Equatable {
  public var temperature = 0.8
  public var topP = 0.95
  public var topK = 40
  public var minP = 0.05
  public var repeatPenalty = 1.0
  public var maxTokens = 512
  public init() {}
}

public struct Limits: Sendable, Equatable {
  public var maxRequestBytes = 1 << 20
  /// Larger training-sample pushes (POST /v1/adapters/{name}/samples) get 413.
  public var maxPushBytes = 64 << 20
  /// Cap on a request's max_tokens (and the default when it gives none is generation.max_tokens).
  public var maxTokens = 4096
  public var maxConcurrentGenerations = 2
  /// Requests waiting for a generation slot before new ones get 503 + Retry-After.
  public var queueLimit = 32
  /// Most rows (decode tokens and prompt chunks of all running generations) in one batched
  /// forward step; read at start.
  public var batchTokens = 256
  /// KV cache budget of all generations together, MiB (slots sized by need: prompt +
  /// max_tokens); 0 = max_concurrent_generations slots of the full context. Read at start.
  public var kvCacheMiB = 0

  // Connections (HTTPServerConfiguration): caps by SO_PEERCRED uid and a deadline per request.
  /// Open connections in all; past it 503 (root and the daemon's user may use the reserve).
  public var maxConnections = 512
  /// Open connections one uid may hold (root and the daemon's user are exempt); past it 429.
  public var maxConnectionsPerUser = 64
  /// Places of max_connections only root and the daemon's own user may take.
  public var reservedConnections = 16
  /// A request's head and body must arrive within this many seconds of its first byte; past it 408.
  public var requestTimeoutSeconds = 60.0
  /// The most choices (`n`) one generation request may ask for.
  public var maxChoices = 4
  public init() {}
}

public struct TrainingDefaults: Sendable, Equatable {
  public var rank = 32
  public var alpha = 64.0
  /// DropLoRA pruning rate p (0 = plain LoRA).
  public var pruningRate = 0.5
  public var maskGranularity = MaskGranularity.step
  public var computeType = ComputeTypeName.f32
  public var loraDropout = 0.05
  public var learningRate = 3e-4
  /// Steps between published adapter versions.
  public var publishEvery = 50
  /// Sequences per optimizer step of the daemon's background training.
  public var batchSize = 8
  /// Sequences per forward/backward pass (gradients accumulate over a step's micro-batches).
  public var microBatch = 2
  /// Tokens per training sequence; longer samples are truncated.
  public var maxSequenceLength = 512
  /// Every k-th pushed sample is held out for the publish gate and never trained on.
  public var heldOutEvery = 10
  /// Fraction of each batch drawn from already trained samples (replay against forgetting).
  public var replayRatio = 0.25
  /// A snapshot is published unless its held-out loss exceeds the serving version's by more.
  public var publishMargin = 0.02
  /// Published versions kept per adapter (older ones are deleted).
  public var keepVersions = 5
  /// Untrained samples per adapter beyond which pushes get 503 with Retry-After.
  public var maxBacklog = 100_000
  /// Under sustained serving load, the least fraction of the time training still gets (a step
  /// runs alongside generation once it has waited long enough); 0 = only when serving is idle.
  public var minComputeShare = 0.05
  public init() {}
}

public struct DaemonSettings: Sendable, Equatable {
  public var model = ModelSettings()
  public var server = ServerSettings()
  public var adapters = AdapterSettings()
  public var generation = GenerationDefaults()
  public var limits = Limits()
  public var training = TrainingDefaults()
  /// Journal of pushed samples, checkpoints, published versions.
  public var stateDirectory = "/var/lib/droplora"
  public var logLevel = LogLevelName.info
  public init() {}
}
