import Foundation
import Testing
import ZooFormats
import ZooErrors
import ZooJSON
import ZooTestSupport

/// The user's first hour, through the built `zoo`: convert, predict, features, fetch (from a
/// server on 127.0.0.1), list --cached. Expected values come from torchvision (tools/fixtures/gen_predict.py).
@Suite(.serialized) struct UserCommandsTests {
    static let image = TestSupport.root.appendingPathComponent("zoo/samples/sailboat.jpg").path

    static func reference() throws -> JSONValue {
        let url = URL(fileURLWithPath: try TestSupport.fixture("predict/reference.json"))
        return try JSONValue.parse(String(decoding: try Data(contentsOf: url), as: UTF8.self))
    }

    /// Converts the torchvision fixture into `dir` and returns the native checkpoint's path.
    static func converted(in dir: URL) throws -> String {
        let out = dir.appendingPathComponent("m.safetensors").path
        let r = try TestSupport.zoo(["convert", try TestSupport.fixture("predict/mobilenet_v3_small.pth"), "--arch", "mobilenet_v3_small", "-o", out])
        #expect(r.status == 0, "\(r.stderr)")
        return out
    }

    @Test func predictMatchesTorchvisionOnTheSampleImage() throws {
        let dir = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let ckpt = try Self.converted(in: dir)
        let r = try TestSupport.zoo(["predict", ckpt, Self.image, "--top", "5", "--json"])
        #expect(r.status == 0, "\(r.stderr)")
        let doc = try JSONValue.parse(r.stdout)
        let top = try #require(doc["top"]?.arrayValue)
        let want = try #require(Self.reference()["top5"]?.arrayValue)
        #expect(top.count == 5)
        // The repository's copy of the reference labels (the catalogue compiles them in).
        let labels = try String(contentsOfFile: TestSupport.root.appendingPathComponent("zoo/imagenet-1k-labels.txt").path, encoding: .utf8)
            .split(separator: "\n").map(String.init)
        for (got, ref) in zip(top, want) {
            let index = try #require(ref.arrayValue?[0].intValue)
            let p = try #require(ref.arrayValue?[1].doubleValue)
            #expect(got["index"]?.intValue == index)
            #expect(abs((got["probability"]?.doubleValue ?? -1) - p) < 1e-4)
            #expect(got["label"]?.stringValue == labels[index])
        }
        #expect(doc["image"]?.stringValue == Self.image)
        // Text output: one table per image.
        let text = try TestSupport.zoo(["predict", ckpt, Self.image, Self.image, "--top", "2"])
        #expect(text.status == 0)
        #expect(text.stdout.components(separatedBy: "probability  index  label").count == 3)
    }

    @Test func customLabelsFileAndItsErrors() throws {
        let dir = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let ckpt = try Self.converted(in: dir)
        let labels = dir.appendingPathComponent("labels.txt")
        try (0..<1000).map { "class-\($0)" }.joined(separator: "\n").write(to: labels, atomically: true, encoding: .utf8)
        let r = try TestSupport.zoo(["predict", ckpt, Self.image, "--labels", labels.path, "--top", "1", "--json"])
        #expect(r.status == 0, "\(r.stderr)")
        let index = try #require(Self.reference()["top5"]?.arrayValue?.first?.arrayValue?.first?.intValue)
        #expect(try JSONValue.parse(r.stdout)["top"]?.arrayValue?.first?["label"]?.stringValue == "class-\(index)")
        try "a\nb\n".write(to: labels, atomically: true, encoding: .utf8)
        let bad = try TestSupport.zoo(["predict", ckpt, Self.image, "--labels", labels.path])
        #expect(bad.status == 2)
        #expect(bad.stderr.contains("2 labels for a 1000-class head"))
        let notImage = try TestSupport.zoo(["predict", ckpt, labels.path])
        #expect(notImage.status == 2)
        #expect(notImage.stderr.hasPrefix("zoo: \(labels.path)"), "\(notImage.stderr)")
    }

    @Test func featuresMatchTorchvisionEmbeddingsAndStageMaps() throws {
        let dir = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let ckpt = try Self.converted(in: dir)
        let out = dir.appendingPathComponent("emb.safetensors").path
        let r = try TestSupport.zoo(["features", ckpt, Self.image, Self.image, "-o", out])
        #expect(r.status == 0, "\(r.stderr)")
        let f = try SafetensorsFile(path: out)
        let emb = try f.tensor(named: "embeddings")
        #expect(emb.shape == [2, 576])
        let reference = try Self.reference()
        let wantValues = reference["embedding"]?.arrayValue?.compactMap { $0.doubleValue }
        let want = try #require(wantValues)
        let got = emb.floats()
        let scale = want.map(abs).max() ?? 1
        let err = zip(got.prefix(576), want).map { abs(Double($0) - $1) }.max() ?? 1
        #expect(err / scale < 1e-4, "max rel error \(err / scale)")
        #expect(Array(got[576...]) == Array(got[..<576]))
        #expect(f.metadataValue("zoo.images") == "[\"\(Self.image)\",\"\(Self.image)\"]")

        let maps = dir.appendingPathComponent("maps.safetensors").path
        let s = try TestSupport.zoo(["features", ckpt, Self.image, "-o", maps, "--stages", "1,2,3,4"])
        #expect(s.status == 0, "\(s.stderr)")
        let m = try SafetensorsFile(path: maps)
        #expect(Set(m.entries.map(\.name)) == ["000000.features.1", "000000.features.3", "000000.features.8", "000000.features.12"])
        #expect(m.entry(named: "000000.features.12")?.shape == [1, 576, 7, 7])
        #expect(m.entry(named: "000000.features.1")?.shape == [1, 16, 56, 56])
        // The values: torchvision's maps at the same nodes for the same image (tools/fixtures/gen_predict.py),
        // globally and per channel (MapParity).
        let stages = try SafetensorsFile(path: try TestSupport.fixture("predict/stages.safetensors"))
        let tolerances = try #require(reference["stage_channel_tolerance"])
        for node in ["features.1", "features.3", "features.8", "features.12"] {
            let ref = try stages.tensor(named: node)
            let entry = try #require(m.entry(named: "000000.\(node)"))
            let e = try MapParity.compare(try m.tensor(entry), ref)
            let ct = try #require(tolerances[node]?.doubleValue, "no per-channel tolerance for \(node)")
            #expect(e.global <= 1e-4 && e.perChannel <= ct, "\(node): \(e) (per-channel tolerance \(ct))")
        }
        // Refuses to overwrite without --force.
        let again = try TestSupport.zoo(["features", ckpt, Self.image, "-o", maps])
        #expect(again.status == 3)
    }

