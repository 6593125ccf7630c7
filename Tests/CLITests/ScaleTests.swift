import Foundation
import Testing
import ZooFormats
import ZooJSON
import ZooTestSupport

/// `zoo features` / `zoo predict` at scale, through the built tool: directory, pattern and list inputs in
/// their documented order; bad images stopping the run or skipped and reported (exit 4); sharded output that
/// merges (`zoo merge-features`) to the bytes of a single-process run for 1, 2 and 3 processes; `--resume`
/// after `kill -9` at several points giving exactly the uninterrupted result.
@Suite(.serialized) struct ScaleTests {
    /// A folder with the model converted and 100 real images (scikit-learn's digits as PNGs, 10 class folders).
    static func workspace() throws -> (dir: URL, model: String, photos: String) {
        let dir = try TestSupport.temporaryDirectory()
        let model = dir.appendingPathComponent("m.safetensors").path
        let c = try TestSupport.zoo(["convert", try TestSupport.fixture("predict/mobilenet_v3_small.pth"), "--arch", "mobilenet_v3_small", "-o", model, "-q"])
        #expect(c.status == 0, "\(c.stderr)")
        let photos = dir.appendingPathComponent("photos").path
        try FileManager.default.copyItem(atPath: try TestSupport.fixture("transfer/digits/train"), toPath: photos)
        return (dir, model, photos)
    }

    static func images(_ path: String) throws -> [String] {
        let f = try SafetensorsFile(path: path)
        return try JSONValue.parse(f.metadataValue("zoo.images") ?? "[]").arrayValue?.compactMap(\.stringValue) ?? []
    }

    static func bytes(_ path: String) throws -> Data { try Data(contentsOf: URL(fileURLWithPath: path)) }

    /// The objects of JSON Lines output.
    static func jsonLines(_ text: String) throws -> [JSONValue] {
        try text.split(separator: "\n").map { try JSONValue.parse(String($0)) }
    }

    @Test func directoriesPatternsAndListsExpandInTheirDocumentedOrder() throws {
        let dir = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let model = dir.appendingPathComponent("m.safetensors").path
        let c = try TestSupport.zoo(["convert", try TestSupport.fixture("predict/mobilenet_v3_small.pth"), "--arch", "mobilenet_v3_small", "-o", model, "-q"])
        #expect(c.status == 0, "\(c.stderr)")
        let tree = dir.appendingPathComponent("tree")
        let sample = TestSupport.root.appendingPathComponent("zoo/samples/sailboat.jpg").path
        let fm = FileManager.default
        for sub in ["a", "c/d"] { try fm.createDirectory(at: tree.appendingPathComponent(sub), withIntermediateDirectories: true) }
        for name in ["b.png", "a/x.jpeg", "a.jpg", "c/d/e.jpg", "C.JPG"] {
            try fm.copyItem(atPath: sample, toPath: tree.appendingPathComponent(name).path)
        }
        try Data("not an image".utf8).write(to: tree.appendingPathComponent("notes.txt"))
        // A link back to the tree: entered once (the tree itself), so the walk ends.
        try fm.createSymbolicLink(atPath: tree.appendingPathComponent("c/loop").path, withDestinationPath: tree.path)
        let t = tree.path
        let out = dir.appendingPathComponent("e.safetensors").path
        let r = try TestSupport.zoo(["features", model, t, "-o", out, "-q"])
        #expect(r.status == 0, "\(r.stderr)")
        // Each directory's entries in byte order ("C.JPG" < "a" < "a.jpg" < "b.png" < "c"), a folder's images where it sorts.
        #expect(try Self.images(out) == ["\(t)/C.JPG", "\(t)/a/x.jpeg", "\(t)/a.jpg", "\(t)/b.png", "\(t)/c/d/e.jpg"])
        let list = dir.appendingPathComponent("list.txt")
        try Data("\(t)/b.png\n\n\(t)/c/*/*.jpg\n".utf8).write(to: list)
        let mixed = dir.appendingPathComponent("m.safetensors.out").path
        let m = try TestSupport.zoo(["features", model, "\(t)/a/*.jpeg", "--files-from", list.path, "-o", mixed, "-q"])
        #expect(m.status == 0, "\(m.stderr)")
        // The pattern matches through the link too (c/loop/a.jpg is tree/a.jpg): a pattern is the shell's.
        #expect(try Self.images(mixed) == ["\(t)/a/x.jpeg", "\(t)/b.png", "\(t)/c/d/e.jpg", "\(t)/c/loop/a.jpg"])
        // The rows are the images' own: the same image gives the same row wherever it is.
        let e = try SafetensorsFile(path: out).tensor(named: "embeddings").floats(), f = try SafetensorsFile(path: mixed).tensor(named: "embeddings").floats()
        #expect(e.count == 5 * 576 && f.count == 4 * 576 && Array(e[576..<1152]) == Array(f[0..<576]))
        // A pattern that matches nothing is a usage error; predict takes the same inputs.
        let none = try TestSupport.zoo(["features", model, "\(t)/*.gif", "-o", dir.appendingPathComponent("x.safetensors").path])
        #expect(none.status == 1 && none.stderr.contains("no file matches"), "\(none.stderr)")
        let p = try TestSupport.zoo(["predict", model, t, "--top", "1", "--json", "-q"])
        #expect(p.status == 0, "\(p.stderr)")
        #expect(try Self.jsonLines(p.stdout).compactMap { $0["image"]?.stringValue } == (try Self.images(out)))
    }

