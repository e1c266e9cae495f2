// Which failed writes the daemon answers with 507 (the disk is full, nothing was kept) rather
// than 500: decided from the writers' typed errors and their errno, never from message text.
import Adapters
import DaemonCore
import DurableFiles
import Testing
import Training

#if canImport(Glibc)
  import Glibc
#endif

@Suite struct DiskFullTests {
  @Test func aFullDiskIsRecognisedByErrnoThroughEveryWriter() {
    let full = DurableWriteError(path: "/a/b", operation: "write", errno: ENOSPC)
    let quota = DurableWriteError(path: "/a/b", operation: "write", errno: EDQUOT)
    let broken = DurableWriteError(path: "/a/b", operation: "write", errno: EIO)
    #expect(AdapterLibrary.isDiskFull(full) && AdapterLibrary.isDiskFull(quota))
    #expect(AdapterLibrary.isDiskFull(AdapterError.storage(full)))
    #expect(AdapterLibrary.isDiskFull(TrainingError.storage(full)))
    #expect(!AdapterLibrary.isDiskFull(broken) && !AdapterLibrary.isDiskFull(AdapterError.storage(broken)))
    // A message that merely mentions a full disk is not one.
    #expect(!AdapterLibrary.isDiskFull(AdapterError.io(path: "/a", reason: "No space left on device")))
  }
}
