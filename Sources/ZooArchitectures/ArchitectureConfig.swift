import ZooErrors
import ZooJSON

/// Which framework's definition of an architecture a configuration follows.
public enum Flavour: String, Sendable, CaseIterable, Hashable {
    /// torchvision's `models/*.py`.
    case torchvision
    /// Keras applications (`keras.applications` / `tf_keras.applications`).
    case keras
}

/// How a convolution or pooling window is padded.
public enum PaddingConvention: String, Sendable, CaseIterable, Hashable {
    /// PyTorch: `(k - 1) / 2` on every side.
    case symmetric
    /// TensorFlow "same", computed from the actual input size (asymmetric on even inputs).
    case tfSame = "tf_same"
    /// Keras `correct_pad` on a model built without a fixed input size: `k/2 - 1` top/left, `k/2` bottom/right.
    case correctPad = "correct_pad"
    /// MobileNet v1's fixed `ZeroPadding2D(((0, 1), (0, 1)))` before a "valid" window.
    case bottomRight = "bottom_right"

    /// The graph padding for a `k`x`k` window with stride `s`.
    public func padding(kernel k: Int, stride s: Int) -> LayerGraph.Padding {
        switch self {
        case .symmetric: return .symmetric((k - 1) / 2)
        case .tfSame: return s == 1 ? .symmetric((k - 1) / 2) : .tfSame
        case .correctPad: return s == 1 ? .symmetric((k - 1) / 2) : .explicit(top: k / 2 - 1, bottom: k / 2, left: k / 2 - 1, right: k / 2)
        case .bottomRight: return s == 1 ? .symmetric((k - 1) / 2) : .explicit(top: 0, bottom: 1, left: 0, right: 1)
        }
    }
}

/// The classifier head of an architecture.
public enum HeadKind: String, Sendable, CaseIterable, Hashable {
    /// The family's own head (torchvision's / Keras's classifier).
    case standard
    /// A custom head: global average pooling -> one linear layer named `head` (a Keras model built as
    /// backbone without top -> GlobalAveragePooling2D -> Dense(n)). Only where it differs from the family's
    /// own head (VGG, MobileNetV3); for ResNet and MobileNet v1/V2 such a head *is* the standard one.
    case linear
}

/// A complete, serialisable description of one architecture: family, variant and every option
/// that distinguishes the torchvision and Keras definitions. `LayerGraph` is built from it.
///
/// Fields that do not apply to a family keep their defaults and are not written to JSON.
public struct ArchitectureConfig: Sendable, Hashable {
    /// The catalogue name (`resnet50`, `vgg16_bn`, `mobilenet_v2`, `mobilenet_v3_small_075`).
    public var name: String
    /// The family.
    public var family: Family
    /// Which framework's definition this follows.
    public var flavour: Flavour
    /// Number of classes of the classifier head.
    public var classes: Int
    /// Width multiplier (MobileNets' alpha); 1 for the other families.
    public var width: Double
    /// ResNet: blocks per stage. VGG: convolutions per stage (5 stages).
    public var depths: [Int]
    /// ResNet: bottleneck blocks (50 and deeper) instead of basic blocks.
    public var bottleneck: Bool
    /// ResNet: groups of the 3x3 convolution (ResNeXt cardinality).
    public var groups: Int
    /// ResNet: channels per group (64 for ResNet, 4/8 for ResNeXt, 128 for Wide ResNet).
    public var widthPerGroup: Int
    /// ResNet: stride in the first 1x1 convolution of a block (Keras v1) instead of the 3x3 (torchvision v1.5).
    public var strideInFirst1x1: Bool
    /// Convolutions carry a bias (Keras ResNet); VGG's always do.
    public var convBias: Bool
    /// VGG: BatchNorm after every convolution.
    public var batchNorm: Bool
    /// MobileNetV3: `large` or `small`.
    public var mobileNetV3Size: String
    /// BatchNorm epsilon.
    public var bnEps: Double
    /// Padding of strided depthwise convolutions (MobileNets) — Keras: `tf_same` (V2), `correct_pad` (V3), `bottom_right` (V1).
    public var stridedPadding: PaddingConvention
    /// Padding of the strided stem convolution.
    public var stemPadding: PaddingConvention
    /// MobileNetV2/V3: channel rounding rules of this flavour (Keras rounds `int(c * alpha)` and expands by ratios).
    public var channelRounding: Flavour
    /// VGG Keras: the spatial size (h, w) of the map fed to `Flatten` (7x7 at 224 px); nil for torchvision's adaptive pooling to 7x7.
    public var flattenSize: [Int]?
    /// Dropout probability of the head (identity at inference; kept for layer tables).
    public var dropout: Double
    /// False for a backbone-only checkpoint (a Keras "no top" file): the head's tensors are absent.
    public var includeTop: Bool
    /// The classifier head.
    public var head: HeadKind
    /// Numeric options of a family whose settings none of the fields above holds, by name (the family's
    /// `encode`/`decode` write and read them); empty for the built-in families.
    public var options: [String: Double]

