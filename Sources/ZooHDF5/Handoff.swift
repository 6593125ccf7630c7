#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import ZooFormats
import ZooErrors
import ZooJSON
import ZooFiles
import ZooTensor

/// What the probe process hands back to the caller: the scanned file and every dataset's bytes,
/// so that libhdf5 never runs in the caller (see `Isolation`).
///
/// The probe writes into a temporary file that the caller created and already unlinked (both
/// hold it open, nothing is left on disk whatever happens): first the data of each dataset that
/// loaded, each at a 64-byte aligned offset, then a JSON manifest, then a trailer of the
/// manifest's length (UInt64, little-endian) and the magic `ZOOH5HO1`. The manifest holds the
/// file size, every object with its attributes, and each record's name, dtype, shape, details
/// and either the offset of its data or the `ZooError` its load gave (which the caller's load
/// then throws, as an in-process read would). When the scan itself fails, the manifest is only
/// that error. The caller checks every size and offset before it uses one.
enum Handoff {
    static let magic: [UInt8] = Array("ZOOH5HO1".utf8)
    static let trailerSize = 16
    static let alignment = 64
    /// Largest manifest accepted (attributes are capped at 64 MB each; Keras files hold a few MB).
    static let maxManifest = 512 << 20

    /// The caller's view of a scan.
    struct Scan {
        var fileSize: Int
        var objects: [String: HDF5File.Object]
        var records: [TensorRecord]
        var skipped: [String]
    }

    // MARK: Writing (in the probe)

    /// Scans `path` and writes the result, or the scan's error, to `fd`. Returns the exit status:
    /// 0 when the file was read, 3 when the scan refused it.
    static func write(path: String, to fd: Int32) -> Int32 {
        var out = Sink(fd: fd)
        do {
            let file = try HDF5File(path: path, isolated: false)
            var records: [JSONValue] = []
            for r in file.records {
                var entry: [(String, JSONValue)] = [
                    ("name", .string(r.name)), ("dtype", .string(r.dtype.name)),
                    ("shape", .array(r.shape.map { .int(Int64($0)) })), ("details", pairs(r.details)),
                ]
                let loaded: Tensor
                do {
                    loaded = try r.load()
                    guard loaded.dtype == r.dtype, loaded.shape == r.shape else {
                        throw ZooError.bad("read \(loaded.dtype.name) \(loaded.shape), declared \(r.dtype.name) \(r.shape)", item: r.name)
                    }
                } catch let e as ZooError {
                    // The caller's load of this record throws it; the rest of the file stays usable.
                    entry.append(("error", encode(e)))
                    records.append(.object(entry))
                    continue
                }
                try out.pad(to: alignment)
                entry.append(("offset", .int(Int64(out.position))))
                try loaded.withUnsafeBytes { try out.write($0) }
                records.append(.object(entry))
            }
            let objects: [JSONValue] = file.objects.sorted { $0.key < $1.key }.map { _, o in
                .object([("path", .string(o.path)), ("group", .bool(o.isGroup)),
                                ("children", .array(o.children.map { .string($0) })),
                                ("attributes", pairs(o.attributes.map { ($0.0, tagged($0.1)) }))])
            }
            try out.finish(manifest: .object([
                ("file_size", .int(Int64(file.fileSize))), ("objects", .array(objects)),
                ("records", .array(records)), ("skipped", .array(file.skipped.map { .string($0) })),
            ]))
            return 0
        } catch {
            let e = error as? ZooError ?? ZooError(.io, "\(error)")
            out = Sink(fd: fd)
            _ = ftruncate(fd, 0)
            do { try out.finish(manifest: .object([("error", encode(e))])) } catch { return 70 }
            return 3
        }
    }

    /// Buffered positional writes to the handoff descriptor.
    private struct Sink {
        let fd: Int32
        var position = 0

        init(fd: Int32) { self.fd = fd }

        mutating func write(_ bytes: UnsafeRawBufferPointer) throws {
            guard var p = bytes.baseAddress else { return }
            var left = bytes.count
            while left > 0 {
                let n = pwrite(fd, p, min(left, 1 << 30), off_t(position))
                if n < 0 {
                    if errno == EINTR { continue }
                    throw ZooError(.io, "cannot write the probe's result: \(String(cString: strerror(errno)))")
                }
                p += n
                left -= n
                position += n
            }
        }

        mutating func pad(to alignment: Int) throws {
            let gap = (alignment - position % alignment) % alignment
            if gap > 0 { try [UInt8](repeating: 0, count: gap).withUnsafeBytes { try write($0) } }
        }

        mutating func finish(manifest: JSONValue) throws {
            let text = Array(manifest.serialized().utf8)
            try text.withUnsafeBytes { try write($0) }
            var trailer: [UInt8] = []
            withUnsafeBytes(of: UInt64(text.count).littleEndian) { trailer.append(contentsOf: $0) }
            trailer.append(contentsOf: magic)
            try trailer.withUnsafeBytes { try write($0) }
        }
    }

    private static func pairs(_ items: [(String, JSONValue)]) -> JSONValue {
        .array(items.map { .array([.string($0.0), $0.1]) })
    }

    private static func encode(_ e: ZooError) -> JSONValue {
        var members: [(String, JSONValue)] = [("kind", .string(e.kind.rawValue)), ("message", .string(e.message))]
        if let item = e.item { members.append(("item", .string(item))) }
        if let offset = e.offset { members.append(("offset", .int(Int64(offset)))) }
        return .object(members)
    }

