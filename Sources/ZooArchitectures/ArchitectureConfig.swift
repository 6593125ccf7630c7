import ZooErrors
import ZooJSON

/// Which framework's definition of an architecture a configuration follows.
public enum Flavour: String, Sendable, CaseIterable, Hashable, Codable {
    /// torchvision's `models/*.py`.
    case torchvision
    /// Keras applications (`keras.applications` / `tf_keras.applications`).
    case keras
}

/// How a convolution or pooling window is padded.
public enum PaddingConvention: String, Sendable, CaseIterable, Hashable, Codable {
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

/// The options of one family's configuration: the members of `zoo.config` between `bn_eps` and
/// `dropout`, in the order the type encodes them. Each family has its own type (`ResNetOptions`,
/// `VGGOptions`, ...), its `ArchitectureFamily.Options`; `init()` gives every option its torchvision
/// default.
public protocol FamilyOptions: Codable, Sendable, Hashable {
    /// Every option at its torchvision default.
    init()
    /// Members whose `null` in a file means "none" (VGG's `flatten_size`) rather than "keep the
    /// preset's value"; none by default.
    static var nullableMembers: Set<String> { get }
}

/// Options with numeric members that are multipliers rather than counts (EfficientNet's `width_mult`):
/// those take any finite positive number below 2^24 instead of a positive integer. A separate protocol,
/// not a requirement of `FamilyOptions`, so families built against an older `FamilyOptions` keep working.
public protocol FractionalFamilyOptions: FamilyOptions {
    /// The multiplier members.
    static var fractionalMembers: Set<String> { get }
}

extension FamilyOptions {
    /// True when `other` is of this type and equal.
    func isEqual(to other: any FamilyOptions) -> Bool { (other as? Self) == self }

    /// The options as JSON, members in their type's order.
    func encodedJSON() throws -> JSONValue { try JSONValue(encoding: self) }
}

/// Options of a family with a `Flatten` whose size depends on the input (Keras VGG), which the Keras
/// mapping reads off the first linear layer.
public protocol FlattenInputOptions: FamilyOptions {
    /// The spatial size `[h, w]` of the map fed to `Flatten`; nil for adaptive pooling.
    var flattenSize: [Int]? { get set }
}

/// Options of a family whose strided convolutions pad by a rule a Keras file may change (MobileNets).
public protocol StridedPaddingOptions: FamilyOptions {
    /// Padding of the strided (depthwise) convolutions.
    var stridedPadding: PaddingConvention { get set }
}

/// The options of a family that has none of its own.
public struct NoFamilyOptions: FamilyOptions {
    /// No options.
    public init() {}
}

/// A complete, serialisable description of one architecture: the fields every family has (family,
/// flavour, classes, width, BatchNorm epsilon, dropout, head) and the family's own typed `options`.
/// `LayerGraph` is built from it; `json` is what a native checkpoint's `zoo.config` holds.
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
    /// BatchNorm epsilon.
    public var bnEps: Double
    /// Dropout probability of the head (identity at inference; kept for layer tables).
    public var dropout: Double
    /// False for a backbone-only checkpoint (a Keras "no top" file): the head's tensors are absent.
    public var includeTop: Bool
    /// The classifier head.
    public var head: HeadKind
    /// The family's own options (its `ArchitectureFamily.Options`): `options(as:)` reads them typed.
    public var options: any FamilyOptions

    /// A configuration with the common fields at their torchvision defaults and the family's `options`.
    public init(name: String, family: Family, flavour: Flavour = .torchvision, classes: Int = 1000, width: Double = 1.0,
                options: any FamilyOptions = NoFamilyOptions()) {
        self.name = name
        self.family = family
        self.flavour = flavour
        self.classes = classes
        self.width = width
        bnEps = 1e-5
        dropout = 0
        includeTop = true
        head = .standard
        self.options = options
    }

    /// Equal common fields and equal options (of the same type).
    public static func == (a: ArchitectureConfig, b: ArchitectureConfig) -> Bool {
        a.name == b.name && a.family == b.family && a.flavour == b.flavour && a.classes == b.classes && a.width == b.width
            && a.bnEps == b.bnEps && a.dropout == b.dropout && a.includeTop == b.includeTop && a.head == b.head
            && a.options.isEqual(to: b.options)
    }

    /// Hashes every field.
    public func hash(into hasher: inout Hasher) {
        hasher.combine(name)
        hasher.combine(family)
        hasher.combine(flavour)
        hasher.combine(classes)
        hasher.combine(width)
        hasher.combine(bnEps)
        hasher.combine(dropout)
        hasher.combine(includeTop)
        hasher.combine(head)
        options.hash(into: &hasher)
    }

    /// The options as the family's type; a `badInput` error naming the architecture when they are another
    /// family's.
    public func options<O: FamilyOptions>(as type: O.Type) throws -> O {
        guard let o = options as? O else {
            throw ZooError(.badInput, "the options are \(Swift.type(of: options)), not \(O.self)", item: name)
        }
        return o
    }

    /// Changes the options through their type (`config.update(ResNetOptions.self) { $0.groups = 32 }`).
    public mutating func update<O: FamilyOptions>(_ type: O.Type, _ body: (inout O) throws -> Void) throws {
        var o = try options(as: type)
        try body(&o)
        options = o
    }

