import ZooErrors

extension Family {
    /// EfficientNet B0-B7 and EfficientNetV2 S/M/L (torchvision and Keras), EfficientNetV2 B0-B3 (Keras).
    public static let efficientNet = Family("efficientnet")
}

/// The options of an EfficientNet configuration (`zoo.config` members, in this order).
public struct EfficientNetOptions: FractionalFamilyOptions, StridedPaddingOptions {
    /// Which stage table: the B series (v1, MBConv blocks) or a V2 size (Fused-MBConv, then MBConv).
    public enum Variant: String, Codable, Sendable, Hashable, CaseIterable {
        /// EfficientNet B0-B7: the B0 table scaled by `width_mult` and `depth_mult`.
        case b
        /// EfficientNetV2 B0-B3 (Keras): the V2-B0 table scaled by `width_mult` and `depth_mult`.
        case v2B = "v2_b"
        /// EfficientNetV2-S.
        case v2S = "v2_s"
        /// EfficientNetV2-M.
        case v2M = "v2_m"
        /// EfficientNetV2-L.
        case v2L = "v2_l"
    }

    /// The stage table.
    public var variant = Variant.b
    /// Channel multiplier of the B series (`_make_divisible(c * width_mult, 8)`); 1 for V2 S/M/L.
    public var widthMult = 1.0
    /// Depth multiplier of the B series (`ceil(layers * depth_mult)` blocks per stage); 1 for V2 S/M/L.
    public var depthMult = 1.0
    /// Padding of every strided convolution (the stem's included): PyTorch's symmetric `(k - 1) / 2`;
    /// Keras's EfficientNet `correct_pad` (`ZeroPadding2D` before a "valid" window: fixed `k/2 - 1, k/2`
    /// without a fixed input size, TF "same" with one); Keras's EfficientNetV2 TF "same".
    public var stridedPadding = PaddingConvention.symmetric
    /// Channel rounding: torchvision's `_make_divisible` (never below 90%, as Keras's EfficientNet B0-B7
    /// `round_filters`), or `keras`: Keras's EfficientNetV2 `round_filters`, which has no 90% rule.
    public var channelRounding = Flavour.torchvision

    enum CodingKeys: String, CodingKey {
        case variant
        case widthMult = "width_mult"
        case depthMult = "depth_mult"
        case stridedPadding = "strided_padding"
        case channelRounding = "channel_rounding"
    }

    /// EfficientNet-B0.
    public init() {}

    /// The multipliers.
    public static var fractionalMembers: Set<String> { ["width_mult", "depth_mult"] }
}

/// EfficientNet B0-B7 and EfficientNetV2 S/M/L as torchvision builds them (`torchvision.models.efficientnet`):
/// a SiLU stem, stages of MBConv blocks (1x1 expansion, depthwise k x k, squeeze-and-excitation with
/// SiLU and a sigmoid gate, 1x1 projection; V2's first stages are Fused-MBConv: one k x k convolution
/// instead of expansion + depthwise, and no squeeze-and-excitation), a 1x1 SiLU head convolution,
/// average pooling, dropout and a linear classifier. Stochastic depth (`LayerGraph.stochasticDepth`): block b
/// of B drops its residual branch with probability 0.2 * b / B in training (torchvision's
/// `stochastic_depth_prob`, Keras's `drop_connect_rate`), the identity at inference.
///
/// BatchNorm as torchvision builds it: eps 1e-5 and momentum 0.1 for B0-B4, `BatchNorm2d(eps=0.001,
/// momentum=0.01)` for B5-B7, eps 1e-3 and momentum 0.1 for V2 (`batchNormMomentum(of:)`).
///
/// Keras's `EfficientNetB0`...`B7` (`keras.applications.efficientnet`) and `EfficientNetV2B0`...`B3`,
/// `EfficientNetV2S/M/L` (`keras.applications.efficientnet_v2`) build the same networks under the same
/// canonical names, with these differences: BatchNorm eps 1e-3 everywhere; strided convolutions padded
/// by `correct_pad` (B0-B7) or TF "same" (V2); V2's `round_filters` without the 90% rule (V2-B3's second
/// stage has 16 channels, not 24); the V2 B series, which torchvision lacks (`efficientnet_v2_b0`...`b3`,
/// Keras only; the head convolution has `round_filters(1280)` channels). Their in-model preprocessing is
/// the catalogue's (the converter reads B0-B7's `Normalization` weights into the file's preprocessing):
/// B0-B7 rescale by 1/255, normalise by the stored mean and variance, and (with `weights="imagenet"`)
/// rescale again by 1/sqrt(ImageNet std), which together make torchvision's mean/std arithmetic; V2
/// B0-B3 normalise by torchvision's mean/std; V2 S/M/L map pixels to [-1, 1] (`x / 128 - 1`).
///
/// `zoo.config` members: `EfficientNetOptions`.
public struct EfficientNetFamily: ArchitectureFamily {
    /// The family.
    public init() {}

