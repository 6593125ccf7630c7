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
            if !OpenMPTeam.run(tasks, box) {
                DispatchQueue.concurrentPerform(iterations: tasks) { box.run($0) }
            }
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

/// Runs parallel work on the OpenMP thread team of the calling thread when the process has libgomp loaded
/// (Debian's oneDNN brings it), instead of on Dispatch's threads.
///
/// oneDNN runs on OpenMP; after each of its calls libgomp's workers keep spinning for a while, waiting for
/// the next parallel region. A ZooKernels loop run on Dispatch's threads in that time (a pooling between two
/// convolutions, a depthwise convolution between two pointwise ones) shares the cores with those spinning
/// workers; on the same team it takes over the spinning workers instead. `ZOO_PARALLEL=dispatch` turns this
/// off (for comparisons). Task `t` runs on team member `t mod teamSize`, so the partition, and with it
/// every result, still depends only on the task count.
@usableFromInline
enum OpenMPTeam {
    typealias Outlined = @convention(c) (UnsafeMutableRawPointer?) -> Void
    typealias Parallel = @convention(c) (Outlined, UnsafeMutableRawPointer?, UInt32, UInt32) -> Void
    typealias Query = @convention(c) () -> Int32

    struct Entry: @unchecked Sendable {
        let parallel: Parallel
        let threadNumber: Query
        let teamSize: Query
    }

    /// libgomp's `GOMP_parallel` (the call GCC emits for `#pragma omp parallel`), when loaded.
    static let entry: Entry? = {
        if let v = getenv("ZOO_PARALLEL"), String(cString: v) == "dispatch" { return nil }
        guard let process = dlopen(nil, RTLD_NOW),
              let p = dlsym(process, "GOMP_parallel"),
              let n = dlsym(process, "omp_get_thread_num"),
              let s = dlsym(process, "omp_get_num_threads") else { return nil }
        return Entry(parallel: unsafeBitCast(p, to: Parallel.self), threadNumber: unsafeBitCast(n, to: Query.self),
                     teamSize: unsafeBitCast(s, to: Query.self))
    }()

    /// What a team member needs: the task count, the body and the entry's queries.
    final class Job {
        let tasks: Int
        let body: TaskBody
        let entry: Entry
        init(tasks: Int, body: TaskBody, entry: Entry) { self.tasks = tasks; self.body = body; self.entry = entry }
    }

    /// Runs tasks `0..<tasks` on a team of `tasks` threads; false when libgomp is not loaded.
    @usableFromInline
    static func run(_ tasks: Int, _ body: TaskBody) -> Bool {
        guard let entry, tasks <= Int(UInt32.max) else { return false }
        let job = Job(tasks: tasks, body: body, entry: entry)
        withExtendedLifetime(job) {
            entry.parallel({ raw in
                guard let raw else { return }
                let job = Unmanaged<Job>.fromOpaque(raw).takeUnretainedValue()
                let size = max(1, Int(job.entry.teamSize()))
                var t = Int(job.entry.threadNumber())
                while t < job.tasks { job.body.run(t); t += size }
            }, Unmanaged.passUnretained(job).toOpaque(), UInt32(tasks), 0)
        }
        return true
    }
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
