import Foundation
import Testing
import ZooFetch
import ZooErrors
import ZooTestSupport

/// tools/http_range_server.py on 127.0.0.1, one per test, killed when the test ends.
final class RangeServer: @unchecked Sendable {
    let process = Process()
    let root: URL
    let log: URL
    let port: Int

    init() throws {
        root = try TestSupport.temporaryDirectory()
        log = root.appendingPathComponent("requests.log")
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        let script = TestSupport.root.appendingPathComponent("tools/http_range_server.py").path
        process.executableURL = URL(fileURLWithPath: TestSupport.python)
        process.arguments = [script, root.path, log.path, "120"]
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice
        try process.run()
        // The first line is the port; give the interpreter 20 s to start.
        let box = PortBox()
        let ready = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            var text = ""
            while !text.contains("\n") {
                let d = out.fileHandleForReading.availableData
                if d.isEmpty { break }
                text += String(decoding: d, as: UTF8.self)
            }
            box.set(Int(text.trimmingCharacters(in: .whitespacesAndNewlines)))
            ready.signal()
        }
        guard ready.wait(timeout: .now() + 20) == .success, let port = box.get() else {
            kill(process.processIdentifier, SIGKILL)
            throw ZooError(.io, "the test HTTP server did not start")
        }
        self.port = port
    }

    deinit {
        stop()
        try? FileManager.default.removeItem(at: root)
    }

    /// Kills the server. SIGKILL: the test runner's children inherit a signal mask in which
    /// SIGTERM can stay blocked, so `terminate()` may never end them.
    func stop() {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }

    func url(_ path: String) -> URL { URL(string: "http://127.0.0.1:\(port)\(path)")! }

    /// Writes a deterministic file of `count` bytes into the served folder.
    func serve(_ name: String, count: Int, seed: UInt64 = 1) throws -> [UInt8] {
        var state = seed
        var bytes = [UInt8](repeating: 0, count: count)
        for i in 0..<count {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            bytes[i] = UInt8(truncatingIfNeeded: state >> 33)
        }
        try Data(bytes).write(to: root.appendingPathComponent(name))
        return bytes
    }

    /// The requests seen: (path, Range header).
    func requests() throws -> [(path: String, range: String?)] {
        let text = try String(contentsOf: log, encoding: .utf8)
        return text.split(separator: "\n").compactMap { line in
            guard let obj = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                  let path = obj["path"] as? String else { return nil }
            return (path, obj["range"] as? String)
        }
    }

    final class PortBox: @unchecked Sendable {
        private let lock = NSLock()
        private var value: Int?
        func set(_ v: Int?) { lock.lock(); value = v; lock.unlock() }
        func get() -> Int? { lock.lock(); defer { lock.unlock() }; return value }
    }
}

/// Digests by Python's hashlib, independent of the code under test.
func pythonDigest(_ path: String, _ algorithm: String) throws -> String {
    let r = try TestSupport.python("import hashlib,sys; print(hashlib.new(sys.argv[1], open(sys.argv[2],'rb').read()).hexdigest())",
                                   [algorithm, path])
    return r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
}

final class ProgressLog: @unchecked Sendable {
    private let lock = NSLock()
    private var items: [DownloadProgress] = []
    func add(_ p: DownloadProgress) { lock.lock(); items.append(p); lock.unlock() }
    var all: [DownloadProgress] { lock.lock(); defer { lock.unlock() }; return items }
}

@Suite struct FetchTests {
    let fast = Downloader(idleTimeout: 20, attempts: 1, retryDelay: 0)