    /// `efficientnet`.
    public var id: Family { .efficientNet }

    /// `EfficientNet`.
    public var title: String { "EfficientNet" }

    /// Catalogue names.
    public var names: [String] {
        (0...7).map { "efficientnet_b\($0)" } + ["efficientnet_v2_s", "efficientnet_v2_m", "efficientnet_v2_l"]
            + (0...3).map { "efficientnet_v2_b\($0)" }
    }

    /// Both flavours; the V2 B series Keras's only.
    public func flavours(of name: String) -> [Flavour] {
        guard names.contains(name) else { return [] }
        return name.hasPrefix("efficientnet_v2_b") ? [.keras] : [.torchvision, .keras]
    }

    /// (width, depth, dropout) of Keras's EfficientNetV2 B0-B3.
    static let v2BScaling: [(width: Double, depth: Double, dropout: Double)] = [
        (1.0, 1.0, 0.2), (1.0, 1.1, 0.2), (1.1, 1.2, 0.3), (1.2, 1.4, 0.3),
    ]

    /// (width, depth, dropout) of B0-B7 (torchvision's `efficientnet_bN`).
    static let bScaling: [(width: Double, depth: Double, dropout: Double)] = [
        (1.0, 1.0, 0.2), (1.0, 1.1, 0.2), (1.1, 1.2, 0.3), (1.2, 1.4, 0.3),
        (1.4, 1.8, 0.4), (1.6, 2.2, 0.4), (1.8, 2.6, 0.5), (2.0, 3.1, 0.5),
    ]

    /// The preset of `name`.
    public func preset(_ name: String, flavour: Flavour) throws -> ArchitectureConfig {
        guard names.contains(name) else { throw ZooError(.usage, "unknown EfficientNet \(name)", item: name) }
        var o = EfficientNetOptions()
        var c: ArchitectureConfig
        if name.hasPrefix("efficientnet_b"), let n = Int(name.dropFirst("efficientnet_b".count)), Self.bScaling.indices.contains(n) {
            let s = Self.bScaling[n]
            o.widthMult = s.width
            o.depthMult = s.depth
            c = ArchitectureConfig(name: name, family: .efficientNet, flavour: flavour, options: o)
            c.dropout = s.dropout
            if n >= 5 { c.bnEps = 1e-3 }
        } else if name.hasPrefix("efficientnet_v2_b"), let n = Int(name.dropFirst("efficientnet_v2_b".count)), Self.v2BScaling.indices.contains(n) {
            let s = Self.v2BScaling[n]
            o.variant = .v2B
            o.widthMult = s.width
            o.depthMult = s.depth
            c = ArchitectureConfig(name: name, family: .efficientNet, flavour: flavour, options: o)
            c.dropout = s.dropout
            c.bnEps = 1e-3
        } else {
            o.variant = name.hasSuffix("_s") ? .v2S : name.hasSuffix("_m") ? .v2M : .v2L
            c = ArchitectureConfig(name: name, family: .efficientNet, flavour: flavour, options: o)
            c.dropout = o.variant == .v2S ? 0.2 : o.variant == .v2M ? 0.3 : 0.4
            c.bnEps = 1e-3
        }
        if flavour == .keras {
            c.bnEps = 1e-3
            try c.update(EfficientNetOptions.self) {
                $0.stridedPadding = $0.variant == .b ? .correctPad : .tfSame
                $0.channelRounding = $0.variant == .b ? .torchvision : .keras
            }
        }
        return c
    }

    /// torchvision's momentum for `name`: 0.01 for B5-B7, 0.1 otherwise.
    public func batchNormMomentum(of name: String) -> Double {
        ["efficientnet_b5", "efficientnet_b6", "efficientnet_b7"].contains(name) ? 0.01 : batchNormMomentum
    }

    /// Multipliers must be positive and modest.
    public func validate(_ config: ArchitectureConfig, _ o: EfficientNetOptions) throws {
        guard o.widthMult > 0, o.widthMult <= 8, o.depthMult > 0, o.depthMult <= 8 else {
            throw ZooError(.badInput, "width_mult and depth_mult must be in (0, 8] (got \(o.widthMult), \(o.depthMult))", item: config.name)
        }
    }

