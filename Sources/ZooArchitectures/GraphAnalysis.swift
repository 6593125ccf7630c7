import ZooKernels
import ZooErrors

/// One tensor of an architecture's canonical parameter spec (torchvision `state_dict` naming).
public struct ParameterSpec: Sendable, Hashable {
    /// What a tensor is, so mappings know its layout.
    public enum Role: String, Sendable, Hashable {
        /// Convolution weight [out, in/groups, kh, kw].
        case convWeight = "conv_weight"
        /// Linear weight [out, in].
        case linearWeight = "linear_weight"
        /// Bias of a convolution or linear layer.
        case bias
        /// BatchNorm scale.
        case bnWeight = "bn_weight"
        /// BatchNorm shift.
        case bnBias = "bn_bias"
        /// BatchNorm running mean.
        case runningMean = "running_mean"
        /// BatchNorm running variance.
        case runningVar = "running_var"
        /// BatchNorm update counter (I64 scalar).
        case numBatchesTracked = "num_batches_tracked"
        /// LayerNorm scale.
        case normWeight = "norm_weight"
        /// LayerNorm shift.
        case normBias = "norm_bias"
        /// Weight [out, in] of a linear layer applied at every position of a map (`Op.pointwiseLinear`).
        case pointwiseWeight = "pointwise_weight"
        /// Per-channel layer scale [channels, 1, 1].
        case layerScale = "layer_scale"
    }

    /// Canonical name (`layer1.0.conv1.weight`).
    public var name: String
    /// Shape.
    public var shape: [Int]
    /// Role.
    public var role: Role
    /// Index of the graph node it belongs to.
    public var node: Int

    /// True for trainable parameters (what torchvision's `num_params` counts).
    public var isParameter: Bool { role != .runningMean && role != .runningVar && role != .numBatchesTracked }
    /// Element count.
    public var elementCount: Int { shape.reduce(1, *) }
}

extension LayerGraph {
    /// The canonical parameter spec: every tensor of the `state_dict`, in graph order.
    public var parameterSpec: [ParameterSpec] {
        var out: [ParameterSpec] = []
        for (i, n) in nodes.enumerated() {
            switch n.op {
            case let .conv2d(cin, cout, k, _, _, _, groups, bias):
                out.append(ParameterSpec(name: n.name + ".weight", shape: [cout, cin / groups, k.0, k.1], role: .convWeight, node: i))
                if bias { out.append(ParameterSpec(name: n.name + ".bias", shape: [cout], role: .bias, node: i)) }
            case let .batchNorm(c, _):
                out.append(ParameterSpec(name: n.name + ".weight", shape: [c], role: .bnWeight, node: i))
                out.append(ParameterSpec(name: n.name + ".bias", shape: [c], role: .bnBias, node: i))
                out.append(ParameterSpec(name: n.name + ".running_mean", shape: [c], role: .runningMean, node: i))
                out.append(ParameterSpec(name: n.name + ".running_var", shape: [c], role: .runningVar, node: i))
                out.append(ParameterSpec(name: n.name + ".num_batches_tracked", shape: [], role: .numBatchesTracked, node: i))
            case let .linear(fin, fout, bias):
                out.append(ParameterSpec(name: n.name + ".weight", shape: [fout, fin], role: .linearWeight, node: i))
                if bias { out.append(ParameterSpec(name: n.name + ".bias", shape: [fout], role: .bias, node: i)) }
            case let .layerNorm(c, _):
                out.append(ParameterSpec(name: n.name + ".weight", shape: [c], role: .normWeight, node: i))
                out.append(ParameterSpec(name: n.name + ".bias", shape: [c], role: .normBias, node: i))
            case let .pointwiseLinear(fin, fout, bias):
                out.append(ParameterSpec(name: n.name + ".weight", shape: [fout, fin], role: .pointwiseWeight, node: i))
                if bias { out.append(ParameterSpec(name: n.name + ".bias", shape: [fout], role: .bias, node: i)) }
            case let .layerScale(c):
                // torch's state_dict lists a module's own parameters before its children's: the layer scale
                // of `features.1.0` precedes `features.1.0.block.*`.
                let spec = ParameterSpec(name: n.name + ".layer_scale", shape: [c, 1, 1], role: .layerScale, node: i)
                out.insert(spec, at: out.firstIndex { $0.name.hasPrefix(n.name + ".") } ?? out.endIndex)
            default: break
            }
        }
        return out
    }