    @Test func badImagesStopTheRunOrAreSkippedAndReported() throws {
        let (dir, model, photos) = try Self.workspace()
        defer { try? FileManager.default.removeItem(at: dir) }
        let sample = try Self.bytes(TestSupport.root.appendingPathComponent("zoo/samples/sailboat.jpg").path)
        let truncated = photos + "/five/truncated.jpg", garbage = photos + "/one/garbage.png", missing = dir.appendingPathComponent("missing.jpg").path
        try sample.prefix(sample.count / 2).write(to: URL(fileURLWithPath: truncated))
        var rng = SystemRandomNumberGenerator()
        try Data((0..<4096).map { _ in UInt8.random(in: 0...255, using: &rng) }).write(to: URL(fileURLWithPath: garbage))
        let list = dir.appendingPathComponent("list.txt")
        try Data("\(missing)\n".utf8).write(to: list)

        let out = dir.appendingPathComponent("e.safetensors").path
        let stop = try TestSupport.zoo(["features", model, photos, "--files-from", list.path, "-o", out])
        #expect(stop.status == 2, "\(stop.stderr)")
        #expect(stop.stderr.split(separator: "\n").count == 1 && stop.stderr.contains(truncated), "\(stop.stderr)")
        #expect(!FileManager.default.fileExists(atPath: out))

        let report = dir.appendingPathComponent("errors.jsonl").path
        let skip = try TestSupport.zoo(["features", model, photos, "--files-from", list.path, "-o", out, "--skip-bad", "--errors", report, "--json"])
        #expect(skip.status == 4, "\(skip.stderr)")
        #expect(skip.stderr.contains("skipped 3 images"), "\(skip.stderr)")
        let lines = try String(contentsOfFile: report, encoding: .utf8).split(separator: "\n").map { try JSONValue.parse(String($0)) }
        // In input order: five/ sorts before one/, the list comes after the arguments.
        #expect(lines.compactMap { $0["path"]?.stringValue } == [truncated, garbage, missing])
        #expect(lines.allSatisfy { !($0["reason"]?.stringValue ?? "").isEmpty })
        let summary = try JSONValue.parse(skip.stdout)
        #expect(summary["rows"]?.intValue == 100 && summary["skipped"]?.intValue == 3 && summary["images"]?.intValue == 103)
        // The rows equal a run over the good images only (the fixture's own tree), bit for bit.
        let fixture = try TestSupport.fixture("transfer/digits/train")
        let good = dir.appendingPathComponent("good.safetensors").path
        let g = try TestSupport.zoo(["features", model, fixture, "-o", good, "-q"])
        #expect(g.status == 0, "\(g.stderr)")
        #expect(try Self.images(out) == Self.images(good).map { photos + $0.dropFirst(fixture.count) })
        #expect(try SafetensorsFile(path: out).tensor(named: "embeddings").floats() == SafetensorsFile(path: good).tensor(named: "embeddings").floats())

        // predict: the same skip and report, exit 4, results for the good ones.
        let p = try TestSupport.zoo(["predict", model, photos, "--skip-bad", "--top", "1", "--json", "-q"])
        #expect(p.status == 4, "\(p.stderr)")
        #expect(try Self.jsonLines(p.stdout).count == 100)
    }

