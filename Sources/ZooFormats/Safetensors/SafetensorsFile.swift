import ZooErrors
import ZooJSON
import ZooFiles
import ZooTensor

/// A safetensors file read through a memory map: validated header, zero-copy tensor views.
///
/// Validation follows the safetensors rules and is strict: the header length is bounded
/// and inside the file, the header is one JSON object without duplicate keys, every
/// entry has a known dtype, a shape of non-negative integers and `data_offsets` whose
/// length equals the shape's element count times the dtype size, and the data ranges
/// tile the data section exactly (no overlaps, no holes, nothing past the end).
public struct SafetensorsFile: Sendable {
    /// One tensor's header entry.
    public struct Entry: Sendable, Equatable {
        /// Tensor name.
        public var name: String
        /// Element type.
        public var dtype: DType
        /// Shape.
        public var shape: [Int]
        /// Byte range relative to the start of the data section.
        public var range: Range<Int>
    }

    /// Largest header accepted (the safetensors reference implementation uses 100 MB).
    public static let maxHeaderSize = 100_000_000

    /// The path the file was opened with.
    public let path: String
    /// The mapping.
    public let file: MappedFile
    /// The `__metadata__` map (string to string), in file order.
    public let metadata: [(String, String)]
    /// Entries in data order (by offset).
    public let entries: [Entry]
    /// Offset of the data section in the file (8 + header length).
    public let dataStart: Int
    /// Header length in bytes.
    public let headerLength: Int

    /// Opens and validates `path`. Errors name the file, the tensor and the problem.
    public init(path: String) throws {
        let file = try MappedFile(path: path)
        do {
            try self.init(file: file)
        } catch let e as ZooError {
            throw e.inFile(path)
        }
    }

    /// Validates a mapped file.
    public init(file: MappedFile) throws {
        self.file = file
        path = file.path
        var r = ByteReader(file.bytes)
        let n64 = try r.le(UInt64.self, "header length")
        guard n64 <= UInt64(SafetensorsFile.maxHeaderSize) else {
            throw ZooError.bad("header length \(n64) exceeds the limit of \(SafetensorsFile.maxHeaderSize) bytes", offset: 0)
        }
        let n = Int(n64)
        guard n <= r.remaining else {
            throw ZooError.bad("header length \(n) runs past the end of the file (\(file.count) bytes)", offset: 0)
        }
        guard n >= 2 else { throw ZooError.bad("header length \(n) is too small for a JSON object", offset: 0) }
        headerLength = n
        let headerBytes = try r.take(n, "header")
        guard headerBytes[0] == UInt8(ascii: "{") else { throw ZooError.bad("header does not start with '{'", offset: 8) }
        let json: JSONValue
        do {
            json = try JSONValue.parse(headerBytes)
        } catch var e as ZooError {
            e.offset = e.offset.map { $0 + 8 }
            e.message = "header: " + e.message
            throw e
        }
        guard case .object(let members) = json else { throw ZooError.bad("header is not a JSON object", offset: 8) }
        dataStart = 8 + n
        let dataSize = file.count - dataStart
        var meta: [(String, String)] = []
        var entries: [Entry] = []
        for (name, value) in members {
            if name == "__metadata__" {
                guard case .object(let kv) = value else { throw ZooError.bad("__metadata__ is not an object") }
                for (k, v) in kv {
                    guard case .string(let s) = v else { throw ZooError.bad("__metadata__ value for \"\(k)\" is not a string") }
                    meta.append((k, s))
                }
                continue
            }
            entries.append(try SafetensorsFile.entry(name: name, value: value))
        }
        metadata = meta
        // The ranges must tile [0, dataSize) exactly.
        let sorted = entries.sorted { ($0.range.lowerBound, $0.range.upperBound) < ($1.range.lowerBound, $1.range.upperBound) }
        var expected = 0
        for e in sorted {
            if e.range.lowerBound > expected {
                throw ZooError.bad("hole in the data section: bytes \(expected)..<\(e.range.lowerBound) belong to no tensor", item: e.name)
            }
            if e.range.lowerBound < expected {
                throw ZooError.bad("data_offsets \(e.range.lowerBound)..<\(e.range.upperBound) overlap the previous tensor", item: e.name)
            }
            expected = e.range.upperBound
        }
        if expected > dataSize {
            let last = sorted.last?.name
            throw ZooError.bad("data_offsets end at \(expected) but the data section has \(dataSize) bytes", item: last)
        }
        if expected < dataSize {
            throw ZooError.bad("\(dataSize - expected) bytes after the last tensor belong to no tensor", offset: dataStart + expected)
        }
        self.entries = sorted
    }