    /// Attribute values never hold JSON objects, so an object tags what JSON cannot carry:
    /// non-finite floats.
    private static func tagged(_ v: JSONValue) -> JSONValue {
        switch v {
        case .double(let d) where !d.isFinite:
            return .object([("nonfinite", .string(d.isNaN ? "nan" : d > 0 ? "inf" : "-inf"))])
        case .array(let items): return .array(items.map(tagged))
        default: return v
        }
    }

    private static func untagged(_ v: JSONValue) throws -> JSONValue {
        switch v {
        case .object(let members):
            switch members.first?.1.stringValue {
            case "nan": return .double(.nan)
            case "inf": return .double(.infinity)
            case "-inf": return .double(-.infinity)
            default: throw malformed("bad attribute value")
            }
        case .array(let items): return .array(try items.map(untagged))
        default: return v
        }
    }

    // MARK: Reading (in the caller)

    static func malformed(_ what: String) -> ZooError {
        ZooError(.io, "the HDF5 probe's result is malformed (\(what)); is \(Isolation.probeName) from another version?")
    }

    /// The manifest at the end of the handoff file, and the mapping its offsets point into.
    static func manifest(fd: Int32) throws -> (JSONValue, MappedFile, Int) {
        let mapped = try MappedFile(descriptor: fd, path: "<\(Isolation.probeName) result>")
        return try mapped.withBytes { bytes in
            guard bytes.count >= trailerSize else { throw malformed("\(bytes.count) bytes") }
            let tail = bytes.count - trailerSize
            guard Array(bytes[(tail + 8)..<bytes.count]) == magic else { throw malformed("no trailer") }
            var length: UInt64 = 0
            for i in 0..<8 { length |= UInt64(bytes[tail + i]) << (8 * UInt64(i)) }
            guard length <= UInt64(min(tail, maxManifest)) else { throw malformed("manifest of \(length) bytes") }
            let start = tail - Int(length)
            let manifest = try JSONValue.parse(UnsafeRawBufferPointer(rebasing: bytes[start..<tail]), maxDepth: 16,
                                               maxValues: 64 << 20)
            return (manifest, mapped, start)
        }
    }

    /// The error a failed scan reported.
    static func error(_ manifest: JSONValue) throws -> ZooError {
        guard let e = manifest["error"] else { throw malformed("no error record") }
        return try decode(e)
    }

    private static func decode(_ e: JSONValue) throws -> ZooError {
        guard let kindName = e["kind"]?.stringValue, let kind = ZooError.Kind(rawValue: kindName),
              let message = e["message"]?.stringValue else { throw malformed("bad error record") }
        return ZooError(kind, message, item: e["item"]?.stringValue, offset: e["offset"]?.intValue)
    }

    /// The scan a successful probe wrote: records are zero-copy views of the mapping.
    static func scan(_ manifest: JSONValue, mapped: MappedFile, dataEnd: Int) throws -> Scan {
        guard let fileSize = manifest["file_size"]?.intValue, fileSize >= 0,
              let objectList = manifest["objects"]?.arrayValue, let recordList = manifest["records"]?.arrayValue,
              let skippedList = manifest["skipped"]?.arrayValue else { throw malformed("missing members") }
        guard objectList.count <= HDF5File.maxObjects, recordList.count <= HDF5File.maxObjects else {
            throw malformed("too many objects")
        }
        var objects: [String: HDF5File.Object] = [:]
        for o in objectList {
            guard let path = o["path"]?.stringValue, let group = o["group"]?.boolValue,
                  let children = o["children"]?.arrayValue, let attributes = o["attributes"]?.arrayValue else {
                throw malformed("bad object")
            }
            objects[path] = HDF5File.Object(
                path: path, isGroup: group,
                children: try children.map { guard let s = $0.stringValue else { throw malformed("bad child") }; return s },
                attributes: try pairs(attributes).map { ($0.0, try untagged($0.1)) })
        }
        var records: [TensorRecord] = []
        var names = Set<String>()
        for r in recordList {
            guard let name = r["name"]?.stringValue, names.insert(name).inserted,
                  let dtypeName = r["dtype"]?.stringValue, let dtype = DType(name: dtypeName),
                  let dims = r["shape"]?.arrayValue, let details = r["details"]?.arrayValue else {
                throw malformed("bad record")
            }
            let shape = try dims.map { d -> Int in
                guard let n = d.intValue, n >= 0 else { throw malformed("bad shape of \(name)") }
                return n
            }
            let bytes = try Checked.mul(try Checked.elementCount(shape), dtype.byteSize)
            let load: @Sendable () throws -> Tensor
            if let e = r["error"] {
                let error = try decode(e)
                load = { throw error }
            } else {
                guard let offset = r["offset"]?.intValue, offset >= 0, offset <= dataEnd, bytes <= dataEnd - offset else {
                    throw malformed("data of \(name) outside the result")
                }
                let storage = try TensorStorage(file: mapped, offset: offset, count: bytes)
                let tensor = try Tensor(dtype: dtype, shape: shape, storage: storage)
                load = { tensor }
            }
            records.append(TensorRecord(name: name, dtype: dtype, shape: shape, details: try pairs(details), load: load))
        }
        let skipped = try skippedList.map { guard let s = $0.stringValue else { throw malformed("bad skipped") }; return s }
        return Scan(fileSize: fileSize, objects: objects, records: records, skipped: skipped)
    }

    private static func pairs(_ list: [JSONValue]) throws -> [(String, JSONValue)] {
        try list.map { p in
            guard let pair = p.arrayValue, pair.count == 2, let key = pair[0].stringValue else { throw malformed("bad pair") }
            return (key, pair[1])
        }
    }
}
