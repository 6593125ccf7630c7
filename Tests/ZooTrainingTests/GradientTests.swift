import Foundation
import Testing
import ZooErrors
import ZooFormats
import ZooTensor
import ZooTestSupport
import ZooTraining

/// `zoo grad` against the frameworks' autograd: torchvision resnet18, resnet50, resnext50_32x4d,
/// wide_resnet50_2, vgg11_bn, vgg16, mobilenet_v2, mobilenet_v3_small and _large, efficientnet_b0 and _v2_s against torch
/// (tools/fixtures/gen_grad.py, 48 px), convnext_tiny (64 px: LayerNorm, GELU, pointwise linear layers, layer scale), and the Keras flavour
/// (tf-keras MobileNet, ResNet50 with its conv biases, MobileNetV2, MobileNetV3Small and MobileNetV3Large, 64 px) against TensorFlow's `GradientTape`
/// (gen_grad_keras.py); 10 classes, realistic BatchNorm statistics, batch 4. Each file is converted with
/// `zoo convert`, then the loss, every trainable parameter's gradient and (BatchNorm in train mode) the
/// updated running statistics are compared tensor by tensor. Negative controls: the other BatchNorm mode,
/// shifted labels and a transposed weight gradient must miss.
@Suite(.serialized) struct GradientTests {
    static let archs = ["resnet18", "resnet50", "resnext50_32x4d", "wide_resnet50_2", "vgg11_bn", "vgg16", "mobilenet_v2",
                        "mobilenet_v3_small", "mobilenet_v3_large", "efficientnet_b0", "efficientnet_v2_s",
                        "convnext_tiny"]
    /// Keras-flavour cases: fixture name and architecture.
    static let kerasCases = [("mobilenet_v1_keras", "mobilenet_v1"), ("resnet50_keras", "resnet50"), ("mobilenet_v2_keras", "mobilenet_v2"),
                             ("mobilenet_v3_small_keras", "mobilenet_v3_small"), ("mobilenet_v3_large_keras", "mobilenet_v3_large")]
    /// Relative tolerance per tensor: max |ours - reference| / max |reference|.
    static let tolerance = 1e-4
    /// The relative L2 error (||ours - reference|| / ||reference||) a tensor moved by a kink flip may have.
    static let flipL2 = 5e-2
    /// The share of a step's tensors that may be moved by kink flips: a flip moves every gradient upstream
    /// of it, so one early in VGG16's features (32 tensors) moves 8 of them.
    static let flipShare = 0.5

    static func fixture(_ name: String) throws -> String { try TestSupport.fixture("grad/\(name)") }
    static func kerasFixture(_ name: String) throws -> String { try TestSupport.fixture("grad_keras/\(name)") }

    /// A fresh temporary folder.
    static func folder() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("zoo-grad-\(getpid())-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }

    /// The architecture's checkpoint converted to the native format in `dir`.
    static func convert(_ arch: String, into dir: URL) throws -> String {
        try convert(try fixture("\(arch).pth"), arch: arch, as: arch, into: dir)
    }

    static func convert(_ source: String, arch: String, as name: String, into dir: URL) throws -> String {
        let native = dir.appendingPathComponent("\(name).safetensors").path
        let r = try TestSupport.zoo(["convert", source, "--arch", arch, "-o", native, "-q"])
        #expect(r.status == 0, "convert \(source): \(r.stderr)")
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

    /// ||a - b|| / ||b||, against at least 1e-6 as `relError`.
    static func l2Error(_ a: [Float], _ b: [Float]) -> Double {
        guard a.count == b.count, !a.isEmpty else { return .infinity }
        var d = 0.0, r = 0.0
        for i in a.indices {
            if !a[i].isFinite { return .infinity }
            let e = Double(a[i]) - Double(b[i])
            d += e * e; r += Double(b[i]) * Double(b[i])
        }
        return d.squareRoot() / max(r.squareRoot(), 1e-6)
    }

    /// Runs `zoo grad`; returns the output file.
    static func grad(_ arch: String, native: String, bn: String, trainable: String, dir: URL, input: String? = nil,
                     labels: String? = nil) throws -> SafetensorsFile {
        let out = dir.appendingPathComponent("\(arch)-\(bn)-\(trainable.replacingOccurrences(of: ":", with: "_")).safetensors").path
        let r = try TestSupport.zoo(["grad", native, "--input", input ?? (try fixture("\(arch).x.npy")), "--labels", labels ?? (try fixture("\(arch).y.npy")),
                                     "-o", out, "--bn", bn, "--trainable", trainable, "--force", "-q"])
        #expect(r.status == 0, "zoo grad \(arch) \(bn) \(trainable): \(r.stderr)")
        return try SafetensorsFile(path: out)
    }

    /// A framework's answer for one BatchNorm mode: the float64 result (the exact reference, stored as
    /// float32), how far the framework's own two float32 paths (torch with mkldnn on and off, TensorFlow
    /// with its oneDNN kernels on and off) are from it per tensor (the larger; max and L2 criteria), and
    /// the float64 loss with the float32 losses' largest relative distance from it.
    struct Reference {
        var f64: SafetensorsFile
        var spread: [String: (max: Double, l2: Double)]
        var loss: Double
        var lossSpread: Double
    }

    /// torch's reference for `arch` in BatchNorm mode `mode` (`eval` or `train`): the float64 gradients and
    /// the float32 spreads gen_grad.py measured.
    static func torchReference(_ arch: String, _ mode: String) throws -> Reference {
        let f64 = try SafetensorsFile(path: try fixture("\(arch).\(mode).safetensors"))
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: try fixture("\(arch).spread.json")))) as? [String: Any]
        let table = try #require(json?[mode] as? [String: Any], "\(arch).spread.json has no \(mode)")
        var spread: [String: (max: Double, l2: Double)] = [:]
        for (name, value) in table where name != "loss" {
            let pair = try #require(value as? [Double], "\(arch).spread.json: \(name)")
            try #require(pair.count == 2)
            spread[name] = (pair[0], pair[1])
        }
        return Reference(f64: f64, spread: spread, loss: Double(try f64.tensor(named: "loss").floats()[0]),
                         lossSpread: try #require(table["loss"] as? Double))
    }

