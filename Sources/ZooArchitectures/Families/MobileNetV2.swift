import ZooErrors

extension Family {
    /// MobileNetV2 (torchvision and Keras).
    public static let mobilenetV2 = Family("mobilenet_v2")
}

/// MobileNetV2 (torchvision and Keras).
///
/// `zoo.config` members: `MobileNetOptions`.
public struct MobileNetV2Family: MobileNetFamily {
    /// Keras Applications builds MobileNetV2's BatchNorm layers with `momentum=0.999`.
    public var kerasBatchNormMomentum: Double { 0.001 }

    /// The family.
    public init() {}

    /// `mobilenet_v2`.
    public var id: Family { .mobilenetV2 }

    /// `MobileNetV2`.
    public var title: String { "MobileNetV2" }

    /// Catalogue names (one per width).
    public var names: [String] { ["mobilenet_v2_035", "mobilenet_v2_050", "mobilenet_v2_075", "mobilenet_v2", "mobilenet_v2_130", "mobilenet_v2_140"] }

    /// `mobilenet_v2` in both flavours, the other widths in Keras's only.
    public func flavours(of name: String) -> [Flavour] {
        if name == "mobilenet_v2" { return [.torchvision, .keras] }
        return names.contains(name) ? [.keras] : []
    }

    /// The preset of `name` (its width from the name's suffix).
    public func preset(_ name: String, flavour: Flavour) throws -> ArchitectureConfig {
        guard names.contains(name) else { throw ZooError(.usage, "unknown MobileNetV2 \(name)", item: name) }
        var o = MobileNetOptions()
        if flavour == .keras { o.stemPadding = .tfSame; o.stridedPadding = .tfSame; o.channelRounding = .keras }
        var c = ArchitectureConfig(name: name, family: .mobilenetV2, flavour: flavour, width: widthFromSuffix(name), options: o)
        c.dropout = flavour == .keras ? 0 : 0.2
        if flavour == .keras { c.bnEps = 1e-3 }
        return c
    }

    /// torchvision files may have any of Keras's widths.
    public var quirks: SourceQuirks { SourceQuirks().with(\.torchvisionWidths, mobileNetTorchvisionWidths) }

    /// The name without its width suffix.
    public func widthBase(of name: String) -> String { "mobilenet_v2" }

    /// The graph.
    public func graph(_ c: ArchitectureConfig, _ o: MobileNetOptions) throws -> LayerGraph {
        var g = GraphBuilder()
        let w = c.width
        let keras = o.channelRounding == .keras
        let setting: [(t: Int, c: Int, n: Int, s: Int)] = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                                                           (6, 160, 3, 2), (6, 320, 1, 1)]
        var cin = makeDivisible(32 * w)
        let last = makeDivisible(1280 * max(1.0, w))
        g.convBNAct("features.0", 3, cin, k: 3, s: 2, pad: o.stemPadding.padding(kernel: 3, stride: 2), eps: c.bnEps, act: .relu6)
        var idx = 1
        var reduction = 2
        for st in setting {
            let cout = keras ? makeDivisible(Double(Int(Double(st.c) * w))) : makeDivisible(Double(st.c) * w)
            for i in 0..<st.n {
                let s = i == 0 ? st.s : 1
                let p = "features.\(idx).conv"
                let input = g.last
                let hidden = keras ? cin * st.t : Int((Double(cin) * Double(st.t)).rounded())
                var k = 0
                if st.t != 1 {
                    g.convBNAct("\(p).0", cin, hidden, k: 1, s: 1, pad: .symmetric(0), eps: c.bnEps, act: .relu6)
                    k = 1
                }
                g.convBNAct("\(p).\(k)", hidden, hidden, k: 3, s: s, pad: o.stridedPadding.padding(kernel: 3, stride: s), groups: hidden,
                          eps: c.bnEps, act: .relu6)
                g.conv("\(p).\(k + 1)", hidden, cout, k: 1, pad: .symmetric(0))
                let body = g.bn("\(p).\(k + 2)", cout, eps: c.bnEps)
                if s == 1 && cin == cout { g.add("features.\(idx).add", .add, inputs: [input, body]) }
                reduction *= s
                cin = cout
                if [1, 3, 6, 13].contains(idx) { g.tap("features.\(idx)", channels: cout, reduction: reduction) }
                idx += 1
            }
        }
        g.convBNAct("features.\(idx)", cin, last, k: 1, s: 1, pad: .symmetric(0), eps: c.bnEps, act: .relu6)
        g.tap("features.\(idx)", channels: last, reduction: reduction)
        let head = g.add("avgpool", .adaptiveAvgPool(height: 1, width: 1))
        g.add("flatten", .flatten)
        if c.dropout > 0 { g.add("classifier.0", .dropout(c.dropout)) }
        g.add("classifier.1", .linear(inFeatures: last, outFeatures: c.classes, bias: true))
        return g.graph(headStart: head)
    }
}
