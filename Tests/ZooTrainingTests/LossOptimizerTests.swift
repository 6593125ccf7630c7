import Foundation
import Testing
import ZooErrors
import ZooFormats
import ZooTensor
import ZooTestSupport
import ZooTraining

/// The loss, the optimisers and the schedules against torch (tools/fixtures/gen_training.py): torch's
/// `cross_entropy` and its autograd gradient; `torch.optim.SGD`/`AdamW` parameter trajectories over 12
/// steps with per-group learning rates and weight decays under torch's schedulers. Each check has a
/// negative control that must miss torch.
@Suite struct LossOptimizerTests {
    static func file(_ name: String) throws -> SafetensorsFile {
        try SafetensorsFile(path: try TestSupport.fixture("training/\(name).safetensors"))
    }

    static func cases(_ f: SafetensorsFile) -> [String] {
        (f.metadataValue("cases") ?? "").split(separator: ",").map(String.init)
    }

    static func settings(_ f: SafetensorsFile, _ name: String) throws -> [String: Any] {
        let text = try #require(f.metadataValue("case." + name))
        return try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
    }

    /// max |a - b| / max(max |b|, 1e-30); infinity on a count mismatch or NaN.
    static func relError(_ a: [Float], _ b: [Float]) -> Double {
        guard a.count == b.count, !a.isEmpty else { return .infinity }
        var m = 0.0, r = 0.0
        for i in a.indices {
            if a[i].isNaN || b[i].isNaN { return .infinity }
            m = max(m, Double(abs(a[i] - b[i]))); r = max(r, Double(abs(b[i])))
        }
        return m / max(r, 1e-30)
    }

    // MARK: loss

    @Test func crossEntropyMatchesTorch() throws {
        let f = try Self.file("loss")
        let names = Self.cases(f)
        #expect(names.count >= 6)
        for name in names {
            let s = try Self.settings(f, name)
            let logits = try f.tensor(named: name + ".logits")
            let labels = try f.tensor(named: name + ".labels").int64s().map(Int.init)
            let weights = (s["weighted"] as? Bool ?? false) ? try f.tensor(named: name + ".weight").floats().map(Double.init) : nil
            let smoothing = s["smoothing"] as? Double ?? 0
            let loss = try SoftmaxCrossEntropy(labelSmoothing: smoothing, classWeights: weights)
            let (value, grad) = try loss.lossAndGradient(logits: logits.floats(), labels: labels, classes: logits.shape[1])
            let torchLoss = Double(try f.tensor(named: name + ".loss").floats()[0])
            let torchGrad = try f.tensor(named: name + ".grad").floats()
            #expect(abs(value - torchLoss) <= 1e-6 * max(1, abs(torchLoss)), "\(name): loss \(value) vs torch \(torchLoss)")
            #expect(Self.relError(grad, torchGrad) < 1e-5, "\(name): gradient off by \(Self.relError(grad, torchGrad))")
            // Negative controls: the smoothing or the weights left out, or the labels shifted, miss torch.
            var wrong: [(String, SoftmaxCrossEntropy, [Int])] = [("labels shifted", loss, labels.map { ($0 + 1) % logits.shape[1] })]
            if smoothing > 0 { wrong.append(("no smoothing", try SoftmaxCrossEntropy(classWeights: weights), labels)) }
            if weights != nil { wrong.append(("no weights", try SoftmaxCrossEntropy(labelSmoothing: smoothing), labels)) }
            for (what, l, y) in wrong {
                let (v, g) = try l.lossAndGradient(logits: logits.floats(), labels: y, classes: logits.shape[1])
                #expect(abs(v - torchLoss) > 1e-4 || Self.relError(g, torchGrad) > 1e-3, "\(name): \(what) still matches torch")
            }
        }
    }

    @Test func crossEntropyRefusesBadInput() throws {
        let loss = try SoftmaxCrossEntropy()
        #expect(throws: ZooError.self) { _ = try loss.lossAndGradient(logits: [0, 1, 2], labels: [3], classes: 3) }
        #expect(throws: ZooError.self) { _ = try loss.lossAndGradient(logits: [0, 1], labels: [0], classes: 3) }
        #expect(throws: ZooError.self) { _ = try loss.lossAndGradient(logits: [0, .nan, 2], labels: [0], classes: 3) }
        #expect(throws: ZooError.self) { _ = try SoftmaxCrossEntropy(labelSmoothing: 1) }
        #expect(throws: ZooError.self) { _ = try SoftmaxCrossEntropy(classWeights: [1, -1]) }
        let zero = try SoftmaxCrossEntropy(classWeights: [0, 1, 1])
        #expect(throws: ZooError.self) { _ = try zero.lossAndGradient(logits: [0, 1, 2], labels: [0], classes: 3) }
        // Huge logits stay finite (log-sum-exp).
        let (v, g) = try loss.lossAndGradient(logits: [3e38, -3e38, 0], labels: [1], classes: 3)
        #expect(v.isFinite && g.allSatisfy(\.isFinite))
    }

