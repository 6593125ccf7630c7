// ZooRuntime: compiles a LayerGraph plus weights into an executable plan over ZooKernels and runs it.
import Foundation
import ZooArchitectures
import ZooKernels
import ZooErrors
import ZooTensor

/// Finds a parameter tensor by canonical name; nil when absent.
public typealias WeightLookup = (String) throws -> Tensor?

/// Keeps a zero-copy weight tensor (and the mapping behind it) alive for a kernel.
final class TensorOwner: @unchecked Sendable {
    let tensor: Tensor
    init(_ t: Tensor) { tensor = t }
}

/// One executable step of a compiled graph. Its output is the value with the step's index.
struct Step: @unchecked Sendable {
    enum Kind {
        case input
        case conv(Conv2D)
        case linear(Linear)
        case maxPool(kernel: (Int, Int), stride: (Int, Int), padding: WindowPadding, ceilMode: Bool)
        case avgPool(kernel: (Int, Int), stride: (Int, Int), padding: WindowPadding, ceilMode: Bool, countIncludePad: Bool)
        case adaptiveAvgPool(Int, Int)
        case add(Activation)
        case scale
        case affine(scale: [Float], shift: [Float], Activation)
        case layerNorm(gamma: [Float], beta: [Float], eps: Double)
        case activation(Activation)
        case flatten
    }
    var kind: Kind
    /// A short name of the kind (profiling).
    var kindName: String {
        switch kind {
        case .input: return "input"
        case let .conv(c):
            let d = c.descriptor
            return "conv\(d.kernelH)x\(d.kernelW)/\(d.strideH) g\(d.groups) \(d.inChannels)->\(d.outChannels)"
        case .linear: return "linear"
        case .maxPool: return "maxpool"
        case .avgPool: return "avgpool"
        case .adaptiveAvgPool: return "adaptive"
        case .add: return "add"
        case .scale: return "scale"
        case .affine: return "affine"
        case .layerNorm: return "layernorm"
        case .activation: return "activation"
        case .flatten: return "flatten"
        }
    }
    /// Input values (step indices).
    var inputs: [Int]
    /// The graph node this step's output stands for (for messages).
    var name: String
    /// True when the output is [N, features] rather than a feature map.
    var flat: Bool
}

/// The shape of a value: NHWC internally.
struct ValueShape: Hashable {
    var n: Int, h: Int, w: Int, c: Int
    var count: Int { n * h * w * c }
}

/// Compile-time record of a convolution still open for fusion.
struct PendingConv {
    var weights: PackedConvWeights
    /// The weight tensor the packed weights defer to (its mapped pages are dropped once the kernel is built).
    var source: Tensor
    var bias: [Float]?
    var activation: Activation = .none
    var hasResidual = false
}

struct PendingLinear {
    var inFeatures: Int, outFeatures: Int
    var weight: Tensor
    var bias: [Float]?
    var activation: Activation = .none
}

/// A compiled graph: steps with packed weights, independent of the input size.
final class Engine: @unchecked Sendable {
    let steps: [Step]
    /// Execution order (step indices).
    let order: [Int]
    /// Value of each compiled graph node.
    let nodeValue: [Int]
    let inputChannels: Int
    let nodeNames: [String]

    let lock = NSLock()
    var plans: [PlanKey: ExecutionPlan] = [:]
    var arenas: [Int: [UnsafeMutableRawPointer]] = [:]

    /// Bytes of the convolution and linear weights (float32).
    let weightBytes: Int

    /// The convolution backend the kernels were built for (and the layout policy of the plans).
    let backend: ConvolutionBackend