    /// Keras VGG: the spatial size (h, w) of the map fed to `Flatten` (7x7 at 224 px); nil for adaptive
    /// pooling, and for a family without such an input (setting it there does nothing).
    public var flattenSize: [Int]? {
        get { (options as? any FlattenInputOptions)?.flattenSize }
        set {
            guard var o = options as? any FlattenInputOptions else { return }
            o.flattenSize = newValue
            options = o
        }
    }

    /// Padding of the strided depthwise convolutions (MobileNets); `symmetric` for the other families
    /// (setting it there does nothing).
    public var stridedPadding: PaddingConvention {
        get { (options as? any StridedPaddingOptions)?.stridedPadding ?? .symmetric }
        set {
            guard var o = options as? any StridedPaddingOptions else { return }
            o.stridedPadding = newValue
            options = o
        }
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

    /// The BatchNorm momentum for training, torch's convention (weight of the new batch statistic): the
    /// family's value for the flavour and size (`ArchitectureFamily.batchNormMomentum(of:)` for torchvision,
    /// `kerasBatchNormMomentum` for Keras); 0.1 for an unregistered family.
    public var batchNormMomentum: Double {
        guard let f = ArchitectureRegistry.current.family(family) else { return 0.1 }
        switch flavour {
        case .torchvision: return f.batchNormMomentum(of: name)
        case .keras: return f.kerasBatchNormMomentum
        }
    }

    /// The members every `zoo.config` has, which the family's options never hold.
    static let commonMembers: Set<String> = ["family", "flavour", "classes", "width", "bn_eps", "dropout", "include_top", "head"]

    /// The configuration as JSON (what `zoo.config` holds in a native checkpoint): the common fields,
    /// the family's options (in their type's order), what the family writes for people
    /// (`ArchitectureFamily.notes`), then dropout, `include_top` and a custom head.
    public var json: JSONValue {
        get throws {
            var o: [(String, JSONValue)] = [
                ("family", .string(family.rawValue)), ("flavour", .string(flavour.rawValue)),
                ("classes", .int(Int64(classes))), ("width", .double(width)),
                ("bn_eps", .double(bnEps)),
            ]
            guard case .object(let members) = try options.encodedJSON() else {
                throw ZooError(.badInput, "the options of \(family.rawValue) do not encode as a JSON object", item: name)
            }
            o += members
            o += ArchitectureRegistry.current.family(family)?.notes(self) ?? []
            o.append(("dropout", .double(dropout)))
            o.append(("include_top", .bool(includeTop)))
            if head != .standard { o.append(("head", .string(head.rawValue))) }
            return .object(o)
        }
    }

    /// Reads a configuration written by `json`, for the architecture `name`.
    ///
    /// The file describes itself: every field present is read, so a width, class count or depth no
    /// preset has is built as written. Fields absent (a file without a full `zoo.config`) keep the value
    /// of the name's preset in that flavour when it has one, else the family's default. The family's
    /// options are decoded as its `Options` type from the preset's options with the file's members laid
    /// over them; numbers are checked first (`ConfigFields.checkLimits`), and a member of the wrong type
    /// is a one-line error naming it.
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
        guard case .object(let members) = json else { throw ZooError(.badInput, "architecture config is not a JSON object", item: name) }
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
            c = definition.defaultConfig(name, flavour: flavour)
        }
        let fields = ConfigFields(json, item: name)
        if let v = try fields.int("classes") { c.classes = v }
        if let v = try fields.double("width") { c.width = v }
        if let v = try fields.double("bn_eps") { c.bnEps = v }
        let own = members.filter { !Self.commonMembers.contains($0.0) }
        try fields.checkLimits(own.map(\.0), fractional: definition.fractionalOptionMembers)
        c.options = try definition.decodeOptions(own, over: c.options, item: name)
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
        try definition.validateOptions(self)
    }

    /// The families with a custom linear head, for messages ("VGG and MobileNetV3").
    static var customHeadFamilyList: String {
        let titles = ArchitectureRegistry.current.families.filter(\.quirks.customLinearHead).map { $0.title }
        return titles.count <= 1 ? titles.joined() : titles.dropLast().joined(separator: ", ") + " and " + (titles.last ?? "")
    }

    /// This configuration with a classifier on top: itself when `includeTop`; for a backbone-only one, the
    /// head Keras's transfer-learning guide puts on a backbone without top (GlobalAveragePooling2D -> Dense):
    /// the family's standard head where that is pooling + linear (ResNet, MobileNet v1/V2), `.linear`
    /// elsewhere (VGG, MobileNetV3, whose standard heads hold pretrained hidden layers the file lacks).
    public func withClassifier() throws -> ArchitectureConfig {
        guard !includeTop else { return self }
        var c = self
        c.includeTop = true
        if try definition().quirks.customLinearHead { c.head = .linear }
        return c
    }

    /// The canonical tensors a checkpoint of this configuration holds (the head's only when `includeTop`).
    public func parameterSpec() throws -> [ParameterSpec] {
        let g = try graph()
        return includeTop ? g.parameterSpec : g.parameterSpec.filter { $0.node < g.headStart }
    }

    /// Builds the layer graph.
    public func graph() throws -> LayerGraph {
        try validate()
        return try definition().buildGraph(self)
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
