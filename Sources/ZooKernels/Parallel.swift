import Dispatch

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