    init(steps: [Step], order: [Int], nodeValue: [Int], inputChannels: Int, nodeNames: [String], backend: ConvolutionBackend) {
        self.backend = backend
        self.steps = steps
        self.order = order
        self.nodeValue = nodeValue
        self.inputChannels = inputChannels
        self.nodeNames = nodeNames
        var floats = 0
        for s in steps {
            switch s.kind {
            case .conv(let c):
                let d = c.descriptor
                floats += d.outChannels * (d.inChannels / max(d.groups, 1)) * d.kernelH * d.kernelW
            case .linear(let l):
                floats += l.inFeatures * l.outFeatures
            default: break
            }
        }
        weightBytes = floats * 4
    }

    deinit {
        for (_, list) in arenas { for p in list { p.deallocate() } }
    }

    // MARK: compiling

    /// Compiles nodes `0..<end` of `graph`; `materialized` nodes keep their own value (taps, outputs).
    static func compile(_ graph: LayerGraph, end: Int, materialized: Set<Int>, weights: WeightLookup,
                        backend: ConvolutionBackend) throws -> Engine {
        guard end >= 1, end <= graph.nodes.count else {
            throw ZooError(.badInput, "the graph has \(graph.nodes.count) nodes, cannot compile \(end) of them")
        }
        guard graph.inputChannels > 0 else { throw ZooError(.badInput, "the graph declares \(graph.inputChannels) input channels") }
        let nodes = Array(graph.nodes[0..<end])
        var consumers = [Int](repeating: 0, count: nodes.count)
        for (i, node) in nodes.enumerated() {
            for p in node.inputs {
                guard p >= -1, p < i else {
                    throw ZooError(.badInput, "input \(p) of node \(i) is not an earlier node", item: node.name)
                }
                if p >= 0 { consumers[p] += 1 }
            }
        }
        var steps: [Step] = [Step(kind: .input, inputs: [], name: "input", flat: false)]
        var order: [Int] = [0]
        var pendingConv: [Int: PendingConv] = [:]
        var pendingLinear: [Int: PendingLinear] = [:]
        var tail: [Int: Int] = [:]          // step -> the last node it computes
        var nodeValue = [Int](repeating: -1, count: nodes.count)

        func value(_ p: Int) -> Int { p < 0 ? 0 : nodeValue[p] }
        // A step may absorb node `p`'s consumer when p is the step's last node and nothing else reads p.
        func fusable(_ p: Int) -> Int? {
            guard p >= 0, consumers[p] == 1, !materialized.contains(p) else { return nil }
            let s = nodeValue[p]
            return tail[s] == p ? s : nil
        }
        func param(_ name: String, _ shape: [Int]) throws -> Tensor {
            guard let t = try weights(name) else {
                throw ZooError(.mismatch, "missing tensor; the architecture needs shape \(shape)", item: name)
            }
            guard t.shape == shape else {
                throw ZooError(.mismatch, "shape \(t.shape) does not fit the architecture, which expects \(shape)", item: name)
            }
            guard t.dtype.isFloatingPoint else {
                throw ZooError(.mismatch, "dtype \(t.dtype.name) is not a float type", item: name)
            }
            return t
        }
        func addStep(_ kind: Step.Kind, _ inputs: [Int], node i: Int, flat: Bool) {
            steps.append(Step(kind: kind, inputs: inputs, name: nodes[i].name, flat: flat))
            order.append(steps.count - 1)
            tail[steps.count - 1] = i
            nodeValue[i] = steps.count - 1
        }

        for (i, node) in nodes.enumerated() {
            let name = node.name
            func needInputs(_ k: Int) throws {
                guard node.inputs.count == k else {
                    throw ZooError(.badInput, "node has \(node.inputs.count) inputs, its op needs \(k)", item: name)
                }
            }
            switch node.op {
            case let .conv2d(cin, cout, kernel, stride, padding, dilation, groups, hasBias):
                try needInputs(1)
                let d = ConvDescriptor(inChannels: cin, outChannels: cout, kernel: kernel, stride: stride, dilation: dilation,
                                       groups: groups, padding: padding)
                guard d.isValid else { throw ZooError(.badInput, "invalid convolution \(node.op)", item: name) }
                let w = try param("\(name).weight", [cout, cin / groups, kernel.0, kernel.1])
                let b = hasBias ? try param("\(name).bias", [cout]).floats() : nil
                guard let packed = Engine.pack(d, w) else { throw ZooError(.badInput, "cannot pack convolution \(node.op)", item: name) }
                addStep(.input, [value(node.inputs[0])], node: i, flat: false)
                pendingConv[steps.count - 1] = PendingConv(weights: packed, source: w, bias: b)
            case let .batchNorm(channels, eps):
                try needInputs(1)
                let gamma = try param("\(name).weight", [channels]).floats()
                let beta = try param("\(name).bias", [channels]).floats()
                let mean = try param("\(name).running_mean", [channels]).floats()
                let variance = try param("\(name).running_var", [channels]).floats()
                var scale = [Float](repeating: 0, count: channels), shift = scale
                for c in 0..<channels {
                    let s = Double(gamma[c]) / (Double(variance[c]) + eps).squareRoot()
                    scale[c] = Float(s)
                    shift[c] = Float(Double(beta[c]) - Double(mean[c]) * s)
                }
                let p = node.inputs[0]
                if let s = fusable(p), var conv = pendingConv[s], conv.activation == .none, !conv.hasResidual,
                   conv.weights.descriptor.outChannels == channels {
                    conv.weights.scaleOutputChannels(scale)
                    var bias = [Float](repeating: 0, count: channels)
                    for c in 0..<channels {
                        let b0 = Double(conv.bias?[c] ?? 0)
                        bias[c] = Float((b0 - Double(mean[c])) * Double(scale[c]) + Double(beta[c]))
                    }
                    conv.bias = bias
                    pendingConv[s] = conv
                    tail[s] = i
                    nodeValue[i] = s
                } else {
                    addStep(.affine(scale: scale, shift: shift, .none), [value(p)], node: i, flat: steps[value(p)].flat)
                }
            case let .activation(a):
                try needInputs(1)
                let act = a
                let p = node.inputs[0]
                if let s = fusable(p) {
                    var done = true
                    if var conv = pendingConv[s], conv.activation == .none {
                        conv.activation = act; pendingConv[s] = conv
                    } else if var lin = pendingLinear[s], lin.activation == .none {
                        lin.activation = act; pendingLinear[s] = lin
                    } else if case let .add(a0) = steps[s].kind, a0 == .none {
                        steps[s].kind = .add(act)
                    } else if case let .affine(sc, sh, a0) = steps[s].kind, a0 == .none {
                        steps[s].kind = .affine(scale: sc, shift: sh, act)
                    } else { done = false }
                    if done { tail[s] = i; nodeValue[i] = s; continue }
                }
                addStep(.activation(act), [value(p)], node: i, flat: steps[value(p)].flat)
            case .add:
                try needInputs(2)
                let a = node.inputs[0], b = node.inputs[1]
                var fused = false
                for (x, y) in [(a, b), (b, a)] {
                    if let s = fusable(x), var conv = pendingConv[s], conv.activation == .none, !conv.hasResidual, value(y) != s {
                        conv.hasResidual = true
                        pendingConv[s] = conv
                        steps[s].inputs.append(value(y))
                        // run the convolution where the sum is, after its residual exists
                        order.removeAll { $0 == s }
                        order.append(s)
                        tail[s] = i
                        nodeValue[i] = s
                        fused = true
                        break
                    }
                }
                if !fused { addStep(.add(.none), [value(a), value(b)], node: i, flat: steps[value(a)].flat) }
            case .scale:
                try needInputs(2)
                addStep(.scale, [value(node.inputs[0]), value(node.inputs[1])], node: i, flat: false)
            case let .pointwiseLinear(cin, cout, hasBias):
                // A 1x1 convolution: [out, in] is [out, in, 1, 1] in memory.
                try needInputs(1)
                let d = ConvDescriptor(inChannels: cin, outChannels: cout, kernel: (1, 1), stride: (1, 1), dilation: (1, 1),
                                       groups: 1, padding: .symmetric(0))
                guard d.isValid else { throw ZooError(.badInput, "invalid pointwise linear layer \(node.op)", item: name) }
                let w = try param("\(name).weight", [cout, cin])
                let b = hasBias ? try param("\(name).bias", [cout]).floats() : nil
                guard let packed = Engine.pack(d, w) else { throw ZooError(.badInput, "cannot pack \(node.op)", item: name) }
                addStep(.input, [value(node.inputs[0])], node: i, flat: false)
                pendingConv[steps.count - 1] = PendingConv(weights: packed, source: w, bias: b)
            case let .layerNorm(channels, eps):
                try needInputs(1)
                guard channels > 0, eps >= 0 else { throw ZooError(.badInput, "invalid LayerNorm \(node.op)", item: name) }
                let gamma = try param("\(name).weight", [channels]).floats()
                let beta = try param("\(name).bias", [channels]).floats()
                let p = node.inputs[0]
                addStep(.layerNorm(gamma: gamma, beta: beta, eps: eps), [value(p)], node: i, flat: false)
            case let .layerScale(channels):
                // Folded into the convolution or pointwise linear layer before it when nothing else reads
                // that; a per-channel affine otherwise.
                try needInputs(1)
                let gamma = try param("\(name).layer_scale", [channels, 1, 1]).floats()
                let p = node.inputs[0]
                if let s = fusable(p), var conv = pendingConv[s], conv.activation == .none, !conv.hasResidual,
                   conv.weights.descriptor.outChannels == channels {
                    conv.weights.scaleOutputChannels(gamma)
                    if let b = conv.bias { conv.bias = zip(b, gamma).map { $0 * $1 } }
                    pendingConv[s] = conv
                    tail[s] = i
                    nodeValue[i] = s
                } else {
                    addStep(.affine(scale: gamma, shift: [Float](repeating: 0, count: channels), .none), [value(p)], node: i,
                            flat: steps[value(p)].flat)
                }
            case let .maxPool(kernel, stride, padding, ceilMode):
                try needInputs(1)
                guard kernel.0 > 0, kernel.1 > 0, stride.0 > 0, stride.1 > 0 else { throw ZooError(.badInput, "invalid max pooling", item: name) }
                addStep(.maxPool(kernel: kernel, stride: stride, padding: padding, ceilMode: ceilMode), [value(node.inputs[0])], node: i, flat: false)
            case let .avgPool(kernel, stride, padding, countIncludePad):
                try needInputs(1)
                guard kernel.0 > 0, kernel.1 > 0, stride.0 > 0, stride.1 > 0 else { throw ZooError(.badInput, "invalid average pooling", item: name) }
                addStep(.avgPool(kernel: kernel, stride: stride, padding: padding, ceilMode: false, countIncludePad: countIncludePad),
                        [value(node.inputs[0])], node: i, flat: false)
            case let .adaptiveAvgPool(h, w):
                try needInputs(1)
                guard h > 0, w > 0 else { throw ZooError(.badInput, "invalid adaptive pooling size \(h)x\(w)", item: name) }
                addStep(.adaptiveAvgPool(h, w), [value(node.inputs[0])], node: i, flat: false)
            case .flatten:
                try needInputs(1)
                addStep(.flatten, [value(node.inputs[0])], node: i, flat: true)
            case let .linear(inF, outF, hasBias):
                try needInputs(1)
                guard inF > 0, outF > 0 else { throw ZooError(.badInput, "invalid linear layer", item: name) }
                let w = try param("\(name).weight", [outF, inF])
                let b = hasBias ? try param("\(name).bias", [outF]).floats() : nil
                addStep(.input, [value(node.inputs[0])], node: i, flat: true)
                pendingLinear[steps.count - 1] = PendingLinear(inFeatures: inF, outFeatures: outF, weight: w, bias: b)
            case .dropout:
                try needInputs(1)
                let p = node.inputs[0]
                let s = value(p)
                nodeValue[i] = s
                if p >= 0, tail[s] == p, consumers[p] == 1, !materialized.contains(p) { tail[s] = i }
            }
        }
        // Build the kernels now that fusion is settled.
        for (s, conv) in pendingConv {
            let kernel = conv.bias.map { b in b.withUnsafeBufferPointer {
                Conv2D(conv.weights, bias: $0, activation: conv.activation, backend: backend)
            } } ?? Conv2D(conv.weights, bias: nil, activation: conv.activation, backend: backend)
            guard let kernel else { throw ZooError(.badInput, "cannot build convolution \(conv.weights.descriptor)", item: steps[s].name) }
            // The kernel holds the weights in its own layout now (packed, or oneDNN's).
            Engine.releasePages(conv.source)
            steps[s].kind = .conv(kernel)
        }
        for (s, lin) in pendingLinear {
            let t = try Engine.alignedF32(lin.weight)
            let owner = TensorOwner(t)
            let kernel: Linear? = t.withUnsafeBytes { raw in
                guard let base = raw.baseAddress else { return nil }
                let w = base.assumingMemoryBound(to: Float.self)
                return lin.bias.map { b in b.withUnsafeBufferPointer {
                    Linear(inFeatures: lin.inFeatures, outFeatures: lin.outFeatures, weight: w, owner: owner, bias: $0, activation: lin.activation)
                } } ?? Linear(inFeatures: lin.inFeatures, outFeatures: lin.outFeatures, weight: w, owner: owner, bias: nil, activation: lin.activation)
            }
            guard let kernel else { throw ZooError(.badInput, "cannot build linear layer", item: steps[s].name) }
            steps[s].kind = .linear(kernel)
        }
        return Engine(steps: steps, order: order, nodeValue: nodeValue, inputChannels: graph.inputChannels,
                      nodeNames: nodes.map(\.name), backend: backend)
    }

