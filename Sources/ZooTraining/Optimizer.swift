import Foundation
import ZooErrors
import ZooFormats
import ZooTensor

/// Parameters that share a learning rate and weight decay (torch's `param_groups`). The usual
/// fine-tuning recipe has a lower rate for the backbone than for the new head, and no weight decay on
/// BatchNorm and bias parameters.
public struct ParameterGroup: Sendable, Equatable, Codable {
    /// Canonical parameter names (torchvision `state_dict` names).
    public var names: [String]
    /// The base learning rate (the schedule multiplies it).
    public var learningRate: Double
    /// L2 weight decay (SGD: added to the gradient) or decoupled weight decay (AdamW).
    public var weightDecay: Double

    /// A group.
    public init(names: [String], learningRate: Double, weightDecay: Double = 0) {
        self.names = names
        self.learningRate = learningRate
        self.weightDecay = weightDecay
    }
}

/// The update rule, with torch's semantics and defaults.
public enum OptimizerAlgorithm: Sendable, Equatable, Codable {
    /// `torch.optim.SGD`: `g += wd * p`; with momentum, `b = g` at the first step, else
    /// `b = momentum * b + (1 - dampening) * g`; `g = nesterov ? g + momentum * b : b`; `p -= lr * g`.
    case sgd(momentum: Double, dampening: Double, nesterov: Bool)
    /// `torch.optim.AdamW`: `p *= 1 - lr * wd`; `m += (1 - beta1) (g - m)`; `v = beta2 v + (1 - beta2) g^2`;
    /// `p -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)`.
    case adamW(beta1: Double, beta2: Double, epsilon: Double)

    /// SGD with torch's defaults but momentum 0.9 (the usual fine-tuning setting).
    public static func sgd(momentum: Double = 0.9, nesterov: Bool = false) -> OptimizerAlgorithm {
        .sgd(momentum: momentum, dampening: 0, nesterov: nesterov)
    }

    /// AdamW with torch's defaults (betas 0.9, 0.999; eps 1e-8).
    public static let adamW = OptimizerAlgorithm.adamW(beta1: 0.9, beta2: 0.999, epsilon: 1e-8)
}

/// An optimiser over named float32 parameters: groups with their own learning rate and weight decay,
/// a learning-rate schedule stepped once per optimiser step, and state that is saved and restored
/// (`save(to:)`, `init(contentsOf:)`) so a run resumes where it stopped.
public struct Optimizer: Sendable {
    /// The update rule.
    public let algorithm: OptimizerAlgorithm
    /// The parameter groups (no name in two groups).
    public let groups: [ParameterGroup]
    /// The learning-rate schedule.
    public let schedule: Schedule
    /// Optimiser steps taken so far.
    public private(set) var stepCount: Int = 0
    /// Per-parameter state: SGD `momentum_buffer`; AdamW `exp_avg`, `exp_avg_sq` (keys `name/kind`).
    private(set) var state: [String: [Float]] = [:]
    /// Group index of each parameter name.
    private let groupOf: [String: Int]

    /// An optimiser; throws a usage error for a name in two groups, an empty group list, a negative or
    /// non-finite learning rate or weight decay, or hyper-parameters outside their ranges (momentum,
    /// dampening and betas in [0, 1), Nesterov without momentum or with dampening, eps <= 0).
    public init(_ algorithm: OptimizerAlgorithm, groups: [ParameterGroup], schedule: Schedule = .constant) throws {
        guard !groups.isEmpty else { throw ZooError(.usage, "an optimiser needs at least one parameter group") }
        var index: [String: Int] = [:]
        for (g, group) in groups.enumerated() {
            guard group.learningRate >= 0, group.learningRate.isFinite, group.weightDecay >= 0, group.weightDecay.isFinite else {
                throw ZooError(.usage, "parameter group \(g): learning rate and weight decay must be finite and non-negative")
            }
            for name in group.names {
                if let other = index[name] {
                    throw ZooError(.usage, "parameter \(name) is in groups \(other) and \(g)")
                }
                index[name] = g
            }
        }
        switch algorithm {
        case let .sgd(momentum, dampening, nesterov):
            guard (0..<1).contains(momentum), (0..<1).contains(dampening) else {
                throw ZooError(.usage, "SGD momentum and dampening must be in [0, 1)")
            }
            if nesterov, momentum == 0 || dampening != 0 {
                throw ZooError(.usage, "Nesterov momentum needs a momentum and zero dampening")
            }
        case let .adamW(beta1, beta2, epsilon):
            guard (0..<1).contains(beta1), (0..<1).contains(beta2), epsilon > 0, epsilon.isFinite else {
                throw ZooError(.usage, "AdamW betas must be in [0, 1) and eps positive")
            }
        }
        self.algorithm = algorithm
        self.groups = groups
        self.schedule = schedule
        groupOf = index
    }