    func files(in dir: URL) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []).sorted()
    }

    @Test func servedFileIsDownloadedAndVerified() throws {
        let server = try RangeServer()
        let bytes = try server.serve("weights.bin", count: 300_000)
        let sha = try pythonDigest(server.root.appendingPathComponent("weights.bin").path, "sha256")
        let md5 = try pythonDigest(server.root.appendingPathComponent("weights.bin").path, "md5")
        let out = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: out) }

        let log = ProgressLog()
        let dest = out.appendingPathComponent("a/weights.bin").path
        let result = try fast.download(server.url("/files/weights.bin"), to: dest, checksum: .sha256(sha)) { log.add($0) }
        #expect(result.sha256 == sha && result.bytes == 300_000 && result.resumedFrom == 0 && !result.alreadyPresent)
        #expect([UInt8](try Data(contentsOf: URL(fileURLWithPath: dest))) == bytes)
        #expect(files(in: out.appendingPathComponent("a")) == ["weights.bin"])
        let seen = log.all
        #expect(seen.last?.bytesReceived == 300_000 && seen.last?.totalBytes == 300_000)
        #expect(zip(seen, seen.dropFirst()).allSatisfy { $0.bytesReceived <= $1.bytesReceived })

        // MD5 (Keras) and a published prefix (torchvision) verify too.
        let dest2 = out.appendingPathComponent("b.bin").path
        #expect(try fast.download(server.url("/files/weights.bin"), to: dest2, checksum: .md5(md5)).bytes == 300_000)
        let dest3 = out.appendingPathComponent("c.bin").path
        #expect(try fast.download(server.url("/files/weights.bin"), to: dest3, checksum: .sha256Prefix(String(sha.prefix(8)))).bytes == 300_000)

        // A present, matching destination is not downloaded again.
        let before = try server.requests().count
        #expect(try fast.download(server.url("/files/weights.bin"), to: dest, checksum: .sha256(sha)).alreadyPresent)
        #expect(try server.requests().count == before)
    }

    @Test func wrongChecksumLeavesNothing() throws {
        let server = try RangeServer()
        _ = try server.serve("weights.bin", count: 50_000)
        let out = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: out) }
        let dest = out.appendingPathComponent("weights.bin").path
        for checksum: Checksum in [.sha256(String(repeating: "0", count: 64)), .sha256Prefix("deadbeef"), .md5(String(repeating: "a", count: 32))] {
            let error = try #require(throws: ZooError.self) {
                try fast.download(server.url("/files/weights.bin"), to: dest, checksum: checksum)
            }
            #expect(error.kind == .badInput)
            #expect(error.description.contains("checksum mismatch") && error.description.hasPrefix(dest))
            #expect(files(in: out).isEmpty, "left \(files(in: out))")
        }
    }

    @Test func truncatedTransferIsAnErrorAndKeepsOnlyThePartialFile() throws {
        let server = try RangeServer()
        _ = try server.serve("weights.bin", count: 300_000)
        let out = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: out) }
        let dest = out.appendingPathComponent("weights.bin").path
        let error = try #require(throws: ZooError.self) {
            try fast.download(server.url("/truncate/70000/weights.bin"), to: dest, checksum: nil)
        }
        #expect(error.kind == .io)
        #expect(error.description.contains("truncated"), "\(error)")
        #expect(!FileManager.default.fileExists(atPath: dest))
        #expect(files(in: out) == ["weights.bin.part"])
        let size = try FileManager.default.attributesOfItem(atPath: dest + ".part")[.size] as? Int
        #expect(size == 70_000)

        // Retrying within one call resumes each time but the server keeps cutting: still an error.
        let retrying = Downloader(idleTimeout: 20, attempts: 2, retryDelay: 0)
        #expect(throws: ZooError.self) { try retrying.download(server.url("/truncate/70000/weights.bin"), to: dest, checksum: nil) }
        #expect(!FileManager.default.fileExists(atPath: dest))
        #expect(try FileManager.default.attributesOfItem(atPath: dest + ".part")[.size] as? Int == 210_000)
        let ranges = try server.requests().map(\.range)
        #expect(ranges == [nil, "bytes=70000-", "bytes=140000-"])
    }

    @Test func resumesAfterInterruption() throws {
        let server = try RangeServer()
        let bytes = try server.serve("weights.bin", count: 250_000, seed: 7)
        let sha = try pythonDigest(server.root.appendingPathComponent("weights.bin").path, "sha256")
        let out = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: out) }

        // Within one call: the first transfer breaks after 60000 bytes, the second resumes.
        let dest = out.appendingPathComponent("one.bin").path
        let retrying = Downloader(idleTimeout: 20, attempts: 3, retryDelay: 0)
        let result = try retrying.download(server.url("/flaky/60000/weights.bin"), to: dest, checksum: .sha256(sha))
        #expect(result.resumedFrom == 60_000)
        #expect([UInt8](try Data(contentsOf: URL(fileURLWithPath: dest))) == bytes)
        #expect(try server.requests().map(\.range) == [nil, "bytes=60000-"])

        // Across calls: an interrupted call leaves the .part, the next call continues it.
        let dest2 = out.appendingPathComponent("two.bin").path
        #expect(throws: ZooError.self) { try fast.download(server.url("/truncate/90000/weights.bin"), to: dest2, checksum: .sha256(sha)) }
        let second = try fast.download(server.url("/files/weights.bin"), to: dest2, checksum: .sha256(sha))
        #expect(second.resumedFrom == 90_000)
        #expect([UInt8](try Data(contentsOf: URL(fileURLWithPath: dest2))) == bytes)
        #expect(try server.requests().suffix(1).first?.range == "bytes=90000-")
        #expect(files(in: out) == ["one.bin", "two.bin"])

        // A server that ignores Range sends the whole file again: the partial file restarts.
        let dest3 = out.appendingPathComponent("three.bin").path
        try Data(bytes.prefix(1000)).write(to: URL(fileURLWithPath: dest3 + ".part"))
        let third = try fast.download(server.url("/norange/weights.bin"), to: dest3, checksum: .sha256(sha))
        #expect(third.resumedFrom == 0)
        #expect([UInt8](try Data(contentsOf: URL(fileURLWithPath: dest3))) == bytes)

        // A partial file that is not a prefix of the server's file fails the checksum and is deleted.
        let dest4 = out.appendingPathComponent("four.bin").path
        try Data(repeating: 0xAB, count: 5000).write(to: URL(fileURLWithPath: dest4 + ".part"))
        #expect(throws: ZooError.self) { try fast.download(server.url("/files/weights.bin"), to: dest4, checksum: .sha256(sha)) }
        #expect(!FileManager.default.fileExists(atPath: dest4) && !FileManager.default.fileExists(atPath: dest4 + ".part"))
    }

    @Test func notFoundAndUnreachable() throws {
        let server = try RangeServer()
        let out = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: out) }
        let dest = out.appendingPathComponent("x.bin").path
        let error = try #require(throws: ZooError.self) { try fast.download(server.url("/files/missing.bin"), to: dest, checksum: nil) }
        #expect(error.kind == .io)
        #expect(error.description.contains("404"), "\(error)")
        #expect(error.description.contains("/files/missing.bin"))
        #expect(files(in: out).isEmpty)

        // A closed port on loopback: refused at once.
        let closed = server.port
        server.stop()
        let start = Date()
        let refused = try #require(throws: ZooError.self) {
            try fast.download(URL(string: "http://127.0.0.1:\(closed)/files/x.bin")!, to: dest, checksum: nil)
        }
        #expect(refused.kind == .io)
        #expect(Date().timeIntervalSince(start) < 15)
        #expect(files(in: out).isEmpty)
    }

    @Test func redirectsAndLocalFiles() throws {
        let server = try RangeServer()
        let bytes = try server.serve("weights.bin", count: 120_000, seed: 3)
        let sha = try pythonDigest(server.root.appendingPathComponent("weights.bin").path, "sha256")
        let out = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: out) }

        // A redirect is followed, and a resume through it sends Range to the final location.
        let dest = out.appendingPathComponent("r.bin").path
        try Data(bytes.prefix(30_000)).write(to: URL(fileURLWithPath: dest + ".part"))
        let result = try fast.download(server.url("/redirect/files/weights.bin"), to: dest, checksum: .sha256(sha))
        #expect(result.resumedFrom == 30_000)
        #expect([UInt8](try Data(contentsOf: URL(fileURLWithPath: dest))) == bytes)
        let seen = try server.requests()
        #expect(seen.map(\.path) == ["/redirect/files/weights.bin", "/files/weights.bin"])
        #expect(seen.last?.range == "bytes=30000-")

        // file:// sources (a local mirror) are verified and placed the same way.
        let local = server.root.appendingPathComponent("weights.bin")
        let dest2 = out.appendingPathComponent("l.bin").path
        #expect(try fast.download(local, to: dest2, checksum: .sha256(sha)).bytes == 120_000)
        #expect([UInt8](try Data(contentsOf: URL(fileURLWithPath: dest2))) == bytes)
        let dest3 = out.appendingPathComponent("bad.bin").path
        #expect(throws: ZooError.self) { try fast.download(local, to: dest3, checksum: .md5(String(repeating: "0", count: 32))) }
        #expect(throws: ZooError.self) { try fast.download(URL(string: "ftp://127.0.0.1/x")!, to: dest3, checksum: nil) }
        #expect(!FileManager.default.fileExists(atPath: dest3) && !FileManager.default.fileExists(atPath: dest3 + ".part"))
    }

    @Test func concurrentDownloadsOfOneFileAreRefused() throws {
        let server = try RangeServer()
        _ = try server.serve("weights.bin", count: 10_000)
        let out = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: out) }
        let dest = out.appendingPathComponent("w.bin").path
        // Another process holds the lock (flock is per open file, so a second open here conflicts).
        let fd = open(dest + ".part", O_RDWR | O_CREAT, 0o644)
        #expect(fd >= 0)
        #expect(flock(fd, LOCK_EX | LOCK_NB) == 0)
        let error = try #require(throws: ZooError.self) { try fast.download(server.url("/files/weights.bin"), to: dest, checksum: nil) }
        #expect(error.description.contains("another process"), "\(error)")
        close(fd)
        #expect(try fast.download(server.url("/files/weights.bin"), to: dest, checksum: nil).bytes == 10_000)
        #expect(files(in: out) == ["w.bin"])
    }

    @Test func cacheFolderFollowsTheEnvironment() throws {
        #expect(try ModelCache.defaultRoot(environment: ["ZOO_HOME": "/z", "XDG_CACHE_HOME": "/x", "HOME": "/h"]) == "/z")
        #expect(try ModelCache.defaultRoot(environment: ["XDG_CACHE_HOME": "/x", "HOME": "/h"]) == "/x/modelzoo")
        #expect(try ModelCache.defaultRoot(environment: ["XDG_CACHE_HOME": "relative", "HOME": "/h"]) == "/h/.cache/modelzoo")
        #expect(try ModelCache.defaultRoot(environment: ["ZOO_HOME": "", "HOME": "/h"]) == "/h/.cache/modelzoo")
        #expect(throws: ZooError.self) { try ModelCache.defaultRoot(environment: [:]) }
        let cache = ModelCache(root: "/c")
        #expect(try cache.downloadPath("resnet50-11ad3fa6.pth") == "/c/downloads/resnet50-11ad3fa6.pth")
        #expect(try cache.modelPath("resnet50") == "/c/models/resnet50.safetensors")
        #expect(throws: ZooError.self) { try cache.downloadPath("../etc/passwd") }
        #expect(throws: ZooError.self) { try cache.modelPath("") }
    }

    @Test func checksumsParse() throws {
        #expect(try Checksum(parsing: "sha256:" + String(repeating: "A", count: 64)) == .sha256(String(repeating: "a", count: 64)))
        #expect(try Checksum(parsing: String(repeating: "b", count: 32)) == .md5(String(repeating: "b", count: 32)))
        #expect(try Checksum(parsing: "sha256-prefix:11ad3fa6") == .sha256Prefix("11ad3fa6"))
        #expect(Checksum.torchvisionPrefix(fileName: "resnet50-11ad3fa6.pth") == .sha256Prefix("11ad3fa6"))
        #expect(Checksum.torchvisionPrefix(fileName: "mobilenet_v3_large-5c1a4163.pth") == .sha256Prefix("5c1a4163"))
        #expect(Checksum.torchvisionPrefix(fileName: "vgg16_weights_tf_dim_ordering_tf_kernels.h5") == nil)
        let full = String(repeating: "c", count: 64), md5 = String(repeating: "d", count: 32)
        #expect(try Checksum.best(sha256: full, md5: md5, sha256Prefix: "11ad3fa6", fileName: "x-11ad3fa6.pth") == .sha256(full))
        #expect(try Checksum.best(sha256: nil, md5: md5, sha256Prefix: "11ad3fa6", fileName: nil) == .md5(md5))
        #expect(try Checksum.best(sha256: "", md5: nil, sha256Prefix: "11ad3fa6", fileName: nil) == .sha256Prefix("11ad3fa6"))
        #expect(try Checksum.best(sha256: nil, md5: nil, sha256Prefix: nil, fileName: "resnet18-f37072fd.pth") == .sha256Prefix("f37072fd"))
        #expect(try Checksum.best(sha256: nil, md5: nil, sha256Prefix: nil, fileName: "vgg16.h5") == nil)
        #expect(throws: ZooError.self) { try Checksum.best(sha256: "abc", md5: nil, sha256Prefix: nil, fileName: nil) }
        for bad in ["sha256:xyz", "md5:12", "", "sha256-prefix:12", "zzzz"] {
            #expect(throws: ZooError.self, "\(bad)") { try Checksum(parsing: bad) }
        }
    }
}
