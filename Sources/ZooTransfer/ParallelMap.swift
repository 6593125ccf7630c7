import ZooKernels

/// Maps `0..<count` through a throwing-free body on several threads, results in index order.
enum ParallelMap {
    /// Runs `body(i)` for every index, `threads` at a time in rounds, and reports progress after each round
    /// on the calling thread.
    static func run<T: Sendable>(count: Int, threads: Int, progress: ((Int, Int) -> Void)?, _ body: @Sendable (Int) -> T) -> [T] {
        var results: [T?] = Array(repeating: nil, count: count)
        let round = max(1, threads) * 4
        var start = 0
        while start < count {
            let end = min(count, start + round)
            let tasks = min(max(1, threads), end - start)
            results.withUnsafeMutableBufferPointer { out in
                let base = UncheckedPointer(out.baseAddress)
                Parallel.run(tasks) { t in
                    for i in Parallel.chunk(t, of: tasks, count: end - start) { base.pointer?[start + i] = body(start + i) }
                }
            }
            start = end
            progress?(start, count)
        }
        return results.compactMap { $0 }
    }
}

/// A pointer shared with parallel tasks that write disjoint elements.
struct UncheckedPointer<T>: @unchecked Sendable {
    let pointer: UnsafeMutablePointer<T>?
    init(_ pointer: UnsafeMutablePointer<T>?) { self.pointer = pointer }
}