    /// `t` itself when it is F32 at an aligned address (the kernels read it in place), else a widened copy.
    static func alignedF32(_ t: Tensor) throws -> Tensor {
        if t.dtype == .f32, t.withUnsafeBytes({ Int(bitPattern: $0.baseAddress) % 4 == 0 }) { return t }
        return try Tensor(shape: t.shape, floats: t.floats())
    }

    /// Convolution weights over the tensor (widened to F32 first when it is not), packed when first needed:
    /// by the kernel built from them (`Conv2D`), which copies them straight into oneDNN's layout or packs them
    /// for ZooKernels' own kernels. The caller drops the tensor's mapped pages once that kernel exists.
    static func pack(_ d: ConvDescriptor, _ t: Tensor) -> PackedConvWeights? {
        guard let t = try? alignedF32(t) else { return nil }
        let owner = TensorOwner(t)
        return t.withUnsafeBytes { raw in
            PackedConvWeights(d, deferring: UnsafeBufferPointer(start: raw.baseAddress?.assumingMemoryBound(to: Float.self), count: t.elementCount),
                              owner: owner)
        }
    }

    /// Tells the kernel the mapped pages wholly inside `t` are no longer needed (they are clean
    /// file pages of a read-only private mapping: dropping them only lowers the resident size).
    static func releasePages(_ t: Tensor) {
        guard t.isMapped else { return }
        t.withUnsafeBytes { raw in
            guard let base = raw.baseAddress, raw.count > 0 else { return }
            let page = Int(sysconf(Int32(_SC_PAGESIZE)))
            guard page > 0 else { return }
            let start = (Int(bitPattern: base) + page - 1) / page * page
            let end = (Int(bitPattern: base) + raw.count) / page * page
            guard end > start, let p = UnsafeMutableRawPointer(bitPattern: start) else { return }
            _ = madvise(p, end - start, MADV_DONTNEED)
        }
    }
}
