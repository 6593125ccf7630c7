import Foundation
import Testing
import ZooErrors
import ZooFormats
import ZooTensor
import ZooTestSupport
import ZooTraining

/// `zoo grad` against torch autograd (tools/fixtures/gen_grad.py): torchvision resnet18, mobilenet_v2 and
/// mobilenet_v3_small (10 classes, realistic BatchNorm statistics, 48 px, batch 4) converted with
/// `zoo convert`, then the loss, every trainable parameter's gradient and (BatchNorm in train mode) the
/// updated running statistics, compared tensor by tensor. Negative controls: the other BatchNorm mode and
/// shifted labels must miss torch.
@Suite(.serialized) struct GradientTests {
    static let archs = ["resnet18", "mobilenet_v2", "mobilenet_v3_small"]
    /// Relative tolerance per tensor: max |ours - torch| / max |torch|.
    static let tolerance = 1e-4

    static func fixture(_ name: String) throws -> String { try TestSupport.fixture("grad/\(name)") }

    /// A fresh temporary folder.
    static func folder() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("zoo-grad-\(getpid())-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }

    /// The architecture's checkpoint converted to the native format in `dir`.
    static func convert(_ arch: String, into dir: URL) throws -> String {
        let native = dir.appendingPathComponent("\(arch).safetensors").path
        let r = try TestSupport.zoo(["convert", try fixture("\(arch).pth"), "--arch", arch, "-o", native, "-q"])
        #expect(r.status == 0, "convert \(arch): \(r.stderr)")
        return native
    }

    /// An int64 label vector as .npy.
    static func writeLabels(_ labels: [Int64], to path: String) throws {
        let bytes = labels.flatMap { v in withUnsafeBytes(of: v.littleEndian) { Array($0) } }
        let npy = try NPY.encode(try Tensor(dtype: .i64, shape: [labels.count], bytes: bytes))
        try Data(npy).write(to: URL(fileURLWithPath: path))
    }

    static func relError(_ a: [Float], _ b: [Float]) -> Double {
        guard a.count == b.count, !a.isEmpty else { return .infinity }
        var m = 0.0, r = 0.0
        for i in a.indices {
            if !a[i].isFinite { return .infinity }
            m = max(m, Double(abs(a[i] - b[i]))); r = max(r, Double(abs(b[i])))
        }
        // Gradients that are zero in exact arithmetic (a bias followed by a train-mode BatchNorm) come out
        // as round-off, ~1e-9, in both implementations: errors are measured against at least 1e-6.
        return m / max(r, 1e-6)
    }

    /// Runs `zoo grad`; returns the output file.
    static func grad(_ arch: String, native: String, bn: String, trainable: String, dir: URL, labels: String? = nil) throws -> SafetensorsFile {
        let out = dir.appendingPathComponent("\(arch)-\(bn)-\(trainable.replacingOccurrences(of: ":", with: "_")).safetensors").path
        let r = try TestSupport.zoo(["grad", native, "--input", try fixture("\(arch).x.npy"), "--labels", labels ?? (try fixture("\(arch).y.npy")),
                                     "-o", out, "--bn", bn, "--trainable", trainable, "--force", "-q"])
        #expect(r.status == 0, "zoo grad \(arch) \(bn) \(trainable): \(r.stderr)")
        return try SafetensorsFile(path: out)
    }

    /// Compares a `zoo grad` output with torch. Each tensor is measured against torch's float64 result, and
    /// passes when it is within the tolerance or no more than 3x the larger error of torch's two float32
    /// paths (mkldnn on and off): some gradients are ill-conditioned (train-mode BatchNorm over few values). Returns
    /// the names the output holds, the worst error / allowance ratio times the tolerance (so that `worst <
    /// tolerance` means every tensor passed), and the loss error. `reference` is `eval` or `train`.
    static func compare(_ ours: SafetensorsFile, _ arch: String, reference: String) throws -> (names: Set<String>, worst: Double, loss: Double) {
        let torch = try SafetensorsFile(path: try fixture("\(arch).\(reference).safetensors"))
        let exact = try SafetensorsFile(path: try fixture("\(arch).\(reference)64.safetensors"))
        let other = try SafetensorsFile(path: try fixture("\(arch).\(reference)-b.safetensors"))
        let theirs = Set(torch.entries.map(\.name))
        var worst = 0.0
        var names = Set<String>()
        for e in ours.entries where e.name != "loss" {
            names.insert(e.name)
            guard theirs.contains(e.name) else { continue }
            let mine = try ours.tensor(e)
            let ref = try exact.tensor(named: e.name)
            #expect(mine.shape == ref.shape, "\(arch) \(e.name): shape \(mine.shape) vs torch \(ref.shape)")
            let spread = max(relError(try torch.tensor(named: e.name).floats(), ref.floats()),
                             relError(try other.tensor(named: e.name).floats(), ref.floats()))
            let allowance = max(tolerance, 3 * spread)
            worst = max(worst, relError(mine.floats(), ref.floats()) / allowance * tolerance)
        }
        let loss = Double(try ours.tensor(named: "loss").floats()[0])
        let torchLoss = Double(try torch.tensor(named: "loss").floats()[0])
        #expect(try ours.tensor(named: "loss").shape == [], "loss is a 0-d tensor")
        return (names, worst, abs(loss - torchLoss) / max(abs(torchLoss), 1e-12))
    }

    static func check(_ arch: String, native: String, bn: String, trainable: String, dir: URL) throws -> (names: Set<String>, worst: Double, loss: Double) {
        try compare(try grad(arch, native: native, bn: bn, trainable: trainable, dir: dir), arch, reference: bn)
    }

    @Test(arguments: archs)
    func gradientsMatchTorchAutograd(_ arch: String) throws {
        let dir = try Self.folder()
        defer { try? FileManager.default.removeItem(at: dir) }
        let native = try Self.convert(arch, into: dir)
        let torchEval = try SafetensorsFile(path: try Self.fixture("\(arch).eval.safetensors"))
        let allParams = Set(torchEval.entries.map(\.name)).subtracting(["loss"])
        for bn in ["eval", "train"] {
            let ours = try Self.grad(arch, native: native, bn: bn, trainable: "all", dir: dir)
            let (names, worst, loss) = try Self.compare(ours, arch, reference: bn)
            let stats = bn == "train" ? Set(try SafetensorsFile(path: try Self.fixture("\(arch).train.safetensors")).entries.map(\.name)
                .filter { $0.hasSuffix("running_mean") || $0.hasSuffix("running_var") }) : []
            #expect(!allParams.isEmpty && names == allParams.union(stats),
                    "\(arch) \(bn): names differ from torch's parameters: \(names.symmetricDifference(allParams.union(stats)).sorted().prefix(5))")
            #expect(worst < Self.tolerance, "\(arch) bn=\(bn): worst gradient error \(worst)")
            #expect(loss < 1e-5, "\(arch) bn=\(bn): loss off by \(loss)")
            // Negative control: the other BatchNorm mode's torch gradients are missed.
            let other = try Self.compare(ours, arch, reference: bn == "eval" ? "train" : "eval")
            #expect(other.worst > 100 * Self.tolerance, "\(arch): bn=\(bn) also matches the other mode's gradients (\(other.worst))")
        }
        // Negative control: other labels give other gradients.
        let shifted = dir.appendingPathComponent("shifted.npy").path
        try Self.writeLabels([0, 1, 2, 3], to: shifted)
        let wrong = try Self.compare(try Self.grad(arch, native: native, bn: "eval", trainable: "all", dir: dir, labels: shifted), arch, reference: "eval")
        #expect(wrong.worst > 100 * Self.tolerance && wrong.loss > 1e-3, "\(arch): other labels still match torch")
    }

