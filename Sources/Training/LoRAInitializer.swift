// Initial LoRA factors. lora: A Kaiming-uniform with bound 1/sqrt(in) (PyTorch's
// kaiming_uniform_(a=√5), as PEFT does), B zero. gaussian: A ~ N(0, 1/r²) (PEFT's std 1/r),
// B zero. pissa / milora: the top / bottom r singular triplets of the dequantized weight,
// A = diag(√(S/s))·Vᵀ, B = U·diag(√(S/s)) (PEFT's pissa_init); the frozen copies of these
// factors are subtracted in the forward, so the model starts exactly where the base is.
import COpenBLAS
import Kernels
import Llama

enum LoRAInitializer {
  static func initialize(
    _ parameters: LoRAParameters, model: LlamaModel, random: inout TrainingRandom, pool: ThreadPool
  ) throws(TrainingError) {
    let config = parameters.config
    for module in parameters.modules {
      switch config.initialization {
      case .lora:
        let bound = 1 / Float(module.columns).squareRoot()
        for i in 0..<module.a.count { module.a[i] = (2 * random.unitFloat() - 1) * bound }
      case .gaussian:
        let std = 1 / Double(module.rank)
        for i in 0..<module.a.count { module.a[i] = Float(random.normal() * std) }
      case .pissa, .milora:
        let w = model.weights.layers[module.target.layer].matrix(module.target.projection)
        try singularInit(module, weight: w, scale: config.scale, top: config.initialization == .pissa)
      }
    }
  }

  /// Sets A, B and their frozen copies from the SVD of W (rows x columns).
  static func singularInit(_ module: LoRAModule, weight w: WeightMatrix, scale: Float, top: Bool)
    throws(TrainingError)
  {
    let rows = w.rows
    let columns = w.columns
    let r = module.rank
    let k = min(rows, columns)
    guard r <= k else { throw .invalidConfig("rank \(r) exceeds min(\(rows), \(columns)) of \(module.target)") }
    // Row-major W is column-major Wᵀ (columns x rows): Wᵀ = U'·S·V'ᵀ, so W's left singular
    // vectors are the rows of V'ᵀ and its right singular vectors the columns of U'.
    var a = [Float](repeating: 0, count: rows * columns)
    a.withUnsafeMutableBufferPointer { buffer in
      for row in 0..<rows { w.dequantizeRow(row, into: buffer.baseAddress! + row * columns) }
    }
    var s = [Float](repeating: 0, count: k)
    var u = [Float](repeating: 0, count: columns * k)
    var vt = [Float](repeating: 0, count: k * rows)
    var iwork = [Int32](repeating: 0, count: 8 * k)
    var m = Int32(columns)
    var n = Int32(rows)
    var lda = m
    var ldu = m
    var ldvt = Int32(k)
    var info: Int32 = 0
    var query: Float = 0
    var lwork: Int32 = -1
    sgesdd_("S", &m, &n, &a, &lda, &s, &u, &ldu, &vt, &ldvt, &query, &lwork, &iwork, &info, 1)
    lwork = Int32(query) + 1
    var work = [Float](repeating: 0, count: Int(lwork))
    sgesdd_("S", &m, &n, &a, &lda, &s, &u, &ldu, &vt, &ldvt, &work, &lwork, &iwork, &info, 1)
    guard info == 0 else { throw .numerics("SVD of \(module.target) failed (info \(info))") }
    let frozenA = FloatBuffer(r * columns)
    let frozenB = FloatBuffer(rows * r)
    for j in 0..<r {
      let i = top ? j : k - r + j  // singular values come in descending order
      let root = (s[i] / scale).squareRoot()
      for c in 0..<columns { frozenA[j * columns + c] = root * u[c + i * columns] }
      for row in 0..<rows { frozenB[row * r + j] = root * vt[i + row * k] }
    }
    module.a.pointer.update(from: frozenA.pointer, count: frozenA.count)
    module.b.pointer.update(from: frozenB.pointer, count: frozenB.count)
    module.frozenA = frozenA
    module.frozenB = frozenB
  }
}