    /// Each group's learning rate for the next step (base rate x schedule factor).
    public var learningRates: [Double] {
        let f = schedule.factor(atStep: stepCount)
        return groups.map { $0.learningRate * f }
    }

    /// One optimiser step: updates every parameter that has a gradient. A gradient for a name no group
    /// holds, a missing parameter, a count mismatch or a non-finite gradient is an error, and nothing
    /// is updated then (the check runs before the first write).
    public mutating func step(_ parameters: inout [String: [Float]], gradients: [String: [Float]]) throws {
        for (name, g) in gradients.sorted(by: { $0.key < $1.key }) {
            guard groupOf[name] != nil else { throw ZooError(.mismatch, "a gradient for \(name), which no parameter group holds") }
            guard let p = parameters[name] else { throw ZooError(.mismatch, "no parameter \(name) for its gradient") }
            guard p.count == g.count else {
                throw ZooError(.mismatch, "gradient of \(name) has \(g.count) values, the parameter \(p.count)")
            }
            guard g.allSatisfy(\.isFinite) else { throw ZooError(.badInput, "the gradient of \(name) is not finite") }
        }
        let rates = learningRates
        let t = stepCount + 1
        for (name, g) in gradients.sorted(by: { $0.key < $1.key }) {
            guard let gi = groupOf[name], var p = parameters[name] else { continue }
            parameters[name] = nil  // unique storage: the update writes in place
            update(&p, gradient: g, name: name, learningRate: rates[gi], weightDecay: groups[gi].weightDecay, step: t)
            parameters[name] = p
        }
        stepCount = t
    }

    private mutating func update(_ p: inout [Float], gradient: [Float], name: String, learningRate lr: Double, weightDecay wd: Double,
                                 step t: Int) {
        let n = p.count
        switch algorithm {
        case let .sgd(momentum, dampening, nesterov):
            let wdF = Float(wd), lrF = Float(lr), mF = Float(momentum), dF = Float(1 - dampening)
            var buf = state.removeValue(forKey: name + "/momentum_buffer")
            let first = buf == nil
            if momentum != 0, buf == nil { buf = [Float](repeating: 0, count: n) }
            p.withUnsafeMutableBufferPointer { pp in
                gradient.withUnsafeBufferPointer { gp in
                    if momentum == 0 {
                        for i in 0..<n {
                            let g = wdF != 0 ? gp[i] + pp[i] * wdF : gp[i]
                            pp[i] -= lrF * g
                        }
                        return
                    }
                    buf?.withUnsafeMutableBufferPointer { bp in
                        for i in 0..<n {
                            let g = wdF != 0 ? gp[i] + pp[i] * wdF : gp[i]
                            let b = first ? g : bp[i] * mF + g * dF
                            bp[i] = b
                            let step = nesterov ? g + b * mF : b
                            pp[i] -= lrF * step
                        }
                    }
                }
            }
            if let buf { state[name + "/momentum_buffer"] = buf }
        case let .adamW(beta1, beta2, epsilon):
            var m = state.removeValue(forKey: name + "/exp_avg") ?? [Float](repeating: 0, count: n)
            var v = state.removeValue(forKey: name + "/exp_avg_sq") ?? [Float](repeating: 0, count: n)
            let decay = Float(1 - lr * wd)
            let c1 = 1 - pow(beta1, Double(t)), c2 = 1 - pow(beta2, Double(t))
            let stepSize = Float(lr / c1), c2Sqrt = Float(c2.squareRoot())
            let b1 = Float(1 - beta1), b2 = Float(beta2), b2c = Float(1 - beta2), eps = Float(epsilon)
            p.withUnsafeMutableBufferPointer { pp in
                gradient.withUnsafeBufferPointer { gp in
                    m.withUnsafeMutableBufferPointer { mp in
                        v.withUnsafeMutableBufferPointer { vp in
                            for i in 0..<n {
                                if wd != 0 { pp[i] *= decay }
                                let g = gp[i]
                                mp[i] += (g - mp[i]) * b1
                                vp[i] = vp[i] * b2 + g * g * b2c
                                let denom = vp[i].squareRoot() / c2Sqrt + eps
                                pp[i] -= stepSize * (mp[i] / denom)
                            }
                        }
                    }
                }
            }
            state[name + "/exp_avg"] = m
            state[name + "/exp_avg_sq"] = v
        }
    }