    /// Trainable parameters (torchvision's `num_params`).
    public var parameterCount: Int { parameterSpec.filter(\.isParameter).reduce(0) { $0 + $1.elementCount } }

    /// Every weight Keras counts (`count_params()`): parameters, BatchNorm moving statistics and an in-model
    /// `Normalization`'s weights (`kerasPreprocessingParameters`).
    public var kerasParameterCount: Int {
        parameterSpec.filter { $0.role != .numBatchesTracked }.reduce(0) { $0 + $1.elementCount } + kerasPreprocessingParameters
    }

    /// Padding (top, bottom, left, right) a window applies to an `h`x`w` input (`WindowPadding.resolved`).
    public static func resolvedPadding(_ p: Padding, h: Int, w: Int, kernel: (Int, Int), stride: (Int, Int), dilation: (Int, Int) = (1, 1)) -> (Int, Int, Int, Int) {
        let r = p.resolved(inH: h, inW: w, kernel: kernel, stride: stride, dilation: dilation)
        return (r.top, r.bottom, r.left, r.right)
    }

    /// Output shape of every node for an `h`x`w` input: `[C, H, W]` for maps, `[F]` after flatten/linear.
    /// Throws `badInput` naming the first node the input is too small (or the wrong size) for.
    public func shapes(height h: Int, width w: Int) throws -> [[Int]] {
        var out: [[Int]] = []
        out.reserveCapacity(nodes.count)
        let inputShape = [inputChannels, h, w]
        for (i, n) in nodes.enumerated() {
            let ins = n.inputs.map { $0 < 0 ? inputShape : out[$0] }
            guard let x = ins.first else { throw ZooError(.badInput, "node has no input", item: n.name) }
            func tooSmall() -> ZooError {
                ZooError(.badInput, "input \(h)x\(w) is too small for this architecture (\(x) reaches node \(i))", item: n.name)
            }
            switch n.op {
            case let .conv2d(cin, cout, k, s, p, d, _, _):
                guard x.count == 3, x[0] == cin else { throw ZooError(.badInput, "expects \(cin) channels, gets shape \(x)", item: n.name) }
                guard let g = WindowGeometry(inH: x[1], inW: x[2], kernel: k, stride: s, dilation: d, padding: p) else { throw tooSmall() }
                out.append([cout, g.outH, g.outW])
            case let .maxPool(k, s, p, ceil):
                guard x.count == 3, let g = WindowGeometry(inH: x[1], inW: x[2], kernel: k, stride: s, padding: p, ceilMode: ceil) else { throw tooSmall() }
                out.append([x[0], g.outH, g.outW])
            case let .avgPool(k, s, p, _):
                // Floor mode, as the runtime runs it (the fourth field is countIncludePad, not a ceil mode).
                guard x.count == 3, let g = WindowGeometry(inH: x[1], inW: x[2], kernel: k, stride: s, padding: p) else { throw tooSmall() }
                out.append([x[0], g.outH, g.outW])
            case let .adaptiveAvgPool(oh, ow):
                guard x.count == 3, x[1] >= 1, x[2] >= 1 else { throw tooSmall() }
                out.append([x[0], oh, ow])
            case .batchNorm, .activation, .dropout:
                out.append(x)
            case let .layerNorm(c, _), let .layerScale(c):
                guard x.count == 3, x[0] == c else { throw ZooError(.badInput, "expects \(c) channels, gets shape \(x)", item: n.name) }
                out.append(x)
            case let .pointwiseLinear(fin, fout, _):
                guard x.count == 3, x[0] == fin else { throw ZooError(.badInput, "expects \(fin) channels, gets shape \(x)", item: n.name) }
                out.append([fout, x[1], x[2]])
            case .add:
                guard ins.count == 2, ins[0] == ins[1] else { throw ZooError(.badInput, "adds mismatched shapes \(ins)", item: n.name) }
                out.append(x)
            case .scale:
                guard ins.count == 2, ins[1].count == 3, ins[1][0] == x[0] else { throw ZooError(.badInput, "scales mismatched shapes \(ins)", item: n.name) }
                out.append(x)
            case .flatten:
                out.append([x.reduce(1, *)])
            case let .linear(fin, fout, _):
                guard x == [fin] else {
                    throw ZooError(.badInput, "expects \(fin) features, gets shape \(x) (input \(h)x\(w) does not fit this head)", item: n.name)
                }
                out.append([fout])
            }
        }
        return out
    }

