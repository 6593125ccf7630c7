import Foundation
import Testing
import ZooFormats
import ZooJSON
import ZooTestSupport

/// `zoo features` opens the checkpoint once and each image once, counted with inotify by
/// tools/count_opens.py: with a crop or an exact resize (every catalogue recipe) the output is laid
/// out without touching the images, and each is decoded once while its maps are computed. (A
/// resize-only recipe reads each image's header first, `ImageDecoder.size`: ImageSizeTests.)
@Suite struct FeaturesDecodeOnceTests {
    static func opens(_ files: [String], _ arguments: [String], in dir: URL) throws -> (TestSupport.ProcessResult, [String: Int]) {
        let counts = dir.appendingPathComponent("counts-\(UUID().uuidString).json").path
        let script = TestSupport.root.appendingPathComponent("tools/count_opens.py").path
        let r = try TestSupport.run(TestSupport.python, [script, "--out", counts] + files + ["--", TestSupport.zooBinary] + arguments)
        let json = try JSONValue.parse(String(decoding: try Data(contentsOf: URL(fileURLWithPath: counts)), as: UTF8.self))
        var out: [String: Int] = [:]
        for f in files { out[f] = json[f]?.intValue.map { Int($0) } ?? -1 }
        return (r, out)
    }

    @Test func stagesDecodeEachImageOnceAndOpenTheCheckpointOnce() throws {
        let dir = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let ckpt = dir.appendingPathComponent("m.safetensors").path
        let c = try TestSupport.zoo(["convert", try TestSupport.fixture("predict/mobilenet_v3_small.pth"), "--arch", "mobilenet_v3_small", "-o", ckpt])
        #expect(c.status == 0, "\(c.stderr)")
        let sample = TestSupport.root.appendingPathComponent("zoo/samples/sailboat.jpg")
        let a = dir.appendingPathComponent("a.jpg").path, b = dir.appendingPathComponent("b.jpg").path
        try FileManager.default.copyItem(atPath: sample.path, toPath: a)
        try FileManager.default.copyItem(atPath: sample.path, toPath: b)

        let maps = dir.appendingPathComponent("maps.safetensors").path
        let (s, stages) = try Self.opens([ckpt, a, b], ["features", ckpt, a, b, "-o", maps, "--stages", "1,4"], in: dir)
        #expect(s.status == 0, "\(s.stderr)")
        #expect(stages == [ckpt: 1, a: 1, b: 1], "opens with --stages: \(stages)")
        let m = try SafetensorsFile(path: maps)
        #expect(m.entry(named: "000001.features.12")?.shape == [1, 576, 7, 7])

        let emb = dir.appendingPathComponent("emb.safetensors").path
        let (e, pooled) = try Self.opens([ckpt, a, b], ["features", ckpt, a, b, "-o", emb], in: dir)
        #expect(e.status == 0, "\(e.stderr)")
        #expect(pooled == [ckpt: 1, a: 1, b: 1], "opens for embeddings: \(pooled)")

        // Shards hash each image for --resume: from the same read as its pixels (the decode pipeline).
        let shards = dir.appendingPathComponent("shards").path
        let (h, sharded) = try Self.opens([a, b], ["features", ckpt, a, b, "-o", shards, "--shard-size", "1"], in: dir)
        #expect(h.status == 0, "\(h.stderr)")
        #expect(sharded == [a: 1, b: 1], "opens with --shard-size: \(sharded)")

        // Negative control: the counter does count repeated opens (the same image given twice).
        let twice = dir.appendingPathComponent("twice.safetensors").path
        let (t, repeated) = try Self.opens([a], ["features", ckpt, a, a, "-o", twice, "--stages", "4"], in: dir)
        #expect(t.status == 0, "\(t.stderr)")
        #expect(repeated[a] == 2, "\(repeated)")
    }
}
