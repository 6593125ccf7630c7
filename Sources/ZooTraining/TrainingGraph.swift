import ZooArchitectures
import ZooErrors
import ZooKernels
import ZooRuntime
import ZooTensor

/// How BatchNorm layers behave in a training step.
public enum BatchNormMode: String, Sendable, CaseIterable, Codable {
    /// Batch statistics; running statistics updated with torch's momentum (0.1) and unbiased variance.
    case train
    /// Running statistics (the layers are frozen; their affine parameters may still be trained).
    case eval
}

/// Which parameters a training step computes gradients for.
public enum TrainableSet: Sendable, Equatable, CustomStringConvertible {
    /// Every parameter.
    case all
    /// The classifier head only (nodes from `LayerGraph.headStart` on).
    case head
    /// The last `n` stages (between the graph's feature taps) and the head; `lastStages(0)` is the head.
    case lastStages(Int)

    /// `all`, `head` or `last:N`, as `zoo grad --trainable` takes it.
    public init(parsing text: String) throws {
        switch text {
        case "all": self = .all
        case "head": self = .head
        default:
            guard text.hasPrefix("last:"), let n = Int(text.dropFirst(5)), n >= 0 else {
                throw ZooError(.usage, "--trainable takes all, head or last:N, got \(text)")
            }
            self = .lastStages(n)
        }
    }

    /// The form `init(parsing:)` reads.
    public var description: String {
        switch self {
        case .all: return "all"
        case .head: return "head"
        case let .lastStages(n): return "last:\(n)"
        }
    }
}

/// A training executor for a `LayerGraph`: a forward pass in training mode that keeps what the backward
/// pass needs, then the backward pass to every trainable parameter. Nothing is fused or folded
/// (BatchNorm keeps its statistics). Frozen nodes compute no parameter gradients, and the backward pass
/// stops at the first node after which nothing is trainable.
///
/// With BatchNorm in eval mode, the frozen part before the first trained node (the backbone of a
/// head-only or last-stages step) runs as inference does (`InferencePrefix`: BatchNorm folded, the fast
/// kernels) when one value crosses from it into the trained part, and keeps nothing. Its numbers then
/// differ from the unfused forward pass by float rounding only; `inferencePrefix: false` turns it off.
///
/// NCHW; a step is bit-for-bit reproducible for a given `threads` count. One step at a time: `step` and
/// `update` change the parameters and running statistics and must not run concurrently on one instance.
public final class TrainingGraph: @unchecked Sendable {
    /// The graph.
    public let graph: LayerGraph
    /// Parameters and BatchNorm buffers by canonical name (float32 values, row-major).
    public private(set) var values: [String: [Float]]
    /// Shapes of `values`.
    public let shapes: [String: [Int]]
    /// Names of the trainable parameters, in graph order.
    public let trainable: [String]
    /// BatchNorm behaviour.
    public let batchNorm: BatchNormMode
    /// The momentum of the running-statistics update (torch's convention).
    public let batchNormMomentum: Double
    /// Threads a step uses (convolutions and linear layers split their work over them). A step is
    /// bit-for-bit reproducible for a given count; another count rounds differently. 1 by default.
    public var threads: Int = 1 {
        didSet { threads = max(1, threads) }
    }
    /// What runs the convolutions other than depthwise: oneDNN's training primitives (every choice
    /// but `own`, when oneDNN is available and has a kernel for the shape), else im2col + GEMM.
    /// Depthwise convolutions always run as the engine's own direct loops.
    public let convolutions: ConvolutionBackend
    /// What runs the convolutions: `oneDNN 2.6.3 (avx2), own depthwise`, or `im2col + GEMM, own depthwise`.
    public var convolutionsDescription: String {
        (convolutions.usesOneDNN && ConvolutionBackend.oneDNNAvailable ? ConvolutionBackend.automatic.description : "im2col + GEMM")
            + ", own depthwise"
    }
    /// Nodes whose parameters are trained.
    let trainableNodes: Set<Int>
    /// Per node: its output needs a gradient (it or something before it on its inputs is trainable).
    let needsGradient: [Bool]
    /// Per node: its output is kept for the backward pass; frozen nodes that only feed frozen nodes keep
    /// nothing (their outputs are released after their last use in the forward pass).
    let keepsOutput: [Bool]
    /// Per node: the last node that reads its output (itself when none does).
    let lastUse: [Int]
    /// The frozen part compiled for inference (nodes up to `prefix.output`), when it is used.
    private var prefix: InferencePrefix?
    /// The first node the forward pass runs itself when `prefix` is used.
    private let prefixEnd: Int
    /// The prefix holds dropout or stochastic depth, so it is not used for a step with a dropout seed.
    private let prefixIsRandom: Bool
    /// True when the frozen part runs through `prefix` (BatchNorm in eval mode, one value crossing into the
    /// trained part, and no parameter of that part changed by `update` since).
    public var runsFrozenPartAsInference: Bool { prefix != nil }

