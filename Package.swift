// swift-tools-version:6.0
// droplorad: a Linux daemon that serves a quantized GGUF model and keeps fine-tuning
// per-task DropLoRA adapters. See README.md and the module table in DESIGN.md.
import PackageDescription

// Linux only (systemd, SO_PEERCRED, /proc); the C kernels also build without SIMD
// (-Xcc -DDQ_SCALAR_ONLY, what aarch64 compiles): see Sources/CKernels/dq_simd.h.

// C kernels are always optimised: a -O0 kernel makes debug test runs unbearably slow and
// hides nothing that the scalar reference twins don't already check.
let kernelCFlags: [CSetting] = [.unsafeFlags(["-O3", "-fno-math-errno"])]

let package = Package(
  name: "droplorad",
  products: [
    .executable(name: "droplora", targets: ["droplora"]),
    .executable(name: "droplorad", targets: ["droplorad"]),
  ],
  dependencies: [
    .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
    .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
    // Signal-driven graceful shutdown of the daemon's services, in order.
    .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
    // Prometheus text exposition (counters, gauges, histograms) for GET /metrics.
    .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
    // SQLite (system libsqlite3) for the durable journal of pushed training samples.
    .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
  ],
  targets: [
    // Quant block layouts, fp16/bf16, scalar reference kernels and their AVX2 twins, thread pool.
    .target(name: "CKernels", cSettings: kernelCFlags),
    .systemLibrary(
      name: "COpenBLAS", pkgConfig: "openblas",
      providers: [.apt(["libopenblas-dev"])]),

    .systemLibrary(name: "CYAML", pkgConfig: "yaml-0.1", providers: [.apt(["libyaml-dev"])]),
    .systemLibrary(name: "CSystemd", pkgConfig: "libsystemd", providers: [.apt(["libsystemd-dev"])]),

    // Durable writes (temporary, fsync, rename, fsync of the directory) for every file that
    // must survive a crash; errors carry their errno (ENOSPC is a full disk).
    .target(name: "DurableFiles"),
    .target(name: "GGUF", dependencies: ["CKernels", "DurableFiles"]),
    .target(name: "Kernels", dependencies: ["CKernels", "COpenBLAS"]),
    .target(name: "Tokenization", dependencies: ["GGUF"]),
    .target(name: "Llama", dependencies: ["GGUF", "Kernels", "CKernels"]),
    .target(name: "Adapters", dependencies: ["GGUF", "Kernels", "Llama", "CKernels", "DurableFiles"]),
    // Serving only: samplers, the generation loop, the serving engine and its queue.
    .target(name: "Engine", dependencies: ["Llama", "Tokenization", "GGUF", "Kernels", "Adapters", "Grammar"]),
    // The daemon's streamed training: the sample journal and the adapter catalog (SQLite through
    // GRDB) and the background trainer that publishes versions into the serving engine.
    .target(
      name: "StreamedTraining",
      dependencies: [
        "Engine", "Llama", "Tokenization", "Adapters", "Training", "DurableFiles",
        .product(name: "GRDB", package: "GRDB.swift"),
      ]),
    // LoRA/DropLoRA fine-tuning on the mmapped quantized base: hand-written backward, AdamW,
    // data, checkpoints. The daemon's background training runs this same Trainer.
    .target(
      name: "Training",
      dependencies: [
        "Llama", "Adapters", "Tokenization", "Kernels", "CKernels", "COpenBLAS", "GGUF", "Grammar", "DurableFiles",
      ]),
    // Constrained decoding: GBNF and JSON Schema compiled to a byte-level grammar, and the
    // incremental matcher that masks the vocabulary. Knows nothing of HTTP or the model.
    .target(name: "Grammar"),
    .target(name: "Settings", dependencies: ["CYAML"]),
    .target(
      name: "Systemd",
      dependencies: ["CSystemd", .product(name: "Logging", package: "swift-log")]),
    // The HTTP face of the daemon; knows only the backend protocol it defines, never Engine.
    // Grammar (pure) compiles the output formats and tool-call grammars requests ask for.
    .target(
      name: "HTTPAPI",
      dependencies: [
        "Grammar",
        .product(name: "NIOCore", package: "swift-nio"),
        .product(name: "NIOPosix", package: "swift-nio"),
        .product(name: "NIOHTTP1", package: "swift-nio"),
        .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
        .product(name: "Logging", package: "swift-log"),
      ]),
    // The daemon's HTTP client over its Unix socket (the `droplora` client commands); shares the
    // request types of HTTPAPI so the two cannot drift apart.
    .target(
      name: "DaemonClient",
      dependencies: [
        "HTTPAPI", "Settings",
        .product(name: "NIOCore", package: "swift-nio"),
        .product(name: "NIOPosix", package: "swift-nio"),
        .product(name: "NIOHTTP1", package: "swift-nio"),
      ]),

    .executableTarget(
      name: "droplora",
      dependencies: [
        "Engine", "Llama", "Tokenization", "GGUF", "Kernels", "Adapters", "Training", "Grammar",
        "DaemonClient", "HTTPAPI", "DurableFiles", "StreamedTraining",
        .product(name: "ArgumentParser", package: "swift-argument-parser"),
      ]),

    // The daemon's logic, importable by tests: the engine behind the HTTP API (EngineBackend),
    // the adapter library on disk (AdapterLibrary) and the metrics.
    .target(
      name: "DaemonCore",
      dependencies: [
        "Engine", "Adapters", "Llama", "Tokenization", "HTTPAPI", "Settings", "Training", "Grammar", "DurableFiles",
        "StreamedTraining",
        .product(name: "Logging", package: "swift-log"),
        .product(name: "Prometheus", package: "swift-prometheus"),
      ]),
    // The daemon: settings, logging, systemd, services; wiring only.
    .executableTarget(
      name: "droplorad",
      dependencies: [
        "Engine", "Adapters", "Llama", "Tokenization", "GGUF", "HTTPAPI", "Settings", "Systemd", "Kernels",
        "Training", "Grammar", "DurableFiles", "StreamedTraining", "DaemonCore",
        .product(name: "ArgumentParser", package: "swift-argument-parser"),
        .product(name: "Logging", package: "swift-log"),
        .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        .product(name: "UnixSignals", package: "swift-service-lifecycle"),
        .product(name: "Prometheus", package: "swift-prometheus"),
      ]),

    .testTarget(name: "CKernelsTests", dependencies: ["CKernels"], resources: [.copy("Fixtures")]),
    .testTarget(name: "DurableFilesTests", dependencies: ["DurableFiles"]),
    .testTarget(name: "GGUFTests", dependencies: ["GGUF", "CKernels"], resources: [.copy("Fixtures")]),
    .testTarget(name: "KernelsTests", dependencies: ["Kernels", "CKernels"]),
    .testTarget(
      name: "TokenizationTests", dependencies: ["Tokenization", "GGUF"],
      resources: [.copy("Fixtures")]),
    // The tiny random model and its double-precision reference, shared by two test targets.
    .target(name: "TinyModelSupport", dependencies: ["GGUF", "CKernels"], path: "Tests/TinyModelSupport"),
    .testTarget(
      name: "LlamaTests", dependencies: ["Llama", "GGUF", "Kernels", "CKernels", "TinyModelSupport"],
      resources: [.copy("Fixtures")]),
    .testTarget(
      name: "EngineTests", dependencies: ["Engine", "Llama", "Tokenization", "GGUF", "Adapters", "Training", "Grammar"]),
    // The adapter catalog against a state directory the release before it wrote (Fixtures/).
    .testTarget(
      name: "DaemonCoreTests", dependencies: ["DaemonCore", "DurableFiles", "Adapters", "Training", "HTTPAPI"]),
    .testTarget(name: "StreamedTrainingTests", dependencies: ["StreamedTraining"], resources: [.copy("Fixtures")]),
    .testTarget(
      name: "AdaptersTests", dependencies: ["Adapters", "Llama", "GGUF", "Kernels", "CKernels"],
      resources: [.copy("Fixtures")]),
    .testTarget(
      name: "TrainingTests",
      dependencies: [
        "Training", "Llama", "Adapters", "Tokenization", "GGUF", "Kernels", "CKernels", "TinyModelSupport",
      ],
      resources: [.copy("Fixtures")]),
    .testTarget(name: "SettingsTests", dependencies: ["Settings"]),
    .testTarget(name: "GrammarTests", dependencies: ["Grammar", "Tokenization", "GGUF"]),
    .testTarget(
      name: "SystemdTests",
      dependencies: ["Systemd", "CSystemd", .product(name: "Logging", package: "swift-log")]),
    // Spawned by SystemdTests under systemd-socket-activate / with LISTEN_FDS set: prints what
    // SocketActivation.listenFileDescriptors() finds. Not installed.
    .executableTarget(name: "SystemdProbe", dependencies: ["Systemd"], path: "Tests/SystemdProbe"),
    .testTarget(
      name: "HTTPAPITests",
      dependencies: [
        "HTTPAPI",
        .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
      ]),
    // End to end: runs the built droplorad and droplora binaries on a temporary socket.
    // Python/ holds the OpenAI-SDK suite the tests run with python3 (not a Swift resource).
    .testTarget(name: "DaemonTests", exclude: ["Python"]),
    // Drives DaemonClient and the droplora binary against the real HTTPAPI server; also lints
    // the unit files (systemd-analyze verify) and every man page (groff -ww).
    .testTarget(
      name: "DaemonClientTests",
      dependencies: [
        "DaemonClient", "HTTPAPI",
        .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
      ]),
  ]
)
