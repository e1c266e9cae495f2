// Per-request adapter scale, in droplorad's form (`adapter_scale` with the adapter named by
// `model`) and llama-server's (`lora: [{"id", "scale"}]` with ids as `GET /lora-adapters`
// numbers them; an adapter left out of `lora` is off). Both are resolved here into one adapter
// name and one scale, with the field it came from so the backend's range check names it. The
// scale is passed through as it was sent: the engine owns its range and what it does.

/// The scale one request applies to its adapter, and the request field that set it.
public struct AdapterScaling: Sendable, Equatable {
  /// Multiplies the adapter's alpha/rank update (0: the base model; 1: the adapter as stored).
  public var scale: Double
  /// `adapter_scale` or `lora[i].scale`, for errors about the value.
  public var field: String

  public init(scale: Double, field: String) {
    self.scale = scale
    self.field = field
  }
}

/// One entry of llama-server's per-request `lora` list.
public struct LoRAScaleEntry: Sendable, Equatable, Codable {
  public var id: Int
  public var scale: Double

  public init(id: Int, scale: Double) {
    self.id = id
    self.scale = scale
  }

  public init(from decoder: any Decoder) throws {
    try refuseUnknownKeys(decoder, known: ["id", "scale"])
    let c = try decoder.container(keyedBy: CodingKeys.self)
    id = try c.decodeNumber(Int.self, forKey: .id)
    scale = try c.decodeNumber(Double.self, forKey: .scale)
  }
}

/// One adapter as llama-server's `GET /lora-adapters` lists it. `path` is the adapter's name
/// (the API never shows file paths); `scale` is what a request without `lora` gets: 1 for the
/// default adapter, 0 for the others.
struct LoRAAdapterListEntry: Encodable {
  var id: Int
  var path: String
  var name: String
  var scale: Double
  var taskName = ""
  var promptPrefix = ""

  enum CodingKeys: String, CodingKey {
    case id, path, name, scale
    case taskName = "task_name"
    case promptPrefix = "prompt_prefix"
  }
}

/// The adapter fields both generation routes share.
enum AdapterScaleFields {
  static let keys: Set<String> = ["adapter_scale", "lora"]

  /// What can be judged without the adapter list: one way of scaling at a time, ids that can
  /// exist, each at most once, and at most one adapter switched on (mixing is not served).
  static func validate(_ scaling: AdapterScaling?, _ lora: [LoRAScaleEntry]?) throws(APIError) {
    guard let lora, !lora.isEmpty else { return }
    if scaling != nil {
      throw .invalidField("adapter_scale", "send adapter_scale (with the adapter as model) or lora, not both")
    }
    var seen = Set<Int>()
    for (i, entry) in lora.enumerated() {
      guard entry.id >= 0 else { throw .invalidField("lora[\(i)].id", "must be an adapter id from GET /lora-adapters, got \(entry.id)") }
      guard seen.insert(entry.id).inserted else { throw .invalidField("lora[\(i)].id", "adapter \(entry.id) is listed twice") }
    }
    let enabled = lora.filter { $0.scale != 0 }
    if enabled.count > 1 {
      let ids = enabled.map { "\($0.id) (scale \($0.scale))" }.joined(separator: ", ")
      throw .invalidField(
        "lora",
        "lora enables adapters \(ids); a request is served by one adapter (mixing adapters is not served): "
          + "give the others scale 0 or leave them out")
    }
  }
}

extension Router {
  /// The adapters in llama-server's numbering: in the order they were added (then by name), so
  /// an id keeps its adapter while others are added after it.
  func loraAdapterList() async -> [LoRAAdapterListEntry] {
    let defaultName = await backend.adapters().first(where: \.isDefault)?.name
    let adapters = await backend.models().filter { $0.kind == .adapter }
      .sorted { ($0.created, $0.id) < ($1.created, $1.id) }
    return adapters.enumerated().map { i, m in
      LoRAAdapterListEntry(id: i, path: m.id, name: m.id, scale: m.id == defaultName ? 1 : 0)
    }
  }

  /// The model a request runs on and the scale of its adapter: `lora`, when given, picks the
  /// adapter (the one with a non-zero scale; none: the base model), and `model` may then only
  /// name that adapter or the base model.
  func resolveAdapter(
    model: String?, scaling: AdapterScaling?, lora: [LoRAScaleEntry]?
  ) async throws -> (model: String?, scaling: AdapterScaling?) {
    guard let lora, !lora.isEmpty else { return (model, scaling) }
    let list = await loraAdapterList()
    for (i, entry) in lora.enumerated() where entry.id >= list.count {
      throw APIError.invalidField(
        "lora[\(i)].id", "no adapter has id \(entry.id); GET /lora-adapters lists the \(list.count) loaded")
    }
    let baseID = await backend.models().first { $0.kind == .base }?.id
    guard let i = lora.firstIndex(where: { $0.scale != 0 }) else { return (baseID ?? model, nil) }
    let name = list[lora[i].id].name
    if let model, model != name, model != baseID, model != "base" {
      throw APIError.invalidField("lora", "lora enables adapter '\(name)' but model names '\(model.prefix(64))'")
    }
    return (name, AdapterScaling(scale: lora[i].scale, field: "lora[\(i)].scale"))
  }
}
