import ZooErrors
import ZooJSON

extension Family {
    /// ResNet, ResNeXt and Wide ResNet (torchvision v1.5 and Keras v1).
    public static let resnet = Family("resnet")
}

/// The options of a ResNet configuration (`zoo.config` members, in this order).
public struct ResNetOptions: FamilyOptions {
    /// Blocks per stage (4 stages).
    public var depths: [Int] = []
    /// Bottleneck blocks (ResNet-50 and deeper) instead of basic blocks.
    public var bottleneck = false
    /// Groups of the 3x3 convolution (ResNeXt cardinality).
    public var groups = 1
    /// Channels per group (64 for ResNet, 4/8 for ResNeXt, 128 for Wide ResNet).
    public var widthPerGroup = 64
    /// Stride in the first 1x1 convolution of a block (Keras v1) instead of the 3x3 (torchvision v1.5).
    public var strideInFirst1x1 = false
    /// Convolutions carry a bias (Keras).
    public var convBias = false

    enum CodingKeys: String, CodingKey {
        case depths, bottleneck, groups
        case widthPerGroup = "width_per_group"
        case strideInFirst1x1 = "stride_in_first_1x1"
        case convBias = "conv_bias"
    }

    /// torchvision's defaults (no stages).
    public init() {}
}

/// ResNet, ResNeXt and Wide ResNet: torchvision's v1.5 (stride in the 3x3 convolution) and Keras's v1
/// (stride in the first 1x1, biased convolutions, BatchNorm epsilon 1.001e-5).
///
/// `zoo.config` members: `ResNetOptions`.
public struct ResNetFamily: ArchitectureFamily {
    /// The family.
    public init() {}

    /// `resnet`.
    public var id: Family { .resnet }

    /// Name -> (blocks per stage, bottleneck, groups, width per group), in catalogue order.
    static let table: [(name: String, depths: [Int], bottleneck: Bool, groups: Int, widthPerGroup: Int)] = [
        ("resnet18", [2, 2, 2, 2], false, 1, 64), ("resnet34", [3, 4, 6, 3], false, 1, 64),
        ("resnet50", [3, 4, 6, 3], true, 1, 64), ("resnet101", [3, 4, 23, 3], true, 1, 64),
        ("resnet152", [3, 8, 36, 3], true, 1, 64),
        ("resnext50_32x4d", [3, 4, 6, 3], true, 32, 4), ("resnext101_32x8d", [3, 4, 23, 3], true, 32, 8),
        ("resnext101_64x4d", [3, 4, 23, 3], true, 64, 4),
        ("wide_resnet50_2", [3, 4, 6, 3], true, 1, 128), ("wide_resnet101_2", [3, 4, 23, 3], true, 1, 128),
    ]

    /// Catalogue names.
    public var names: [String] { Self.table.map(\.name) }

    /// ResNet-50/101/152 exist in both flavours, the others in torchvision's only.
    public func flavours(of name: String) -> [Flavour] {
        if ["resnet50", "resnet101", "resnet152"].contains(name) { return [.torchvision, .keras] }
        return names.contains(name) ? [.torchvision] : []
    }

    /// The preset of `name`.
    public func preset(_ name: String, flavour: Flavour) throws -> ArchitectureConfig {
        guard let t = Self.table.first(where: { $0.name == name }) else { throw ZooError(.usage, "unknown ResNet \(name)", item: name) }
        var o = ResNetOptions()
        (o.depths, o.bottleneck, o.groups, o.widthPerGroup) = (t.depths, t.bottleneck, t.groups, t.widthPerGroup)
        if flavour == .keras { o.strideInFirst1x1 = true; o.convBias = true }
        var c = ArchitectureConfig(name: name, family: .resnet, flavour: flavour, options: o)
        if flavour == .keras { c.bnEps = 1.001e-5 }
        return c
    }

    /// Four positive stage depths; basic blocks only with groups 1 and width 64.
    public func validate(_ c: ArchitectureConfig, _ o: ResNetOptions) throws {
        func bad(_ m: String) -> ZooError { ZooError(.badInput, m, item: c.name) }
        guard o.depths.count == 4, o.depths.allSatisfy({ $0 > 0 }) else { throw bad("ResNet needs 4 stage depths, got \(o.depths)") }
        guard o.groups > 0, o.widthPerGroup > 0 else { throw bad("ResNet groups and width per group must be positive") }
        if !o.bottleneck && (o.groups != 1 || o.widthPerGroup != 64) { throw bad("basic blocks only support groups=1, width_per_group=64") }
    }