    /// A configuration with every option at its torchvision default.
    public init(name: String, family: Family, flavour: Flavour = .torchvision, classes: Int = 1000, width: Double = 1.0) {
        self.name = name
        self.family = family
        self.flavour = flavour
        self.classes = classes
        self.width = width
        depths = []
        bottleneck = false
        groups = 1
        widthPerGroup = 64
        strideInFirst1x1 = false
        convBias = false
        batchNorm = false
        mobileNetV3Size = "large"
        bnEps = 1e-5
        stridedPadding = .symmetric
        stemPadding = .symmetric
        channelRounding = .torchvision
        flattenSize = nil
        dropout = 0
        includeTop = true
        head = .standard
        options = [:]
    }

    /// The family's definition in the current registry.
    func definition() throws -> any ArchitectureFamily {
        guard let f = ArchitectureRegistry.current.family(family) else {
            throw ZooError(.unsupported, "unknown family \"\(family.rawValue)\"", item: name)
        }
        return f
    }

    /// The family's source quirks (none for a family the current registry does not know).
    public var quirks: SourceQuirks { ArchitectureRegistry.current.family(family)?.quirks ?? SourceQuirks() }

    /// The configuration as JSON (what `zoo.config` holds in a native checkpoint): the common fields,
    /// then the family's own (`ArchitectureFamily.encode`), then dropout, `include_top` and a custom head.
    public var json: JSONValue {
        var o: [(String, JSONValue)] = [
            ("family", .string(family.rawValue)), ("flavour", .string(flavour.rawValue)),
            ("classes", .int(Int64(classes))), ("width", .double(width)),
            ("bn_eps", .double(bnEps)),
        ]
        o += ArchitectureRegistry.current.family(family)?.encode(self) ?? []
        o.append(("dropout", .double(dropout)))
        o.append(("include_top", .bool(includeTop)))
        if head != .standard { o.append(("head", .string(head.rawValue))) }
        return .object(o)
    }