    /// Loads the parameters `graph` needs from `weights` (any float dtype) and chooses the trainable set.
    /// `batchNormMomentum` is the family's (`ArchitectureConfig.batchNormMomentum`: torchvision's 0.1, or
    /// 0.01 for MobileNetV3). Throws a mismatch error naming a missing or mis-shaped tensor, or a usage error
    /// for `last:N` with more stages than the graph has. `inferencePrefix` lets the frozen part run as
    /// inference where it can (see the type's description); false runs every node unfused.
    public init(graph: LayerGraph, weights: WeightLookup, trainable set: TrainableSet, batchNorm: BatchNormMode,
                batchNormMomentum: Double = 0.1, inferencePrefix: Bool = true,
                convolutions: ConvolutionBackend = .processDefault) throws {
        self.convolutions = convolutions
        guard batchNormMomentum >= 0, batchNormMomentum <= 1 else {
            throw ZooError(.usage, "BatchNorm momentum must be in [0, 1], got \(batchNormMomentum)")
        }
        self.graph = graph
        self.batchNorm = batchNorm
        self.batchNormMomentum = batchNormMomentum
        var values: [String: [Float]] = [:], shapes: [String: [Int]] = [:]
        func load(_ name: String, _ shape: [Int]) throws {
            guard let t = try weights(name) else { throw ZooError(.mismatch, "missing tensor", item: name) }
            guard t.shape == shape else { throw ZooError(.mismatch, "shape \(t.shape), expected \(shape)", item: name) }
            guard t.dtype.isFloatingPoint else { throw ZooError(.mismatch, "dtype \(t.dtype.name) is not a float type", item: name) }
            values[name] = t.floats()
            shapes[name] = shape
        }
        for node in graph.nodes {
            switch node.op {
            case let .conv2d(cin, cout, k, _, _, _, groups, bias):
                guard groups > 0, cin % groups == 0, cout % groups == 0 else {
                    throw ZooError(.badInput, "invalid groups \(groups) for \(cin) -> \(cout) channels", item: node.name)
                }
                try load(node.name + ".weight", [cout, cin / groups, k.0, k.1])
                if bias { try load(node.name + ".bias", [cout]) }
            case let .batchNorm(c, _):
                for p in ["weight", "bias", "running_mean", "running_var"] { try load("\(node.name).\(p)", [c]) }
            case let .linear(fin, fout, bias), let .pointwiseLinear(fin, fout, bias):
                try load(node.name + ".weight", [fout, fin])
                if bias { try load(node.name + ".bias", [fout]) }
            case let .layerNorm(c, _):
                for p in ["weight", "bias"] { try load("\(node.name).\(p)", [c]) }
            case let .layerScale(c):
                try load(node.name + ".layer_scale", [c, 1, 1])
            default: break
            }
        }
        self.values = values
        self.shapes = shapes
        // The first trainable node.
        let first: Int
        switch set {
        case .all: first = 0
        case .head: first = graph.headStart
        case let .lastStages(n):
            guard n <= graph.taps.count else {
                throw ZooError(.usage, "last:\(n) asks for more stages than the architecture has (\(graph.taps.count))")
            }
            first = n == 0 ? graph.headStart : (n == graph.taps.count ? 0 : graph.taps[graph.taps.count - 1 - n].node + 1)
        }
        let nodes = Set(first..<graph.nodes.count)
        trainableNodes = nodes
        var names: [String] = []
        for (i, node) in graph.nodes.enumerated() where nodes.contains(i) {
            switch node.op {
            case let .conv2d(_, _, _, _, _, _, _, bias), let .linear(_, _, bias), let .pointwiseLinear(_, _, bias):
                names.append(node.name + ".weight")
                if bias { names.append(node.name + ".bias") }
            case .batchNorm, .layerNorm:
                names += [node.name + ".weight", node.name + ".bias"]
            case .layerScale:
                names.append(node.name + ".layer_scale")
            default: break
            }
        }
        trainable = names
        var needs = [Bool](repeating: false, count: graph.nodes.count)
        var keep = needs
        var last = Array(graph.nodes.indices)
        for (i, node) in graph.nodes.enumerated() {
            needs[i] = nodes.contains(i) || node.inputs.contains { $0 >= 0 && $0 < i && needs[$0] }
            for j in node.inputs where j >= 0 && j < i {
                last[j] = max(last[j], i)
                if needs[i] { keep[j] = true }
            }
            if needs[i] { keep[i] = true }
        }
        if let end = graph.nodes.indices.last { keep[end] = true }
        needsGradient = needs
        keepsOutput = keep
        lastUse = last
        // The frozen part: every node before the first that needs a gradient. It runs as inference when
        // BatchNorm uses running statistics and exactly one of its values (not the input) is read after it.
        var prefix: InferencePrefix? = nil, prefixEnd = 0, random = false
        if inferencePrefix, batchNorm == .eval, let start = needs.firstIndex(of: true), start > 0 {
            let crossing = Set(graph.nodes[start...].flatMap { $0.inputs.filter { $0 < start } })
            if crossing.count == 1, let b = crossing.first, b >= 0 {
                prefix = try InferencePrefix(graph: graph, output: b, weights: weights, threads: 1, backend: convolutions)
                prefixEnd = start
                random = graph.nodes[0..<start].enumerated().contains { i, node in
                    if case let .dropout(p) = node.op, p > 0 { return true }
                    return (graph.stochasticDepth[i] ?? 0) > 0
                }
            }
        }
        self.prefix = prefix
        self.prefixEnd = prefixEnd
        prefixIsRandom = random
    }

    /// What one step returns.
    public struct Step: Sendable {
        /// The mean loss of the batch.
        public var loss: Double
        /// The logits [N, classes] (row-major).
        public var logits: [Float]
        /// d loss / d parameter for every trainable parameter.
        public var gradients: [String: [Float]]
    }

