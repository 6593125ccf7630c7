import ZooErrors
import ZooJSON

/// The architecture families of the zoo.
public enum Family: String, Sendable, CaseIterable, Hashable {
    /// ResNet, ResNeXt and Wide ResNet (torchvision v1.5 and Keras v1).
    case resnet
    /// VGG 11/13/16/19 with or without BatchNorm.
    case vgg
    /// MobileNet v1 (Keras).
    case mobilenetV1 = "mobilenet_v1"
    /// MobileNetV2 (torchvision and Keras).
    case mobilenetV2 = "mobilenet_v2"
    /// MobileNetV3 Large / Small (torchvision and Keras).
    case mobilenetV3 = "mobilenet_v3"
}

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
    }

    /// The configuration as JSON (what `zoo.config` holds in a native checkpoint).
    public var json: JSONValue {
        var o: [(String, JSONValue)] = [
            ("family", .string(family.rawValue)), ("flavour", .string(flavour.rawValue)),
            ("classes", .int(Int64(classes))), ("width", .double(width)),
            ("bn_eps", .double(bnEps)),
        ]
        switch family {
        case .resnet:
            o += [("depths", .array(depths.map { .int(Int64($0)) })), ("bottleneck", .bool(bottleneck)),
                  ("groups", .int(Int64(groups))), ("width_per_group", .int(Int64(widthPerGroup))),
                  ("stride_in_first_1x1", .bool(strideInFirst1x1)), ("conv_bias", .bool(convBias))]
        case .vgg:
            o += [("depths", .array(depths.map { .int(Int64($0)) })), ("batch_norm", .bool(batchNorm)),
                  ("flatten_size", flattenSize.map { .array($0.map { .int(Int64($0)) }) } ?? .null),
                  ("fc1_source_order", .string(flavour == .keras ? "hwc" : "chw"))]
        case .mobilenetV1, .mobilenetV2, .mobilenetV3:
            if family == .mobilenetV3 { o.append(("size", .string(mobileNetV3Size))) }
            o += [("stem_padding", .string(stemPadding.rawValue)), ("strided_padding", .string(stridedPadding.rawValue)),
                  ("channel_rounding", .string(channelRounding.rawValue))]
        }
        o.append(("dropout", .double(dropout)))
        o.append(("include_top", .bool(includeTop)))
        if head != .standard { o.append(("head", .string(head.rawValue))) }
        return .object(o)
    }

    /// Reads a configuration written by `json`, for the architecture `name`.
    ///
    /// Starts from the catalogue preset of `name` and the flavour in the JSON, then applies every field present.
    ///
    /// Both come from a file (a checkpoint's `zoo.architecture` and `zoo.config`), so a name or a
    /// `family` this build does not know is an unsupported input (exit code 2), not a usage error:
    /// the file was written by a newer zoo, or altered.
    public init(name: String, json: JSONValue) throws {
        guard let family = Architectures.family(of: name) else {
            throw ZooError(.unsupported, "unknown architecture \"\(name)\" (`zoo list` shows those this zoo knows; written by a newer zoo?)",
                           item: "zoo.architecture")
        }
        guard case .object = json else { throw ZooError(.badInput, "architecture config is not a JSON object", item: name) }
        if let v = json["family"] {
            guard let s = v.stringValue, let f = Family(rawValue: s) else {
                throw ZooError(.unsupported, "unknown family \(v.serialized()) (this zoo knows \(Family.allCases.map(\.rawValue).joined(separator: ", ")); written by a newer zoo?)",
                               item: "zoo.config")
            }
            guard f == family else {
                throw ZooError(.badInput, "family \"\(s)\" does not match the architecture \(name) (family \(family.rawValue))", item: "zoo.config")
            }
        }
        let flavour = try json["flavour"].map { v -> Flavour in
            guard let s = v.stringValue, let f = Flavour(rawValue: s) else {
                throw ZooError(.unsupported, "unknown flavour \(v.serialized()) (written by a newer zoo?)", item: "zoo.config")
            }
            return f
        } ?? .torchvision
        var c = try Architectures.preset(name, flavour: flavour)
        func int(_ k: String) throws -> Int? {
            guard let v = json[k], v != .null else { return nil }
            guard let i = v.intValue, i > 0, i < 1 << 24 else { throw ZooError(.badInput, "config field \(k) is not a positive integer: \(v)", item: name) }
            return i
        }
        func dbl(_ k: String) throws -> Double? {
            guard let v = json[k], v != .null else { return nil }
            guard let d = v.doubleValue, d.isFinite, d >= 0 else { throw ZooError(.badInput, "config field \(k) is not a number: \(v)", item: name) }
            return d
        }
        func bool(_ k: String) throws -> Bool? {
            guard let v = json[k], v != .null else { return nil }
            guard let b = v.boolValue else { throw ZooError(.badInput, "config field \(k) is not a boolean: \(v)", item: name) }
            return b
        }
        func ints(_ k: String) throws -> [Int]? {
            guard let v = json[k], v != .null else { return nil }
            guard let a = v.arrayValue, a.count <= 64 else { throw ZooError(.badInput, "config field \(k) is not an array", item: name) }
            return try a.map {
                guard let i = $0.intValue, i > 0, i < 4096 else { throw ZooError(.badInput, "config field \(k) holds \($0)", item: name) }
                return i
            }
        }
        func pad(_ k: String) throws -> PaddingConvention? {
            guard let v = json[k], v != .null else { return nil }
            guard let s = v.stringValue, let p = PaddingConvention(rawValue: s) else { throw ZooError(.badInput, "config field \(k) is not a padding rule: \(v)", item: name) }
            return p
        }
        if let v = try int("classes") { c.classes = v }
        if let v = try dbl("width") { c.width = v }
        if let v = try dbl("bn_eps") { c.bnEps = v }
        if let v = try ints("depths") { c.depths = v }
        if let v = try bool("bottleneck") { c.bottleneck = v }
        if let v = try int("groups") { c.groups = v }
        if let v = try int("width_per_group") { c.widthPerGroup = v }
        if let v = try bool("stride_in_first_1x1") { c.strideInFirst1x1 = v }
        if let v = try bool("conv_bias") { c.convBias = v }
        if let v = try bool("batch_norm") { c.batchNorm = v }
        if let v = json["size"]?.stringValue { c.mobileNetV3Size = v }
        if let v = try pad("stem_padding") { c.stemPadding = v }
        if let v = try pad("strided_padding") { c.stridedPadding = v }
        if let v = json["channel_rounding"]?.stringValue {
            guard let f = Flavour(rawValue: v) else { throw ZooError(.badInput, "config field channel_rounding is \(v)", item: name) }
            c.channelRounding = f
        }
        if let v = json["flatten_size"] { c.flattenSize = v == .null ? nil : try ints("flatten_size") }
        if let v = try dbl("dropout") { c.dropout = v }
        if let v = try bool("include_top") { c.includeTop = v }
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
        if head == .linear, family != .vgg, family != .mobilenetV3 {
            throw bad("head \"linear\" applies to VGG and MobileNetV3 only (the standard head of \(family.rawValue) is already pooling + linear)")
        }
        switch family {
        case .resnet:
            guard depths.count == 4, depths.allSatisfy({ $0 > 0 }) else { throw bad("ResNet needs 4 stage depths, got \(depths)") }
            guard groups > 0, widthPerGroup > 0 else { throw bad("ResNet groups and width per group must be positive") }
            if !bottleneck && (groups != 1 || widthPerGroup != 64) { throw bad("basic blocks only support groups=1, width_per_group=64") }
        case .vgg:
            guard depths.count == 5, depths.allSatisfy({ $0 > 0 }) else { throw bad("VGG needs 5 stage depths, got \(depths)") }
            if let f = flattenSize { guard f.count == 2, f[0] > 0, f[1] > 0 else { throw bad("flatten_size must be [h, w]") } }
        case .mobilenetV3:
            guard mobileNetV3Size == "large" || mobileNetV3Size == "small" else { throw bad("MobileNetV3 size must be large or small") }
        case .mobilenetV1, .mobilenetV2: break
        }
    }

    /// The canonical tensors a checkpoint of this configuration holds (the head's only when `includeTop`).
    public func parameterSpec() throws -> [ParameterSpec] {
        let g = try graph()
        return includeTop ? g.parameterSpec : g.parameterSpec.filter { $0.node < g.headStart }
    }

    /// Builds the layer graph.
    public func graph() throws -> LayerGraph {
        try validate()
        switch family {
        case .resnet: return ResNetBuilder.build(self)
        case .vgg: return VGGBuilder.build(self)
        case .mobilenetV1: return MobileNetV1Builder.build(self)
        case .mobilenetV2: return MobileNetV2Builder.build(self)
        case .mobilenetV3: return MobileNetV3Builder.build(self)
        }
    }
}