    /// A custom linear head is a graph of its own; a Keras B0-B7 built for a fixed input size pads TF "same"
    /// (`correct_pad` reads the static shape).
    public var quirks: SourceQuirks {
        SourceQuirks().with(\.customLinearHead, true).with(\.fixedInputStridedPadding, .tfSame)
    }

    /// One stage: fused or not, expansion ratio, kernel, stride, input and output channels, blocks.
    struct Stage { var fused: Bool; var expand: Double; var k: Int; var s: Int; var cin: Int; var cout: Int; var n: Int }

    /// The stage table and the head convolution's channels (nil: 4x the last stage's).
    static func stages(_ o: EfficientNetOptions) -> (stages: [Stage], lastChannel: Int?) {
        func mb(_ e: Double, _ k: Int, _ s: Int, _ i: Int, _ out: Int, _ n: Int) -> Stage { Stage(fused: false, expand: e, k: k, s: s, cin: i, cout: out, n: n) }
        func fused(_ e: Double, _ k: Int, _ s: Int, _ i: Int, _ out: Int, _ n: Int) -> Stage { Stage(fused: true, expand: e, k: k, s: s, cin: i, cout: out, n: n) }
        func scaled(_ table: [Stage]) -> [Stage] {
            table.map { var t = $0; t.cin = roundFilters(t.cin, o); t.cout = roundFilters(t.cout, o); t.n = Int((Double(t.n) * o.depthMult).rounded(.up)); return t }
        }
        switch o.variant {
        case .b:
            return (scaled([mb(1, 3, 1, 32, 16, 1), mb(6, 3, 2, 16, 24, 2), mb(6, 5, 2, 24, 40, 2), mb(6, 3, 2, 40, 80, 3),
                            mb(6, 5, 1, 80, 112, 3), mb(6, 5, 2, 112, 192, 4), mb(6, 3, 1, 192, 320, 1)]), nil)
        case .v2B:
            return (scaled([fused(1, 3, 1, 32, 16, 1), fused(4, 3, 2, 16, 32, 2), fused(4, 3, 2, 32, 48, 2), mb(4, 3, 2, 48, 96, 3),
                            mb(6, 3, 1, 96, 112, 5), mb(6, 3, 2, 112, 192, 8)]), roundFilters(1280, o))
        case .v2S:
            return ([fused(1, 3, 1, 24, 24, 2), fused(4, 3, 2, 24, 48, 4), fused(4, 3, 2, 48, 64, 4), mb(4, 3, 2, 64, 128, 6),
                     mb(6, 3, 1, 128, 160, 9), mb(6, 3, 2, 160, 256, 15)], 1280)
        case .v2M:
            return ([fused(1, 3, 1, 24, 24, 3), fused(4, 3, 2, 24, 48, 5), fused(4, 3, 2, 48, 80, 5), mb(4, 3, 2, 80, 160, 7),
                     mb(6, 3, 1, 160, 176, 14), mb(6, 3, 2, 176, 304, 18), mb(6, 3, 1, 304, 512, 5)], 1280)
        case .v2L:
            return ([fused(1, 3, 1, 32, 32, 4), fused(4, 3, 2, 32, 64, 7), fused(4, 3, 2, 64, 96, 7), mb(4, 3, 2, 96, 192, 10),
                     mb(6, 3, 1, 192, 224, 19), mb(6, 3, 2, 224, 384, 25), mb(6, 3, 1, 384, 640, 7)], 1280)
        }
    }

    /// `c` channels scaled by `width_mult` and rounded to a multiple of 8 by the configuration's rule.
    static func roundFilters(_ c: Int, _ o: EfficientNetOptions) -> Int {
        let v = Double(c) * o.widthMult
        guard o.channelRounding == .keras else { return makeDivisible(v) }
        return max(8, Int(v + 4) / 8 * 8)
    }

