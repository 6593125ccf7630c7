import Dispatch
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Splits work over a fixed number of parallel tasks.
///
/// Partitions depend only on the task count, never on timing, so a result is deterministic for a
/// given thread count.
public enum Parallel {
    /// Runs `body(t)` for `t` in `0..<tasks`, concurrently when `tasks > 1`.
    @inlinable
    public static func run(_ tasks: Int, _ body: (Int) -> Void) {
        if tasks <= 1 { body(0); return }
        withoutActuallyEscaping(body) { escaping in
            let box = TaskBody(run: escaping)
            DispatchQueue.concurrentPerform(iterations: tasks) { box.run($0) }
        }
    }

    /// The `t`-th of `parts` contiguous chunks of `0..<count`, chunk starts rounded down to `align`.
    @inlinable
    public static func chunk(_ t: Int, of parts: Int, count: Int, align: Int = 1) -> Range<Int> {
        func start(_ i: Int) -> Int {
            if i >= parts { return count }
            let s = count * i / parts
            return align > 1 ? min(count, (s / align) * align) : s
        }
        return start(t)..<start(t + 1)
    }

    /// How many tasks are worth it for `work` multiply-adds (or element operations).
    @inlinable
    public static func tasks(_ threads: Int, work: Int, minimumPerTask: Int = 16_384) -> Int {
        max(1, min(threads, work / max(minimumPerTask, 1)))
    }
}

/// A task closure handed to the worker threads. The kernels' closures capture raw pointers into
/// buffers whose disjoint ranges each task writes; `Parallel.run` waits for all tasks.
@usableFromInline
struct TaskBody: @unchecked Sendable {
    @usableFromInline let run: (Int) -> Void
    @inlinable init(run: @escaping (Int) -> Void) { self.run = run }
}

/// A mutex for the kernels' caches (pthread: ZooKernels does not import Foundation).
final class KernelLock: @unchecked Sendable {
    private let m: UnsafeMutablePointer<pthread_mutex_t>
    init() {
        m = .allocate(capacity: 1)
        m.initialize(to: pthread_mutex_t())
        pthread_mutex_init(m, nil)
    }
    deinit { pthread_mutex_destroy(m); m.deallocate() }
    /// Runs `body` holding the lock.
    func locked<T>(_ body: () throws -> T) rethrows -> T {
        pthread_mutex_lock(m)
        defer { pthread_mutex_unlock(m) }
        return try body()
    }
    /// The page size (for page-aligned buffers whose pages are handed back with madvise).
    static let pageSize: Int = max(4096, Int(sysconf(Int32(_SC_PAGESIZE))))
}
