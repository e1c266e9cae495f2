// The names people use for a targeted projection: short (`q`, `up`), Hugging Face (`q_proj`)
// and GGUF (`attn_q`). One table so the daemon, the CLI and the trainer agree.
import Llama

extension LlamaProjection {
  /// `q`, `k`, `v`, `o`, `gate`, `up`, `down`.
  public var shortName: String { String(describing: self) }

  /// The Hugging Face module name (`q_proj`), as PEFT's target_modules lists it.
  public var huggingFaceName: String { HFNames.module(self).name }

  /// Reads a short, Hugging Face or GGUF name; nil for anything else.
  public init?(anyName name: String) {
    guard
      let match = LlamaProjection.allCases.first(where: {
        name == $0.shortName || name == HFNames.module($0).name || name == $0.rawValue
      })
    else { return nil }
    self = match
  }
}
