// A merged model as a standalone GGUF that llama.cpp loads: every metadata key of the base in
// its order, every tensor of the base, with the merged matrices in their merged type in place
// of the originals. Tensor data is copied into the writer (fine at these model sizes).
import GGUF
import Kernels
import Llama

public enum MergedFile {
  public static func write(_ merged: LlamaModel, to path: String) throws(AdapterError) {
    guard let owner = merged.owner as? MergedWeights else {
      throw .notAnAdapter(path: path, reason: "the model has no merged weights to write")
    }
    let file = merged.file
    var byName: [String: WeightMatrix] = [:]
    for (target, matrix) in owner.matrices { byName[target.ggufName] = matrix }
    var writer = GGUFWriter()
    for key in file.metadataKeys {
      if let value = file.metadata[key] { writer.set(key, value) }
    }
    do throws(GGUFError) {
      for tensor in file.tensors {
        if let matrix = byName[tensor.name] {
          try writer.addTensor(
            name: tensor.name, type: GGMLType(rawValue: matrix.type), dimensions: tensor.dimensions,
            data: UnsafeRawBufferPointer(start: matrix.base, count: matrix.byteCount))
        } else {
          try writer.addTensor(
            name: tensor.name, type: tensor.type, dimensions: tensor.dimensions,
            data: file.bytes(of: tensor))
        }
      }
      try writer.write(to: path)
    } catch {
      throw .gguf(path: path, error: error)
    }
  }
}
