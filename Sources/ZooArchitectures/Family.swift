import Foundation
import ZooErrors
import ZooJSON

/// The identifier of an architecture family: what `zoo.config`'s `family` and a catalogue file's
/// `family` hold (`resnet`, `vgg`, `mobilenet_v2`, ...). The families themselves are
/// `ArchitectureFamily` values in an `ArchitectureRegistry`; the built-in identifiers are static
/// members (`.resnet`, `.vgg`, ...), declared next to their family in `Families/`.
public struct Family: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    /// The identifier as written in files.
    public let rawValue: String

    /// The identifier of a family registered in the current registry; nil for one it does not know.
    public init?(rawValue: String) {
        guard ArchitectureRegistry.current.family(rawValue) != nil else { return nil }
        self.rawValue = rawValue
    }

    /// An identifier, registered or not (what a family declares itself as).
    public init(_ rawValue: String) { self.rawValue = rawValue }

    /// Every family of the current registry, in registration (catalogue) order.
    public static var allCases: [Family] { ArchitectureRegistry.current.families.map(\.id) }

    /// The identifier.
    public var description: String { rawValue }
}

/// How a framework initialises the linear layers of a freshly built model of a family (`zoo init`).
public enum LinearInit: Sendable, Hashable {
    /// `normal_(0, std)` weights, zero bias (torchvision's VGG and MobileNets).
    case normal(std: Double)
    /// `nn.Linear`'s default: weight and bias `U(-1/sqrt(in), 1/sqrt(in))` (torchvision's ResNet `fc`).
    case uniformFanIn
    /// `trunc_normal_(std)` weights (cut at +-2, absolute), zero bias, for every convolution and linear
    /// layer alike (torchvision's ConvNeXt, std 0.02).
    case truncatedNormal(std: Double)
}

/// What a torchvision or Keras file of a family needs beyond its names and layer order.
/// Families set only the quirks they have; the defaults describe a family without any.
public struct SourceQuirks: Sendable {
    /// The input of a `Flatten` feeding a fully connected layer whose size depends on the input image
    /// (Keras VGG): the first linear layer's module name, the channels of the flattened map and its
    /// reduction. Keras stores that layer's rows in (h, w, c) order; the mapping permutes them.
    public struct FlattenInput: Sendable, Hashable {
        /// Canonical module name of the first linear layer (`classifier.0`).
        public var layer: String
        /// Channels of the map fed to `Flatten`.
        public var channels: Int
        /// Total stride of that map relative to the input.
        public var reduction: Int

        /// Creates the description.
        public init(layer: String, channels: Int, reduction: Int) {
            self.layer = layer
            self.channels = channels
            self.reduction = reduction
        }
    }

    /// The family's own head is more than pooling + one linear layer, so a custom `head: "linear"`
    /// (Keras backbone -> GlobalAveragePooling2D -> Dense) is a graph of its own (VGG, MobileNetV3).
    public var customLinearHead = false
    /// Width multipliers a torchvision file of this family may have besides its presets' (read off the tensors).
    public var torchvisionWidths: [Double] = []
    /// A Keras classifier may be a 1x1 convolution with a bias (MobileNet v1/V3): classes are read from its kernel.
    public var kerasConvHead = false
    /// Keras's `Flatten` before the first linear layer (VGG); nil for adaptive pooling.
    public var flatten: FlattenInput?
    /// Padding of the strided convolutions when a Keras model was built for a fixed input size (MobileNetV3's
    /// and EfficientNet B0-B7's `correct_pad` follows TF "same" then); nil when it does not change.
    public var fixedInputStridedPadding: PaddingConvention?
    /// How torchvision initialises the family's linear layers.
    public var torchvisionLinearInit: LinearInit = .normal(std: 0.01)
    /// Canonical-name prefixes of the graph nodes Keras builds inside nested models (ConvNeXt's stem and
    /// downsampling `Sequential`s: `features.0.`, `features.2.`, ...). A Keras 3 `.weights.h5` keeps the order
    /// of a class's layers only within one container, so such layers are matched among the file's nested
    /// layers and the others among its top-level ones. Empty: one order for all.
    public var kerasNestedNodePrefixes: [String] = []

    /// No quirks.
    public init() {}

    /// These quirks with one of them set: `SourceQuirks().with(\.kerasConvHead, true)`.
    public func with<T>(_ quirk: WritableKeyPath<SourceQuirks, T>, _ value: T) -> SourceQuirks {
        var q = self
        q[keyPath: quirk] = value
        return q
    }
}

