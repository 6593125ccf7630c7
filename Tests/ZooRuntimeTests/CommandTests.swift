import Foundation
import Testing
import ZooFormats
import ZooRuntime
import ZooJSON
import ZooFiles
import ZooTensor
import ZooTestSupport

/// A real architecture end to end: torchvision mobilenet_v3_small as a native checkpoint.
struct RealArchitecture {
    let checkpoint: String
    let input: String
    let reference: SafetensorsFile
    init() throws {
        checkpoint = try TestSupport.fixture("kernels/mobilenet_v3_small.safetensors")
        input = try TestSupport.fixture("kernels/mobilenet_v3_small_x.npy")
        reference = try SafetensorsFile(path: try TestSupport.fixture("kernels/mobilenet_v3_small_ref.safetensors"))
    }
    func x() throws -> Tensor { try MappedFile(path: input).withBytes { try NPY.read($0) } }
}

@Test func checkpointClassifierMatchesTorchvision() throws {
    let r = try RealArchitecture()
    let ref = try r.reference.tensor(named: "logits")
    var outs: [Tensor] = []
    for threads in [1, 2, 4] {
        let model = try Classifier(contentsOf: URL(fileURLWithPath: r.checkpoint), threads: threads)
        let y = try model(try r.x())
        #expect(y.shape == [2, 1000])
        #expect(maxRel(y, ref) < 1e-4, "threads \(threads)")
        outs.append(y)
    }
    #expect(maxRel(outs[0], outs[2]) < 1e-5)
}

@Test func zooRunWritesLogitsAndFeatures() throws {
    let r = try RealArchitecture()
    let dir = try TestSupport.temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: dir) }
    let y = dir.appendingPathComponent("y.npy").path
    let run = try TestSupport.zoo(["run", r.checkpoint, "--input", r.input, "--output", y, "--threads", "2"])
    #expect(run.status == 0, "\(run.stderr)")
    let logits = try MappedFile(path: y).withBytes { try NPY.read($0) }
    #expect(maxRel(logits, try r.reference.tensor(named: "logits")) < 1e-4)

    let f = dir.appendingPathComponent("f.safetensors").path
    let feats = try TestSupport.zoo(["run", r.checkpoint, "--input", r.input, "--features", "1,2,3", "--output", f])
    #expect(feats.status == 0, "\(feats.stderr)")
    let file = try SafetensorsFile(path: f)
    #expect(file.entries.map(\.name).sorted() == ["1", "2", "3"])
    let info = try JSONValue.parse(try #require(file.metadataValue("zoo.feature_info")))
    let taps = try #require(info.arrayValue)
    #expect(taps.count == 3)
    var reductions: [Int] = []
    for tap in taps {
        let index = try #require(tap["index"]?.intValue), name = try #require(tap["name"]?.stringValue)
        reductions.append(try #require(tap["reduction"]?.intValue))
        let ours = try file.tensor(named: String(index))
        let ref = try r.reference.tensor(named: name)
        #expect(ours.shape == ref.shape, "\(name)")
        #expect(ours.shape[1] == tap["channels"]?.intValue)
        #expect(maxRel(ours, ref) < 1e-4, "\(name)")
    }
    #expect(reductions == reductions.sorted() && Set(reductions).count == 3)
}

@Test func zooRunErrors() throws {
    let r = try RealArchitecture()
    let dir = try TestSupport.temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: dir) }
    // No architecture metadata.
    let plain = try TestSupport.fixture("kernels/resblock.safetensors")
    let a = try TestSupport.zoo(["run", plain, "--input", r.input, "--output", dir.appendingPathComponent("a.npy").path])
    #expect(a.status == 2 && a.stderr.contains("architecture"), "\(a.stderr)")
    // Wrong channel count.
    let x4 = dir.appendingPathComponent("x4.npy").path
    try Data(try NPY.encode(try Tensor(zeros: .f32, shape: [1, 4, 32, 32]))).write(to: URL(fileURLWithPath: x4))
    let b = try TestSupport.zoo(["run", r.checkpoint, "--input", x4, "--output", dir.appendingPathComponent("b.npy").path])
    #expect(b.status == 2 && b.stderr.contains("channels"), "\(b.stderr)")
    // Feature index out of range.
    let c = try TestSupport.zoo(["run", r.checkpoint, "--input", r.input, "--features", "9", "--output", dir.appendingPathComponent("c.safetensors").path])
    #expect(c.status != 0 && c.stderr.contains("out of range"), "\(c.stderr)")
}

@Test func zooBenchJSON() throws {
    let out = try TestSupport.zoo(["bench", "mobilenet_v3_small", "--size", "64", "--iterations", "3", "--warmup", "1",
                                   "--threads", "1", "--batch", "2", "--json"])
    #expect(out.status == 0, "\(out.stderr)")
    let doc = try JSONValue.parse(out.stdout)
    for key in ["median_ms", "p10_ms", "p90_ms", "images_per_s"] {
        let v = try #require(doc[key]?.doubleValue, "\(key)")
        #expect(v > 0)
    }
    #expect(doc["threads"]?.intValue == 1 && doc["batch"]?.intValue == 2)
    let p10 = try #require(doc["p10_ms"]?.doubleValue), p90 = try #require(doc["p90_ms"]?.doubleValue)
    #expect(p10 <= p90)
    let bad = try TestSupport.zoo(["bench", "no_such_net"])
    #expect(bad.status != 0)
}