    /// One forward and backward pass on `input` (NCHW float [N, C, H, W]) with integer class `labels`.
    /// With `BatchNormMode.train` the running statistics in `values` are updated, as torch's `train()` does.
    /// With a `dropoutSeed`, dropout layers zero each element with their probability p and scale the rest
    /// by 1 / (1 - p) (torch's inverted dropout), and residual sums with stochastic depth
    /// (`LayerGraph.stochasticDepth`) drop their branch per sample with their probability p and scale it by
    /// 1 / (1 - p) otherwise (torchvision's `StochasticDepth(p, "row")`), each mask a function of the seed and
    /// the node alone, so a step is reproducible; without a seed both are the identity (what `zoo grad` checks).
    public func step(input: Tensor, labels: [Int], loss: SoftmaxCrossEntropy, dropoutSeed: UInt64? = nil) throws -> Step {
        guard input.rank == 4, input.shape[1] == graph.inputChannels, input.dtype.isFloatingPoint else {
            throw ZooError(.badInput, "input must be float [N, \(graph.inputChannels), H, W], got \(input.dtype.name) \(input.shape)")
        }
        let n = input.shape[0]
        guard n > 0, labels.count == n else { throw ZooError(.badInput, "\(labels.count) labels for a batch of \(n)") }
        if batchNorm == .train, n * input.shape[2] * input.shape[3] < 2 {
            throw ZooError(.badInput, "BatchNorm in train mode needs more than one value per channel (batch \(n) of \(input.shape[2])x\(input.shape[3]))")
        }
        let x = input.floats()
        if let bad = x.withUnsafeBufferPointer({ $0.firstIndex(where: { !$0.isFinite }) }) {
            throw ZooError(.badInput, "input element \(bad) is not finite (\(x[bad]))")
        }
        var fwd = try forward(x, Shape4(n: n, c: input.shape[1], h: input.shape[2], w: input.shape[3]),
                              tensor: input, dropoutSeed: dropoutSeed)
        guard let lastShape = fwd.shapes.last, lastShape.h == 1, lastShape.w == 1 else {
            throw ZooError(.badInput, "the graph does not end in logits [N, classes]")
        }
        let logits = fwd.outputs[graph.nodes.count - 1]
        let (value, dLogits) = try loss.lossAndGradient(logits: logits, labels: labels, classes: lastShape.c)
        let grads = backward(&fwd, dLogits: dLogits)
        if batchNorm == .train { updateRunningStatistics(fwd) }
        return Step(loss: value, logits: logits, gradients: grads)
    }

    /// Replaces parameter values (after an optimiser step); names must be known and counts equal.
    /// A changed value of a frozen parameter stops the frozen part from running as inference (its
    /// compiled weights would be stale); the step then runs every node unfused.
    public func update(_ newValues: [String: [Float]]) throws {
        for (name, v) in newValues {
            guard let old = values[name] else { throw ZooError(.mismatch, "no parameter \(name)") }
            guard old.count == v.count else { throw ZooError(.mismatch, "\(name) has \(old.count) values, got \(v.count)") }
        }
        if prefix != nil {
            let trained = Set(trainable)
            if newValues.contains(where: { !trained.contains($0.key) && values[$0.key] != $0.value }) { prefix = nil }
        }
        for (name, v) in newValues { values[name] = v }
    }

    // MARK: forward

    /// What the forward pass keeps.
    struct Forward {
        var shapes: [Shape4]
        var outputs: [[Float]]
        var inputShape: Shape4
        var input: [Float]
        /// BatchNorm: mean and inverse standard deviation used, and the unbiased batch variance.
        var bnMean: [Int: [Double]] = [:], bnInvstd: [Int: [Double]] = [:], bnUnbiased: [Int: [Double]] = [:]
        /// LayerNorm: mean and inverse standard deviation of every position.
        var lnMean: [Int: [Double]] = [:], lnInvstd: [Int: [Double]] = [:]
        var argmax: [Int: [Int32]] = [:]
        /// Dropout: the factor each element was multiplied by (0 or 1 / (1 - p)).
        var dropout: [Int: [Float]] = [:]
        /// Stochastic depth: the factor each sample's residual branch was multiplied by (0 or 1 / (1 - p)).
        var branch: [Int: [Float]] = [:]
        var geometry: [Int: WindowGeometry] = [:]
    }

    private func param(_ name: String) -> [Float] { values[name] ?? [] }

