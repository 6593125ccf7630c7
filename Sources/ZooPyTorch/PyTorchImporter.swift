import ZooFormats
import ZooErrors
import ZooJSON
import ZooFiles
import ZooTensor

/// Reads PyTorch checkpoints without running any of their code.
///
/// Three containers are understood, detected from the bytes:
/// - `pytorch-zip`: `torch.save` since 1.6, a zip holding `<prefix>/data.pkl`, one record per storage
///   under `<prefix>/data/`, and a `byteorder` record;
/// - `pytorch-legacy`: the pre-1.6 stream (magic number, protocol version, sys_info, the object pickle,
///   the storage-key list, then each storage as an element count and raw bytes);
/// - `torchscript`: `torch.jit.save` archives; parameters and buffers are collected from the module
///   object tree in `data.pkl` under their state_dict names. Which attributes are parameters and
///   buffers is read from each class's `__parameters__` / `__buffers__` lines in the `code/` records
///   (read as text, never run); other tensor attributes are not part of the state_dict and are skipped.
///
/// ```swift
/// let file = try MappedFile(path: "resnet18.pth")
/// let ckpt = try PyTorchImporter.read(file)
/// for t in ckpt.tensors { print(t.name, t.dtype, t.shape) }
/// ```
public struct PyTorchImporter: CheckpointImporter {
    /// Reading options.
    public struct Options: ImporterOptions {
        /// Verify zip CRC-32s that are not zero (`zoo convert --no-crc` turns it off).
        public var verifyCRC: Bool
        /// Limits for the pickle machine and the object tree.
        public var limits: PickleLimits
        /// Largest size a tensor may have beyond its storage's bytes (stride-0 expansion).
        public var maxExpandedBytes: Int
        /// Largest size a deflated zip record may inflate to.
        public var maxInflatedBytes: Int

        /// Defaults: CRCs verified, default pickle limits, expansions up to 1 GiB, records up to 2 GiB.
        public init(verifyCRC: Bool = true, limits: PickleLimits = PickleLimits(), maxExpandedBytes: Int = 1 << 30,
                    maxInflatedBytes: Int = 1 << 31) {
            self.verifyCRC = verifyCRC
            self.limits = limits
            self.maxExpandedBytes = maxExpandedBytes
            self.maxInflatedBytes = maxInflatedBytes
        }

        /// The defaults.
        public init() {
            self.init(verifyCRC: true)
        }
    }

    /// Creates the importer.
    public init() {}

    /// `pytorch`.
    public var id: String { "pytorch" }
    /// `PyTorch`.
    public var displayName: String { "PyTorch" }

    /// A zip archive (`PK\x03\x04`, or `PK\x05\x06` for an empty one): a signature. A bare pickle
    /// stream (`\x80` and a protocol up to 5, the legacy format): a weak match, which any stronger one beats.
    public func sniff(_ bytes: UnsafeRawBufferPointer) -> SniffMatch? {
        if bytes.starts(with: [0x50, 0x4B, 0x03, 0x04]) || bytes.starts(with: [0x50, 0x4B, 0x05, 0x06]) { return .signature }
        if bytes.count >= 2, bytes[0] == 0x80, bytes[1] <= 5 { return .weak }
        return nil
    }

    /// Reads a PyTorch file (zip, legacy or TorchScript), as `PyTorchImporter.read(_:options:)`.
    public func read(_ file: MappedFile, options: Options) throws -> ImportedCheckpoint {
        try Self.read(file, options: options)
    }

    /// The legacy format's magic number, as LONG1 hex text.
    static let legacyMagic = "0x1950a86a20f9469cfc6c"

    /// Reads a PyTorch file (zip, legacy or TorchScript). Errors name the file.
    public static func read(_ file: MappedFile, options: Options = Options()) throws -> ImportedCheckpoint {
        do {
            let b = file.bytes
            if b.count >= 4, b[0] == 0x50, b[1] == 0x4B {
                return try readZip(file, options: options)
            }
            return try readLegacy(file, options: options)
        } catch let e as ZooError {
            throw e.singleLine.inFile(file.path)
        }
    }

    /// Reads the file at `path`.
    public static func read(path: String, options: Options = Options()) throws -> ImportedCheckpoint {
        do {
            return try read(try MappedFile(path: path), options: options)
        } catch let e as ZooError {
            throw e.inFile(path)
        }
    }

    // MARK: - zip and TorchScript

