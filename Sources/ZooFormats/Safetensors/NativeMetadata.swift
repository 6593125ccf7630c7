import ZooErrors
import ZooJSON

/// The zoo's own keys in a safetensors `__metadata__` map (see docs/format.md).
///
/// Every value is a string, as safetensors requires; structured values are JSON text.
/// Keys the zoo does not know are kept in `other` and written back unchanged.
public struct NativeMetadata: Sendable, Equatable {
    /// Version of the zoo's metadata layout written by this build.
    public static let currentVersion = 1

    /// Metadata key names.
    public enum Key {
        /// `"pt"`, for tools (transformers, safetensors.torch) that expect PyTorch-layout tensors.
        public static let format = "format"
        /// Version of the zoo's metadata layout.
        public static let version = "zoo.format_version"
        /// Architecture name from the catalogue (`resnet50`).
        public static let architecture = "zoo.architecture"
        /// Architecture configuration (JSON object: flavour, classes, width, ...).
        public static let config = "zoo.config"
        /// Provenance (JSON object: file, sha256, importer, dtype).
        public static let source = "zoo.source"
        /// Preprocessing (JSON object: resize, crop, mean, std, interpolation, mode).
        public static let preprocessing = "zoo.preprocessing"
        /// Class labels (JSON array of strings, index order).
        public static let labels = "zoo.labels"
        /// Non-tensor values of the source file (JSON), such as a training checkpoint's epoch.
        public static let extras = "zoo.extras"
        /// Conversion report when written with --allow-partial (JSON).
        public static let report = "zoo.report"
    }

    /// Where a checkpoint came from.
    public struct Source: Sendable, Equatable {
        /// Original file name (no folder).
        public var file: String
        /// SHA-256 of the original file, lowercase hex.
        public var sha256: String
        /// Importer that read it (`pytorch-zip`, `hdf5-keras2`, ...).
        public var importer: String
        /// The original dtype of the floating-point tensors (`F32`, `F16`, ...).
        public var dtype: String
        /// The subtree of the file the weights were taken from (`model`, `model_ema`, `state_dict`: what
        /// `zoo convert --key` names); nil for the top level. Written only when set.
        public var key: String?
        /// Wrappers stripped below `key`, outermost first (`module.`, `_orig_mod.`, `model.`). Written only when not empty.
        public var wrappers: [String]

        /// Creates a source record.
        public init(file: String, sha256: String, importer: String, dtype: String, key: String? = nil, wrappers: [String] = []) {
            self.file = file
            self.sha256 = sha256
            self.importer = importer
            self.dtype = dtype
            self.key = key
            self.wrappers = wrappers
        }

        var json: JSONValue {
            var members: [(String, JSONValue)] = [("file", .string(file)), ("sha256", .string(sha256)), ("importer", .string(importer)),
                                                  ("dtype", .string(dtype))]
            if let key { members.append(("key", .string(key))) }
            if !wrappers.isEmpty { members.append(("wrappers", .array(wrappers.map { .string($0) }))) }
            return .object(members)
        }
    }

    /// Layout version found in the file: its major version (nil when the file is a plain
    /// safetensors file).
    public var version: Int?
    /// Architecture name.
    public var architecture: String?
    /// Architecture configuration.
    public var config: JSONValue?
    /// Provenance.
    public var source: Source?
    /// Preprocessing.
    public var preprocessing: JSONValue?
    /// Class labels.
    public var labels: [String]?
    /// Non-tensor values from the source file.
    public var extras: JSONValue?
    /// Conversion report.
    public var report: JSONValue?
    /// Every other key, kept as is.
    public var other: [(String, String)]

    /// Empty metadata.
    public init() { other = [] }

    /// True when the file carries the zoo's keys.
    public var isNative: Bool { version != nil }

    /// Equality (order of `other` matters).
    public static func == (a: NativeMetadata, b: NativeMetadata) -> Bool {
        a.encoded().elementsEqual(b.encoded()) { $0.0 == $1.0 && $0.1 == $1.1 }
    }