/// One architecture family: everything the zoo knows about it, in one value.
///
/// A family owns its catalogue names and their presets (per flavour), its typed options (`Options`:
/// the `Codable` members of `zoo.config` it adds to the common ones), their validation, its graph
/// builder and its source quirks. The zoo finds families through `ArchitectureRegistry`; adding one
/// is a new type conforming to this protocol, registered there (docs/architecture.md, "Adding a family").
public protocol ArchitectureFamily: Sendable {
    /// The family's own configuration options.
    associatedtype Options: FamilyOptions
    /// The identifier written to files.
    var id: Family { get }
    /// The family's name for people (`VGG`, `MobileNetV3`); the identifier by default.
    var title: String { get }
    /// Catalogue names, in catalogue order.
    var names: [String] { get }
    /// The flavours one of `names` exists in (the first is its default); empty for another name.
    func flavours(of name: String) -> [Flavour]
    /// The preset of one of `names` in one of its flavours, every option at that flavour's value (its
    /// `options` an `Options`). The registry checks the name and flavour first.
    func preset(_ name: String, flavour: Flavour) throws -> ArchitectureConfig
    /// Checks the family's own options (the common fields are checked already).
    func validate(_ config: ArchitectureConfig, _ options: Options) throws
    /// Builds the layer graph of a validated configuration.
    func graph(_ config: ArchitectureConfig, _ options: Options) throws -> LayerGraph
    /// Members `zoo.config` holds for people, derived from the configuration and never read back
    /// (VGG's `fc1_source_order`), written after the options; none by default.
    func notes(_ config: ArchitectureConfig) -> [(String, JSONValue)]
    /// What torchvision and Keras files of this family need.
    var quirks: SourceQuirks { get }
    /// The other widths of a width-multiplied name (`mobilenet_v2` -> `mobilenet_v2_035`, ...), which an
    /// explicit `--arch` also accepts; empty by default.
    func widthSiblings(of name: String) -> [String]
    /// The momentum (torch's convention: weight of the new batch statistic) with which training updates
    /// BatchNorm running statistics: torchvision's value for the family, 0.1 by default.
    var batchNormMomentum: Double { get }
    /// The torchvision momentum of one architecture of the family, where its sizes differ (EfficientNet
    /// B5-B7); `batchNormMomentum` by default.
    func batchNormMomentum(of name: String) -> Double
    /// The same for the Keras flavour: one minus Keras Applications' `momentum` (its default 0.99 gives
    /// 0.01; MobileNetV2/V3 build theirs with 0.999, so 0.001).
    var kerasBatchNormMomentum: Double { get }
}

extension ArchitectureFamily {
    /// The identifier.
    public var title: String { id.rawValue }

    /// torch's BatchNorm default, 0.1.
    public var batchNormMomentum: Double { 0.1 }

    /// The family's `batchNormMomentum`, whatever the size.
    public func batchNormMomentum(of name: String) -> Double { batchNormMomentum }

    /// Keras's BatchNormalization default (`momentum=0.99`), 0.01 in torch's convention.
    public var kerasBatchNormMomentum: Double { 0.01 }

    /// No width siblings.
    public func widthSiblings(of name: String) -> [String] { [] }

    /// No checks beyond the common ones.
    public func validate(_ config: ArchitectureConfig, _ options: Options) throws {}

    /// No members for people.
    public func notes(_ config: ArchitectureConfig) -> [(String, JSONValue)] { [] }

    /// A configuration of `name` in a flavour it has no preset in: the common fields and the options
    /// at their defaults (what a file's `zoo.config` then fills in).
    public func defaultConfig(_ name: String, flavour: Flavour) -> ArchitectureConfig {
        ArchitectureConfig(name: name, family: id, flavour: flavour, options: Options())
    }

    /// Checks `config`'s options as this family's `Options`.
    public func validateOptions(_ config: ArchitectureConfig) throws {
        try validate(config, try config.options(as: Options.self))
    }

    /// Builds the graph of `config` with its options as this family's `Options`.
    public func buildGraph(_ config: ArchitectureConfig) throws -> LayerGraph {
        try graph(config, try config.options(as: Options.self))
    }

    /// `members` of a file's `zoo.config` (the family's own) laid over `base` (the preset's options,
    /// or the defaults when they are another type), decoded as `Options`. A null member keeps the
    /// base's value unless the options declare it nullable (`FamilyOptions.nullableMembers`). A member
    /// of the wrong type is a `badInput` error naming it (`config field depths: ...`).
    public func decodeOptions(_ members: [(String, JSONValue)], over base: any FamilyOptions, item: String) throws -> any FamilyOptions {
        let start = (base as? Options) ?? Options()
        guard case .object(var merged) = try JSONValue(encoding: start) else {
            throw ZooError(.badInput, "the options of \(id.rawValue) do not encode as a JSON object", item: item)
        }
        for (k, v) in members {
            if v == .null, !Options.nullableMembers.contains(k) { continue }
            let v = v.integralNumbersAsIntegers
            if let i = merged.firstIndex(where: { $0.0 == k }) { merged[i].1 = v } else { merged.append((k, v)) }
        }
        let text = JSONValue.object(merged).serialized()
        do {
            return try JSONDecoder().decode(Options.self, from: Data(text.utf8))
        } catch let error as DecodingError {
            throw ZooError(.badInput, "config field \(error.zooDescription)", item: item)
        }
    }
}