    static func entry(name: String, value: JSONValue) throws -> Entry {
        guard case .object(let fields) = value else { throw ZooError.bad("entry is not an object", item: name) }
        var dtype: DType?
        var shape: [Int]?
        var offsets: [Int]?
        for (k, v) in fields {
            switch k {
            case "dtype":
                guard let s = v.stringValue else { throw ZooError.bad("dtype is not a string", item: name) }
                guard let d = DType(name: s) else { throw ZooError(.unsupported, "unknown dtype \"\(s)\"", item: name) }
                dtype = d
            case "shape":
                guard let a = v.arrayValue else { throw ZooError.bad("shape is not an array", item: name) }
                shape = try a.map {
                    guard case .int(let i) = $0, i >= 0, let d = Int(exactly: i) else {
                        throw ZooError.bad("shape \(v) has an entry that is not a non-negative integer", item: name)
                    }
                    return d
                }
            case "data_offsets":
                guard let a = v.arrayValue, a.count == 2 else { throw ZooError.bad("data_offsets is not a pair", item: name) }
                offsets = try a.map {
                    guard case .int(let i) = $0, i >= 0, let d = Int(exactly: i) else {
                        throw ZooError.bad("data_offsets \(v) has an entry that is not a non-negative integer", item: name)
                    }
                    return d
                }
            default:
                throw ZooError.bad("unexpected key \"\(k)\" in entry", item: name)
            }
        }
        guard let dtype else { throw ZooError.bad("entry has no dtype", item: name) }
        guard let shape else { throw ZooError.bad("entry has no shape", item: name) }
        guard let offsets else { throw ZooError.bad("entry has no data_offsets", item: name) }
        guard offsets[0] <= offsets[1] else { throw ZooError.bad("data_offsets [\(offsets[0]), \(offsets[1])] end before they begin", item: name) }
        let count: Int
        do { count = try Checked.elementCount(shape) } catch let e as ZooError { throw ZooError.bad(e.message, item: name) }
        let bytes: Int
        do { bytes = try Checked.mul(count, dtype.byteSize, "byte size") } catch let e as ZooError { throw ZooError.bad(e.message, item: name) }
        guard offsets[1] - offsets[0] == bytes else {
            throw ZooError.bad("\(dtype.name) shape \(shape) needs \(bytes) bytes but data_offsets span \(offsets[1] - offsets[0])", item: name)
        }
        return Entry(name: name, dtype: dtype, shape: shape, range: offsets[0]..<offsets[1])
    }

    /// The metadata value for `key`.
    public func metadataValue(_ key: String) -> String? { metadata.first { $0.0 == key }?.1 }

    /// The entry named `name`.
    public func entry(named name: String) -> Entry? { entries.first { $0.name == name } }

    /// A zero-copy view of one entry's data.
    public func tensor(_ entry: Entry) throws -> Tensor {
        let storage = try TensorStorage(file: file, offset: dataStart + entry.range.lowerBound, count: entry.range.count)
        return try Tensor(dtype: entry.dtype, shape: entry.shape, storage: storage)
    }

    /// A zero-copy view of the tensor named `name`; throws when absent.
    public func tensor(named name: String) throws -> Tensor {
        guard let e = entry(named: name) else { throw ZooError(.mismatch, "no tensor named \"\(name)\"", file: path) }
        return try tensor(e)
    }

    /// Every tensor as a lazy record, in data order.
    public var records: [TensorRecord] {
        let file = self.file
        let start = dataStart
        return entries.map { e in
            TensorRecord(name: e.name, dtype: e.dtype, shape: e.shape) {
                let storage = try TensorStorage(file: file, offset: start + e.range.lowerBound, count: e.range.count)
                return try Tensor(dtype: e.dtype, shape: e.shape, storage: storage)
            }
        }
    }
}