    static func readZip(_ file: MappedFile, options: Options) throws -> ImportedCheckpoint {
        let archive = try ZipArchive(file: file, options: .init(verifyCRC: options.verifyCRC, maxInflatedBytes: options.maxInflatedBytes))
        // The record prefix is whatever directory holds data.pkl (the file stem or "archive/").
        let pickles = archive.entries.filter { $0.name == "data.pkl" || $0.name.hasSuffix("/data.pkl") }
        guard let dataPkl = pickles.min(by: { $0.name.split(separator: "/").count < $1.name.split(separator: "/").count }) else {
            throw ZooError(.unsupported, "zip archive has no data.pkl record: not a PyTorch checkpoint")
        }
        let prefix = String(dataPkl.name.dropLast("data.pkl".count))
        func small(_ name: String) throws -> String? {
            guard let e = archive.entry(prefix + name) else { return nil }
            guard e.uncompressedSize <= 4096 else { throw ZooError.bad("record is \(e.uncompressedSize) bytes, expected a short text", item: e.name, offset: e.dataOffset) }
            let s = try archive.storage(of: e)
            return String(decoding: s.bytes, as: UTF8.self).trimmingSpaces.trimmingNewlines
        }
        var bigEndian = false
        if let order = try small("byteorder") {
            switch order {
            case "little": bigEndian = false
            case "big": bigEndian = true
            default: throw ZooError.bad("byteorder record says \"\(order.prefix(20))\", expected little or big", item: prefix + "byteorder")
            }
        }
        let isTorchScript = archive.entry(prefix + "constants.pkl") != nil
            || archive.entries.contains { $0.name.hasPrefix(prefix + "code/") }

        var storages: [String: TorchStorage] = [:]
        let machine = PickleMachine(limits: options.limits)
        defer { machine.release() }
        machine.persistentLoad = { pid in
            guard let t = pid.sequence, t.count == 5, t[0].stringValue == "storage" else {
                throw ZooError.bad("pickle: persistent id is not ('storage', type, key, location, numel)")
            }
            let (dtype, untyped, key, nbytes) = try storageFields(t)
            let storage: TorchStorage
            if let s = storages[key] {
                storage = s
            } else {
                let recordName = prefix + "data/" + key
                guard let e = archive.entry(recordName) else { throw ZooError.bad("storage record is missing", item: recordName) }
                guard e.uncompressedSize >= nbytes else {
                    throw ZooError.bad("storage record holds \(e.uncompressedSize) bytes, the pickle declares \(nbytes)", item: recordName, offset: e.dataOffset)
                }
                storage = TorchStorage(key: key, location: t[3].stringValue ?? "", dtype: dtype, byteCount: nbytes)
                let verify = options.verifyCRC && e.crc32 != 0
                storage.bytes = StorageBytes(name: recordName, count: e.uncompressedSize, isMapped: e.method == 0,
                                             crc: verify ? e.crc32 : nil) { try archive.uncheckedStorage(of: e) }
                storages[key] = storage
            }
            guard nbytes <= storage.byteCount else {
                throw ZooError.bad("storage is referenced with \(nbytes) bytes, it has \(storage.byteCount)", item: key)
            }
            return .storage(TorchStorageView(storage: storage, dtype: dtype, byteOffset: 0, byteCount: nbytes, untyped: untyped))
        }
        let pickleBytes = try archive.storage(of: dataPkl)
        var reader = ByteReader(pickleBytes.bytes, baseOffset: dataPkl.dataOffset)
        let root: PickleValue
        do { root = try machine.load(&reader) } catch var e as ZooError {
            if e.item == nil { e.item = dataPkl.name }
            throw e
        }

        var tree = ObjectTree(limits: options.limits, startingBytes: machine.estimatedBytes)
        if isTorchScript { tree.scriptMembers = scriptMembersReader(archive, prefix: prefix) }
        let values = try tree.flatten(root, singleName: "tensor")
        var meta: [(String, JSONValue)] = [
            ("pickle_protocol", .int(Int64(machine.protocolVersion))),
            ("byte_order", .string(bigEndian ? "big" : "little")),
            ("archive_prefix", .string(String(prefix.dropLast()))),
        ]
        if let v = try small(".format_version") { meta.append(("format_version", .string(v))) }
        if let v = try small("version") ?? small(".data/version") { meta.append(("archive_version", .string(v))) }
        if isTorchScript, case .object(let o) = root { meta.append(("module_class", .string(o.className))) }
        if let values { meta.append(("values", values)) }
        var checkpoint = try finish(format: isTorchScript ? "torchscript" : "pytorch-zip", meta: meta, tree: tree,
                                    bigEndian: bigEndian, options: options)
        // The storage records' CRC-32s are checked when a tensor first loads them; `zoo inspect --verify`
        // checks them all up front. (data.pkl's own CRC was checked above, by archive.storage(of:).)
        let checked = storages.values.compactMap { $0.bytes }.filter(\.hasCRC).sorted { $0.name < $1.name }
        if !checked.isEmpty {
            checkpoint.checksums = DataChecksums(kind: "CRC-32", records: checked.count) {
                for record in checked { _ = try record.storage() }
            }
        }
        return checkpoint
    }