    /// Multiply-accumulates of every node for an `h`x`w` input (convolutions and linear layers; 0 elsewhere).
    public func macs(height h: Int, width w: Int) throws -> [Int] {
        let s = try shapes(height: h, width: w)
        return nodes.enumerated().map { i, n in
            switch n.op {
            case let .conv2d(cin, _, k, _, _, _, groups, _):
                return s[i].reduce(1, *) * (cin / groups) * k.0 * k.1
            case let .linear(fin, fout, _):
                return fin * fout
            case let .pointwiseLinear(fin, fout, _):
                return s[i][1] * s[i][2] * fin * fout
            default:
                return 0
            }
        }
    }

    /// Total multiply-accumulates in billions — the "GFLOPs" torchvision publishes.
    public func gflops(height h: Int, width w: Int) throws -> Double {
        Double(try macs(height: h, width: w).reduce(0, +)) / 1e9
    }

    /// Parameters (trainable) of each node.
    public var nodeParameterCounts: [Int] {
        var counts = [Int](repeating: 0, count: nodes.count)
        for p in parameterSpec where p.isParameter { counts[p.node] += p.elementCount }
        return counts
    }

    /// A short description of a node's op for layer tables (`conv 3x3/2 64->128 g32`).
    public static func describe(_ op: Op) -> (kind: String, detail: String) {
        switch op {
        case let .conv2d(cin, cout, k, s, p, _, g, bias):
            var d = "\(k.0)x\(k.1)/\(s.0) \(cin)->\(cout)"
            if g > 1 { d += g == cin && g == cout ? " dw" : " g\(g)" }
            if bias { d += " +b" }
            switch p {
            case .tfSame: d += " same"
            case let .explicit(t, b, l, r) where t != b || l != r: d += " pad(\(t),\(b),\(l),\(r))"
            default: break
            }
            return (g > 1 && g == cin && g == cout ? "dwconv" : "conv", d)
        case let .batchNorm(c, eps): return ("bn", "\(c) eps=\(eps)")
        case let .activation(a): return (a.rawValue, "")
        case let .maxPool(k, s, _, _): return ("maxpool", "\(k.0)x\(k.1)/\(s.0)")
        case let .avgPool(k, s, _, _): return ("avgpool", "\(k.0)x\(k.1)/\(s.0)")
        case let .adaptiveAvgPool(h, w): return ("adaptive_avgpool", "\(h)x\(w)")
        case .add: return ("add", "")
        case .scale: return ("scale", "")
        case .flatten: return ("flatten", "")
        case let .linear(i, o, _): return ("linear", "\(i)->\(o)")
        case let .dropout(p): return ("dropout", "p=\(p)")
        case let .layerNorm(c, eps): return ("layernorm", "\(c) eps=\(eps)")
        case let .pointwiseLinear(i, o, _): return ("pw_linear", "\(i)->\(o)")
        case let .layerScale(c): return ("layer_scale", "\(c)")
        }
    }
}
