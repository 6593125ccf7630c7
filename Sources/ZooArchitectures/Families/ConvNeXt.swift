import ZooErrors

extension Family {
    /// ConvNeXt Tiny/Small/Base/Large (torchvision and Keras) and XLarge (Keras).
    public static let convNeXt = Family("convnext")
}

/// The options of a ConvNeXt configuration (`zoo.config` members, in this order).
public struct ConvNeXtOptions: FamilyOptions {
    /// Channels of the four stages (ConvNeXt-T: 96, 192, 384, 768).
    public var dims: [Int] = [96, 192, 384, 768]
    /// Blocks of the four stages (ConvNeXt-T: 3, 3, 9, 3).
    public var depths: [Int] = [3, 3, 9, 3]

    /// ConvNeXt-Tiny.
    public init() {}
}

/// ConvNeXt as torchvision builds it (`torchvision.models.convnext`): a 4x4 stride-4 stem convolution
/// with a bias and a LayerNorm over channels; four stages of blocks (7x7 depthwise convolution with a
/// bias, LayerNorm over channels, a linear layer to 4x the channels at every position, GELU in its exact
/// erf form, a linear layer back, the per-channel layer scale, the residual sum), with a LayerNorm and a
/// 2x2 stride-2 convolution between stages; global average pooling, a LayerNorm and the linear classifier.
/// Stochastic depth (`LayerGraph.stochasticDepth`): block b of B drops its residual branch with probability
/// rate * b / (B - 1) in training, rate torchvision's `stochastic_depth_prob` (0.1 Tiny, 0.4 Small, 0.5 Base and
/// Large; Keras's `drop_path_rate` defaults to 0, so the Keras flavour has none); the identity at inference.
///
/// Keras's `ConvNeXtTiny`...`ConvNeXtXLarge` (`keras.applications.convnext`) build the same network
/// (the depthwise convolution is a `Conv2D` grouped by channel, the pointwise ones `Dense` layers, the
/// layer scale a `LayerScale` of shape (C)) and map onto the same canonical names. Two differences:
/// their in-model `Normalization` (ImageNet mean and variance, on 0-255 pixels; no weights) is the
/// catalogue's preprocessing (the torch mean/std on 0-1, the same arithmetic), and a Keras model
/// without its top ends with the head's LayerNorm over channels at every position (Keras applies it
/// after its optional pooling), so the Keras flavour's backbone keeps `classifier.0` there, and its
/// custom linear head pools after it. `convnext_xlarge` exists in the Keras flavour only.
///
/// The family has no BatchNorm: `bn_eps` holds the epsilon of its LayerNorms, 1e-6 as torchvision's.
///
/// `zoo.config` members: `ConvNeXtOptions`.
public struct ConvNeXtFamily: ArchitectureFamily {
    /// The family.
    public init() {}

    /// `convnext`.
    public var id: Family { .convNeXt }

    /// `ConvNeXt`.
    public var title: String { "ConvNeXt" }

    /// (name, dims, depths, torchvision's stochastic depth rate) of torchvision's four sizes and Keras's XLarge.
    static let table: [(name: String, dims: [Int], depths: [Int], stochasticDepth: Double)] = [
        ("convnext_tiny", [96, 192, 384, 768], [3, 3, 9, 3], 0.1),
        ("convnext_small", [96, 192, 384, 768], [3, 3, 27, 3], 0.4),
        ("convnext_base", [128, 256, 512, 1024], [3, 3, 27, 3], 0.5),
        ("convnext_large", [192, 384, 768, 1536], [3, 3, 27, 3], 0.5),
        ("convnext_xlarge", [256, 512, 1024, 2048], [3, 3, 27, 3], 0),
    ]

    /// Catalogue names.
    public var names: [String] { Self.table.map(\.name) }

    /// torchvision and Keras; XLarge is Keras's only.
    public func flavours(of name: String) -> [Flavour] {
        guard names.contains(name) else { return [] }
        return name == "convnext_xlarge" ? [.keras] : [.torchvision, .keras]
    }

    /// The preset of `name`.
    public func preset(_ name: String, flavour: Flavour) throws -> ArchitectureConfig {
        guard let t = Self.table.first(where: { $0.name == name }) else {
            throw ZooError(.usage, "unknown ConvNeXt \(name)", item: name)
        }
        var o = ConvNeXtOptions()
        o.dims = t.dims
        o.depths = t.depths
        var c = ArchitectureConfig(name: name, family: .convNeXt, flavour: flavour, options: o)
        c.bnEps = 1e-6
        c.dropout = 0
        return c
    }