    /// Largest `code/` record read for a TorchScript class's member lists (real ones are a few KB).
    static let maxCodeRecordBytes = 16 << 20

    /// Looks up a TorchScript class's parameter and buffer lists in the archive's code: the class
    /// `__torch__.a.b.C` is defined in `code/__torch__/a/b.py` (mangled names such as
    /// `__torch__.a.b.___torch_mangle_3.C` in `code/__torch__/a/b/___torch_mangle_3.py`). Records are
    /// read once. Nil when the record or the class is missing. The code is read as text, never run.
    static func scriptMembersReader(_ archive: ZipArchive, prefix: String) -> (String, String) throws -> ScriptClassMembers? {
        var records: [String: [String: ScriptClassMembers]] = [:]
        return { module, name in
            let recordName = prefix + "code/" + module.split(separator: ".").joined(separator: "/") + ".py"
            if let classes = records[recordName] { return classes[name] }
            var classes: [String: ScriptClassMembers] = [:]
            if let e = archive.entry(recordName) {
                guard e.uncompressedSize <= maxCodeRecordBytes else {
                    throw ZooError.bad("code record is \(e.uncompressedSize) bytes, more than \(maxCodeRecordBytes)", item: recordName, offset: e.dataOffset)
                }
                let s = try archive.storage(of: e)
                classes = ScriptClassMembers.parse(source: String(decoding: s.bytes, as: UTF8.self))
            }
            records[recordName] = classes
            return classes[name]
        }
    }

    /// The dtype of a storage class global, and whether it is untyped.
    /// The fields both persistent-id forms share, `('storage', type, key, location, numel, ...)`:
    /// the storage's dtype (and whether it is untyped), its key and its byte size (checked).
    static func storageFields(_ t: [PickleValue]) throws -> (TorchDType, Bool, String, Int) {
        let (dtype, untyped) = try storageType(t[1])
        guard let key = t[2].stringValue ?? t[2].intValue.map(String.init) else { throw ZooError.bad("pickle: storage key is a \(t[2].kind)") }
        guard let numel = t[4].intValue, numel >= 0 else { throw ZooError.bad("pickle: storage size is not a non-negative integer", item: key) }
        let nbytes = try Checked.mul(numel, dtype.byteSize, "storage \(key) byte size")
        return (dtype, untyped, key, nbytes)
    }

    static func storageType(_ v: PickleValue) throws -> (TorchDType, Bool) {
        guard case .global(let module, let name) = v, module == "torch" || module == "torch.cuda" || module == "torch.storage" else {
            throw ZooError.bad("pickle: storage type \(v.kind) is not a torch storage class")
        }
        guard let d = TorchDType.fromStorageClass(name) else {
            throw ZooError(.unsupported, "pickle: storage class \(module).\(name) is not supported")
        }
        return (d, name == "UntypedStorage")
    }

    // MARK: - legacy