    private func forward(_ x: [Float], _ s0: Shape4, tensor: Tensor, dropoutSeed: UInt64?) throws -> Forward {
        var f = Forward(shapes: [], outputs: [], inputShape: s0, input: x)
        f.shapes.reserveCapacity(graph.nodes.count)
        f.outputs.reserveCapacity(graph.nodes.count)
        var start = 0
        if var prefix, dropoutSeed == nil || !prefixIsRandom {
            // The frozen part as inference: only its last value is kept; the other nodes before
            // `prefixEnd` hold nothing (nothing after them reads them, and they need no gradient).
            prefix.threads = threads
            let t = try prefix(tensor)
            let os: Shape4
            switch t.rank {
            case 4: os = Shape4(n: t.shape[0], c: t.shape[1], h: t.shape[2], w: t.shape[3])
            case 2: os = Shape4(n: t.shape[0], c: t.shape[1], h: 1, w: 1)
            default: throw ZooError(.badInput, "the frozen part returned a value of shape \(t.shape)", item: graph.nodes[prefix.output].name)
            }
            f.shapes = [Shape4](repeating: Shape4(n: 0, c: 0, h: 0, w: 0), count: prefixEnd)
            f.outputs = [[Float]](repeating: [], count: prefixEnd)
            f.shapes[prefix.output] = os
            f.outputs[prefix.output] = t.floats()
            start = prefixEnd
        }
        for i in start..<graph.nodes.count {
            let node = graph.nodes[i]
            func shape(_ k: Int) throws -> Shape4 {
                guard k < node.inputs.count else { throw ZooError(.badInput, "missing input", item: node.name) }
                let j = node.inputs[k]
                guard j < i else { throw ZooError(.badInput, "input \(j) is not an earlier node", item: node.name) }
                return j < 0 ? s0 : f.shapes[j]
            }
            func value(_ k: Int) -> [Float] { let j = node.inputs[k]; return j < 0 ? f.input : f.outputs[j] }
            let s = try shape(0)
            var out: [Float]
            var os = s
            switch Self.lowered(node.op) {
            case let .conv2d(cin, cout, k, st, pad, dil, groups, bias):
                guard s.c == cin, s.h > 0 else { throw ZooError(.badInput, "expects \(cin) channels, gets \(s.c)", item: node.name) }
                guard let g = WindowGeometry(inH: s.h, inW: s.w, kernel: k, stride: st, dilation: dil, padding: pad) else {
                    throw ZooError(.badInput, "input \(s.h)x\(s.w) is too small", item: node.name)
                }
                f.geometry[i] = g
                os = Shape4(n: s.n, c: cout, h: g.outH, w: g.outW)
                let c = TrainingOps.Conv(inC: cin, outC: cout, kh: k.0, kw: k.1, sh: st.0, sw: st.1, dh: dil.0, dw: dil.1, groups: groups, g: g,
                                         backend: convolutions.usesOneDNN)
                let x = value(0), w = param(node.name + ".weight"), b = bias ? param(node.name + ".bias") : []
                // convForward writes every output element.
                out = Self.filled(os.count) { ob in
                    x.withUnsafeBufferPointer { xp in w.withUnsafeBufferPointer { wp in b.withUnsafeBufferPointer { bp in
                        guard let xb = xp.baseAddress, let wb = wp.baseAddress else { ob.update(repeating: 0, count: os.count); return }
                        TrainingOps.convForward(c, x: xb, n: s.n, w: wb, b: bias ? bp.baseAddress : nil, y: ob, threads: threads)
                    } } }
                }
            case let .batchNorm(c, eps):
                guard s.c == c else { throw ZooError(.badInput, "expects \(c) channels, gets \(s.c)", item: node.name) }
                let x = value(0)
                var mean: [Double], variance: [Double]
                if batchNorm == .train {
                    (mean, variance) = x.withUnsafeBufferPointer { xp in
                        xp.baseAddress.map { TrainingOps.channelStats($0, s, threads: threads) } ?? ([], [])
                    }
                    let m = Double(s.n * s.plane)
                    f.bnUnbiased[i] = variance.map { $0 * m / max(m - 1, 1) }
                } else {
                    mean = param(node.name + ".running_mean").map(Double.init)
                    variance = param(node.name + ".running_var").map(Double.init)
                }
                let invstd = variance.map { 1 / (max($0, 0) + eps).squareRoot() }
                f.bnMean[i] = mean
                f.bnInvstd[i] = invstd
                let gamma = param(node.name + ".weight"), beta = param(node.name + ".bias")
                // affine writes every output element.
                out = Self.filled(s.count) { ob in
                    x.withUnsafeBufferPointer { xp in
                        guard let xb = xp.baseAddress else { ob.update(repeating: 0, count: s.count); return }
                        TrainingOps.affine(xb, s, mean: mean, invstd: invstd, gamma: gamma, beta: beta, y: ob, threads: threads)
                    }
                }
            case let .layerNorm(c, eps):
                guard s.c == c else { throw ZooError(.badInput, "expects \(c) channels, gets \(s.c)", item: node.name) }
                let x = value(0), gamma = param(node.name + ".weight"), beta = param(node.name + ".bias")
                out = [Float](repeating: 0, count: s.count)
                var mean = [Double](repeating: 0, count: s.n * s.plane), invstd = mean
                x.withUnsafeBufferPointer { xp in out.withUnsafeMutableBufferPointer { op in
                    guard let xb = xp.baseAddress, let ob = op.baseAddress else { return }
                    TrainingOps.layerNormForward(xb, s, eps: eps, gamma: gamma, beta: beta, y: ob, mean: &mean, invstd: &invstd)
                } }
                f.lnMean[i] = mean
                f.lnInvstd[i] = invstd
            case let .layerScale(c):
                guard s.c == c else { throw ZooError(.badInput, "expects \(c) channels, gets \(s.c)", item: node.name) }
                let g = param(node.name + ".layer_scale")
                out = value(0)
                for nc in 0..<(s.n * s.c) {
                    let f = g[nc % s.c]
                    for p in 0..<s.plane { out[nc * s.plane + p] *= f }
                }
            case .pointwiseLinear:
                throw ZooError(.badInput, "pointwise linear layer not lowered", item: node.name)
            case let .activation(a):
                let x = value(0)
                out = Self.filled(x.count) { y in
                    x.withUnsafeBufferPointer { xp in
                        guard let xb = xp.baseAddress else { return }
                        TrainingOps.activateForward(a, x: xb, y: y, count: x.count, threads: threads)
                    }
                }
            case let .maxPool(k, st, pad, ceil):
                guard let g = WindowGeometry(inH: s.h, inW: s.w, kernel: k, stride: st, padding: pad, ceilMode: ceil) else {
                    throw ZooError(.badInput, "input \(s.h)x\(s.w) is too small", item: node.name)
                }
                f.geometry[i] = g
                os = Shape4(n: s.n, c: s.c, h: g.outH, w: g.outW)
                out = [Float](repeating: 0, count: os.count)
                var arg = [Int32](repeating: -1, count: os.count)
                let x = value(0)
                x.withUnsafeBufferPointer { xp in out.withUnsafeMutableBufferPointer { op in arg.withUnsafeMutableBufferPointer { ap in
                    guard let xb = xp.baseAddress, let ob = op.baseAddress, let ab = ap.baseAddress else { return }
                    TrainingOps.maxPool(xb, s, g: g, k: k, st: st, y: ob, argmax: ab, threads: threads)
                } } }
                f.argmax[i] = arg
            case let .avgPool(k, st, pad, include):
                guard let g = WindowGeometry(inH: s.h, inW: s.w, kernel: k, stride: st, padding: pad) else {
                    throw ZooError(.badInput, "input \(s.h)x\(s.w) is too small", item: node.name)
                }
                f.geometry[i] = g
                os = Shape4(n: s.n, c: s.c, h: g.outH, w: g.outW)
                let x = value(0)
                out = Self.filled(os.count) { ob in
                    x.withUnsafeBufferPointer { xp in
                        guard let xb = xp.baseAddress else { ob.update(repeating: 0, count: os.count); return }
                        TrainingOps.avgPool(xb, s, g: g, k: k, st: st, includePad: include, y: ob, threads: threads)
                    }
                }
            case let .adaptiveAvgPool(oh, ow):
                os = Shape4(n: s.n, c: s.c, h: oh, w: ow)
                let x = value(0)
                out = Self.filled(os.count) { ob in
                    x.withUnsafeBufferPointer { xp in
                        guard let xb = xp.baseAddress else { ob.update(repeating: 0, count: os.count); return }
                        TrainingOps.adaptiveAvgPool(xb, s, oh: oh, ow: ow, y: ob, threads: threads)
                    }
                }
            case .add:
                let s1 = try shape(1)
                guard s1 == s else { throw ZooError(.badInput, "adds \(s) and \(s1)", item: node.name) }
                let a = value(0), b = value(1)
                out = [Float](repeating: 0, count: s.count)
                if let seed = dropoutSeed, let p = graph.stochasticDepth[i], p > 0 {
                    guard p < 1 else { throw ZooError(.badInput, "stochastic depth probability \(p) leaves nothing", item: node.name) }
                    var rng = SplitMix64(state: seed ^ (UInt64(i) &* 0x9E37_79B9_7F4A_7C15) ^ 0x5D0C_4A57_1C0D_E9B1)
                    let keep = Float(1 / (1 - p))
                    // A sample keeps its branch when its uniform draw is at or above p.
                    let factors = (0..<s.n).map { _ in rng.nextUnit() >= p ? keep : Float(0) }
                    let per = s.c * s.plane
                    for j in 0..<s.count { out[j] = a[j] + factors[j / per] * b[j] }
                    f.branch[i] = factors
                } else {
                    a.withUnsafeBufferPointer { ap in b.withUnsafeBufferPointer { bp in out.withUnsafeMutableBufferPointer { op in
                        guard let ab = ap.baseAddress, let bb = bp.baseAddress, let ob = op.baseAddress else { return }
                        TrainingOps.sum(ab, bb, y: ob, count: s.count, threads: threads)
                    } } }
                }
            case .scale:
                let s1 = try shape(1)
                guard s1.n == s.n, s1.c == s.c, s1.plane == 1 else { throw ZooError(.badInput, "scales \(s) by \(s1)", item: node.name) }
                let a = value(0), b = value(1)
                out = [Float](repeating: 0, count: s.count)
                for nc in 0..<(s.n * s.c) { for p in 0..<s.plane { out[nc * s.plane + p] = a[nc * s.plane + p] * b[nc] } }
            case .flatten:
                os = Shape4(n: s.n, c: s.c * s.plane, h: 1, w: 1)
                out = value(0)
            case let .linear(fin, fout, bias):
                guard s.c * s.plane == fin else { throw ZooError(.badInput, "expects \(fin) features, gets \(s.c * s.plane)", item: node.name) }
                os = Shape4(n: s.n, c: fout, h: 1, w: 1)
                let x = value(0), w = param(node.name + ".weight"), b = bias ? param(node.name + ".bias") : []
                out = [Float](repeating: 0, count: os.count)
                x.withUnsafeBufferPointer { xp in w.withUnsafeBufferPointer { wp in b.withUnsafeBufferPointer { bp in
                    out.withUnsafeMutableBufferPointer { op in
                        guard let xb = xp.baseAddress, let wb = wp.baseAddress, let ob = op.baseAddress else { return }
                        TrainingOps.linearForward(x: xb, n: s.n, fin: fin, fout: fout, w: wb, b: bias ? bp.baseAddress : nil, y: ob, threads: threads)
                    }
                } } }
            case let .dropout(p):
                out = value(0)
                if let seed = dropoutSeed, p > 0 {
                    guard p < 1 else { throw ZooError(.badInput, "dropout probability \(p) leaves nothing", item: node.name) }
                    var rng = SplitMix64(state: seed ^ (UInt64(i) &* 0x9E37_79B9_7F4A_7C15))
                    let keep = Float(1 / (1 - p))
                    var factors = [Float](repeating: 0, count: out.count)
                    for t in 0..<out.count {
                        // An element is kept when its uniform draw is at or above p.
                        factors[t] = rng.nextUnit() >= p ? keep : 0
                        out[t] *= factors[t]
                    }
                    f.dropout[i] = factors
                }
            }
            f.shapes.append(os)
            f.outputs.append(out)
            // Frozen activations are not kept past their last use.
            for j in node.inputs where j >= 0 && lastUse[j] == i && !keepsOutput[j] { f.outputs[j] = [] }
            if lastUse[i] == i, !keepsOutput[i] { f.outputs[i] = [] }
        }
        if !graph.nodes.indices.contains(where: { needsGradient[$0] && graph.nodes[$0].inputs.contains(-1) }) { f.input = [] }
        return f
    }