    /// `--fast-decode` reaches the decoder (camera-size JPEGs give other embeddings, close to the exact
    /// ones), the decode threads change no byte, and the flag is refused where it does not apply.
    @Test func fastDecodeIsWiredAndDecodeThreadsChangeNoByte() throws {
        let (dir, model, _) = try Self.workspace()
        defer { try? FileManager.default.removeItem(at: dir) }
        let photos = try ["draft_half", "draft_quarter", "draft_eighth", "draft_gray", "draft_orient6"].map { try TestSupport.fixture("images/\($0).jpg") }
        func features(_ name: String, _ extra: [String]) throws -> [Float] {
            let out = dir.appendingPathComponent(name).path
            let r = try TestSupport.zoo(["features", model] + photos + ["-o", out, "-q", "--batch", "2"] + extra)
            #expect(r.status == 0, "\(r.stderr)")
            return try SafetensorsFile(path: out).tensor(named: "embeddings").floats()
        }
        let exact = try features("exact.safetensors", ["--decode-threads", "0"])
        #expect(try features("two.safetensors", ["--decode-threads", "2"]) == exact)
        let fast = try features("fast.safetensors", ["--fast-decode"])
        let scale = exact.map(abs).max() ?? 0
        let d = zip(exact, fast).map { abs($0 - $1) }.max() ?? 0
        #expect(d > 1e-4 * scale && d < 0.2 * scale, "fast decode moved the embeddings by \(d / scale) of their range")
        let p = try TestSupport.zoo(["predict", model] + photos + ["--fast-decode", "--top", "1", "--json", "-q"])
        let lines = try Self.jsonLines(p.stdout)
        #expect(p.status == 0 && lines.count == 5, "\(p.stderr)")
        let stages = try TestSupport.zoo(["features", model, photos[0], "--stages", "1", "--fast-decode", "-o", dir.appendingPathComponent("s.safetensors").path])
        #expect(stages.status != 0 && stages.stderr.contains("--fast-decode"), "\(stages.stderr)")
        let negative = try TestSupport.zoo(["features", model, photos[0], "--decode-threads", "-1", "-o", dir.appendingPathComponent("n.safetensors").path])
        #expect(negative.status != 0 && negative.stderr.contains("--decode-threads"), "\(negative.stderr)")
    }