/// The architecture presets: every name of the catalogue in each flavour it exists in.
public enum Architectures {
    /// Every architecture name, in catalogue order.
    public static let names: [String] = [
        "resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
        "resnext50_32x4d", "resnext101_32x8d", "resnext101_64x4d", "wide_resnet50_2", "wide_resnet101_2",
        "vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19", "vgg19_bn",
        "mobilenet_v1_025", "mobilenet_v1_050", "mobilenet_v1_075", "mobilenet_v1",
        "mobilenet_v2_035", "mobilenet_v2_050", "mobilenet_v2_075", "mobilenet_v2", "mobilenet_v2_130", "mobilenet_v2_140",
        "mobilenet_v3_large_075", "mobilenet_v3_large", "mobilenet_v3_small_075", "mobilenet_v3_small",
    ]

    /// The flavours an architecture exists in (the first is its default).
    public static func flavours(of name: String) -> [Flavour] {
        switch name {
        case "resnet50", "resnet101", "resnet152", "vgg16", "vgg19", "mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small":
            return [.torchvision, .keras]
        case _ where name.hasPrefix("mobilenet_v1") || name.hasPrefix("mobilenet_v2_") || name.hasSuffix("_075"):
            return [.keras]
        case _ where names.contains(name):
            return [.torchvision]
        default:
            return []
        }
    }

