import Foundation
import Testing
import ZooErrors
import ZooFiles
import ZooFormats
import ZooRuntime
import ZooTensor
import ZooTestSupport
import ZooTraining

/// The pieces together, in Swift: a converted torchvision checkpoint, the training executor, the loss and
/// an optimiser with the usual fine-tuning groups. A few steps on one batch must lower its loss (and a
/// zero learning rate must not change it: the negative control).
@Suite(.serialized) struct TrainingLoopTests {
    static func load(_ arch: String) throws -> (LoadedCheckpoint, Tensor, [Int], URL) {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("zoo-train-\(getpid())-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let native = dir.appendingPathComponent("\(arch).safetensors").path
        let r = try TestSupport.zoo(["convert", try GradientTests.fixture("\(arch).pth"), "--arch", arch, "-o", native, "-q"])
        #expect(r.status == 0, "\(r.stderr)")
        let x = try MappedFile(path: try GradientTests.fixture("\(arch).x.npy")).withBytes { try NPY.read($0) }
        let yt = try MappedFile(path: try GradientTests.fixture("\(arch).y.npy")).withBytes { try NPY.read($0) }
        let y = yt.withUnsafeBytes { raw in (0..<yt.elementCount).map { Int(raw.loadUnaligned(fromByteOffset: $0 * 8, as: Int64.self)) } }
        return (try LoadedCheckpoint(path: native), x, y, dir)
    }

    @Test func fineTuningGroupsSplitHeadBackboneAndNoDecay() throws {
        let (ckpt, _, _, dir) = try Self.load("resnet18")
        defer { try? FileManager.default.removeItem(at: dir) }
        let graph = try TrainingGraph(graph: ckpt.graph, weights: ckpt.weights, trainable: .lastStages(1), batchNorm: .eval)
        let groups = graph.parameterGroups(learningRate: 0.01, backboneScale: 0.1, weightDecay: 1e-4)
        let byName = Dictionary(uniqueKeysWithValues: groups.flatMap { g in g.names.map { ($0, g) } })
        #expect(Set(byName.keys) == Set(graph.trainable), "every trainable parameter in exactly one group")
        #expect(byName["fc.weight"]?.learningRate == 0.01 && byName["fc.weight"]?.weightDecay == 1e-4)
        #expect(byName["fc.bias"]?.learningRate == 0.01 && byName["fc.bias"]?.weightDecay == 0)
        #expect(byName["layer4.0.conv1.weight"].map { abs($0.learningRate - 0.001) < 1e-12 && $0.weightDecay == 1e-4 } == true)
        #expect(byName["layer4.0.bn1.weight"]?.weightDecay == 0 && byName["layer3.0.conv1.weight"] == nil)
        let decayAll = graph.parameterGroups(learningRate: 0.01, weightDecay: 1e-4, decayNormAndBias: true)
        #expect(decayAll.allSatisfy { $0.weightDecay == 1e-4 })
    }

    @Test func stepsLowerTheLossAndAZeroRateDoesNot() throws {
        let (ckpt, x, y, dir) = try Self.load("mobilenet_v3_small")
        defer { try? FileManager.default.removeItem(at: dir) }
        let loss = try SoftmaxCrossEntropy()
        for rate in [0.5, 0.0] {
            let graph = try TrainingGraph(graph: ckpt.graph, weights: ckpt.weights, trainable: .lastStages(1), batchNorm: .eval)
            var optimizer = try Optimizer(.sgd(momentum: 0.9), groups: graph.parameterGroups(learningRate: rate, backboneScale: 1))
            var losses: [Double] = []
            for _ in 0..<6 {
                let step = try graph.step(input: x, labels: y, loss: loss)
                losses.append(step.loss)
                var params = graph.values.filter { step.gradients[$0.key] != nil }
                try optimizer.step(&params, gradients: step.gradients)
                try graph.update(params)
            }
            if rate > 0 {
                #expect((losses.last ?? .infinity) < (losses.first ?? 0) * 0.75, "loss did not fall: \(losses)")
            } else {
                #expect(losses.allSatisfy { $0 == losses[0] }, "a zero learning rate changed the loss: \(losses)")
            }
        }
    }

    /// A trained state saved with `save(to:base:)` loads back with the trained values (the BatchNorm
    /// statistics of a train-mode step too), keeps the base's metadata, and classifies with the new head;
    /// an existing file is refused without `overwrite`.
    @Test func savedStateLoadsBackAsANativeCheckpoint() throws {
        let (ckpt, x, y, dir) = try Self.load("resnet18")
        defer { try? FileManager.default.removeItem(at: dir) }
        let graph = try TrainingGraph(graph: ckpt.graph, weights: ckpt.weights, trainable: .head, batchNorm: .train)
        var optimizer = try Optimizer(.sgd(momentum: 0.9), groups: graph.parameterGroups(learningRate: 0.5, backboneScale: 1))
        let step = try graph.step(input: x, labels: y, loss: try SoftmaxCrossEntropy())
        var params = graph.values.filter { step.gradients[$0.key] != nil }
        try optimizer.step(&params, gradients: step.gradients)
        try graph.update(params)
        let out = dir.appendingPathComponent("tuned.safetensors").path
        try graph.save(to: out, base: ckpt.checkpoint)
        let again = try LoadedCheckpoint(path: out)
        #expect(again.checkpoint.metadata.architecture == ckpt.checkpoint.metadata.architecture)
        #expect(Set(again.checkpoint.file.entries.map(\.name)) == Set(ckpt.checkpoint.file.entries.map(\.name)))
        for name in ["fc.weight", "fc.bias", "bn1.running_mean", "layer4.1.bn2.running_var", "conv1.weight"] {
            let saved = try again.checkpoint.file.tensor(named: name).floats()
            #expect(saved == graph.values[name], "\(name) was not saved as trained")
        }
        // Negative controls: the trained head and the updated statistics differ from the base's.
        #expect(try again.checkpoint.file.tensor(named: "fc.weight").floats() != ckpt.checkpoint.file.tensor(named: "fc.weight").floats())
        #expect(try again.checkpoint.file.tensor(named: "bn1.running_mean").floats() != ckpt.checkpoint.file.tensor(named: "bn1.running_mean").floats())
        let classifier = try Classifier(contentsOf: URL(fileURLWithPath: out), threads: 1)
        #expect(try classifier(x).shape == [x.shape[0], 10])
        #expect(throws: ZooError.self) { try graph.save(to: out, base: ckpt.checkpoint) }
        try graph.save(to: out, base: ckpt.checkpoint, overwrite: true)
    }

    /// With BatchNorm in eval mode the frozen part runs as inference (folded, fused): the loss and every
    /// gradient equal the unfused pass's up to float rounding, for a head-only and a last-stage step and
    /// with 2 threads. Train mode, or a changed frozen parameter, runs every node unfused, and the changed
    /// parameter changes the gradients (a stale compiled prefix would not).
    @Test func frozenPartRunsAsInferenceWithTheSameNumbers() throws {
        let loss = try SoftmaxCrossEntropy()
        for (arch, set, frozen) in [("resnet18", TrainableSet.lastStages(1), "layer3.1.bn2.bias"),
                                    ("mobilenet_v3_small", TrainableSet.head, "features.12.1.bias")] {
            let (ckpt, x, y, dir) = try Self.load(arch)
            defer { try? FileManager.default.removeItem(at: dir) }
            let fast = try TrainingGraph(graph: ckpt.graph, weights: ckpt.weights, trainable: set, batchNorm: .eval)
            let plain = try TrainingGraph(graph: ckpt.graph, weights: ckpt.weights, trainable: set, batchNorm: .eval, inferencePrefix: false)
            #expect(fast.runsFrozenPartAsInference && !plain.runsFrozenPartAsInference, "\(arch)")
            fast.threads = 2
            let a = try fast.step(input: x, labels: y, loss: loss), b = try plain.step(input: x, labels: y, loss: loss)
            #expect(abs(a.loss - b.loss) <= 1e-5 * abs(b.loss), "\(arch): loss \(a.loss) vs \(b.loss)")
            #expect(Set(a.gradients.keys) == Set(b.gradients.keys) && !a.gradients.isEmpty)
            for (name, g) in b.gradients {
                let ours = try #require(a.gradients[name])
                let scale = g.map { abs($0) }.max() ?? 0
                let worst = zip(ours, g).map { abs($0 - $1) }.max() ?? 0
                #expect(worst <= 1e-4 * max(scale, 1e-12), "\(arch) \(name): \(worst) of \(scale)")
            }
            let trainMode = try TrainingGraph(graph: ckpt.graph, weights: ckpt.weights, trainable: set, batchNorm: .train)
            #expect(!trainMode.runsFrozenPartAsInference)
            // A frozen parameter changed through `update` retires the compiled prefix.
            #expect(fast.values[frozen] != nil && !fast.trainable.contains(frozen))
            try fast.update([frozen: (fast.values[frozen] ?? []).map { $0 + 0.5 }])
            #expect(!fast.runsFrozenPartAsInference, "\(arch): \(frozen)")
            // (The last frozen BatchNorm's shift: the fixtures' BatchNorm statistics normalise a scaled
            // stem convolution away. The new head starts at zero, so the loss is log(classes) either way;
            // the head's gradient reads the features.)
            let c = try fast.step(input: x, labels: y, loss: loss)
            let moved = b.gradients.map { name, g in
                zip(c.gradients[name] ?? [], g).map { abs($0 - $1) }.max() ?? 0
            }.max() ?? 0
            let scale = b.gradients.values.map { g in g.map { abs($0) }.max() ?? 0 }.max() ?? 0
            #expect(moved > 1e-2 * scale, "\(arch): shifting \(frozen) left the gradients as they were (\(moved) of \(scale))")
        }
    }
}
