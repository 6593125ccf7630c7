#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Page-aligned buffers for weights (ZooKernels' packed copies and oneDNN's reordered ones).
///
/// A buffer of 2 MB or more starts on a 2 MB boundary and is advised as transparent huge pages (Linux,
/// `MADV_HUGEPAGE`; the size is not rounded up, so the tail uses small pages and nothing is wasted):
/// filling ResNet-50's weights at load then takes a few hundred page faults instead of 25,000, and the
/// weights cover fewer TLB entries while they are read.
enum WeightMemory {
    static let hugePage = 2 << 20

    /// Uninitialised memory for `byteCount` bytes (at least one page); release with `deallocate()`.
    static func allocate(byteCount: Int) -> UnsafeMutableRawPointer {
        let bytes = max(byteCount, 1)
        let huge = bytes >= hugePage
        let p = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: huge ? hugePage : KernelLock.pageSize)
        #if os(Linux)
        if huge { _ = madvise(p, bytes / hugePage * hugePage, 14 /* MADV_HUGEPAGE */) }
        #endif
        return p
    }
}
