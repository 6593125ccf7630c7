import Foundation
import ZooFormats
import ZooMapping
import ZooErrors
import ZooTensor

/// Seeded random initialisation of a zoo architecture: a complete native checkpoint written by the
/// zoo itself (`zoo init`), a starting point for training and the input of `make demo`.
///
/// The schemes are those of the flavour's framework, so that a fresh checkpoint behaves like a fresh
/// model there:
/// - **torchvision**: convolutions `kaiming_normal_(mode="fan_out", nonlinearity="relu")` (std
///   `sqrt(2 / (out * kh * kw))`), convolution biases zero; BatchNorm weight 1, bias 0, running mean 0,
///   running variance 1; linear layers `normal_(0, 0.01)` with zero bias (VGG, MobileNet), or
///   `nn.Linear`'s default `U(-1/sqrt(in), 1/sqrt(in))` for weight and bias (ResNet's `fc`); ConvNeXt:
///   every convolution and linear layer `trunc_normal_(std=0.02)` (cut at +-2, 100 standard deviations:
///   drawn as a normal), biases zero, LayerNorm weight 1 and bias 0, layer scale 1e-6.
/// - **Keras**: kernels `glorot_uniform` (limit `sqrt(6 / (fan_in + fan_out))` with Keras's fans: a
///   depthwise kernel counts its input channels in `fan_in` and one output per channel in `fan_out`),
///   biases zero; BatchNorm gamma 1, beta 0, moving mean 0, moving variance 1.
///
/// Every tensor has its own random stream, derived from the seed and the tensor's canonical name, so a
/// file is the same whatever order its tensors are generated in, and equal seeds give equal files.
public enum Initializer {
    /// A plan for the native checkpoint of `config` with fresh weights: the canonical tensors, generated
    /// lazily while the plan is written, and the metadata (architecture, config, preprocessing; ImageNet
    /// labels when the head has 1000 classes; provenance `zoo init` with the seed).
    public static func plan(config: ArchitectureConfig, seed: UInt64) throws -> Converter.Plan {
        let graph = try config.graph()
        let spec = try config.parameterSpec()
        let keras = config.flavour == .keras
        var records: [TensorRecord] = []
        records.reserveCapacity(spec.count)
        for p in spec {
            let shape = p.shape
            if p.role == .numBatchesTracked {
                records.append(TensorRecord(name: p.name, dtype: .i64, shape: shape) { try Tensor(zeros: .i64, shape: shape) })
                continue
            }
            let rule = try Self.rule(for: p, in: graph, linear: config.quirks.torchvisionLinearInit, keras: keras)
            let stream = Self.streamSeed(seed, p.name)
            records.append(TensorRecord(name: p.name, dtype: .f32, shape: shape) {
                try Tensor(dtype: .f32, shape: shape) { raw in
                    let out = raw.bindMemory(to: Float.self)
                    var rng = SplitMix64(state: stream)
                    rule.fill(out, &rng)
                }
            })
        }
        var meta = try Mapping.metadata(for: config)
        meta.source = NativeMetadata.Source(file: "zoo init --seed \(seed)", sha256: String(repeating: "0", count: 64),
                                            importer: "zoo-init", dtype: "F32")
        return Converter.Plan(records: records, metadata: meta, format: "zoo-init")
    }

    /// How one tensor is filled.
    enum Rule: Sendable {
        case constant(Float)
        case normal(std: Double)
        case uniform(limit: Double)

        func fill(_ out: UnsafeMutableBufferPointer<Float>, _ rng: inout SplitMix64) {
            switch self {
            case .constant(let v):
                out.update(repeating: v)
            case .uniform(let limit):
                for i in out.indices { out[i] = Float((rng.nextUnit() * 2 - 1) * limit) }
            case .normal(let std):
                // Box-Muller: two normals per pair of uniforms.
                var i = 0
                while i < out.count {
                    let u1 = max(rng.nextUnit(), Double.leastNonzeroMagnitude)
                    let u2 = rng.nextUnit()
                    let r = (-2 * log(u1)).squareRoot() * std
                    out[i] = Float(r * cos(2 * Double.pi * u2))
                    if i + 1 < out.count { out[i + 1] = Float(r * sin(2 * Double.pi * u2)) }
                    i += 2
                }
            }
        }
    }

    static func rule(for p: ParameterSpec, in graph: LayerGraph, linear: LinearInit, keras: Bool) throws -> Rule {
        switch p.role {
        case .bnWeight, .runningVar, .normWeight: return .constant(1)
        case .bnBias, .runningMean, .numBatchesTracked, .normBias: return .constant(0)
        case .layerScale: return .constant(1e-6)
        case .pointwiseWeight:
            if case let .truncatedNormal(std) = linear, !keras { return .normal(std: std) }
            if keras { return .uniform(limit: (6 / Double(p.shape[0] + p.shape[1])).squareRoot()) }
            return .uniform(limit: 1 / Double(max(1, p.shape.count == 2 ? p.shape[1] : 1)).squareRoot())
        case .convWeight:
            if case let .truncatedNormal(std) = linear, !keras { return .normal(std: std) }
            guard p.shape.count == 4, graph.nodes.indices.contains(p.node),
                  case let .conv2d(cin, cout, _, _, _, _, groups, _) = graph.nodes[p.node].op else {
                throw ZooError(.badInput, "not a convolution weight", item: p.name)
            }
            let field = Double(p.shape[2] * p.shape[3])
            if keras {
                let depthwise = groups > 1 && groups == cin
                let fanIn = depthwise ? field * Double(cin) : field * Double(cin / groups)
                let fanOut = depthwise ? field * Double(cout / groups) : field * Double(cout)
                return .uniform(limit: (6 / (fanIn + fanOut)).squareRoot())
            }
            return .normal(std: (2 / (Double(cout) * field)).squareRoot())
        case .linearWeight:
            guard p.shape.count == 2 else { throw ZooError(.badInput, "not a linear weight", item: p.name) }
            if keras { return .uniform(limit: (6 / Double(p.shape[0] + p.shape[1])).squareRoot()) }
            switch linear {
            case .uniformFanIn: return .uniform(limit: 1 / Double(p.shape[1]).squareRoot())
            case .normal(let std), .truncatedNormal(let std): return .normal(std: std)
            }
        case .bias:
            guard !keras, linear == .uniformFanIn, graph.nodes.indices.contains(p.node),
                  case let .linear(fin, _, _) = graph.nodes[p.node].op else { return .constant(0) }
            return .uniform(limit: 1 / Double(fin).squareRoot())
        }
    }

    /// The seed of one tensor's stream: the user's seed mixed with the FNV-1a hash of the name.
    static func streamSeed(_ seed: UInt64, _ name: String) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in name.utf8 { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01b3 }
        var mix = SplitMix64(state: seed ^ h)
        return mix.next()
    }
}