    static func readLegacy(_ file: MappedFile, options: Options) throws -> ImportedCheckpoint {
        var r = ByteReader(file.bytes)
        let header = PickleMachine(limits: options.limits)
        defer { header.release() }
        let magic = try header.load(&r)
        guard case .bigInt(let m) = magic, m == legacyMagic else {
            throw ZooError(.unsupported, "pickle stream does not start with PyTorch's magic number: not a torch.save file (or a plain pickle, which ModelZoo does not read)", offset: 0)
        }
        let versionAt = r.position
        let version = try header.load(&r)
        guard case .int(1001) = version else {
            throw ZooError(.unsupported, "legacy protocol version \(version.intValue.map(String.init) ?? version.kind) (only 1001 is known)", offset: versionAt)
        }
        let infoAt = r.position
        let sysInfo = try header.load(&r)
        // torch's legacy writer stores every storage (element count and data) little-endian on any
        // machine (THPStorage_writeFileRaw converts on big-endian hosts), and torch.load ignores
        // `little_endian` for the data; it only describes the machine that wrote the file.
        var writerLittleEndian = true
        if case .dict(let d) = sysInfo {
            for (k, v) in d.entries where k.stringValue == "little_endian" {
                if case .bool(let little) = v { writerLittleEndian = little }
            }
        } else {
            throw ZooError.bad("legacy sys_info is a \(sysInfo.kind), expected a dict", offset: infoAt)
        }

        var storages: [String: TorchStorage] = [:]
        let machine = PickleMachine(limits: options.limits)
        defer { machine.release() }
        machine.persistentLoad = { pid in
            guard let t = pid.sequence, let kind = t.first?.stringValue else { throw ZooError.bad("pickle: persistent id is not a tuple") }
            if kind == "module" {
                guard t.count >= 2 else { throw ZooError.bad("pickle: module persistent id too short") }
                return t[1]
            }
            guard kind == "storage", t.count == 6 else { throw ZooError.bad("pickle: persistent id is not ('storage', type, key, location, numel, view)") }
            let (dtype, untyped, key, nbytes) = try storageFields(t)
            let storage: TorchStorage
            if let s = storages[key] {
                storage = s
            } else {
                storage = TorchStorage(key: key, location: t[3].stringValue ?? "", dtype: dtype, byteCount: nbytes)
                storages[key] = storage
            }
            if case .none = t[5] {
                guard nbytes <= storage.byteCount else { throw ZooError.bad("storage is referenced with \(nbytes) bytes, it has \(storage.byteCount)", item: key) }
                return .storage(TorchStorageView(storage: storage, dtype: dtype, byteOffset: 0, byteCount: nbytes, untyped: untyped))
            }
            guard let view = t[5].sequence, view.count == 3, let offset = view[1].intValue, let size = view[2].intValue, offset >= 0, size >= 0 else {
                throw ZooError.bad("pickle: storage view metadata is not (key, offset, size)", item: key)
            }
            let byteOffset = try Checked.mul(offset, dtype.byteSize)
            let byteCount = try Checked.mul(size, dtype.byteSize)
            guard try Checked.add(byteOffset, byteCount) <= storage.byteCount else {
                throw ZooError.bad("storage view of \(byteCount) bytes at \(byteOffset) exceeds its storage (\(storage.byteCount) bytes)", item: key)
            }
            return .storage(TorchStorageView(storage: storage, dtype: dtype, byteOffset: byteOffset, byteCount: byteCount, untyped: untyped))
        }
        let root = try machine.load(&r)
        let keysAt = r.position
        let keysValue = try header.load(&r)
        guard let keyItems = keysValue.sequence else { throw ZooError.bad("legacy storage-key list is a \(keysValue.kind)", offset: keysAt) }
        for k in keyItems {
            guard let key = k.stringValue ?? k.intValue.map(String.init) else { throw ZooError.bad("legacy storage key is a \(k.kind)", offset: keysAt) }
            guard let storage = storages[key] else { throw ZooError.bad("storage key is listed but never referenced by the pickle", item: key, offset: keysAt) }
            let at = r.position
            let raw = try r.le(Int64.self, "storage \(key) element count")
            guard raw >= 0, let numel = Int(exactly: raw) else { throw ZooError.bad("storage element count \(raw) is negative", item: key, offset: at) }
            let nbytes = try Checked.mul(numel, storage.dtype.byteSize, "storage \(key) byte size")
            guard nbytes == storage.byteCount else {
                throw ZooError.bad("storage holds \(nbytes) bytes, the pickle declares \(storage.byteCount)", item: key, offset: at)
            }
            let start = r.position
            try r.skip(nbytes, "storage \(key) data")
            guard storage.bytes == nil else { throw ZooError.bad("storage key is listed twice", item: key, offset: at) }
            storage.bytes = StorageBytes(name: "storage \(key)", count: nbytes, isMapped: true, crc: nil) {
                try TensorStorage(file: file, offset: start, count: nbytes)
            }
        }
        var tree = ObjectTree(limits: options.limits, startingBytes: machine.estimatedBytes)
        let values = try tree.flatten(root, singleName: "tensor")
        var meta: [(String, JSONValue)] = [
            ("pickle_protocol", .int(Int64(machine.protocolVersion))),
            ("byte_order", .string("little")),
            ("writer_byte_order", .string(writerLittleEndian ? "little" : "big")),
            ("legacy_protocol_version", .int(1001)),
        ]
        if let values { meta.append(("values", values)) }
        return try finish(format: "pytorch-legacy", meta: meta, tree: tree, bigEndian: false, options: options)
    }

    // MARK: - Tensors

