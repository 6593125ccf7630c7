import Foundation
import Testing
import ZooImages
import ZooErrors
import ZooTestSupport

/// The bounded decode pipeline behind `zoo features` and `zoo predict`: input order whatever the
/// thread count, bad files in their place, the bound on images decoded ahead, and `stop()`.
@Suite struct DecodePipelineTests {
    /// Fixture JPEGs and PNGs, with a garbage file and a missing one among them.
    static func inputs() throws -> (files: [String], bad: Set<Int>, folder: String) {
        let folder = NSTemporaryDirectory() + "zoo-pipeline-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let garbage = folder + "/garbage.jpg"
        try Data([0xFF, 0xD8, 0xFF, 0xE0, 1, 2, 3, 4, 5, 6, 7, 8, 9]).write(to: URL(fileURLWithPath: garbage))
        var files: [String] = []
        for name in ["rgb420.jpg", "progressive.jpg", "orient6.jpg", "rgb_odd.png", "grayj.jpg", "cmyk.jpg", "rgb422.jpg"] {
            files.append(try TestSupport.fixture("images/" + name))
        }
        files.insert(garbage, at: 2)
        files.insert(folder + "/missing.jpg", at: 6)
        return (files, [2, 6], folder)
    }

    /// Every image's pixels (or error) and digest, from a pipeline of `threads` decode threads.
    static func run(_ files: [String], threads: Int) -> [(path: String, pixels: [UInt8]?, error: String?, digest: String?)] {
        let pipeline = DecodePipeline(files: files, preprocessing: .torchvision(resize: 232), options: DecodeOptions(threads: threads, aheadPerThread: 2),
                                      digest: { String($0.count) })
        defer { pipeline.stop() }
        var out: [(path: String, pixels: [UInt8]?, error: String?, digest: String?)] = []
        while let item = pipeline.next() {
            switch item.image {
            case .success(let image): out.append((item.path, image.pixels, nil, item.digest))
            case .failure(let e): out.append((item.path, nil, e.description, item.digest))
            }
        }
        return out
    }

    @Test func resultsComeInInputOrderWhateverTheThreadCount() throws {
        let (files, bad, folder) = try Self.inputs()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let serial = Self.run(files, threads: 0)
        #expect(serial.map(\.path) == files)
        for (i, r) in serial.enumerated() {
            if bad.contains(i) {
                #expect(r.pixels == nil && r.error?.contains(files[i]) == true, "\(i): \(r.error ?? "decoded")")
            } else {
                // The digest function saw the file's own bytes (read once for both).
                let size = try FileManager.default.attributesOfItem(atPath: files[i])[.size] as? Int
                #expect(r.pixels?.count == 224 * 224 * 3 && r.digest == size.map(String.init), "\(i): \(r.error ?? "")")
            }
        }
        #expect(serial[6].digest == nil) // unreadable: no bytes to digest
        for threads in [1, 3] {
            let parallel = Self.run(files, threads: threads)
            #expect(parallel.map(\.path) == files)
            for (a, b) in zip(serial, parallel) {
                #expect(a.pixels == b.pixels && a.error == b.error && a.digest == b.digest, "\(threads) threads: \(a.path)")
            }
        }
    }

    /// At most `threads x aheadPerThread` images are decoded before the consumer takes them.
    @Test func decodesAtMostTheBoundAhead() throws {
        let files = Array(repeating: try TestSupport.fixture("images/rgb420.jpg"), count: 12)
        let counter = Counter()
        let pipeline = DecodePipeline(files: files, preprocessing: .torchvision(resize: 232), options: DecodeOptions(threads: 2, aheadPerThread: 2),
                                      digest: { _ in counter.increment(); return "" })
        defer { pipeline.stop() }
        Thread.sleep(forTimeInterval: 0.5)
        #expect(counter.value <= 4, "decoded \(counter.value) before any was taken")
        #expect(counter.value >= 1, "nothing decoded ahead")
        #expect(pipeline.next(3).count == 3)
        Thread.sleep(forTimeInterval: 0.3)
        #expect(counter.value <= 7, "decoded \(counter.value) with 3 taken")
        #expect(pipeline.next(100).count == 9)
        #expect(pipeline.next() == nil)
        #expect(counter.value == 12)
    }

    /// A decode thread that hardly runs (lowest priority on a busy machine; here: it sleeps on one image)
    /// does not hold the run: the consumer decodes that image itself after a while.
    @Test func aStarvedDecodeThreadDoesNotHoldTheRun() throws {
        let files = try ["rgb420.jpg", "progressive.jpg", "rgb422.jpg", "restart.jpg"].map { try TestSupport.fixture("images/" + $0) }
        let pipeline = DecodePipeline(files: files, preprocessing: .torchvision(resize: 232), options: DecodeOptions(threads: 1, aheadPerThread: 1),
                                      digest: { bytes in
                                          if Thread.current.name == "zoo-decode" { Thread.sleep(forTimeInterval: 3) }
                                          return String(bytes.count)
                                      })
        defer { pipeline.stop() }
        let start = Date()
        let all = pipeline.next(10)
        let seconds = Date().timeIntervalSince(start)
        #expect(all.map(\.path) == files)
        #expect(all.allSatisfy { (try? $0.image.get()) != nil })
        #expect(seconds < 2.5, "waited \(seconds) s for a starved decode thread")
    }

    /// `stop()` ends the run early: the threads return and `next()` gives nothing more.
    @Test func stopEndsTheRun() throws {
        let files = Array(repeating: try TestSupport.fixture("images/rgb420.jpg"), count: 50)
        let pipeline = DecodePipeline(files: files, preprocessing: .torchvision(resize: 232), options: DecodeOptions(threads: 2))
        #expect(pipeline.next(2).count == 2)
        pipeline.stop()
        #expect(pipeline.next() == nil)
        pipeline.stop()
    }
}

/// A thread-safe counter.
final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    func increment() { lock.lock(); count += 1; lock.unlock() }
    var value: Int { lock.lock(); defer { lock.unlock() }; return count }
}
