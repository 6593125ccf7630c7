import ZooErrors
import ZooJSON

extension Family {
    /// MobileNetV3 Large / Small (torchvision and Keras).
    public static let mobilenetV3 = Family("mobilenet_v3")
}

/// The options of a MobileNetV3 configuration (`zoo.config` members, in this order).
public struct MobileNetV3Options: StridedPaddingOptions {
    /// Large or Small.
    public enum Size: String, Codable, Sendable, Hashable, CaseIterable {
        /// MobileNetV3-Large.
        case large
        /// MobileNetV3-Small.
        case small
    }

    /// Large or Small.
    public var size = Size.large
    /// Padding of the strided stem convolution.
    public var stemPadding = PaddingConvention.symmetric
    /// Padding of the strided depthwise convolutions: Keras `correct_pad`.
    public var stridedPadding = PaddingConvention.symmetric
    /// The channel rounding rules of this flavour.
    public var channelRounding = Flavour.torchvision

    enum CodingKeys: String, CodingKey {
        case size
        case stemPadding = "stem_padding"
        case stridedPadding = "strided_padding"
        case channelRounding = "channel_rounding"
    }

    /// torchvision's defaults (Large).
    public init() {}
}

/// MobileNetV3 Large / Small (torchvision and Keras).
///
/// `zoo.config` members: `MobileNetV3Options`.
public struct MobileNetV3Family: MobileNetFamily {
    /// torchvision builds MobileNetV3's BatchNorm layers with `momentum=0.01`.
    public var batchNormMomentum: Double { 0.01 }

    /// Keras Applications builds MobileNetV3's BatchNorm layers with `momentum=0.999`.
    public var kerasBatchNormMomentum: Double { 0.001 }

    /// The family.
    public init() {}

    /// `mobilenet_v3`.
    public var id: Family { .mobilenetV3 }

    /// `MobileNetV3`.
    public var title: String { "MobileNetV3" }

    /// Catalogue names (one per width).
    public var names: [String] { ["mobilenet_v3_large_075", "mobilenet_v3_large", "mobilenet_v3_small_075", "mobilenet_v3_small"] }

    /// Large and Small in both flavours, the 0.75 widths in Keras's only.
    public func flavours(of name: String) -> [Flavour] {
        if name == "mobilenet_v3_large" || name == "mobilenet_v3_small" { return [.torchvision, .keras] }
        return names.contains(name) ? [.keras] : []
    }

    /// The preset of `name` (its width from the name's suffix).
    public func preset(_ name: String, flavour: Flavour) throws -> ArchitectureConfig {
        guard names.contains(name) else { throw ZooError(.usage, "unknown MobileNetV3 \(name)", item: name) }
        var o = MobileNetV3Options()
        o.size = name.hasPrefix("mobilenet_v3_small") ? .small : .large
        if flavour == .keras { o.stemPadding = .tfSame; o.stridedPadding = .correctPad; o.channelRounding = .keras }
        var c = ArchitectureConfig(name: name, family: .mobilenetV3, flavour: flavour, width: widthFromSuffix(name), options: o)
        c.bnEps = 1e-3
        c.dropout = 0.2
        return c
    }

    /// A custom linear head is a graph of its own; Keras's classifier is a 1x1 convolution; a Keras model
    /// built for a fixed input size pads its strided convolutions TF "same"; torchvision files may have any width.
    public var quirks: SourceQuirks {
        SourceQuirks().with(\.customLinearHead, true).with(\.kerasConvHead, true)
            .with(\.fixedInputStridedPadding, .tfSame).with(\.torchvisionWidths, mobileNetTorchvisionWidths)
    }

    /// The name without its width suffix.
    public func widthBase(of name: String) -> String { name.hasPrefix("mobilenet_v3_small") ? "mobilenet_v3_small" : "mobilenet_v3_large" }

    /// One inverted-residual block: kernel, expanded channels (torchvision) or expansion ratio (Keras),
    /// output channels, squeeze-and-excitation, hard-swish, stride.
    struct Block { var k: Int; var exp: Int; var ratio: Double; var out: Int; var se: Bool; var hs: Bool; var s: Int }