    /// torchvision initialises `fc` with `nn.Linear`'s default.
    public var quirks: SourceQuirks { SourceQuirks().with(\.torchvisionLinearInit, .uniformFanIn) }

    /// The graph: torchvision's module names; Keras's layer order where it differs (downsample before conv3).
    public func graph(_ c: ArchitectureConfig, _ o: ResNetOptions) throws -> LayerGraph {
        var g = GraphBuilder()
        let keras = c.flavour == .keras
        let eps = c.bnEps
        g.conv("conv1", 3, 64, k: 7, s: 2, pad: .symmetric(3), bias: o.convBias)
        g.bn("bn1", 64, eps: eps)
        g.act("relu", .relu)
        g.tap("relu", channels: 64, reduction: 2)
        g.add("maxpool", .maxPool(kernel: (3, 3), stride: (2, 2), padding: .symmetric(1), ceilMode: false))
        var inplanes = 64
        let expansion = o.bottleneck ? 4 : 1
        for (si, blocks) in o.depths.enumerated() {
            let planes = 64 << si
            for b in 0..<blocks {
                let stride = (b == 0 && si > 0) ? 2 : 1
                let p = "layer\(si + 1).\(b)"
                let input = g.last
                let out = planes * expansion
                let needsDown = b == 0 && (stride != 1 || inplanes != out)
                var down = input
                var body: Int
                if o.bottleneck {
                    let w = Int(Double(planes) * Double(o.widthPerGroup) / 64.0) * o.groups
                    let s1 = o.strideInFirst1x1 ? stride : 1
                    let s2 = o.strideInFirst1x1 ? 1 : stride
                    g.conv("\(p).conv1", inplanes, w, k: 1, s: s1, pad: .symmetric(0), bias: o.convBias)
                    g.bn("\(p).bn1", w, eps: eps)
                    g.act("\(p).relu", .relu)
                    g.conv("\(p).conv2", w, w, k: 3, s: s2, pad: .symmetric(1), groups: o.groups, bias: o.convBias)
                    g.bn("\(p).bn2", w, eps: eps)
                    g.act("\(p).relu", .relu)
                    if keras && needsDown {
                        // Keras's layer order: 0_conv, 3_conv, 0_bn, 3_bn.
                        let dconv = g.conv("\(p).downsample.0", inplanes, out, k: 1, s: stride, pad: .symmetric(0), bias: o.convBias, input: input)
                        g.conv("\(p).conv3", w, out, k: 1, pad: .symmetric(0), bias: o.convBias, input: dconv - 1)
                        let c3 = g.last
                        down = g.add("\(p).downsample.1", .batchNorm(channels: out, eps: eps), inputs: [dconv])
                        body = g.add("\(p).bn3", .batchNorm(channels: out, eps: eps), inputs: [c3])
                    } else {
                        g.conv("\(p).conv3", w, out, k: 1, pad: .symmetric(0), bias: o.convBias)
                        body = g.bn("\(p).bn3", out, eps: eps)
                    }
                } else {
                    g.conv("\(p).conv1", inplanes, planes, k: 3, s: stride, pad: .symmetric(1), bias: o.convBias)
                    g.bn("\(p).bn1", planes, eps: eps)
                    g.act("\(p).relu", .relu)
                    g.conv("\(p).conv2", planes, planes, k: 3, pad: .symmetric(1), bias: o.convBias)
                    body = g.bn("\(p).bn2", planes, eps: eps)
                }
                if needsDown && !(keras && o.bottleneck) {
                    let d0 = g.conv("\(p).downsample.0", inplanes, out, k: 1, s: stride, pad: .symmetric(0), bias: o.convBias, input: input)
                    down = g.add("\(p).downsample.1", .batchNorm(channels: out, eps: eps), inputs: [d0])
                }
                g.add("\(p).add", .add, inputs: [body, down])
                g.act("\(p).relu", .relu)
                inplanes = out
            }
            g.tap("layer\(si + 1)", channels: inplanes, reduction: 4 << si)
        }
        let head = g.add("avgpool", .adaptiveAvgPool(height: 1, width: 1))
        g.add("flatten", .flatten)
        g.add("fc", .linear(inFeatures: inplanes, outFeatures: c.classes, bias: true))
        return g.graph(headStart: head)
    }
}
