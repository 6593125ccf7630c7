import ZooArchitectures
import ZooFormats
import ZooErrors

/// The tensors of a source file as a convention sees them: flat named records, and the structure the
/// importer found besides the names (Keras's layer order), when any.
public struct SourceTensors: Sendable {
    /// The records, in the source's order.
    public var records: [TensorRecord]
    /// The structure the importer found (Keras's layer order in HDF5 Keras files); nil for files that have only names.
    public var structure: SourceStructure?
    /// The dotted prefix the tensors are to be taken from (`zoo convert --key`, without a trailing dot); nil: the
    /// convention chooses.
    public var key: String?

    /// Wraps an importer's records.
    public init(records: [TensorRecord], structure: SourceStructure?, key: String? = nil) {
        self.records = records
        self.structure = structure
        self.key = key
    }
}

/// One architecture a convention tries the tensors against.
public struct MappingCandidate: Sendable, Hashable {
    /// Catalogue name.
    public var name: String
    /// Flavour of the configuration.
    public var flavour: Flavour
    /// A width multiplier other than the preset's (a torchvision MobileNet at a Keras width), or nil.
    public var width: Double?
    /// The head (`linear`: a custom GAP -> Dense head).
    public var head: HeadKind

    /// Creates a candidate.
    public init(name: String, flavour: Flavour, width: Double? = nil, head: HeadKind = .standard) {
        self.name = name
        self.flavour = flavour
        self.width = width
        self.head = head
    }
}

/// A source convention: how one framework names and lays out the tensors of a file (torchvision's
/// module names, Keras's layer order), and how they become the canonical tensors of an architecture.
/// `Mapping.canonicalize` uses the first of `Mapping.conventions` that reads a file.
public protocol SourceConvention: Sendable {
    /// The report's `source` (`torchvision`, `keras`).
    var name: String { get }
    /// True when this convention reads `source`.
    func reads(_ source: SourceTensors) -> Bool
    /// The architectures to try, in order: for `arch` `auto`, every registered one this convention can
    /// read (with the widths and heads families declare); for a name, that name (and its width siblings).
    /// `family` is the registry's family of `arch` (nil for `auto`).
    func candidates(for arch: String, family: (any ArchitectureFamily)?, in registry: ArchitectureRegistry) throws -> [MappingCandidate]
    /// Maps `source` onto one candidate.
    func map(_ source: SourceTensors, to candidate: MappingCandidate) throws -> CanonicalCheckpoint
    /// True when the convention honours `SourceTensors.key` (names with dotted prefixes); false by default.
    var selectsSubtrees: Bool { get }
}

extension SourceConvention {
    /// False: a convention takes a key only when it says so.
    public var selectsSubtrees: Bool { false }
}

/// Keras weight files: tensors matched by layer order within each kind of layer (`Mapping.kerasMapping`).
public struct KerasLayerOrder: SourceConvention {
    /// The convention.
    public init() {}

    /// `keras`.
    public var name: String { "keras" }

    /// Files with a Keras layer order.
    public func reads(_ source: SourceTensors) -> Bool { source.structure.map { $0.dialect.hasPrefix("keras") } ?? false }

    /// Keras flavours; a custom GAP -> Dense head where that differs from the family's own.
    public func candidates(for arch: String, family: (any ArchitectureFamily)?, in registry: ArchitectureRegistry) throws -> [MappingCandidate] {
        guard let family else {
            let standard = registry.names(in: .keras).map { MappingCandidate(name: $0, flavour: .keras) }
            let custom = standard.filter { registry.family(named: $0.name)?.quirks.customLinearHead == true }
            return standard + custom.map { MappingCandidate(name: $0.name, flavour: .keras, head: .linear) }
        }
        guard family.flavours(of: arch).contains(.keras) else {
            throw ZooError(.unsupported, "\(arch) has no Keras flavour; Keras files convert as: \(registry.names(in: .keras).joined(separator: ", "))", item: arch)
        }
        // The MobileNet width is read off the tensors: `--arch mobilenet_v2` also accepts `mobilenet_v2_035` weights.
        let names = [arch] + family.widthSiblings(of: arch)
        var out = names.map { MappingCandidate(name: $0, flavour: .keras) }
        if family.quirks.customLinearHead { out += names.map { MappingCandidate(name: $0, flavour: .keras, head: .linear) } }
        return out
    }

    /// `Mapping.kerasMapping`.
    public func map(_ source: SourceTensors, to candidate: MappingCandidate) throws -> CanonicalCheckpoint {
        guard let layout = source.structure else { throw ZooError(.badInput, "no Keras layer order in the source", item: candidate.name) }
        return try Mapping.kerasMapping(records: source.records, layout: layout, name: candidate.name, head: candidate.head)
    }
}

/// Files named like torchvision's `state_dict` (any wrapper prefix): `Mapping.torchvisionMapping`.
public struct TorchvisionNames: SourceConvention {
    /// The convention.
    public init() {}

    /// `torchvision`.
    public var name: String { "torchvision" }

    /// Every file (names are all a file is sure to have).
    public func reads(_ source: SourceTensors) -> Bool { true }

    /// torchvision flavours first (a VGG's canonical names are the same in both flavours), then the other
    /// widths families declare, then Keras flavours (a Keras model saved with torchvision's names).
    public func candidates(for arch: String, family: (any ArchitectureFamily)?, in registry: ArchitectureRegistry) throws -> [MappingCandidate] {
        guard let family else {
            var out = registry.names(in: .torchvision).map { MappingCandidate(name: $0, flavour: .torchvision) }
            for f in registry.families {
                for base in f.names where f.flavours(of: base).contains(.torchvision) {
                    out += f.quirks.torchvisionWidths.map { MappingCandidate(name: base, flavour: .torchvision, width: $0) }
                }
            }
            return out + registry.names(in: .keras).map { MappingCandidate(name: $0, flavour: .keras) }
        }
        let flavours = family.flavours(of: arch)
        var out = flavours.map { MappingCandidate(name: arch, flavour: $0) }
        if !flavours.contains(.torchvision) {
            out += family.widthSiblings(of: arch).filter { family.flavours(of: $0).contains(.keras) }.map { MappingCandidate(name: $0, flavour: .keras) }
        } else {
            out += family.quirks.torchvisionWidths.map { MappingCandidate(name: arch, flavour: .torchvision, width: $0) }
        }
        return out
    }

    /// `Mapping.torchvisionMapping`, within `source.key` when set.
    public func map(_ source: SourceTensors, to candidate: MappingCandidate) throws -> CanonicalCheckpoint {
        try Mapping.torchvisionMapping(records: source.records, name: candidate.name, flavour: candidate.flavour, width: candidate.width,
                                       key: source.key)
    }

    /// True: `SourceTensors.key` picks the subtree.
    public var selectsSubtrees: Bool { true }
}