    @Test func trainableSubsetsHoldExactlyTheirParameters() throws {
        let dir = try Self.folder()
        defer { try? FileManager.default.removeItem(at: dir) }
        let native = try Self.convert("resnet18", into: dir)
        let head = try Self.check("resnet18", native: native, bn: "eval", trainable: "head", dir: dir)
        #expect(head.names == ["fc.weight", "fc.bias"] && head.worst < Self.tolerance, "\(head)")
        let last = try Self.check("resnet18", native: native, bn: "train", trainable: "last:1", dir: dir)
        let params = last.names.filter { !$0.hasSuffix("running_mean") && !$0.hasSuffix("running_var") }
        #expect(!params.isEmpty && params.allSatisfy { $0.hasPrefix("layer4.") || $0.hasPrefix("fc.") }, "\(params.sorted())")
        #expect(params.contains("layer4.0.conv1.weight") && params.contains("fc.bias"))
        #expect(last.worst < Self.tolerance, "last:1: \(last.worst)")
        // The running statistics of frozen BatchNorm layers are still updated in train mode (torch's `train()`).
        #expect(last.names.contains("bn1.running_mean"))
    }

    @Test func badInputIsOneLineAndLeavesNoFile() throws {
        let dir = try Self.folder()
        defer { try? FileManager.default.removeItem(at: dir) }
        let native = try Self.convert("resnet18", into: dir)
        let labels = dir.appendingPathComponent("bad.npy").path
        try Self.writeLabels([0, 10, 1, 2], to: labels)
        let out = dir.appendingPathComponent("g.safetensors").path
        let r = try TestSupport.zoo(["grad", native, "--input", try Self.fixture("resnet18.x.npy"), "--labels", labels, "-o", out])
        #expect(r.status == 2 && r.stderr.split(separator: "\n").count == 1 && r.stderr.contains("outside 0..<10") && r.stderr.contains(labels), "\(r.status) \(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: out))
        let t = try TestSupport.zoo(["grad", native, "--input", try Self.fixture("resnet18.x.npy"), "--labels", try Self.fixture("resnet18.y.npy"),
                                     "-o", out, "--trainable", "last:9"])
        #expect(t.status == 1 && t.stderr.contains("last:9"), "\(t.stderr)")
    }

    @Test func stepsAreDeterministic() throws {
        let dir = try Self.folder()
        defer { try? FileManager.default.removeItem(at: dir) }
        let native = try Self.convert("mobilenet_v3_small", into: dir)
        let first = try Self.grad("mobilenet_v3_small", native: native, bn: "train", trainable: "last:2", dir: dir)
        let bytes = try first.entries.map { try first.tensor($0).bytes }
        let second = try Self.grad("mobilenet_v3_small", native: native, bn: "train", trainable: "last:2", dir: dir)
        #expect(try second.entries.map { try second.tensor($0).bytes } == bytes, "two runs differ")
        #expect(try Self.compare(second, "mobilenet_v3_small", reference: "train").worst < Self.tolerance)
    }
}