    /// The graph: `features.0` stem, `features.1...` stages (`features.S.B.block.K`), the head convolution
    /// `features.{stages + 1}`, `avgpool`, `classifier.0` dropout, `classifier.1` linear. Taps: the last
    /// block of each stride (timm's `feature_info` for the stages; the last tap is the head
    /// convolution's output, as for the other torchvision families: the last trunk module at stride 32).
    public func graph(_ c: ArchitectureConfig, _ o: EfficientNetOptions) throws -> LayerGraph {
        var g = GraphBuilder()
        let (stages, lastChannel) = Self.stages(o)
        guard let first = stages.first, let lastStage = stages.last else { throw ZooError(.badInput, "no stages", item: c.name) }
        let eps = c.bnEps
        func pad(_ k: Int, _ s: Int) -> LayerGraph.Padding { o.stridedPadding.padding(kernel: k, stride: s) }
        g.convBNAct("features.0", 3, first.cin, k: 3, s: 2, pad: pad(3, 2), eps: eps, act: .silu)
        var reduction = 2
        var sd: [Int: Double] = [:]
        let totalBlocks = stages.reduce(0) { $0 + $1.n }
        var blockIndex = 0
        // (reduction, node, name, channels) of each `features.i` module's output.
        var modules: [(reduction: Int, node: Int, name: String, channels: Int)] = [(2, g.last, "features.0", first.cin)]
        for (i, st) in stages.enumerated() {
            let idx = i + 1
            for b in 0..<st.n {
                let cin = b == 0 ? st.cin : st.cout
                let s = b == 0 ? st.s : 1
                let p = "features.\(idx).\(b).block"
                let input = g.last
                let expanded = makeDivisible(Double(cin) * st.expand)
                var k = 0
                if st.fused {
                    if expanded != cin {
                        g.convBNAct("\(p).0", cin, expanded, k: st.k, s: s, pad: pad(st.k, s), eps: eps, act: .silu)
                        g.convBNAct("\(p).1", expanded, st.cout, k: 1, s: 1, pad: .symmetric(0), eps: eps, act: nil)
                    } else {
                        g.convBNAct("\(p).0", cin, st.cout, k: st.k, s: s, pad: pad(st.k, s), eps: eps, act: .silu)
                    }
                } else {
                    if expanded != cin {
                        g.convBNAct("\(p).0", cin, expanded, k: 1, s: 1, pad: .symmetric(0), eps: eps, act: .silu)
                        k = 1
                    }
                    g.convBNAct("\(p).\(k)", expanded, expanded, k: st.k, s: s, pad: pad(st.k, s), groups: expanded, eps: eps, act: .silu)
                    k += 1
                    g.squeezeExcitation("\(p).\(k)", channels: expanded, squeeze: max(1, cin / 4), act: .silu, gate: .sigmoid)
                    k += 1
                    g.convBNAct("\(p).\(k)", expanded, st.cout, k: 1, s: 1, pad: .symmetric(0), eps: eps, act: nil)
                }
                // Stochastic depth is the identity at inference: the residual is a plain sum (the branch second).
                if s == 1 && cin == st.cout {
                    sd[g.add("features.\(idx).\(b).add", .add, inputs: [input, g.last])] = 0.2 * Double(blockIndex) / Double(totalBlocks)
                }
                blockIndex += 1
                reduction *= s
            }
            modules.append((reduction, g.last, "features.\(idx)", st.cout))
        }
        let headIdx = stages.count + 1
        let headChannels = lastChannel ?? 4 * lastStage.cout
        g.convBNAct("features.\(headIdx)", lastStage.cout, headChannels, k: 1, s: 1, pad: .symmetric(0), eps: eps, act: .silu)
        modules.append((reduction, g.last, "features.\(headIdx)", headChannels))
        for r in [2, 4, 8, 16, 32] {
            guard let m = modules.last(where: { $0.reduction == r }) else {
                throw ZooError(.badInput, "no stage at stride \(r)", item: c.name)
            }
            g.taps.append(LayerGraph.FeatureTap(name: m.name, node: m.node, channels: m.channels, reduction: r))
        }
        var graph: LayerGraph
        if c.head == .linear {
            graph = g.linearHead(channels: headChannels, classes: c.classes)
        } else {
            let head = g.add("avgpool", .adaptiveAvgPool(height: 1, width: 1))
            g.add("flatten", .flatten)
            if c.dropout > 0 { g.add("classifier.0", .dropout(c.dropout)) }
            g.add("classifier.1", .linear(inFeatures: headChannels, outFeatures: c.classes, bias: true))
            graph = g.graph(headStart: head)
        }
        // Keras's B0-B7 keep their input Normalization's mean, variance and count (one each per channel, one count);
        // the Keras mapping reads them into the file's preprocessing.
        if c.flavour == .keras && o.variant == .b { graph.kerasPreprocessingParameters = 2 * 3 + 1 }
        graph.stochasticDepth = sd.filter { $0.value > 0 }
        return graph
    }
}