    /// TensorFlow's reference for a Keras case: its gradient files (saved as the model's weights) converted
    /// by `zoo convert` like the model, so they carry the canonical names and layouts; the spreads measured
    /// here from the two float32 files.
    static func kerasReference(_ name: String, arch: String, _ mode: String, dir: URL) throws -> Reference {
        func file(_ key: String) throws -> SafetensorsFile {
            try SafetensorsFile(path: try convert(try kerasFixture("\(name).\(key).h5"), arch: arch, as: "\(name).\(key)", into: dir))
        }
        let losses = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: try kerasFixture("\(name).loss.json")))) as? [String: Double]
        let loss = try #require(losses?["\(mode)64"]), f32loss = try #require(losses?[mode])
        let f64 = try file("\(mode)64"), f32 = try file(mode), other = try file("\(mode)-b")
        var spread: [String: (max: Double, l2: Double)] = [:]
        for e in f64.entries {
            let x = try f64.tensor(e).floats(), a = try f32.tensor(named: e.name).floats(), b = try other.tensor(named: e.name).floats()
            spread[e.name] = (max(relError(a, x), relError(b, x)), max(l2Error(a, x), l2Error(b, x)))
        }
        return Reference(f64: f64, spread: spread, loss: loss, lossSpread: abs(f32loss - loss) / abs(loss))
    }

    /// How a `zoo grad` output compares with a reference.
    ///
    /// A tensor matches when max |ours - f64| / max |f64| is within the tolerance or no more than 3x the
    /// larger error of the framework's two float32 paths (some gradients are ill-conditioned: train-mode
    /// BatchNorm over few values). A float32 run of a ReLU network also lands a few of its ~10^6 activations
    /// on the other side of a kink (in float64 ~10^2 of them lie within float32 round-off of 0 or 6), or a
    /// max pool's window on another of two near-equal values; each such flip moves one channel's gradient,
    /// and the gradients upstream of it, by up to a few percent, in
    /// any float32 implementation (the frameworks' own two paths differ this way too). So a tensor that
    /// misses is accepted as moved by a flip when its relative L2 error stays within `flipL2` (or 3x the
    /// larger L2 error of the framework's float32 paths), and at most `flipShare` of the tensors may be.
    /// A real mistake (a wrong mode, label, layout or formula) moves every tensor after it by far more.
    /// The loss must be within 1e-5 of float64's (or 3x the framework's own float32 loss error).
    struct Report: CustomStringConvertible {
        /// The names the output holds.
        var names = Set<String>()
        /// The worst max-error / allowance ratio times the tolerance over all tensors (`< tolerance`: all match).
        var worst = 0.0
        /// Tensors that missed the max criterion but are within `flipL2`.
        var flipped: [String] = []
        /// Tensors that missed both.
        var failed: [String] = []
        /// The worst relative L2 error.
        var worstL2 = 0.0
        /// Compared tensors.
        var count = 0
        /// |ours - f64| / |f64| of the loss.
        var loss = 0.0
        /// The loss's allowance: 1e-5, or 3x the framework's own float32 loss error.
        var lossAllowance = 1e-5

        /// Every tensor matches or was moved by a flip, few enough were, and the loss is within its allowance.
        var passes: Bool {
            failed.isEmpty && Double(flipped.count) <= GradientTests.flipShare * Double(max(count, 1)) && loss <= lossAllowance
        }

        var description: String {
            "worst \(worst), worst L2 \(worstL2), loss \(loss) (allowed \(lossAllowance)), \(flipped.count) of \(count) moved by flips \(flipped.prefix(4)), failed \(failed.prefix(4))"
        }
    }

    static func compare(_ ours: SafetensorsFile, _ ref: Reference, label: String) throws -> Report {
        let theirs = Set(ref.f64.entries.map(\.name))
        var report = Report()
        for e in ours.entries where e.name != "loss" {
            report.names.insert(e.name)
            guard theirs.contains(e.name) else { continue }
            let mine = try ours.tensor(e)
            let exact = try ref.f64.tensor(named: e.name)
            #expect(mine.shape == exact.shape, "\(label) \(e.name): shape \(mine.shape) vs \(exact.shape)")
            let x = try exact.floats(), m = try mine.floats()
            let spread = try #require(ref.spread[e.name], "\(label): no float32 spread for \(e.name)")
            let allowance = max(tolerance, 3 * spread.max)
            let l2Allowance = max(flipL2, 3 * spread.l2)
            let err = relError(m, x), l2 = l2Error(m, x)
            report.count += 1
            report.worst = max(report.worst, err / allowance * tolerance)
            report.worstL2 = max(report.worstL2, l2)
            if err > allowance {
                if l2 <= l2Allowance { report.flipped.append(e.name) } else { report.failed.append(e.name) }
            }
        }
        #expect(try ours.tensor(named: "loss").shape == [], "loss is a 0-d tensor")
        let loss = Double(try ours.tensor(named: "loss").floats()[0])
        report.loss = abs(loss - ref.loss) / max(abs(ref.loss), 1e-12)
        report.lossAllowance = max(1e-5, 3 * ref.lossSpread)
        return report
    }

    static func compare(_ ours: SafetensorsFile, _ arch: String, reference mode: String) throws -> Report {
        try compare(ours, try torchReference(arch, mode), label: arch)
    }

    static func check(_ arch: String, native: String, bn: String, trainable: String, dir: URL) throws -> Report {
        try compare(try grad(arch, native: native, bn: bn, trainable: trainable, dir: dir), arch, reference: bn)
    }

    /// The checks shared by both frameworks: names, parity in both modes, the other mode as a negative
    /// control, a transposed weight gradient as another.
    static func checkBothModes(_ label: String, native: String, dir: URL, reference: (String) throws -> Reference,
                               run: (String) throws -> SafetensorsFile) throws {
        let eval = try reference("eval"), train = try reference("train")
        let stats = Set(train.f64.entries.map(\.name).filter { $0.hasSuffix("running_mean") || $0.hasSuffix("running_var") })
        let evalRun = try run("eval")
        let params = Set(evalRun.entries.map(\.name)).subtracting(["loss"])
        for (bn, ref, other) in [("eval", eval, train), ("train", train, eval)] {
            let ours = bn == "eval" ? evalRun : try run(bn)
            let report = try compare(ours, ref, label: label)
            let expected = bn == "train" ? params.union(stats) : params
            #expect(!params.isEmpty && report.names == expected && report.count == expected.count,
                    "\(label) \(bn): names differ from the reference: \(report.names.symmetricDifference(expected).sorted().prefix(5))")
            #expect(report.passes, "\(label) bn=\(bn): \(report)")
            // Negative control: the other BatchNorm mode's gradients are missed (a network without
            // BatchNorm, VGG16, has one mode).
            if !stats.isEmpty {
                let miss = try compare(ours, other, label: label)
                #expect(!miss.passes && miss.worst > 100 * tolerance && miss.worstL2 > 10 * flipL2, "\(label): bn=\(bn) also matches the other mode (\(miss))")
            }
            // Negative control: the largest weight gradient in a wrong layout (its last axis reversed: a
            // kernel mirrored, a linear layer's inputs permuted) is caught by both criteria.
            if bn == "eval" {
                let weights = try ours.entries.filter { $0.shape.count >= 2 && ($0.shape.last ?? 0) > 1 }
                    .map { ($0, try ref.f64.tensor(named: $0.name).floats().map { abs($0) }.max() ?? 0) }
                let e = try #require(weights.max(by: { $0.1 < $1.1 })?.0)
                let g = try ours.tensor(e).floats(), w = e.shape[e.shape.count - 1]
                var t = g
                for row in stride(from: 0, to: g.count, by: w) { for k in 0..<w { t[row + k] = g[row + w - 1 - k] } }
                let x = try ref.f64.tensor(named: e.name).floats()
                #expect(relError(t, x) > 100 * tolerance && l2Error(t, x) > 10 * flipL2, "\(label) \(e.name): a gradient in a wrong layout still matches")
            }
        }
    }

    @Test(arguments: archs)
    func gradientsMatchTorchAutograd(_ arch: String) throws {
        let dir = try Self.folder()
        defer { try? FileManager.default.removeItem(at: dir) }
        let native = try Self.convert(arch, into: dir)
        try Self.checkBothModes(arch, native: native, dir: dir, reference: { try Self.torchReference(arch, $0) },
                                run: { try Self.grad(arch, native: native, bn: $0, trainable: "all", dir: dir) })
        // Negative control: other labels give other gradients.
        let shifted = dir.appendingPathComponent("shifted.npy").path
        try Self.writeLabels([0, 1, 2, 3], to: shifted)
        let wrong = try Self.compare(try Self.grad(arch, native: native, bn: "eval", trainable: "all", dir: dir, labels: shifted), arch, reference: "eval")
        #expect(!wrong.passes && wrong.worst > 100 * Self.tolerance && wrong.loss > 1e-4, "\(arch): other labels still match torch (\(wrong))")
    }

    @Test(arguments: kerasCases.map(\.0))
    func kerasGradientsMatchTensorFlow(_ name: String) throws {
        let arch = try #require(Self.kerasCases.first { $0.0 == name }?.1)
        let dir = try Self.folder()
        defer { try? FileManager.default.removeItem(at: dir) }
        let native = try Self.convert(try Self.kerasFixture("\(name).h5"), arch: arch, as: name, into: dir)
        let input = try Self.kerasFixture("\(name).x.npy"), labels = try Self.kerasFixture("\(name).y.npy")
        var refs: [String: Reference] = [:]
        for mode in ["eval", "train"] { refs[mode] = try Self.kerasReference(name, arch: arch, mode, dir: dir) }
        try Self.checkBothModes(name, native: native, dir: dir, reference: { try #require(refs[$0]) },
                                run: { try Self.grad(name, native: native, bn: $0, trainable: "all", dir: dir, input: input, labels: labels) })
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
        // A NaN in the input batch is named (element and file), before any step runs.
        let raw = try Data(contentsOf: URL(fileURLWithPath: try Self.fixture("resnet18.x.npy")))
        var values = try raw.withUnsafeBytes { try NPY.read($0) }.floats()
        values[5] = .nan
        let nanInput = dir.appendingPathComponent("nan.npy").path
        try Data(try NPY.encode(try Tensor(shape: [4, 3, 48, 48], floats: values))).write(to: URL(fileURLWithPath: nanInput))
        let n = try TestSupport.zoo(["grad", native, "--input", nanInput, "--labels", try Self.fixture("resnet18.y.npy"), "-o", out])
        #expect(n.status == 2 && n.stderr.split(separator: "\n").count == 1 && n.stderr.contains("input element 5 is not finite")
                && n.stderr.contains(nanInput), "\(n.status) \(n.stderr)")
        #expect(!FileManager.default.fileExists(atPath: out))
    }

    @Test func stepsAreDeterministic() throws {
        let dir = try Self.folder()
        defer { try? FileManager.default.removeItem(at: dir) }
        let native = try Self.convert("mobilenet_v3_small", into: dir)
        let first = try Self.grad("mobilenet_v3_small", native: native, bn: "train", trainable: "last:2", dir: dir)
        let bytes = try first.entries.map { try first.tensor($0).bytes }
        let second = try Self.grad("mobilenet_v3_small", native: native, bn: "train", trainable: "last:2", dir: dir)
        #expect(try second.entries.map { try second.tensor($0).bytes } == bytes, "two runs differ")
        #expect(try Self.compare(second, "mobilenet_v3_small", reference: "train").passes)
    }
}