extension JSONValue {
    /// This value with every number that is an exact integer (`32.0`) written as one, as the
    /// configuration readers always accepted (`Codable`'s integers would not).
    var integralNumbersAsIntegers: JSONValue {
        switch self {
        case .double(let d):
            if let i = Int64(exactly: d) { return .int(i) }
            return self
        case .array(let a): return .array(a.map(\.integralNumbersAsIntegers))
        case .object(let o): return .object(o.map { ($0.0, $0.1.integralNumbersAsIntegers) })
        default: return self
        }
    }
}

extension FamilyOptions {
    /// None.
    public static var nullableMembers: Set<String> { [] }
}

extension ArchitectureFamily {
    /// The option members that are multipliers (`FractionalFamilyOptions`); none for other options.
    public var fractionalOptionMembers: Set<String> { (Options.self as? any FractionalFamilyOptions.Type)?.fractionalMembers ?? [] }
}

extension DecodingError {
    /// `depths: expected an array` — the member's path and what was wrong, in one line.
    var zooDescription: String {
        func path(_ keys: [any CodingKey]) -> String {
            keys.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
        }
        switch self {
        case .typeMismatch(let type, let c): return "\(path(c.codingPath)): expected \(type)"
        case .valueNotFound(let type, let c): return "\(path(c.codingPath)): no \(type) value"
        case .keyNotFound(let key, let c): return "\(path(c.codingPath + [key])): missing"
        case .dataCorrupted(let c): return "\(path(c.codingPath)): \(c.debugDescription)"
        @unknown default: return "unreadable"
        }
    }
}

/// Reads the fields of a `zoo.config` object with the zoo's checks (one-line errors naming the field).
public struct ConfigFields: Sendable {
    /// The configuration object.
    public let json: JSONValue
    /// The architecture name errors are reported under.
    public let item: String

    /// Wraps a configuration object.
    public init(_ json: JSONValue, item: String) {
        self.json = json
        self.item = item
    }

    /// A present, non-null value.
    func value(_ k: String) -> JSONValue? {
        guard let v = json[k], v != .null else { return nil }
        return v
    }

    /// A positive integer below 2^24.
    public func int(_ k: String) throws -> Int? {
        guard let v = value(k) else { return nil }
        guard let i = v.intValue, i > 0, i < 1 << 24 else { throw ZooError(.badInput, "config field \(k) is not a positive integer: \(v)", item: item) }
        return i
    }

    /// A finite non-negative number.
    public func double(_ k: String) throws -> Double? {
        guard let v = value(k) else { return nil }
        guard let d = v.doubleValue, d.isFinite, d >= 0 else { throw ZooError(.badInput, "config field \(k) is not a number: \(v)", item: item) }
        return d
    }

    /// A boolean.
    public func bool(_ k: String) throws -> Bool? {
        guard let v = value(k) else { return nil }
        guard let b = v.boolValue else { throw ZooError(.badInput, "config field \(k) is not a boolean: \(v)", item: item) }
        return b
    }

    /// An array of at most 64 integers in (0, 4096).
    public func ints(_ k: String) throws -> [Int]? {
        guard let v = value(k) else { return nil }
        guard let a = v.arrayValue, a.count <= 64 else { throw ZooError(.badInput, "config field \(k) is not an array", item: item) }
        return try a.map {
            guard let i = $0.intValue, i > 0, i < 4096 else { throw ZooError(.badInput, "config field \(k) holds \($0)", item: item) }
            return i
        }
    }

    /// Checks the numbers of the members `keys` before they are decoded: a number must be a positive
    /// integer below 2^24 (a count), or for the members of `fractional` (multipliers) a finite positive
    /// number below 2^24; an array at most 64 positive integers below 4096 (stage depths, a flatten
    /// size). Other values are left to the decoder.
    public func checkLimits(_ keys: [String], fractional: Set<String> = []) throws {
        for k in keys {
            guard let v = value(k) else { continue }
            if fractional.contains(k) {
                guard let d = v.doubleValue, d.isFinite, d > 0, d < Double(1 << 24) else {
                    throw ZooError(.badInput, "config field \(k) is not a positive number: \(v)", item: item)
                }
                continue
            }
            switch v {
            case .int, .double:
                _ = try int(k)
            case .array:
                _ = try ints(k)
            default:
                continue
            }
        }
    }
}