    @Test func shardsOfOneTwoAndThreeProcessesMergeToTheSingleProcessBytes() throws {
        let (dir, model, photos) = try Self.workspace()
        defer { try? FileManager.default.removeItem(at: dir) }
        let garbage = photos + "/one/garbage.png"
        try Data(repeating: 7, count: 1000).write(to: URL(fileURLWithPath: garbage))
        let single = dir.appendingPathComponent("single.safetensors").path
        let r = try TestSupport.zoo(["features", model, photos, "-o", single, "--skip-bad", "-q"])
        #expect(r.status == 4, "\(r.stderr)")
        let reference = try Self.bytes(single)
        for n in 1...3 {
            let shards = dir.appendingPathComponent("shards-\(n)").path
            for i in 0..<n {
                let s = try TestSupport.zoo(["features", model, photos, "-o", shards, "--shard-size", "7", "--shard-index", "\(i)", "--shard-count", "\(n)",
                                             "--skip-bad", "-q", "--batch", "\(3 + i)", "--decode-threads", "\(2 * i)"])
                // garbage.png is input 50 (after eight, five, four, nine and one's digits): shard 7, process 7 % n.
                #expect(s.status == (7 % n == i ? 4 : 0), "\(s.stderr)")
            }
            let names = try FileManager.default.contentsOfDirectory(atPath: shards).filter { $0.hasPrefix("shard-") }
            #expect(names.count == 15) // 101 inputs in shards of 7
            let merged = dir.appendingPathComponent("merged-\(n).safetensors").path
            let m = try TestSupport.zoo(["merge-features", shards, "-o", merged, "--json"])
            #expect(m.status == 0, "\(m.stderr)")
            #expect(try JSONValue.parse(m.stdout)["skipped"]?.intValue == 1)
            #expect(try Self.bytes(merged) == reference, "\(n) processes")
        }
        // Negative controls: a missing shard, and shards of another run, are refused by name.
        let shards = dir.appendingPathComponent("shards-3").path
        try FileManager.default.removeItem(atPath: shards + "/shard-000004.safetensors")
        let missing = try TestSupport.zoo(["merge-features", shards, "-o", dir.appendingPathComponent("x.safetensors").path])
        #expect(missing.status == 2 && missing.stderr.contains("shard 4 of 15 is missing"), "\(missing.stderr)")
        let other = dir.appendingPathComponent("other").path
        let o = try TestSupport.zoo(["features", model, photos + "/one", "-o", other, "--shard-size", "7", "--skip-bad", "-q"])
        #expect(o.status == 4, "\(o.stderr)")
        let mixed = try TestSupport.zoo(["merge-features", dir.appendingPathComponent("shards-1").path, other, "-o", dir.appendingPathComponent("y.safetensors").path])
        #expect(mixed.status == 2 && mixed.stderr.contains("another run"), "\(mixed.stderr)")
        #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent("y.safetensors").path))
    }