    // MARK: backward

    private func backward(_ f: inout Forward, dLogits: [Float]) -> [String: [Float]] {
        let count = graph.nodes.count
        let needs = needsGradient
        var grads: [Int: [Float]] = [count - 1: dLogits]
        var out: [String: [Float]] = [:]
        for i in stride(from: count - 1, through: 0, by: -1) {
            guard needs[i], let dy = grads.removeValue(forKey: i) else { continue }
            let node = graph.nodes[i]
            let os = f.shapes[i]
            func inShape(_ k: Int) -> Shape4 { let j = node.inputs[k]; return j < 0 ? f.inputShape : f.shapes[j] }
            func inValue(_ k: Int) -> [Float] { let j = node.inputs[k]; return j < 0 ? f.input : f.outputs[j] }
            /// Accumulates `d` into the gradient of input `k` when that input needs one.
            func give(_ k: Int, _ d: [Float]) {
                let j = node.inputs[k]
                guard j >= 0, needs[j] else { return }
                if var g = grads.removeValue(forKey: j) {
                    g.withUnsafeMutableBufferPointer { gp in d.withUnsafeBufferPointer { dp in
                        guard let gb = gp.baseAddress, let db = dp.baseAddress else { return }
                        TrainingOps.accumulate(gb, db, count: min(gp.count, dp.count), threads: threads)
                    } }
                    grads[j] = g
                } else {
                    grads[j] = d
                }
            }
            func inputNeeds(_ k: Int) -> Bool { let j = node.inputs[k]; return j >= 0 && needs[j] }
            let train = trainableNodes.contains(i)
            switch Self.lowered(node.op) {
            case let .conv2d(cin, cout, k, st, _, dil, groups, bias):
                guard let g = f.geometry[i] else { continue }
                let s = inShape(0)
                let c = TrainingOps.Conv(inC: cin, outC: cout, kh: k.0, kw: k.1, sh: st.0, sw: st.1, dh: dil.0, dw: dil.1, groups: groups, g: g,
                                         backend: convolutions.usesOneDNN)
                let x = inValue(0), w = param(node.name + ".weight")
                var dx = inputNeeds(0) ? [Float](repeating: 0, count: s.count) : []
                var dw = train ? [Float](repeating: 0, count: w.count) : []
                var db = train && bias ? [Float](repeating: 0, count: cout) : []
                x.withUnsafeBufferPointer { xp in w.withUnsafeBufferPointer { wp in dy.withUnsafeBufferPointer { dyp in
                    dx.withUnsafeMutableBufferPointer { dxp in dw.withUnsafeMutableBufferPointer { dwp in db.withUnsafeMutableBufferPointer { dbp in
                        guard let xb = xp.baseAddress, let wb = wp.baseAddress, let dyb = dyp.baseAddress else { return }
                        // An empty array's buffer may still have an address: only non-empty ones are written.
                        TrainingOps.convBackward(c, x: xb, n: s.n, w: wb, dy: dyb, dx: dxp.isEmpty ? nil : dxp.baseAddress,
                                                 dw: dwp.isEmpty ? nil : dwp.baseAddress, db: dbp.isEmpty ? nil : dbp.baseAddress, threads: threads)
                    } } }
                } } }
                if train {
                    out[node.name + ".weight"] = dw
                    if bias { out[node.name + ".bias"] = db }
                }
                if inputNeeds(0) { give(0, dx) }
            case .batchNorm:
                let s = inShape(0), x = inValue(0)
                let mean = f.bnMean[i] ?? [], invstd = f.bnInvstd[i] ?? []
                let gamma = param(node.name + ".weight")
                var dx = inputNeeds(0) ? [Float](repeating: 0, count: s.count) : []
                var dgamma = [Float](repeating: 0, count: s.c), dbeta = [Float](repeating: 0, count: s.c)
                x.withUnsafeBufferPointer { xp in dy.withUnsafeBufferPointer { dyp in
                    dx.withUnsafeMutableBufferPointer { dxp in dgamma.withUnsafeMutableBufferPointer { gp in dbeta.withUnsafeMutableBufferPointer { bp in
                        guard let xb = xp.baseAddress, let dyb = dyp.baseAddress else { return }
                        TrainingOps.batchNormBackward(xb, s, mean: mean, invstd: invstd, gamma: gamma, train: batchNorm == .train, dy: dyb,
                                                      dx: dxp.isEmpty ? nil : dxp.baseAddress, dgamma: gp.baseAddress, dbeta: bp.baseAddress,
                                                      threads: threads)
                    } } }
                } }
                if train {
                    out[node.name + ".weight"] = dgamma
                    out[node.name + ".bias"] = dbeta
                }
                if inputNeeds(0) { give(0, dx) }
            case let .activation(a):
                guard inputNeeds(0) else { continue }
                let x = inValue(0), y = f.outputs[i]
                let dx = Self.filled(dy.count) { dxb in
                    x.withUnsafeBufferPointer { xp in y.withUnsafeBufferPointer { yp in dy.withUnsafeBufferPointer { dyp in
                        guard let xb = xp.baseAddress, let yb = yp.baseAddress, let dyb = dyp.baseAddress else { return }
                        TrainingOps.activateBackward(a, x: xb, y: yb, dy: dyb, dx: dxb, count: dy.count, threads: threads)
                    } } }
                }
                give(0, dx)
            case .maxPool:
                guard inputNeeds(0), let arg = f.argmax[i] else { continue }
                let s = inShape(0)
                let dx = Self.filled(s.count) { dxb in
                    arg.withUnsafeBufferPointer { ap in dy.withUnsafeBufferPointer { dyp in
                        guard let ab = ap.baseAddress, let dyb = dyp.baseAddress else { dxb.update(repeating: 0, count: s.count); return }
                        TrainingOps.maxPoolBackward(s, outPlane: os.plane, argmax: ab, dy: dyb, dx: dxb, threads: threads)
                    } }
                }
                give(0, dx)
            case let .avgPool(k, st, _, include):
                guard inputNeeds(0), let g = f.geometry[i] else { continue }
                let s = inShape(0)
                let dx = Self.filled(s.count) { dxb in
                    dy.withUnsafeBufferPointer { dyp in
                        guard let dyb = dyp.baseAddress else { dxb.update(repeating: 0, count: s.count); return }
                        TrainingOps.avgPoolBackward(s, g: g, k: k, st: st, includePad: include, dy: dyb, dx: dxb, threads: threads)
                    }
                }
                give(0, dx)
            case let .adaptiveAvgPool(oh, ow):
                guard inputNeeds(0) else { continue }
                let s = inShape(0)
                let dx = Self.filled(s.count) { dxb in
                    dy.withUnsafeBufferPointer { dyp in
                        guard let dyb = dyp.baseAddress else { dxb.update(repeating: 0, count: s.count); return }
                        TrainingOps.adaptiveAvgPoolBackward(s, oh: oh, ow: ow, dy: dyb, dx: dxb, threads: threads)
                    }
                }
                give(0, dx)
            case .add:
                give(0, dy)
                if let factors = f.branch[i] {
                    let per = dy.count / max(1, factors.count)
                    var db = dy
                    for j in 0..<db.count { db[j] *= factors[j / per] }
                    give(1, db)
                } else {
                    give(1, dy)
                }
            case .scale:
                let s = inShape(0), a = inValue(0), b = inValue(1)
                if inputNeeds(0) {
                    var da = dy
                    for nc in 0..<(s.n * s.c) { for p in 0..<s.plane { da[nc * s.plane + p] *= b[nc] } }
                    give(0, da)
                }
                if inputNeeds(1) {
                    var db = [Float](repeating: 0, count: s.n * s.c)
                    for nc in 0..<(s.n * s.c) {
                        var sum = 0.0
                        for p in 0..<s.plane { sum += Double(dy[nc * s.plane + p]) * Double(a[nc * s.plane + p]) }
                        db[nc] = Float(sum)
                    }
                    give(1, db)
                }
            case .flatten:
                give(0, dy)
            case .layerNorm:
                let s = inShape(0), x = inValue(0)
                let mean = f.lnMean[i] ?? [], invstd = f.lnInvstd[i] ?? []
                let gamma = param(node.name + ".weight")
                var dx = inputNeeds(0) ? [Float](repeating: 0, count: s.count) : []
                var dgamma = [Float](repeating: 0, count: s.c), dbeta = [Float](repeating: 0, count: s.c)
                x.withUnsafeBufferPointer { xp in dy.withUnsafeBufferPointer { dyp in dx.withUnsafeMutableBufferPointer { dxp in
                    guard let xb = xp.baseAddress, let dyb = dyp.baseAddress else { return }
                    TrainingOps.layerNormBackward(xb, s, mean: mean, invstd: invstd, gamma: gamma, dy: dyb,
                                                  dx: dxp.isEmpty ? nil : dxp.baseAddress, dgamma: &dgamma, dbeta: &dbeta)
                } } }
                if train {
                    out[node.name + ".weight"] = dgamma
                    out[node.name + ".bias"] = dbeta
                }
                if inputNeeds(0) { give(0, dx) }
            case .layerScale:
                let s = inShape(0), g = param(node.name + ".layer_scale")
                if train {
                    let x = inValue(0)
                    var dg = [Double](repeating: 0, count: s.c)
                    for nc in 0..<(s.n * s.c) {
                        var sum = 0.0
                        for p in 0..<s.plane { sum += Double(dy[nc * s.plane + p]) * Double(x[nc * s.plane + p]) }
                        dg[nc % s.c] += sum
                    }
                    out[node.name + ".layer_scale"] = dg.map { Float($0) }
                }
                if inputNeeds(0) {
                    var dx = dy
                    for nc in 0..<(s.n * s.c) {
                        let f = g[nc % s.c]
                        for p in 0..<s.plane { dx[nc * s.plane + p] *= f }
                    }
                    give(0, dx)
                }
            case .pointwiseLinear:
                continue
            case .dropout:
                if let factors = f.dropout[i] {
                    var dx = dy
                    for t in 0..<dx.count { dx[t] *= factors[t] }
                    give(0, dx)
                } else {
                    give(0, dy)
                }
            case let .linear(fin, fout, bias):
                let s = inShape(0), x = inValue(0), w = param(node.name + ".weight")
                var dw = train ? [Float](repeating: 0, count: fout * fin) : [], db = train && bias ? [Float](repeating: 0, count: fout) : []
                var dx = inputNeeds(0) ? [Float](repeating: 0, count: s.n * fin) : []
                x.withUnsafeBufferPointer { xp in w.withUnsafeBufferPointer { wp in dy.withUnsafeBufferPointer { dyp in
                    dx.withUnsafeMutableBufferPointer { dxp in dw.withUnsafeMutableBufferPointer { dwp in db.withUnsafeMutableBufferPointer { dbp in
                        guard let xb = xp.baseAddress, let wb = wp.baseAddress, let dyb = dyp.baseAddress else { return }
                        TrainingOps.linearBackward(x: xb, n: s.n, fin: fin, fout: fout, w: wb, dy: dyb, dx: dxp.isEmpty ? nil : dxp.baseAddress,
                                                   dw: dwp.isEmpty ? nil : dwp.baseAddress, db: dbp.isEmpty ? nil : dbp.baseAddress, threads: threads)
                    } } }
                } } }
                if train {
                    out[node.name + ".weight"] = dw
                    if bias { out[node.name + ".bias"] = db }
                }
                if inputNeeds(0) { give(0, dx) }
            }
        }
        return out
    }