/// The architecture families the zoo knows, in catalogue order: the one place names, flavours and
/// presets are looked up. Thread-safe.
///
/// `ArchitectureRegistry.current` is the registry every lookup uses: `shared` (the built-in
/// families), unless a task runs with another one bound (`ArchitectureRegistry.$current.withValue(r) { ... }`),
/// which lets a test add a family without other code running at the same time seeing it.
public final class ArchitectureRegistry: @unchecked Sendable {
    /// The built-in families, in catalogue order.
    public static var builtIn: [any ArchitectureFamily] {
        [ResNetFamily(), VGGFamily(), MobileNetV1Family(), MobileNetV2Family(), MobileNetV3Family(), EfficientNetFamily(), ConvNeXtFamily()]
    }

    /// The process-wide registry (the built-in families, and any registered into it).
    public static let shared = ArchitectureRegistry()

    /// The registry lookups use: `shared` unless the current task bound another.
    @TaskLocal public static var current: ArchitectureRegistry = .shared

    private let lock = NSLock()
    private var all: [any ArchitectureFamily] = []
    private var byName: [String: Int] = [:]

    /// A registry of the built-in families.
    public convenience init() {
        self.init(families: ArchitectureRegistry.builtIn)
    }

    /// A registry of `families` (names and identifiers must be unique; later duplicates are ignored).
    public init(families: [any ArchitectureFamily]) {
        for f in families { try? register(f) }
    }

    /// Adds a family. Throws when its identifier or one of its names is already registered.
    public func register(_ family: any ArchitectureFamily) throws {
        lock.lock()
        defer { lock.unlock() }
        if all.contains(where: { $0.id == family.id }) {
            throw ZooError(.usage, "family \(family.id.rawValue) is already registered", item: family.id.rawValue)
        }
        if let clash = family.names.first(where: { byName[$0] != nil }) {
            throw ZooError(.usage, "architecture \(clash) is already registered", item: clash)
        }
        all.append(family)
        for n in family.names { byName[n] = all.count - 1 }
    }

    /// A registry with the same families, to which more can be added without changing this one.
    public func copy() -> ArchitectureRegistry { ArchitectureRegistry(families: families) }

    /// Every family, in registration order.
    public var families: [any ArchitectureFamily] {
        lock.lock()
        defer { lock.unlock() }
        return all
    }

    /// The family with identifier `id`.
    public func family(_ id: String) -> (any ArchitectureFamily)? { families.first { $0.id.rawValue == id } }

    /// The family with identifier `id`.
    public func family(_ id: Family) -> (any ArchitectureFamily)? { family(id.rawValue) }

    /// The family of the architecture `name`; nil for a name no family has (never a guess).
    public func family(named name: String) -> (any ArchitectureFamily)? {
        lock.lock()
        defer { lock.unlock() }
        return byName[name].map { all[$0] }
    }

    /// Every architecture name, family by family in registration order.
    public var names: [String] { families.flatMap(\.names) }

    /// The flavours of `name` (the first is its default); empty for an unknown name.
    public func flavours(of name: String) -> [Flavour] { family(named: name)?.flavours(of: name) ?? [] }

    /// The configuration of `name` in `flavour`, with every option at that flavour's value.
    public func preset(_ name: String, flavour: Flavour = .torchvision, classes: Int = 1000) throws -> ArchitectureConfig {
        guard let family = family(named: name) else {
            throw ZooError(.usage, "unknown architecture \"\(name)\"; `zoo list` shows the known names", item: name)
        }
        let have = family.flavours(of: name)
        guard have.contains(flavour) else {
            throw ZooError(.unsupported, "\(name) has no \(flavour.rawValue) flavour (available: \(have.map(\.rawValue).joined(separator: ", ")))", item: name)
        }
        var c = try family.preset(name, flavour: flavour)
        c.classes = classes
        return c
    }

    /// Catalogue names that exist in `flavour`.
    public func names(in flavour: Flavour) -> [String] { names.filter { flavours(of: $0).contains(flavour) } }
}

/// The width multiplier a MobileNet name's suffix states (`_035` -> 0.35), 1 without one.
func widthFromSuffix(_ name: String) -> Double {
    for (s, w) in [("_025", 0.25), ("_035", 0.35), ("_050", 0.5), ("_075", 0.75), ("_130", 1.3), ("_140", 1.4)] where name.hasSuffix(s) { return w }
    return 1.0
}