    static func blocks(large: Bool) -> [Block] {
        func b(_ k: Int, _ exp: Int, _ ratio: Double, _ out: Int, _ se: Bool, _ hs: Bool, _ s: Int) -> Block {
            Block(k: k, exp: exp, ratio: ratio, out: out, se: se, hs: hs, s: s)
        }
        if large {
            return [b(3, 16, 1, 16, false, false, 1), b(3, 64, 4, 24, false, false, 2), b(3, 72, 3, 24, false, false, 1),
                    b(5, 72, 3, 40, true, false, 2), b(5, 120, 3, 40, true, false, 1), b(5, 120, 3, 40, true, false, 1),
                    b(3, 240, 6, 80, false, true, 2), b(3, 200, 2.5, 80, false, true, 1), b(3, 184, 2.3, 80, false, true, 1),
                    b(3, 184, 2.3, 80, false, true, 1), b(3, 480, 6, 112, true, true, 1), b(3, 672, 6, 112, true, true, 1),
                    b(5, 672, 6, 160, true, true, 2), b(5, 960, 6, 160, true, true, 1), b(5, 960, 6, 160, true, true, 1)]
        }
        return [b(3, 16, 1, 16, true, false, 2), b(3, 72, 72.0 / 16, 24, false, false, 2), b(3, 88, 88.0 / 24, 24, false, false, 1),
                b(5, 96, 4, 40, true, true, 2), b(5, 240, 6, 40, true, true, 1), b(5, 240, 6, 40, true, true, 1),
                b(5, 120, 3, 48, true, true, 1), b(5, 144, 3, 48, true, true, 1), b(5, 288, 6, 96, true, true, 2),
                b(5, 576, 6, 96, true, true, 1), b(5, 576, 6, 96, true, true, 1)]
    }

    /// The graph.
    public func graph(_ c: ArchitectureConfig, _ o: MobileNetV3Options) throws -> LayerGraph {
        var g = GraphBuilder()
        let large = o.size == .large
        let keras = o.channelRounding == .keras
        let w = c.width
        func adjust(_ ch: Int) -> Int { makeDivisible(Double(ch) * w) }
        var cin = keras ? 16 : adjust(16)
        g.convBNAct("features.0", 3, cin, k: 3, s: 2, pad: o.stemPadding.padding(kernel: 3, stride: 2), eps: c.bnEps, act: .hardSwish)
        var reduction = 2
        let tapsAt: Set<Int> = large ? [1, 3, 6, 12] : [1, 3, 8]
        if !large { g.tap("features.0", channels: cin, reduction: 2) }
        for (i, b) in Self.blocks(large: large).enumerated() {
            let idx = i + 1
            let p = "features.\(idx).block"
            let cout = adjust(b.out)
            let exp = keras ? makeDivisible(Double(cin) * b.ratio) : adjust(b.exp)
            let act: LayerGraph.Activation = b.hs ? .hardSwish : .relu
            let input = g.last
            var k = 0
            if exp != cin || (keras && i > 0) {
                g.convBNAct("\(p).0", cin, exp, k: 1, s: 1, pad: .symmetric(0), eps: c.bnEps, act: act)
                k = 1
            }
            g.convBNAct("\(p).\(k)", exp, exp, k: b.k, s: b.s, pad: (b.s == 1 ? PaddingConvention.symmetric : o.stridedPadding).padding(kernel: b.k, stride: b.s),
                      groups: exp, eps: c.bnEps, act: act)
            k += 1
            if b.se {
                let sq = keras ? makeDivisible(Double(exp) * 0.25) : makeDivisible(Double(exp / 4))
                g.squeezeExcitation("\(p).\(k)", channels: exp, squeeze: sq, act: .relu, gate: .hardSigmoid)
                k += 1
            }
            g.convBNAct("\(p).\(k)", exp, cout, k: 1, s: 1, pad: .symmetric(0), eps: c.bnEps, act: nil)
            let body = g.last
            if b.s == 1 && cin == cout { g.add("features.\(idx).add", .add, inputs: [input, body]) }
            reduction *= b.s
            cin = cout
            if tapsAt.contains(idx) { g.tap("features.\(idx)", channels: cout, reduction: reduction) }
        }
        let lastIdx = Self.blocks(large: large).count + 1
        let lastConv = keras ? makeDivisible(Double(cin) * 6) : 6 * cin
        g.convBNAct("features.\(lastIdx)", cin, lastConv, k: 1, s: 1, pad: .symmetric(0), eps: c.bnEps, act: .hardSwish)
        g.tap("features.\(lastIdx)", channels: lastConv, reduction: reduction)
        if c.head == .linear { return g.linearHead(channels: lastConv, classes: c.classes) }
        let basePoint = large ? 1280 : 1024
        let lastPoint = keras ? (w > 1 ? makeDivisible(Double(basePoint) * w) : basePoint) : adjust(basePoint)
        let head = g.add("avgpool", .adaptiveAvgPool(height: 1, width: 1))
        g.add("flatten", .flatten)
        g.add("classifier.0", .linear(inFeatures: lastConv, outFeatures: lastPoint, bias: true))
        g.act("classifier.1", .hardSwish)
        if c.dropout > 0 { g.add("classifier.2", .dropout(c.dropout)) }
        g.add("classifier.3", .linear(inFeatures: lastPoint, outFeatures: c.classes, bias: true))
        return g.graph(headStart: head)
    }
}