    /// The family of a catalogue name.
    public static func family(of name: String) -> Family? {
        guard names.contains(name) else { return nil }
        if name.hasPrefix("mobilenet_v1") { return .mobilenetV1 }
        if name.hasPrefix("mobilenet_v2") { return .mobilenetV2 }
        if name.hasPrefix("mobilenet_v3") { return .mobilenetV3 }
        if name.hasPrefix("vgg") { return .vgg }
        return .resnet
    }

    /// The configuration of `name` in `flavour`, with every option at that flavour's value.
    public static func preset(_ name: String, flavour: Flavour = .torchvision, classes: Int = 1000) throws -> ArchitectureConfig {
        guard let family = family(of: name) else {
            throw ZooError(.usage, "unknown architecture \"\(name)\"; `zoo list` shows the known names", item: name)
        }
        guard flavours(of: name).contains(flavour) else {
            let have = flavours(of: name).map(\.rawValue).joined(separator: ", ")
            throw ZooError(.unsupported, "\(name) has no \(flavour.rawValue) flavour (available: \(have))", item: name)
        }
        var c = ArchitectureConfig(name: name, family: family, flavour: flavour, classes: classes)
        let keras = flavour == .keras
        func suffixWidth() -> Double {
            for (s, w) in [("_025", 0.25), ("_035", 0.35), ("_050", 0.5), ("_075", 0.75), ("_130", 1.3), ("_140", 1.4)] where name.hasSuffix(s) { return w }
            return 1.0
        }
        switch family {
        case .resnet:
            let table: [String: ([Int], Bool, Int, Int)] = [
                "resnet18": ([2, 2, 2, 2], false, 1, 64), "resnet34": ([3, 4, 6, 3], false, 1, 64),
                "resnet50": ([3, 4, 6, 3], true, 1, 64), "resnet101": ([3, 4, 23, 3], true, 1, 64),
                "resnet152": ([3, 8, 36, 3], true, 1, 64),
                "resnext50_32x4d": ([3, 4, 6, 3], true, 32, 4), "resnext101_32x8d": ([3, 4, 23, 3], true, 32, 8),
                "resnext101_64x4d": ([3, 4, 23, 3], true, 64, 4),
                "wide_resnet50_2": ([3, 4, 6, 3], true, 1, 128), "wide_resnet101_2": ([3, 4, 23, 3], true, 1, 128),
            ]
            guard let t = table[name] else { throw ZooError(.usage, "unknown ResNet \(name)", item: name) }
            (c.depths, c.bottleneck, c.groups, c.widthPerGroup) = t
            if keras { c.strideInFirst1x1 = true; c.convBias = true; c.bnEps = 1.001e-5 }
        case .vgg:
            let base = name.hasSuffix("_bn") ? String(name.dropLast(3)) : name
            let table: [String: [Int]] = ["vgg11": [1, 1, 2, 2, 2], "vgg13": [2, 2, 2, 2, 2], "vgg16": [2, 2, 3, 3, 3], "vgg19": [2, 2, 4, 4, 4]]
            guard let d = table[base] else { throw ZooError(.usage, "unknown VGG \(name)", item: name) }
            c.depths = d
            c.batchNorm = name.hasSuffix("_bn")
            c.convBias = true
            c.dropout = keras ? 0 : 0.5
            if keras { c.flattenSize = [7, 7] }
        case .mobilenetV1:
            c.width = suffixWidth()
            c.bnEps = 1e-3
            c.stemPadding = .tfSame
            c.stridedPadding = .bottomRight
            c.channelRounding = .keras
            c.dropout = 1e-3
        case .mobilenetV2:
            c.width = suffixWidth()
            c.dropout = keras ? 0 : 0.2
            if keras { c.bnEps = 1e-3; c.stemPadding = .tfSame; c.stridedPadding = .tfSame; c.channelRounding = .keras }
        case .mobilenetV3:
            c.width = suffixWidth()
            c.mobileNetV3Size = name.hasPrefix("mobilenet_v3_small") ? "small" : "large"
            c.bnEps = 1e-3
            c.dropout = 0.2
            if keras { c.stemPadding = .tfSame; c.stridedPadding = .correctPad; c.channelRounding = .keras }
        }
        return c
    }
}