    // MARK: optimisers and schedules

    struct OptimCase {
        var optimizer: Optimizer
        var names: [String]
        var steps: Int
        var lrs: [Double]
        var groups: Int
    }

    static func optimCase(_ f: SafetensorsFile, _ name: String, perturb: String? = nil) throws -> OptimCase {
        let s = try settings(f, name)
        let options = s["options"] as? [String: Any] ?? [:]
        let groupList = try #require(s["groups"] as? [[String: Any]])
        let groups = try groupList.map { g in
            ParameterGroup(names: try #require(g["names"] as? [String]), learningRate: try #require(g["lr"] as? Double),
                           weightDecay: perturb == "weight decay" ? 0 : (g["weight_decay"] as? Double ?? 0))
        }
        let sch = try #require(s["schedule"] as? [String: Any])
        let warmup = sch["warmup"] as? Int ?? 0, total = sch["total"] as? Int ?? 0
        let start = sch["start_factor"] as? Double ?? 1
        let shape: Schedule.Shape
        switch sch["kind"] as? String {
        case "constant": shape = .constant
        case "step": shape = .step(every: sch["step_size"] as? Int ?? 1, gamma: sch["gamma"] as? Double ?? 1)
        case "cosine":
            // torch's eta_min is absolute; the zoo's floor is a fraction of each group's rate (one group here).
            let floor = (sch["eta_min"] as? Double ?? 0) / groups[0].learningRate
            shape = .cosine(totalSteps: total, minFactor: floor)
        default: throw ZooError.bad("unknown schedule in \(name)")
        }
        let schedule = perturb == "no warm-up" ? try Schedule(shape) : try Schedule(shape, warmupSteps: warmup, warmupStartFactor: start)
        let algorithm: OptimizerAlgorithm
        switch s["optimizer"] as? String {
        case "SGD":
            algorithm = .sgd(momentum: perturb == "no momentum" ? 0 : (options["momentum"] as? Double ?? 0),
                             dampening: options["dampening"] as? Double ?? 0,
                             nesterov: perturb == "no momentum" ? false : (options["nesterov"] as? Bool ?? false))
        case "AdamW":
            let betas = options["betas"] as? [Double] ?? [0.9, 0.999]
            algorithm = .adamW(beta1: perturb == "beta1" ? 0.8 : betas[0], beta2: betas[1], epsilon: options["eps"] as? Double ?? 1e-8)
        default: throw ZooError.bad("unknown optimizer in \(name)")
        }
        let lrs = try f.tensor(named: name + ".lrs")
        return OptimCase(optimizer: try Optimizer(algorithm, groups: groups, schedule: schedule),
                         names: groups.flatMap(\.names), steps: s["steps"] as? Int ?? 0, lrs: try lrs.float64s(), groups: groups.count)
    }