    /// Reads a configuration written by `json`, for the architecture `name`.
    ///
    /// The file describes itself: the family (from the JSON's `family`, else the name's) reads every field
    /// present, so a width, class count or depth no preset has is built as written. Fields absent (a file
    /// without a full `zoo.config`) keep the value of the name's preset in that flavour when it has one.
    ///
    /// Both come from a file (a checkpoint's `zoo.architecture` and `zoo.config`), so a name or a
    /// `family` this build does not know is an unsupported input (exit code 2), not a usage error:
    /// the file was written by a newer zoo, or altered.
    public init(name: String, json: JSONValue) throws {
        let registry = ArchitectureRegistry.current
        guard let definition = registry.family(named: name) else {
            throw ZooError(.unsupported, "unknown architecture \"\(name)\" (`zoo list` shows those this zoo knows; written by a newer zoo?)",
                           item: "zoo.architecture")
        }
        let family = definition.id
        guard case .object = json else { throw ZooError(.badInput, "architecture config is not a JSON object", item: name) }
        if let v = json["family"] {
            guard let s = v.stringValue, registry.family(s) != nil else {
                throw ZooError(.unsupported, "unknown family \(v.serialized()) (this zoo knows \(registry.families.map(\.id.rawValue).joined(separator: ", ")); written by a newer zoo?)",
                               item: "zoo.config")
            }
            guard s == family.rawValue else {
                throw ZooError(.badInput, "family \"\(s)\" does not match the architecture \(name) (family \(family.rawValue))", item: "zoo.config")
            }
        }
        let flavour = try json["flavour"].map { v -> Flavour in
            guard let s = v.stringValue, let f = Flavour(rawValue: s) else {
                throw ZooError(.unsupported, "unknown flavour \(v.serialized()) (written by a newer zoo?)", item: "zoo.config")
            }
            return f
        } ?? .torchvision
        var c: ArchitectureConfig
        if definition.flavours(of: name).contains(flavour) {
            c = try definition.preset(name, flavour: flavour)
        } else {
            c = ArchitectureConfig(name: name, family: family, flavour: flavour)
        }
        let fields = ConfigFields(json, item: name)
        if let v = try fields.int("classes") { c.classes = v }
        if let v = try fields.double("width") { c.width = v }
        if let v = try fields.double("bn_eps") { c.bnEps = v }
        try definition.decode(fields, into: &c)
        if let v = try fields.double("dropout") { c.dropout = v }
        if let v = try fields.bool("include_top") { c.includeTop = v }
        if let v = json["head"], v != .null {
            guard let s = v.stringValue, let h = HeadKind(rawValue: s) else { throw ZooError(.badInput, "config field head is \(v)", item: name) }
            c.head = h
        }
        try c.validate()
        self = c
    }

    /// Checks that the options describe a buildable architecture.
    public func validate() throws {
        func bad(_ m: String) -> ZooError { ZooError(.badInput, m, item: name) }
        guard classes > 0, classes < 1 << 24 else { throw bad("classes must be positive, got \(classes)") }
        guard width > 0, width <= 8 else { throw bad("width multiplier must be in (0, 8], got \(width)") }
        guard bnEps > 0, bnEps < 1 else { throw bad("BatchNorm epsilon must be in (0, 1), got \(bnEps)") }
        let definition = try definition()
        if head == .linear, !definition.quirks.customLinearHead {
            throw bad("head \"linear\" applies to \(Self.customHeadFamilyList) only (the standard head of \(family.rawValue) is already pooling + linear)")
        }
        try definition.validate(self)
    }

    /// The families with a custom linear head, for messages ("VGG and MobileNetV3").
    static var customHeadFamilyList: String {
        let titles = ArchitectureRegistry.current.families.filter(\.quirks.customLinearHead).map { $0.title }
        return titles.count <= 1 ? titles.joined() : titles.dropLast().joined(separator: ", ") + " and " + (titles.last ?? "")
    }

    /// The canonical tensors a checkpoint of this configuration holds (the head's only when `includeTop`).
    public func parameterSpec() throws -> [ParameterSpec] {
        let g = try graph()
        return includeTop ? g.parameterSpec : g.parameterSpec.filter { $0.node < g.headStart }
    }

    /// Builds the layer graph.
    public func graph() throws -> LayerGraph {
        try validate()
        return try definition().graph(self)
    }

    /// Fits the options that depend on the input size to an `h`x`w` input (Keras VGG's `Flatten`).
    public mutating func fit(inputHeight h: Int, width w: Int) {
        if let f = quirks.flatten, flattenSize != nil { flattenSize = [h / f.reduction, w / f.reduction] }
    }
}

/// The architecture names, flavours and presets of the current registry (`ArchitectureRegistry.current`).
public enum Architectures {
    /// Every architecture name, in catalogue order.
    public static var names: [String] { ArchitectureRegistry.current.names }

    /// The flavours an architecture exists in (the first is its default); empty for an unknown name.
    public static func flavours(of name: String) -> [Flavour] { ArchitectureRegistry.current.flavours(of: name) }

    /// The family of a name; nil for an unknown name (never a guess).
    public static func family(of name: String) -> Family? { ArchitectureRegistry.current.family(named: name)?.id }

    /// The configuration of `name` in `flavour`, with every option at that flavour's value.
    public static func preset(_ name: String, flavour: Flavour = .torchvision, classes: Int = 1000) throws -> ArchitectureConfig {
        try ArchitectureRegistry.current.preset(name, flavour: flavour, classes: classes)
    }
}
