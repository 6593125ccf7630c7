import ZooErrors

extension Family {
    /// MobileNet v1 (Keras).
    public static let mobilenetV1 = Family("mobilenet_v1")
}

/// MobileNet v1 (Keras).
///
/// `zoo.config` members: `MobileNetOptions`.
public struct MobileNetV1Family: MobileNetFamily {
    /// The family.
    public init() {}

    /// `mobilenet_v1`.
    public var id: Family { .mobilenetV1 }

    /// `MobileNetV1`.
    public var title: String { "MobileNetV1" }

    /// Catalogue names (one per width).
    public var names: [String] { ["mobilenet_v1_025", "mobilenet_v1_050", "mobilenet_v1_075", "mobilenet_v1"] }

    /// Keras only.
    public func flavours(of name: String) -> [Flavour] { names.contains(name) ? [.keras] : [] }

    /// The preset of `name` (its width from the name's suffix).
    public func preset(_ name: String, flavour: Flavour) throws -> ArchitectureConfig {
        guard names.contains(name) else { throw ZooError(.usage, "unknown MobileNetV1 \(name)", item: name) }
        var o = MobileNetOptions()
        o.stemPadding = .tfSame
        o.stridedPadding = .bottomRight
        o.channelRounding = .keras
        var c = ArchitectureConfig(name: name, family: .mobilenetV1, flavour: flavour, width: widthFromSuffix(name), options: o)
        c.bnEps = 1e-3
        c.dropout = 1e-3
        return c
    }

    /// Keras's classifier is a 1x1 convolution.
    public var quirks: SourceQuirks { SourceQuirks().with(\.kerasConvHead, true) }

    /// The name without its width suffix.
    public func widthBase(of name: String) -> String { "mobilenet_v1" }

    /// Keras MobileNet v1, named like torchvision's MobileNets: `features.0` stem, `features.i.0` depthwise
    /// and `features.i.1` pointwise `Conv2dNormActivation`s, `classifier.1` the (1x1-conv) classifier.
    public func graph(_ c: ArchitectureConfig, _ o: MobileNetOptions) throws -> LayerGraph {
        var g = GraphBuilder()
        let a = c.width
        func ch(_ f: Int) -> Int { Int(Double(f) * a) }
        var cin = ch(32)
        g.convBNAct("features.0", 3, cin, k: 3, s: 2, pad: o.stemPadding.padding(kernel: 3, stride: 2), eps: c.bnEps, act: .relu6)
        let blocks: [(Int, Int)] = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1), (512, 1), (512, 1), (512, 1),
                                    (512, 1), (1024, 2), (1024, 1)]
        var reduction = 2
        for (i, (f, s)) in blocks.enumerated() {
            let cout = ch(f)
            g.convBNAct("features.\(i + 1).0", cin, cin, k: 3, s: s, pad: o.stridedPadding.padding(kernel: 3, stride: s), groups: cin,
                      eps: c.bnEps, act: .relu6)
            g.convBNAct("features.\(i + 1).1", cin, cout, k: 1, s: 1, pad: .symmetric(0), eps: c.bnEps, act: .relu6)
            reduction *= s
            cin = cout
            if [1, 3, 5, 11, 13].contains(i + 1) { g.tap("features.\(i + 1)", channels: cout, reduction: reduction) }
        }
        let head = g.add("avgpool", .adaptiveAvgPool(height: 1, width: 1))
        g.add("flatten", .flatten)
        if c.dropout > 0 { g.add("classifier.0", .dropout(c.dropout)) }
        g.add("classifier.1", .linear(inFeatures: cin, outFeatures: c.classes, bias: true))
        return g.graph(headStart: head)
    }
}
