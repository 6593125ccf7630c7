import ZooErrors
import ZooJSON

extension Family {
    /// VGG 11/13/16/19 with or without BatchNorm.
    public static let vgg = Family("vgg")
}

/// The options of a VGG configuration (`zoo.config` members, in this order).
public struct VGGOptions: FlattenInputOptions {
    /// Convolutions per stage (5 stages).
    public var depths: [Int] = []
    /// BatchNorm after every convolution.
    public var batchNorm = false
    /// Keras: the spatial size `[h, w]` of the map fed to `Flatten` (7x7 at 224 px); nil (`null`) for
    /// torchvision's adaptive pooling to 7x7.
    public var flattenSize: [Int]?

    enum CodingKeys: String, CodingKey {
        case depths
        case batchNorm = "batch_norm"
        case flattenSize = "flatten_size"
    }

    /// torchvision's defaults (no stages).
    public init() {}

    /// `flatten_size` is written as `null` when nil.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(depths, forKey: .depths)
        try c.encode(batchNorm, forKey: .batchNorm)
        try c.encode(flattenSize, forKey: .flattenSize)
    }

    /// `null` there means adaptive pooling, not "keep the preset's".
    public static var nullableMembers: Set<String> { ["flatten_size"] }
}

/// VGG 11/13/16/19, with or without BatchNorm. torchvision pools adaptively to 7x7 before the classifier;
/// Keras flattens the last map as it is (`flatten_size`), in (h, w, c) order, so its first Dense layer's
/// rows are permuted by the mapping (`SourceQuirks.flatten`).
///
/// `zoo.config` members: `VGGOptions`, then `fc1_source_order` (written for people: `hwc` for Keras,
/// `chw` for torchvision; not read).
public struct VGGFamily: ArchitectureFamily {
    /// The family.
    public init() {}

    /// `vgg`.
    public var id: Family { .vgg }

    /// `VGG`.
    public var title: String { "VGG" }

    /// Depth -> convolutions per stage.
    static let depths: [(name: String, depths: [Int])] = [
        ("vgg11", [1, 1, 2, 2, 2]), ("vgg13", [2, 2, 2, 2, 2]), ("vgg16", [2, 2, 3, 3, 3]), ("vgg19", [2, 2, 4, 4, 4]),
    ]

    /// Catalogue names: each depth without and with BatchNorm.
    public var names: [String] { Self.depths.flatMap { [$0.name, $0.name + "_bn"] } }

    /// VGG16 and VGG19 exist in both flavours, the others in torchvision's only.
    public func flavours(of name: String) -> [Flavour] {
        if name == "vgg16" || name == "vgg19" { return [.torchvision, .keras] }
        return names.contains(name) ? [.torchvision] : []
    }

    /// The preset of `name`.
    public func preset(_ name: String, flavour: Flavour) throws -> ArchitectureConfig {
        let base = name.hasSuffix("_bn") ? String(name.dropLast(3)) : name
        guard let d = Self.depths.first(where: { $0.name == base }) else { throw ZooError(.usage, "unknown VGG \(name)", item: name) }
        var o = VGGOptions()
        o.depths = d.depths
        o.batchNorm = name.hasSuffix("_bn")
        if flavour == .keras { o.flattenSize = [7, 7] }
        var c = ArchitectureConfig(name: name, family: .vgg, flavour: flavour, options: o)
        c.dropout = flavour == .keras ? 0 : 0.5
        return c
    }

    /// `fc1_source_order`: `hwc` for Keras, `chw` for torchvision (for people; not read).
    public func notes(_ c: ArchitectureConfig) -> [(String, JSONValue)] {
        [("fc1_source_order", .string(c.flavour == .keras ? "hwc" : "chw"))]
    }

    /// Five positive stage depths; `flatten_size` is [h, w].
    public func validate(_ c: ArchitectureConfig, _ o: VGGOptions) throws {
        func bad(_ m: String) -> ZooError { ZooError(.badInput, m, item: c.name) }
        guard o.depths.count == 5, o.depths.allSatisfy({ $0 > 0 }) else { throw bad("VGG needs 5 stage depths, got \(o.depths)") }
        if let f = o.flattenSize { guard f.count == 2, f[0] > 0, f[1] > 0 else { throw bad("flatten_size must be [h, w]") } }
    }

    /// Keras's `Flatten` before `classifier.0`; a custom linear head is a graph of its own.
    public var quirks: SourceQuirks {
        SourceQuirks().with(\.customLinearHead, true).with(\.flatten, .init(layer: "classifier.0", channels: 512, reduction: 32))
    }

    /// The graph: `features.i` as in torchvision, then the classifier (or a custom linear head).
    public func graph(_ c: ArchitectureConfig, _ o: VGGOptions) throws -> LayerGraph {
        var g = GraphBuilder()
        var idx = 0
        var cin = 3
        let widths = [64, 128, 256, 512, 512]
        for (si, n) in o.depths.enumerated() {
            for _ in 0..<n {
                g.conv("features.\(idx)", cin, widths[si], k: 3, pad: .symmetric(1), bias: true); idx += 1
                if o.batchNorm { g.bn("features.\(idx)", widths[si], eps: c.bnEps); idx += 1 }
                g.act("features.\(idx)", .relu); idx += 1
                cin = widths[si]
            }
            // Taps follow torchvision's (and timm's) convention, the last module at each reduction: the
            // ReLU before the max-pool for strides 2...16 (stage 0 runs at stride 1), the last max-pool for 32.
            if si > 0 { g.tap("features.\(idx - 1)", channels: cin, reduction: 1 << si) }
            g.add("features.\(idx)", .maxPool(kernel: (2, 2), stride: (2, 2), padding: .symmetric(0), ceilMode: false)); idx += 1
        }
        g.tap("features.\(idx - 1)", channels: cin, reduction: 32)
        if c.head == .linear { return g.linearHead(channels: cin, classes: c.classes) }
        let head: Int
        let spatial: Int
        if let f = o.flattenSize {
            head = g.add("flatten", .flatten)
            spatial = f[0] * f[1]
        } else {
            head = g.add("avgpool", .adaptiveAvgPool(height: 7, width: 7))
            g.add("flatten", .flatten)
            spatial = 49
        }
        g.add("classifier.0", .linear(inFeatures: 512 * spatial, outFeatures: 4096, bias: true))
        g.act("classifier.1", .relu)
        if c.dropout > 0 { g.add("classifier.2", .dropout(c.dropout)) }
        g.add("classifier.3", .linear(inFeatures: 4096, outFeatures: 4096, bias: true))
        g.act("classifier.4", .relu)
        if c.dropout > 0 { g.add("classifier.5", .dropout(c.dropout)) }
        g.add("classifier.6", .linear(inFeatures: 4096, outFeatures: c.classes, bias: true))
        return g.graph(headStart: head)
    }
}