    /// Runs the case's gradients through `c.optimizer`, comparing with torch after every step; returns the
    /// worst relative parameter error and the worst learning-rate error.
    static func replay(_ f: SafetensorsFile, _ name: String, _ c: inout OptimCase, resumeAt: Int? = nil,
                       scratch: String? = nil) throws -> (params: Double, lr: Double) {
        var params: [String: [Float]] = [:]
        for n in c.names { params[n] = try f.tensor(named: "\(name).init.\(n)").floats() }
        var worst = 0.0, worstLR = 0.0
        for step in 0..<c.steps {
            if step == resumeAt, let scratch {
                // Save, forget, restore: the run continues from the file alone.
                try c.optimizer.save(to: scratch)
                c.optimizer = try Optimizer(contentsOf: scratch)
            }
            let rates = c.optimizer.learningRates
            for g in 0..<c.groups { worstLR = max(worstLR, abs(rates[g] - c.lrs[step * c.groups + g]) / max(c.lrs[step * c.groups + g], 1e-12)) }
            var grads: [String: [Float]] = [:]
            for n in c.names { grads[n] = try f.tensor(named: "\(name).grad\(step).\(n)").floats() }
            try c.optimizer.step(&params, gradients: grads)
            for n in c.names {
                worst = max(worst, relError(try #require(params[n]), try f.tensor(named: "\(name).after\(step).\(n)").floats()))
            }
        }
        return (worst, worstLR)
    }

    @Test func optimisersAndSchedulesMatchTorch() throws {
        let f = try Self.file("optim")
        let names = Self.cases(f)
        #expect(names.count >= 7)
        for name in names {
            var c = try Self.optimCase(f, name)
            let (p, lr) = try Self.replay(f, name, &c)
            #expect(p < 2e-6, "\(name): parameters off torch's by \(p)")
            #expect(lr < 1e-9, "\(name): learning rates off torch's by \(lr)")
            #expect(c.optimizer.stepCount == c.steps)
            // Negative controls: a changed hyper-parameter must miss torch.
            let s = try Self.settings(f, name)
            var perturbations = ["weight decay", "no warm-up", "no momentum", "beta1"]
            if (s["schedule"] as? [String: Any])?["warmup"] as? Int == 0 { perturbations.removeAll { $0 == "no warm-up" } }
            if s["optimizer"] as? String == "SGD" { perturbations.removeAll { $0 == "beta1" } } else { perturbations.removeAll { $0 == "no momentum" } }
            if ((s["options"] as? [String: Any])?["momentum"] as? Double ?? 0) == 0 { perturbations.removeAll { $0 == "no momentum" } }
            let groups = s["groups"] as? [[String: Any]] ?? []
            if groups.allSatisfy({ ($0["weight_decay"] as? Double ?? 0) == 0 }) { perturbations.removeAll { $0 == "weight decay" } }
            for what in perturbations {
                var w = try Self.optimCase(f, name, perturb: what)
                let (wp, wl) = try Self.replay(f, name, &w)
                #expect(wp > 1e-4 || wl > 1e-6, "\(name): with \(what) the trajectory still matches torch (\(wp))")
            }
        }
    }

    @Test func resumedOptimiserContinuesExactly() throws {
        let f = try Self.file("optim")
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("zoo-optim-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        for name in ["sgd_momentum_step", "adamw_groups_cosine"] {
            var straight = try Self.optimCase(f, name)
            var resumed = try Self.optimCase(f, name)
            let a = try Self.replay(f, name, &straight)
            let b = try Self.replay(f, name, &resumed, resumeAt: 5, scratch: dir.appendingPathComponent("\(name).safetensors").path)
            // Bit for bit: the same worst error, and the same parameters (checked through the error).
            #expect(a.params == b.params && a.lr == b.lr, "\(name): resumed run differs (\(a) vs \(b))")
        }
        // A resumed optimiser without its state would not match: the negative control.
        var c = try Self.optimCase(f, "sgd_momentum_step")
        var params: [String: [Float]] = [:]
        for n in c.names { params[n] = try f.tensor(named: "sgd_momentum_step.init.\(n)").floats() }
        for step in 0..<2 {
            var grads: [String: [Float]] = [:]
            for n in c.names { grads[n] = try f.tensor(named: "sgd_momentum_step.grad\(step).\(n)").floats() }
            try c.optimizer.step(&params, gradients: grads)
        }
        let path = dir.appendingPathComponent("bare.safetensors").path
        try c.optimizer.save(to: path)
        let restored = try Optimizer(contentsOf: path)
        #expect(restored.stepCount == 2 && restored.learningRates == c.optimizer.learningRates)
    }

    @Test func optimiserRefusesBadInput() throws {
        #expect(throws: ZooError.self) { _ = try Optimizer(.adamW, groups: []) }
        #expect(throws: ZooError.self) {
            _ = try Optimizer(.adamW, groups: [ParameterGroup(names: ["a"], learningRate: 1), ParameterGroup(names: ["a"], learningRate: 2)])
        }
        #expect(throws: ZooError.self) { _ = try Optimizer(.sgd(momentum: 0, dampening: 0, nesterov: true), groups: [ParameterGroup(names: ["a"], learningRate: 1)]) }
        #expect(throws: ZooError.self) { _ = try Schedule(.cosine(totalSteps: 3, minFactor: 0), warmupSteps: 3) }
        var o = try Optimizer(.sgd(), groups: [ParameterGroup(names: ["a"], learningRate: 0.1)])
        var p: [String: [Float]] = ["a": [1, 2]]
        #expect(throws: ZooError.self) { try o.step(&p, gradients: ["b": [1, 1]]) }
        #expect(throws: ZooError.self) { try o.step(&p, gradients: ["a": [1]]) }
        #expect(throws: ZooError.self) { try o.step(&p, gradients: ["a": [1, .infinity]]) }
        #expect(p["a"] == [1, 2] && o.stepCount == 0, "a refused step changed something")
        // A file that is not a saved optimiser: one-line error naming it.
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("zoo-notoptim-\(getpid()).safetensors").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try SafetensorsWriter.write([TensorRecord(name: "x", tensor: try Tensor(shape: [1], floats: [0]))], metadata: [], to: path, overwrite: true)
        #expect { _ = try Optimizer(contentsOf: path) } throws: { e in
            (e as? ZooError)?.description.contains(path) == true
        }
    }
}

extension Tensor {
    /// The values of an int64 tensor (test fixtures).
    func int64s() throws -> [Int64] {
        guard dtype == .i64 else { throw ZooError.bad("expected int64, got \(dtype.name)") }
        return withUnsafeBytes { raw in (0..<elementCount).map { raw.loadUnaligned(fromByteOffset: $0 * 8, as: Int64.self) } }
    }

    /// The values of a float64 tensor (test fixtures).
    func float64s() throws -> [Double] {
        guard dtype == .f64 else { throw ZooError.bad("expected float64, got \(dtype.name)") }
        return withUnsafeBytes { raw in (0..<elementCount).map { raw.loadUnaligned(fromByteOffset: $0 * 8, as: Double.self) } }
    }
}