    /// `zoo fetch` against a real HTTP server on 127.0.0.1, then predict by name from the cache.
    @Test func fetchVerifiesConvertsAndCaches() throws {
        let dir = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let served = dir.appendingPathComponent("served")
        try FileManager.default.createDirectory(at: served, withIntermediateDirectories: true)
        let pth = try TestSupport.fixture("predict/mobilenet_v3_small.pth")
        // Under its own name, and under the catalogue's file name (whose published SHA-256 prefix it cannot match).
        try FileManager.default.copyItem(atPath: pth, toPath: served.appendingPathComponent("mine.pth").path)
        try FileManager.default.copyItem(atPath: pth, toPath: served.appendingPathComponent("mobilenet_v3_small-047dcff4.pth").path)
        let server = try LocalServer(root: served.path, log: dir.appendingPathComponent("log.jsonl").path)
        defer { server.stop() }
        let home = dir.appendingPathComponent("home").path
        let env = ["ZOO_HOME": home]
        let sha = try #require(Self.reference()["sha256"]?.stringValue)

        // Wrong checksum (the catalogue's published prefix): refused, nothing cached.
        let wrong = try TestSupport.zoo(["fetch", "mobilenet_v3_small"], environment: ["ZOO_HOME": home, "ZOO_MIRROR": "\(server.base)/files/"])
        #expect(wrong.status == 2, "\(wrong.stderr)")
        #expect(wrong.stderr.contains("checksum mismatch"), "\(wrong.stderr)")
        #expect(wrong.stderr.split(separator: "\n").count == 1)
        #expect(!FileManager.default.fileExists(atPath: home + "/models/mobilenet_v3_small-IMAGENET1K_V1.safetensors"))
        #expect(!FileManager.default.fileExists(atPath: home + "/downloads/mobilenet_v3_small-047dcff4.pth"))

        // 404.
        let missing = try TestSupport.zoo(["fetch", "mobilenet_v3_small", "--url", "\(server.base)/files/nope.pth", "--checksum", "sha256:\(sha)"], environment: env)
        #expect(missing.status == 3, "\(missing.stderr)")
        #expect(missing.stderr.contains("404"), "\(missing.stderr)")

        // A served file with its checksum: downloaded, verified, converted, cached.
        let ok = try TestSupport.zoo(["fetch", "mobilenet_v3_small", "--url", "\(server.base)/files/mine.pth", "--checksum", "sha256:\(sha)"], environment: env)
        #expect(ok.status == 0, "\(ok.stderr)")
        let model = home + "/models/mobilenet_v3_small-IMAGENET1K_V1.safetensors"
        #expect(ok.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == model)
        let native = try NativeCheckpoint(path: model)
        #expect(native.metadata.architecture == "mobilenet_v3_small")
        #expect(native.metadata.source?.sha256 == sha)

        let listed = try TestSupport.zoo(["list", "--cached", "--json"], environment: env)
        #expect(listed.status == 0)
        #expect(try JSONValue.parse(listed.stdout).arrayValue?.compactMap { $0["name"]?.stringValue } == ["mobilenet_v3_small-IMAGENET1K_V1"])

        // predict by name resolves the cached checkpoint.
        let byName = try TestSupport.zoo(["predict", "mobilenet_v3_small", Self.image, "--top", "1", "--json"], environment: env)
        #expect(byName.status == 0, "\(byName.stderr)")
        let index = try #require(Self.reference()["top5"]?.arrayValue?.first?.arrayValue?.first?.intValue)
        #expect(try JSONValue.parse(byName.stdout)["top"]?.arrayValue?.first?["index"]?.intValue == index)

        // A name with nothing cached says what to do.
        let notCached = try TestSupport.zoo(["predict", "resnet50", Self.image], environment: env)
        #expect(notCached.status == 1)
        #expect(notCached.stderr.contains("zoo fetch resnet50"), "\(notCached.stderr)")
    }
}

/// tools/http_range_server.py on 127.0.0.1 (loopback only), stopped by the test.
final class LocalServer {
    let process = Process()
    let base: String

    init(root: String, log: String) throws {
        process.executableURL = URL(fileURLWithPath: TestSupport.python)
        process.arguments = [TestSupport.root.appendingPathComponent("tools/http_range_server.py").path, root, log, "120"]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        var line = Data()
        while let byte = try pipe.fileHandleForReading.read(upToCount: 1), !byte.isEmpty, byte != Data([0x0A]) { line.append(byte) }
        guard let port = Int(String(decoding: line, as: UTF8.self).trimmingCharacters(in: .whitespaces)) else {
            process.terminate()
            throw ZooError(.io, "the test HTTP server did not start")
        }
        base = "http://127.0.0.1:\(port)"
    }

    /// SIGKILL: children of the test runner can inherit a mask in which SIGTERM stays blocked.
    func stop() {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }
}