    // MARK: saving and restoring

    /// What the metadata key `zoo.optimizer` holds.
    struct Settings: Codable {
        var algorithm: OptimizerAlgorithm
        var groups: [ParameterGroup]
        var schedule: Schedule
        var step: Int
    }

    /// Metadata key of the settings in a saved optimiser file.
    public static let metadataKey = "zoo.optimizer"

    /// Writes the settings, the step count and every state tensor (`state.NAME.KIND`, float32) to a
    /// safetensors file, atomically.
    public func save(to path: String, overwrite: Bool = true) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let settings = try encoder.encode(Settings(algorithm: algorithm, groups: groups, schedule: schedule, step: stepCount))
        var records: [TensorRecord] = []
        for (key, values) in state.sorted(by: { $0.key < $1.key }) {
            records.append(TensorRecord(name: "state." + key.replacingOccurrences(of: "/", with: "."),
                                        tensor: try Tensor(shape: [values.count], floats: values)))
        }
        try SafetensorsWriter.write(records, metadata: [(Optimizer.metadataKey, String(decoding: settings, as: UTF8.self))],
                                    to: path, overwrite: overwrite)
    }

    /// Restores an optimiser saved by `save(to:)`; errors name the file and what is wrong.
    public init(contentsOf path: String) throws {
        do {
            let file = try SafetensorsFile(path: path)
            guard let text = file.metadataValue(Optimizer.metadataKey) else {
                throw ZooError(.badInput, "no \(Optimizer.metadataKey) metadata: not a saved optimiser")
            }
            let settings: Settings
            do { settings = try JSONDecoder().decode(Settings.self, from: Data(text.utf8)) } catch {
                throw ZooError(.badInput, "\(Optimizer.metadataKey) is not a valid optimiser description")
            }
            try self.init(settings.algorithm, groups: settings.groups, schedule: settings.schedule)
            guard settings.step >= 0 else { throw ZooError(.badInput, "negative step count \(settings.step)") }
            let kinds: Set<String>
            switch settings.algorithm {
            case .sgd: kinds = ["momentum_buffer"]
            case .adamW: kinds = ["exp_avg", "exp_avg_sq"]
            }
            for entry in file.entries {
                let parts = entry.name.split(separator: ".")
                guard parts.count >= 3, parts[0] == "state", let kind = parts.last.map(String.init), kinds.contains(kind) else {
                    throw ZooError(.badInput, "unexpected tensor \(entry.name)")
                }
                let name = parts.dropFirst().dropLast().joined(separator: ".")
                guard groupOf[name] != nil else { throw ZooError(.badInput, "state for \(name), which no parameter group holds") }
                let t = try file.tensor(entry)
                guard t.dtype == .f32, t.rank == 1 else { throw ZooError(.badInput, "state tensor \(entry.name) is not a float32 vector") }
                state[name + "/" + kind] = t.floats()
            }
            stepCount = settings.step
        } catch let e as ZooError { throw e.inFile(path) }
    }
}