    /// An array of `count` floats written by `body`, without a zero fill first; `body` must write every
    /// element (it is not called when `count` is 0).
    static func filled(_ count: Int, _ body: (UnsafeMutablePointer<Float>) -> Void) -> [Float] {
        [Float](unsafeUninitializedCapacity: count) { buf, initialized in
            if count > 0, let b = buf.baseAddress { body(b) }
            initialized = count
        }
    }

    /// The op as the training engine runs it: a pointwise linear layer is the 1x1 convolution it is
    /// (its [out, in] weight is [out, in, 1, 1] in memory, and its gradients likewise).
    static func lowered(_ op: LayerGraph.Op) -> LayerGraph.Op {
        if case let .pointwiseLinear(fin, fout, bias) = op {
            return .conv2d(inChannels: fin, outChannels: fout, kernel: (1, 1), stride: (1, 1), padding: .symmetric(0),
                           dilation: (1, 1), groups: 1, bias: bias)
        }
        return op
    }

    /// torch's update: `running = (1 - momentum) * running + momentum * batch` (unbiased variance).
    private func updateRunningStatistics(_ f: Forward) {
        let m = batchNormMomentum
        for (i, node) in graph.nodes.enumerated() {
            guard case .batchNorm = node.op, let mean = f.bnMean[i], let unbiased = f.bnUnbiased[i],
                  var rm = values[node.name + ".running_mean"], var rv = values[node.name + ".running_var"] else { continue }
            for c in 0..<rm.count {
                rm[c] = Float((1 - m) * Double(rm[c]) + m * mean[c])
                rv[c] = Float((1 - m) * Double(rv[c]) + m * unbiased[c])
            }
            values[node.name + ".running_mean"] = rm
            values[node.name + ".running_var"] = rv
        }
    }
}