    static func finish(format: String, meta: [(String, JSONValue)], tree: ObjectTree, bigEndian: Bool,
                       options: Options) throws -> ImportedCheckpoint {
        var records: [TensorRecord] = []
        var seen = Set<String>()
        var layout: [[String]] = []
        var byStorage: [String: [String]] = [:]
        var storageOrder: [String] = []
        for (name, t) in tree.tensors {
            guard seen.insert(name).inserted else { throw ZooError.bad("two tensors flatten to the same name", item: name) }
            let r = try record(name, t, bigEndian: bigEndian, options: options)
            records.append(r)
            let key = t.storage.storage.key
            if byStorage[key] == nil { storageOrder.append(key) }
            byStorage[key, default: []].append(name)
            layout.append([name, key, String(t.offset), "(" + t.strides.map(String.init).joined(separator: ",") + ")",
                           t.isContiguous ? "yes" : "no"])
        }
        var sections = [ReportSection(title: "tensor layout (storage offset and strides in elements)",
                                      columns: ["name", "storage", "offset", "strides", "contiguous"], rows: layout)]
        let shared = storageOrder.filter { (byStorage[$0]?.count ?? 0) > 1 }
        if !shared.isEmpty {
            sections.append(ReportSection(title: "shared storages", columns: ["storage", "tensors"],
                                          rows: shared.map { [$0, (byStorage[$0] ?? []).joined(separator: ", ")] }))
        }
        var metadata = meta
        metadata.insert(("storages", .int(Int64(storageOrder.count))), at: 2)
        return ImportedCheckpoint(format: format, metadata: metadata, tensors: records, sections: sections)
    }

    static func record(_ name: String, _ t: TorchTensor, bigEndian: Bool, options: Options) throws -> TensorRecord {
        if let why = t.refusal { throw ZooError(.unsupported, why, item: name) }
        guard case .supported(let dtype) = t.dtype else {
            throw ZooError(.unsupported, t.dtype.refusal ?? "unsupported dtype", item: name)
        }
        let view = t.storage
        guard let bytes = view.storage.bytes else {
            throw ZooError.bad("storage \(view.storage.key) has no data in the file", item: name)
        }
        let es = dtype.byteSize
        let count: Int
        let byteCount: Int
        var lastByte = 0
        do {
            count = try Checked.elementCount(t.shape)
            byteCount = try Checked.mul(count, es, "byte size")
            if count > 0 {
                var maxIndex = t.offset
                for (d, s) in zip(t.shape, t.strides) { maxIndex = try Checked.add(maxIndex, try Checked.mul(d - 1, s, "extent")) }
                lastByte = try Checked.mul(try Checked.add(maxIndex, 1, "extent"), es, "extent")
            }
        } catch let e as ZooError {
            throw ZooError.bad(e.message, item: name)
        }
        guard lastByte <= view.byteCount, view.byteOffset + view.byteCount <= bytes.count else {
            throw ZooError.bad("\(dtype.name) view of shape \(t.shape), strides \(t.strides), offset \(t.offset) needs \(lastByte) bytes, its storage \(view.storage.key) has \(min(view.byteCount, bytes.count))", item: name)
        }
        if byteCount > max(view.byteCount, options.maxExpandedBytes) {
            throw ZooError.bad("tensor of \(byteCount) bytes expands a storage of \(view.byteCount) bytes beyond the \(options.maxExpandedBytes)-byte limit", item: name)
        }
        let details: [(String, JSONValue)] = [
            ("storage", .string(view.storage.key)),
            ("storage_offset", .int(Int64(t.offset))),
            ("strides", .array(t.strides.map { .int(Int64($0)) })),
            ("contiguous", .bool(t.isContiguous)),
            ("location", .string(view.storage.location)),
        ]
        let shape = t.shape, strides = t.strides, offset = t.offset, base = view.byteOffset
        let zeroCopy = t.isContiguous && !(bigEndian && es > 1)
        return TensorRecord(name: name, dtype: dtype, shape: shape, details: details) {
            do { return try load() } catch let e as ZooError { throw e.singleLine }
        }

        @Sendable func load() throws -> Tensor {
            let storage = try bytes.storage()
            if zeroCopy {
                return try Tensor(dtype: dtype, shape: shape, storage: storage, byteOffset: base + offset * es)
            }
            return try Tensor(dtype: dtype, shape: shape) { dst in
                guard count > 0, let src = storage.base, let out = dst.baseAddress else { return }
                Strided.gather(src + base, elementSize: es, offset: offset, shape: shape, strides: strides, into: out)
                if bigEndian { Strided.swapBytes(dst, width: es) }
            }
        }
    }
}

extension String {
    var trimmingNewlines: String {
        var s = Substring(self)
        while let l = s.last, l == "\n" || l == "\r" || l == " " { s.removeLast() }
        return String(s)
    }
}