    /// Reads the zoo keys from a safetensors metadata map. Malformed zoo values are errors.
    public init(_ map: [(String, String)]) throws {
        other = []
        for (k, v) in map {
            func json() throws -> JSONValue {
                do { return try JSONValue.parse(v) } catch let e as ZooError { throw ZooError.bad("metadata \(k): \(e.message)") }
            }
            switch k {
            case Key.version:
                version = try NativeMetadata.majorVersion(v)
            case Key.architecture: architecture = v
            case Key.config: config = try json()
            case Key.preprocessing: preprocessing = try json()
            case Key.extras: extras = try json()
            case Key.report: report = try json()
            case Key.labels:
                guard let a = try json().arrayValue else { throw ZooError.bad("metadata \(k) is not a JSON array") }
                labels = try a.map {
                    guard let s = $0.stringValue else { throw ZooError.bad("metadata \(k) has a label that is not a string") }
                    return s
                }
            case Key.source:
                let o = try json()
                guard let file = o["file"]?.stringValue, let sha = o["sha256"]?.stringValue,
                      let imp = o["importer"]?.stringValue, let dt = o["dtype"]?.stringValue else {
                    throw ZooError.bad("metadata \(k) lacks file, sha256, importer or dtype")
                }
                var wrappers: [String] = []
                if let w = o["wrappers"] {
                    guard let a = w.arrayValue else { throw ZooError.bad("metadata \(k) has wrappers that are not an array") }
                    wrappers = try a.map {
                        guard let s = $0.stringValue else { throw ZooError.bad("metadata \(k) has a wrapper that is not a string") }
                        return s
                    }
                }
                var key: String?
                if let kv = o["key"] {
                    guard let s = kv.stringValue else { throw ZooError.bad("metadata \(k) has a key that is not a string") }
                    key = s
                }
                source = Source(file: file, sha256: sha, importer: imp, dtype: dt, key: key, wrappers: wrappers)
            default: other.append((k, v))
            }
        }
    }

    /// The major version of a `zoo.format_version` value, `MAJOR` or `MAJOR.MINOR` (decimal
    /// digits, major at least 1). The compatibility rule (docs/format.md): a minor version only
    /// adds optional keys, which an older reader keeps unread, so any minor of a known major is
    /// read; a greater major than `currentVersion` changes the meaning of keys and is refused
    /// (`.unsupported`, "written by a newer zoo").
    public static func majorVersion(_ text: String) throws -> Int {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        let digits = parts.allSatisfy { p in !p.isEmpty && p.count <= 9 && p.utf8.allSatisfy { $0 >= 0x30 && $0 <= 0x39 } }
        guard parts.count <= 2, digits, let major = Int(parts[0]), major >= 1 else {
            throw ZooError.bad("\"\(text)\" is not a format version (MAJOR or MAJOR.MINOR, from 1)", item: Key.version)
        }
        guard major <= currentVersion else {
            throw ZooError(.unsupported, "format version \(text): written by a newer zoo (this one reads version \(currentVersion)); update zoo to read it",
                           item: Key.version)
        }
        return major
    }

    /// The metadata map to write: `format`, then the zoo keys, then the others.
    public func encoded() -> [(String, String)] {
        var out: [(String, String)] = []
        var rest = other
        if let i = rest.firstIndex(where: { $0.0 == Key.format }) { out.append(rest.remove(at: i)) } else { out.append((Key.format, "pt")) }
        out.append((Key.version, String(version ?? NativeMetadata.currentVersion)))
        if let architecture { out.append((Key.architecture, architecture)) }
        if let config { out.append((Key.config, config.serialized())) }
        if let source { out.append((Key.source, source.json.serialized())) }
        if let preprocessing { out.append((Key.preprocessing, preprocessing.serialized())) }
        if let labels { out.append((Key.labels, JSONValue.array(labels.map { .string($0) }).serialized())) }
        if let extras { out.append((Key.extras, extras.serialized())) }
        if let report { out.append((Key.report, report.serialized())) }
        return out + rest
    }
}

/// A native checkpoint: a validated safetensors file and its zoo metadata.
public struct NativeCheckpoint: Sendable {
    /// The underlying file.
    public let file: SafetensorsFile
    /// The parsed zoo metadata.
    public let metadata: NativeMetadata

    /// Opens and validates `path`.
    public init(path: String) throws {
        file = try SafetensorsFile(path: path)
        do { metadata = try NativeMetadata(file.metadata) } catch let e as ZooError { throw e.inFile(path) }
    }

    /// Writes a native checkpoint atomically.
    public static func write(_ records: [TensorRecord], metadata: NativeMetadata, to path: String, overwrite: Bool,
                             progress: ((Int, Int) -> Void)? = nil) throws {
        do {
            try SafetensorsWriter.write(records, metadata: metadata.encoded(), to: path, overwrite: overwrite, progress: progress)
        } catch let e as ZooError {
            throw e.inFile(path)
        }
    }
}
