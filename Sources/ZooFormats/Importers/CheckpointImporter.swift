#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import ZooErrors
import ZooFiles

/// A reader of one checkpoint format: recognises the format from a file's leading bytes and reads
/// the file into the importer-neutral `ImportedCheckpoint`.
///
/// Importers are values in an `ImporterRegistry`; `Checkpoints.read` (ModelZoo) sniffs a file with
/// every registered importer and lets the strongest match read it. Adding a format is one type
/// conforming to this protocol and one `register(_:)` call (docs/architecture.md, "Adding an importer").
public protocol CheckpointImporter: Sendable {
    /// The importer's settings (limits, checks); `NoImportOptions` when it has none.
    associatedtype Options: ImporterOptions = NoImportOptions

    /// Stable identifier (`safetensors`, `pytorch`, `hdf5`, `npy`): the key a registry knows it by.
    var id: String { get }
    /// The format's name in messages (`PyTorch`, `.npy`): the unknown-format error lists these.
    var displayName: String { get }
    /// How strongly the file's leading bytes (up to the whole file) look like this format; nil: not at all.
    /// Must not trap or allocate in proportion to the input: it runs on every file, hostile ones included.
    func sniff(_ bytes: UnsafeRawBufferPointer) -> SniffMatch?
    /// Reads the file. Errors are `ZooError`s; the caller adds the file's name to those without one.
    func read(_ file: MappedFile, options: Options) throws -> ImportedCheckpoint
}

/// Settings of one importer, with defaults a user gets when they set nothing.
public protocol ImporterOptions: Sendable {
    /// The defaults.
    init()
}

/// The options of an importer that has none.
public struct NoImportOptions: ImporterOptions {
    /// Creates the empty options.
    public init() {}
}

/// How strongly a file's bytes match a format. A registry reads a file with the importer whose match
/// is strongest; among equal matches, the one registered first wins.
public enum SniffMatch: Int, Sendable, Comparable {
    /// A short opening that other data can have by chance (a pickle's two-byte `PROTO` opcode).
    case weak = 1
    /// A structural check of the first bytes (safetensors' length prefix followed by `{`).
    case structural = 2
    /// A signature found after a leading block of other data (HDF5's signature after a user block).
    case signatureAfterBlock = 3
    /// A magic number at byte 0 (`\x93NUMPY`, `PK\x03\x04`, HDF5's signature).
    case signature = 4

    /// Orders matches by strength.
    public static func < (a: SniffMatch, b: SniffMatch) -> Bool { a.rawValue < b.rawValue }
}

extension CheckpointImporter {
    /// Reads the file with this importer's options taken from `options` (the defaults when it holds none).
    public func read(_ file: MappedFile, using options: ImportOptions) throws -> ImportedCheckpoint {
        try read(file, options: options[Self.self])
    }
}

/// Options for every importer at once, each importer's own typed `Options` kept under its type:
/// `options[PyTorchImporter.self].verifyCRC = false`. An importer with nothing set gets its defaults,
/// so the same value can be handed to whichever importer a file turns out to need.
public struct ImportOptions: Sendable {
    private var byImporter: [ObjectIdentifier: any Sendable] = [:]

    /// No options set: every importer uses its defaults.
    public init() {}

    /// The options of importer type `I` (its defaults when none were set).
    public subscript<I: CheckpointImporter>(_ importer: I.Type) -> I.Options {
        get { (byImporter[ObjectIdentifier(importer)] as? I.Options) ?? I.Options() }
        set { byImporter[ObjectIdentifier(importer)] = newValue }
    }
}

/// An ordered, thread-safe list of importers: which formats a reader of "any checkpoint" knows.
public final class ImporterRegistry: @unchecked Sendable {
    // Guarded by `lock`, a pthread mutex (ZooFormats uses no Foundation).
    private let lock: UnsafeMutablePointer<pthread_mutex_t>
    private var list: [any CheckpointImporter]

    /// A registry of `importers`, in this order (the order of the unknown-format message, and the
    /// tie-break between equally strong sniff matches).
    public init(_ importers: [any CheckpointImporter] = []) {
        list = importers
        lock = .allocate(capacity: 1)
        lock.initialize(to: pthread_mutex_t())
        pthread_mutex_init(lock, nil)
    }

    deinit {
        pthread_mutex_destroy(lock)
        lock.deallocate()
    }

    /// The registered importers, in order.
    public var importers: [any CheckpointImporter] {
        pthread_mutex_lock(lock); defer { pthread_mutex_unlock(lock) }
        return list
    }

    /// Adds `importer` at the end, or in place of a registered importer with the same `id`.
    public func register(_ importer: any CheckpointImporter) {
        pthread_mutex_lock(lock); defer { pthread_mutex_unlock(lock) }
        if let i = list.firstIndex(where: { $0.id == importer.id }) {
            list[i] = importer
        } else {
            list.append(importer)
        }
    }

    /// The importer for `bytes`: the strongest sniff match, the first registered among equals; nil when none matches.
    public func importer(for bytes: UnsafeRawBufferPointer) -> (any CheckpointImporter)? {
        var best: (match: SniffMatch, importer: any CheckpointImporter)?
        for importer in importers {
            guard let m = importer.sniff(bytes) else { continue }
            if let b = best, m <= b.match { continue }
            best = (m, importer)
        }
        return best?.importer
    }

    /// Reads `file` with the importer its bytes select. An empty file is "file is empty"; bytes no
    /// importer recognises give `unknownFormatMessage`. Errors are not yet named after the file.
    public func read(_ file: MappedFile, options: ImportOptions = ImportOptions()) throws -> ImportedCheckpoint {
        guard let importer = file.withBytes({ importer(for: $0) }) else {
            if file.count == 0 { throw ZooError.bad("file is empty") }
            throw ZooError(.unsupported, unknownFormatMessage)
        }
        return try importer.read(file, using: options)
    }

    /// `unknown format (not safetensors, PyTorch, HDF5 or .npy)`: the registered formats' names, in order.
    public var unknownFormatMessage: String {
        let names = importers.map(\.displayName)
        let list = names.count > 1 ? names.dropLast().joined(separator: ", ") + " or " + names[names.count - 1] : names.joined()
        return "unknown format (not \(list))"
    }
}