    /// Four stages, each with a positive depth and a positive channel count.
    public func validate(_ config: ArchitectureConfig, _ o: ConvNeXtOptions) throws {
        guard o.dims.count == 4, o.depths.count == 4, o.dims.allSatisfy({ $0 > 0 }), o.depths.allSatisfy({ $0 > 0 }) else {
            throw ZooError(.badInput, "ConvNeXt needs 4 stage dims and 4 depths, got \(o.dims) and \(o.depths)", item: config.name)
        }
    }

    /// A custom linear head is a graph of its own (the standard head has a LayerNorm); Keras builds the stem
    /// and the downsampling layers as nested `Sequential`s.
    public var quirks: SourceQuirks {
        SourceQuirks().with(\.customLinearHead, true).with(\.torchvisionLinearInit, .truncatedNormal(std: 0.02))
            .with(\.kerasNestedNodePrefixes, ["features.0.", "features.2.", "features.4.", "features.6."])
    }

    /// The graph: `features.0` stem (`.0` convolution, `.1` LayerNorm), `features.1/3/5/7` stages
    /// (`features.S.B.block.0` depthwise convolution, `.2` LayerNorm, `.3` linear, `.4` GELU, `.5` linear,
    /// then `features.S.B` the layer scale and the residual sum), `features.2/4/6` downsampling (`.0`
    /// LayerNorm, `.1` 2x2 convolution), `avgpool`, `classifier.0` LayerNorm, `classifier.1` flatten,
    /// `classifier.2` linear. Taps: the four stages at strides 4, 8, 16 and 32 (timm's `feature_info`;
    /// ConvNeXt has no map at stride 2). The Keras flavour without its top ends with `classifier.0`, the
    /// LayerNorm at every position, and its custom linear head (`head`) pools that.
    public func graph(_ c: ArchitectureConfig, _ o: ConvNeXtOptions) throws -> LayerGraph {
        var g = GraphBuilder()
        let eps = c.bnEps
        let dims = o.dims
        g.conv("features.0.0", 3, dims[0], k: 4, s: 4, pad: .symmetric(0), bias: true)
        g.add("features.0.1", .layerNorm(channels: dims[0], eps: eps))
        var reduction = 4
        // torchvision's rate for this size (matched by its stage table), none in the Keras flavour.
        let rate = c.flavour == .keras ? 0 : Self.table.first { $0.dims == o.dims && $0.depths == o.depths }?.stochasticDepth ?? 0
        let totalBlocks = o.depths.reduce(0, +)
        var blockIndex = 0
        var sd: [Int: Double] = [:]
        for (si, depth) in o.depths.enumerated() {
            let dim = dims[si]
            if si > 0 {
                let p = "features.\(2 * si)"
                g.add("\(p).0", .layerNorm(channels: dims[si - 1], eps: eps))
                g.conv("\(p).1", dims[si - 1], dim, k: 2, s: 2, pad: .symmetric(0), bias: true)
                reduction *= 2
            }
            let stage = "features.\(2 * si + 1)"
            for b in 0..<depth {
                let p = "\(stage).\(b)"
                let input = g.last
                g.conv("\(p).block.0", dim, dim, k: 7, s: 1, pad: .symmetric(3), groups: dim, bias: true)
                g.add("\(p).block.2", .layerNorm(channels: dim, eps: eps))
                g.add("\(p).block.3", .pointwiseLinear(inFeatures: dim, outFeatures: 4 * dim, bias: true))
                g.act("\(p).block.4", .gelu)
                g.add("\(p).block.5", .pointwiseLinear(inFeatures: 4 * dim, outFeatures: dim, bias: true))
                g.add(p, .layerScale(channels: dim))
                // Stochastic depth is the identity at inference: the residual is a plain sum (the branch second).
                let add = g.add("\(p).add", .add, inputs: [input, g.last])
                if totalBlocks > 1 { sd[add] = rate * Double(blockIndex) / Double(totalBlocks - 1) }
                blockIndex += 1
            }
            g.tap(stage, channels: dim, reduction: reduction)
        }
        let last = dims[3]
        var graph: LayerGraph
        if c.flavour == .keras && (!c.includeTop || c.head == .linear) {
            // Keras's model without top: the head's LayerNorm over the last map (before any pooling).
            g.add("classifier.0", .layerNorm(channels: last, eps: eps))
        }
        if c.flavour == .keras && !c.includeTop {
            graph = g.graph(headStart: g.nodes.count)
        } else if c.head == .linear {
            graph = g.linearHead(channels: last, classes: c.classes)
        } else {
            let head = g.add("avgpool", .adaptiveAvgPool(height: 1, width: 1))
            g.add("classifier.0", .layerNorm(channels: last, eps: eps))
            g.add("classifier.1", .flatten)
            g.add("classifier.2", .linear(inFeatures: last, outFeatures: c.classes, bias: true))
            graph = g.graph(headStart: head)
        }
        graph.stochasticDepth = sd.filter { $0.value > 0 }
        return graph
    }
}
