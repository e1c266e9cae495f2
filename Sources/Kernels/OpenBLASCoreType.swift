// Debian's OpenBLAS 0.3.21 does not recognise this generation of CPU and falls back to its
// SSE3 "Prescott" sgemm kernels unless OPENBLAS_CORETYPE is set before the library loads
// (measured single-thread sgemm, 256x128x1536: Prescott 16, Haswell 69, SkylakeX 103,
// Cooperlake 108-125 GFLOP/s). Training is sgemm-bound, so `droplora train`/`eval` and the
// daemon (which trains in the background) re-execute themselves once with the core type matching the CPU's flags when the variable is unset.
// Writing our own AVX-512 GEMM would duplicate what the library already has; the variable
// cannot be set any later, because OpenBLAS picks its kernels in a load-time constructor.
import Foundation

public enum OpenBLASCoreType {
  /// The OpenBLAS core type for this CPU, from /proc/cpuinfo's flags; nil when unsure.
  public static func detect() -> String? {
    guard let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
      let line = info.split(separator: "\n").first(where: { $0.hasPrefix("flags") })
    else { return nil }
    let flags = Set(line.split(separator: " ").map(String.init))
    if flags.contains("avx512_bf16") && flags.contains("avx512f") { return "Cooperlake" }
    if flags.contains("avx512f") && flags.contains("avx512vl") { return "SkylakeX" }
    if flags.contains("avx2") && flags.contains("fma") { return "Haswell" }
    return nil
  }

  /// Re-executes the process with OPENBLAS_CORETYPE set, when it is unset and a type is known.
  /// Returns (without exec) if anything is off; the run is then only slower.
  public static func ensureSet() {
    guard getenv("OPENBLAS_CORETYPE") == nil, let core = detect() else { return }
    setenv("OPENBLAS_CORETYPE", core, 1)
    let arguments = CommandLine.arguments
    var pointers = arguments.map { strdup($0) }
    pointers.append(nil)
    execv("/proc/self/exe", pointers)
    // exec failed: carry on with the kernels OpenBLAS chose.
  }
}