extension TrainingGraph {
    /// The usual fine-tuning groups over the trainable parameters: the head at `learningRate`, the
    /// backbone at `learningRate * backboneScale`, each split so that BatchNorm parameters and biases get
    /// no weight decay unless `decayNormAndBias` (timm's and fastai's default is not to decay them).
    /// Empty groups are left out.
    public func parameterGroups(learningRate: Double, backboneScale: Double = 0.1, weightDecay: Double = 0,
                                decayNormAndBias: Bool = false) -> [ParameterGroup] {
        var isNorm = Set<String>(), inHead = Set<String>()
        for (i, node) in graph.nodes.enumerated() {
            switch node.op {
            case .batchNorm, .layerNorm: isNorm.insert(node.name)
            default: break
            }
            if i >= graph.headStart { inHead.insert(node.name) }
        }
        func module(_ name: String) -> String { name.split(separator: ".").dropLast().joined(separator: ".") }
        var groups: [ParameterGroup] = []
        for head in [false, true] {
            let rate = head ? learningRate : learningRate * backboneScale
            let names = trainable.filter { inHead.contains(module($0)) == head }
            let noDecay = decayNormAndBias ? [] : names.filter { isNorm.contains(module($0)) || $0.hasSuffix(".bias") }
            let decay = names.filter { !noDecay.contains($0) }
            if !decay.isEmpty { groups.append(ParameterGroup(names: decay, learningRate: rate, weightDecay: weightDecay)) }
            if !noDecay.isEmpty { groups.append(ParameterGroup(names: noDecay, learningRate: rate, weightDecay: 0)) }
        }
        return groups
    }
}