    @Test func killedAtAnyPointThenResumedEqualsTheUninterruptedRun() throws {
        let (dir, model, photos) = try Self.workspace()
        defer { try? FileManager.default.removeItem(at: dir) }
        let single = dir.appendingPathComponent("single.safetensors").path
        #expect(try TestSupport.zoo(["features", model, photos, "-o", single, "-q"]).status == 0)
        let shards = dir.appendingPathComponent("shards").path
        let args = ["features", model, photos, "-o", shards, "--shard-size", "4", "-q", "--threads", "1"]
        // Three kills at random moments, each once the run (the first, then resumed ones) has written two new
        // shards: mid-shard, mid-write or mid-hash, whatever the moment.
        var killed = 0
        for _ in 0..<3 {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: TestSupport.zooBinary)
            p.arguments = args + (killed == 0 ? [] : ["--resume"])
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle.nullDevice
            try p.run()
            let deadline = Date().addingTimeInterval(120)
            func count() -> Int { ((try? FileManager.default.contentsOfDirectory(atPath: shards)) ?? []).filter { $0.hasPrefix("shard-") }.count }
            let before = count()
            while count() < before + 2, p.isRunning, Date() < deadline { usleep(20_000) }
            usleep(UInt32.random(in: 0...150_000))
            if p.isRunning { kill(p.processIdentifier, SIGKILL); killed += 1 }
            p.waitUntilExit()
        }
        #expect(killed == 3)
        // Leftovers of a kill are temporary files only; every shard file present is complete.
        let r = try TestSupport.zoo(args + ["--resume", "--json"])
        #expect(r.status == 0, "\(r.stderr)")
        let summary = try JSONValue.parse(r.stdout)
        #expect((summary["resumed"]?.intValue ?? 0) >= 1 && summary["shards"]?.intValue == 25)
        let merged = dir.appendingPathComponent("merged.safetensors").path
        #expect(try TestSupport.zoo(["merge-features", shards, "-o", merged, "-q"]).status == 0)
        #expect(try Self.bytes(merged) == Self.bytes(single))
        // A changed image makes its shard run again; the others are kept.
        let changed = photos + "/zero/" + (try FileManager.default.contentsOfDirectory(atPath: photos + "/zero").sorted()[0])
        try Self.bytes(photos + "/one/" + (try FileManager.default.contentsOfDirectory(atPath: photos + "/one").sorted()[0]))
            .write(to: URL(fileURLWithPath: changed))
        let again = try TestSupport.zoo(args + ["--resume", "--json"])
        #expect(again.status == 0, "\(again.stderr)")
        #expect(try JSONValue.parse(again.stdout)["resumed"]?.intValue == 24)
        // Without --resume or --force an existing run is not overwritten.
        let refused = try TestSupport.zoo(args)
        #expect(refused.status == 3 && refused.stderr.contains("--resume"), "\(refused.stderr)")
    }

    /// tools/ray_features.py on a private Ray cluster (loopback, 2 CPUs): three `zoo features` tasks write the
    /// shards, `zoo merge-features` joins them, and the result is the single-process file, byte for byte. The
    /// driver stops its cluster: no raylet is left.
    @Test(.timeLimit(.minutes(6))) func rayTasksMergeToTheSingleProcessBytes() throws {
        let (dir, model, photos) = try Self.workspace()
        defer { try? FileManager.default.removeItem(at: dir) }
        let single = dir.appendingPathComponent("single.safetensors").path
        #expect(try TestSupport.zoo(["features", model, photos, "-o", single, "-q"]).status == 0)
        let merged = dir.appendingPathComponent("ray.safetensors").path
        let driver = TestSupport.root.appendingPathComponent("tools/ray_features.py").path
        let r = try TestSupport.run(TestSupport.python, [driver, "--local", "2", "--zoo", TestSupport.zooBinary, "--model", model,
                                                         "--shards", dir.appendingPathComponent("shards").path, "--output", merged,
                                                         "--tasks", "3", "--shard-size", "9", "--timeout", "240", "--", photos],
                                    environment: ["RAY_USAGE_STATS_ENABLED": "0"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(try Self.bytes(merged) == Self.bytes(single))
        let shards = try FileManager.default.contentsOfDirectory(atPath: dir.appendingPathComponent("shards").path)
        #expect(shards.filter { $0.hasPrefix("manifest-") }.sorted() == ["manifest-0-of-3.json", "manifest-1-of-3.json", "manifest-2-of-3.json"])
        var left = true
        for _ in 0..<50 where left {
            left = (try? TestSupport.run("/usr/bin/pgrep", ["-f", "raylet"]))?.status == 0
            if left { usleep(200_000) }
        }
        #expect(!left, "a raylet is still running after the driver returned")
    }

    /// `predict --json` streams: the first line is readable while the process is still working on the rest.
    @Test func predictStreamsJSONLinesAsResultsArrive() throws {
        let (dir, model, photos) = try Self.workspace()
        defer { try? FileManager.default.removeItem(at: dir) }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: TestSupport.zooBinary)
        p.arguments = ["predict", model, photos, photos, photos, "--json", "--top", "2", "--batch", "4", "--threads", "1"]
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = FileHandle.nullDevice
        try p.run()
        var received = Data()
        while !received.contains(UInt8(ascii: "\n")) {
            let chunk = pipe.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            received += chunk
        }
        let runningAtFirstLine = p.isRunning
        received += pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        #expect(p.terminationStatus == 0)
        #expect(runningAtFirstLine, "the first result came only at the end")
        let lines = try Self.jsonLines(String(decoding: received, as: UTF8.self))
        #expect(lines.count == 300 && lines.allSatisfy { $0["top"]?.arrayValue?.count == 2 })
    }
}
