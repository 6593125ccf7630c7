import Foundation
import ZooErrors
#if canImport(Glibc)
import Glibc
#endif

/// How image files are decoded for a run over many of them (`zoo features`, `zoo predict`).
public struct DecodeOptions: Sendable, Equatable {
    /// Background threads decoding and resizing images ahead of inference (a bounded pipeline:
    /// `DecodePipeline`; they run at the lowest scheduling priority, and the consumer also decodes when
    /// it would otherwise wait); 0 decodes on the calling thread, batch by batch, between forward passes.
    public var threads: Int
    /// libjpeg-turbo's DCT scaling: decode JPEGs at 1/2, 1/4 or 1/8 when the resize allows
    /// (`Preprocessing.prepare(bytes:fastDecode:limits:)`). Faster, not Pillow's pixels.
    public var fastDecode: Bool
    /// Images decoded and waiting at most, per decode thread (the pipeline's bound).
    public var aheadPerThread: Int

    /// The default decode threads: one. With the default inference threads (every core), a second
    /// decoder mostly takes cores from inference (benchmarks/RESULTS.md, "Embeddings at scale").
    public static let defaultThreads = 1

    /// Options; `threads` below 0 counts as 0, `aheadPerThread` below 1 as 1.
    public init(threads: Int = DecodeOptions.defaultThreads, fastDecode: Bool = false, aheadPerThread: Int = 8) {
        self.threads = max(0, threads)
        self.fastDecode = fastDecode
        self.aheadPerThread = max(1, aheadPerThread)
    }
}

/// One input of a `DecodePipeline`: its path, the decoded and resized image or the error that
/// stopped it (naming the file), and the file's digest when the pipeline was given a digest function.
public struct DecodedImage: Sendable {
    /// The path, as given.
    public let path: String
    /// The image after `Preprocessing.geometry`, or the reader's or decoder's error.
    public let image: Result<RGBImage, ZooError>
    /// The digest function's result for the file's bytes (read once, for both), nil without one or
    /// when the file could not be read.
    public let digest: String?
}

/// Decodes and prepares image files on background threads ahead of their consumer, which takes them
/// in input order with `next()`: a bounded pipeline (at most `threads x aheadPerThread` images
/// decoded and not yet taken), so decoding overlaps inference while memory stays flat. Each file is
/// mapped once; its digest (when asked) and its pixels come from the same bytes.
///
/// The results do not depend on the thread count: every image is decoded on its own, and the
/// consumer sees them in input order. Call `stop()` when done with it (`defer { pipeline.stop() }`):
/// the decode threads hold the pipeline until they return, and `stop()` waits for them to finish their
/// current image.
public final class DecodePipeline: @unchecked Sendable {
    private let files: [String]
    private let work: @Sendable (Int) -> DecodedImage
    private let condition = NSCondition()
    private var ready: [Int: DecodedImage] = [:]
    private var claimed = 0
    private var taken = 0
    private var running = 0
    private var stopped = false
    private let ahead: Int
    private let threads: Int

    /// Starts decoding `files` with `preprocessing`'s geometry. `digest`, when given, runs on each
    /// file's bytes (e.g. a SHA-256 for `--resume`).
    public init(files: [String], preprocessing: Preprocessing, options: DecodeOptions = DecodeOptions(), limits: ImageLimits = .standard,
                digest: (@Sendable (UnsafeRawBufferPointer) -> String)? = nil) {
        self.files = files
        threads = min(options.threads, files.count)
        ahead = max(1, options.threads) * options.aheadPerThread
        let fast = options.fastDecode
        work = { i in
            let path = files[i]
            var digestValue: String?
            let image: Result<RGBImage, ZooError>
            do {
                image = .success(try ImageDecoder.withImageFile(path, limits: limits) { bytes in
                    digestValue = digest?(bytes)
                    return try preprocessing.prepare(bytes: bytes, fastDecode: fast, limits: limits)
                })
            } catch let e as ZooError {
                image = .failure(e.file == nil ? e.inFile(path) : e)
            } catch {
                image = .failure(ZooError(.io, "cannot read the image: \(error)", file: path))
            }
            return DecodedImage(path: path, image: image, digest: digestValue)
        }
        condition.lock()
        running = threads
        condition.unlock()
        for _ in 0..<threads {
            let thread = Thread { [self] in self.decodeLoop() }
            thread.stackSize = 8 << 20
            thread.name = "zoo-decode"
            thread.start()
        }
    }

    /// The next image in input order; nil after the last one (or after `stop()`). When it is not decoded
    /// yet, the calling thread decodes an unclaimed image itself (the next in order first) instead of
    /// waiting idle, so a consumer that outruns the decode threads adds its own core to decoding.
    public func next() -> DecodedImage? {
        condition.lock()
        defer { condition.unlock() }
        guard taken < files.count, !stopped else { return nil }
        while true {
            if let item = ready.removeValue(forKey: taken) {
                taken += 1
                condition.broadcast()
                return item
            }
            if claimed < files.count, claimed < taken + ahead {
                let i = claimed
                claimed += 1
                condition.unlock()
                let item = work(i)
                condition.lock()
                ready[i] = item
                continue
            }
            // The next image is with a decode thread. They run at the lowest priority, so on a machine
            // other processes keep busy one may hardly run: after a while, decode that image here too
            // (the thread's copy is dropped when it arrives), so the run never waits on it for long.
            if !condition.wait(until: Date(timeIntervalSinceNow: Self.patience)), ready[taken] == nil {
                let i = taken
                condition.unlock()
                let item = work(i)
                condition.lock()
                if i == taken, ready[i] == nil { ready[i] = item }
            }
        }
    }

    /// How long the consumer waits for an image a decode thread holds before decoding it itself:
    /// longer than a camera-size JPEG takes, so it happens only when the thread is starved.
    static let patience: TimeInterval = 0.25

    /// The next `count` images (fewer at the end), in input order; empty after the last.
    public func next(_ count: Int) -> [DecodedImage] {
        var out: [DecodedImage] = []
        while out.count < count, let item = next() { out.append(item) }
        return out
    }

    /// Gives the calling thread the lowest scheduling priority (nice 19; on Linux the nice value is a
    /// thread's own, and `setpriority(PRIO_PROCESS, 0, ...)` sets the calling thread's): the decode
    /// threads then use the cycles inference leaves (its threads' waits, its serial parts) instead of
    /// taking its cores. Measured on 2 cores, 1,000 3 MP JPEGs into ResNet-50: 8% more images/s than
    /// at the default priority, at the bound overlap allows (benchmarks/RESULTS.md).
    static func lowestPriority() {
        #if os(Linux)
        _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, 19)
        #endif
    }

    /// Stops the decode threads after their current image and waits for them; `next()` returns nil
    /// from then on. Safe to call more than once.
    public func stop() {
        condition.lock()
        stopped = true
        condition.broadcast()
        while running > 0 { condition.wait() }
        ready.removeAll()
        condition.unlock()
    }

    private func decodeLoop() {
        DecodePipeline.lowestPriority()
        while true {
            condition.lock()
            while !stopped, claimed < files.count, claimed >= taken + ahead { condition.wait() }
            guard !stopped, claimed < files.count else {
                running -= 1
                condition.broadcast()
                condition.unlock()
                return
            }
            let i = claimed
            claimed += 1
            condition.unlock()
            let item = work(i)
            condition.lock()
            // Not when stopped, taken already, or decoded by the consumer meanwhile (`next`).
            if !stopped, i >= taken, ready[i] == nil { ready[i] = item }
            condition.broadcast()
            condition.unlock()
        }
    }
}
