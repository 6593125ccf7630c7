#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CHDF5
import ZooFormats
import ZooErrors
import ZooJSON
import ZooTensor

/// An HDF5 file opened read-only through libhdf5, with its object tree scanned once.
///
/// The scan follows hard links from the root group (each object once, in name order) and
/// records every group and dataset with its attributes. Soft and external links, external
/// and virtual datasets are refused (`unsupported`): a checkpoint must be self-contained.
/// Numeric datasets become lazy `TensorRecord`s that read one dataset each when loaded,
/// converted to little-endian; other datasets (strings, compounds, ...) are listed in
/// `skipped`. The file stays open while the value or any of its records lives.
public final class HDF5File: @unchecked Sendable {
    /// One object of the file.
    public struct Object: Sendable {
        /// Path without the leading `/` (`""` for the root group).
        public var path: String
        /// True for groups, false for datasets and named datatypes.
        public var isGroup: Bool
        /// Names of the members (groups only), in name order.
        public var children: [String]
        /// Attributes in name order (strings decoded as UTF-8, numbers as JSON numbers).
        public var attributes: [(String, JSONValue)]

        /// The attribute named `name`.
        public func attribute(_ name: String) -> JSONValue? { attributes.first { $0.0 == name }?.1 }
    }

    /// Largest number of objects a file may hold.
    public static let maxObjects = 1_000_000
    /// Deepest group nesting accepted.
    public static let maxDepth = 256
    /// Largest attribute read (bytes of its in-memory form).
    public static let maxAttributeBytes = 64 << 20
    /// Declared dataset bytes allowed beyond the bytes stored for it (fill values of unwritten data).
    public static let fillAllowance = 16 << 20
    /// Largest expansion accepted from compressed chunk bytes to data bytes (deflate's limit is about 1032).
    public static let maxCompressionRatio = 1100

    /// The path the file was opened with.
    public let path: String
    /// Size of the file in bytes.
    public let fileSize: Int
    /// Every group and dataset by path.
    public let objects: [String: Object]
    /// Numeric datasets as lazy tensors, in scan order (depth first, name order).
    public let records: [TensorRecord]
    /// Paths of datasets that are not numeric (strings, compounds, ...), not imported.
    public let skipped: [String]
    /// The open libhdf5 file (nil when the file was read in the probe process).
    private let file: H5ID?

    /// Opens `path` and scans it. Errors are `ZooError`s naming the file.
    ///
    /// With `isolated` (the default, on Linux), libhdf5 reads the whole file in another process
    /// (`zoo-hdf5-probe`, or `zoo hdf5-probe` in `zoo`; see `probeExecutable`), never in this one: a file that crashes, hangs or
    /// corrupts libhdf5 is refused, or read, without harming the caller (see `Isolation`). The
    /// datasets come back through an unlinked temporary file (in `$TMPDIR`, else /tmp) that the
    /// records then map. Without `isolated` (and on other platforms) libhdf5 reads the file
    /// in this process, lazily, one dataset per `load()`.
    public init(path: String, isolated: Bool = true) throws {
        self.path = path
        do {
            #if os(Linux)
            if isolated {
                var st = stat()
                guard stat(path, &st) == 0 else {
                    throw ZooError(.io, "cannot stat: \(String(cString: strerror(errno)))")
                }
                let scan = try Isolation.read(path, fileSize: Int(st.st_size))
                file = nil
                fileSize = scan.fileSize
                objects = scan.objects
                records = scan.records
                skipped = scan.skipped
                return
            }
            #endif
            let (file, size) = try HDF5File.open(path)
            self.file = file
            fileSize = size
            var scanner = Scanner(file: file, fileSize: size)
            try H5Library.sync { try scanner.scan() }
            objects = scanner.objects
            skipped = scanner.skipped
            records = scanner.datasets.map { HDF5File.record($0, file: file) }
        } catch let e as ZooError {
            throw e.inFile(path)
        }
    }

    /// The probe executable isolated reads start (`zoo-hdf5-probe`, or the running executable when it
    /// is its own probe: `HDF5ProbeTool.probeWithThisExecutable`), or nil when this process forks
    /// itself instead (no executable found; see docs/formats-hdf5.md). Linux only.
    public static var probeExecutable: String? { Isolation.executable }

    /// The object at `path` (no leading `/`; `""` is the root).
    public func object(_ path: String) -> Object? { objects[path] }

    /// Attributes of the object at `path`; empty when there is none.
    public func attributes(_ path: String) -> [(String, JSONValue)] { objects[path]?.attributes ?? [] }

    private static func open(_ path: String) throws -> (H5ID, Int) {
        try H5Library.sync {
            // The bytes must look like HDF5 before libhdf5 sees them (it probes other drivers' formats too).
            let fapl = try H5Library.id(H5Pcreate(zoo_h5p_file_access()), "cannot create file access properties")
            defer { _ = H5Pclose(fapl) }
            _ = H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG)
            // Reading needs no lock; do not fail on file systems without locking (NFS, read-only mounts).
            _ = H5Pset_file_locking(fapl, false, true)
            let raw = H5Fopen(path, zoo_h5f_acc_rdonly(), fapl)
            if raw < 0 {
                let text = H5Library.errorStackText()
                throw ZooError(.badInput, "not a readable HDF5 file: \(text)")
            }
            let file = H5ID(raw)
            var size: hsize_t = 0
            try H5Library.ok(H5Fget_filesize(raw, &size), "cannot get the file size")
            guard let n = Int(exactly: size) else { throw ZooError.bad("file size \(size) out of range") }
            return (file, n)
        }
    }

    /// A lazy record reading one dataset.
    private static func record(_ d: DatasetInfo, file: H5ID) -> TensorRecord {
        var details: [(String, JSONValue)] = [("hdf5_layout", .string(d.layout))]
        if !d.filters.isEmpty { details.append(("hdf5_filters", .array(d.filters.map { .string($0) }))) }
        if d.bigEndian { details.append(("hdf5_byte_order", .string("big-endian"))) }
        let name = d.path
        return TensorRecord(name: name, dtype: d.dtype, shape: d.shape, details: details) {
            do {
                return try HDF5File.readDataset(d, file: file)
            } catch var e as ZooError {
                if e.item == nil { e.item = name }
                throw e
            }
        }
    }

    /// Reads a dataset into a little-endian tensor.
    static func readDataset(_ d: DatasetInfo, file: H5ID) throws -> Tensor {
        try H5Library.sync {
            let ds = H5ID(try H5Library.id(H5Dopen2(file.raw, d.path, zoo_h5p_default()), "cannot open dataset", item: d.path))
            let ftype = H5ID(try H5Library.id(H5Dget_type(ds.raw), "cannot read the datatype", item: d.path))
            let mtype = try H5ID(H5Library.id(H5Tcopy(ftype.raw), "cannot copy the datatype", item: d.path))
            if d.convertOrder {
                try H5Library.ok(H5Tset_order(mtype.raw, H5T_ORDER_LE), "cannot set the byte order", item: d.path)
            }
            let expected = try Checked.mul(try Checked.elementCount(d.shape), d.dtype.byteSize)
            guard H5Tget_size(mtype.raw) == d.dtype.byteSize else {
                throw ZooError(.unsupported, "element size \(H5Tget_size(mtype.raw)) does not match \(d.dtype.name)", item: d.path)
            }
            if expected == 0 { return try Tensor(zeros: d.dtype, shape: d.shape) }
            if let k = d.deflateIndex {
                try BoundedDeflate.check(dataset: ds.raw, shape: d.shape, chunk: d.chunk, chunkBytes: d.chunkBytes,
                                         filterIndex: k, fileSize: d.fileSize, item: d.path)
            }
            return try Tensor(dtype: d.dtype, shape: d.shape) { buf in
                let status = H5Dread(ds.raw, mtype.raw, zoo_h5s_all(), zoo_h5s_all(), zoo_h5p_default(), buf.baseAddress)
                // A filter that is neither built in nor loadable as a plugin (libhdf5 tries its plugin
                // folder during the read, and registers what it loads) fails with a message about the
                // plugin folder; name the filter instead.
                if status < 0, let missing = d.missingFilters.first(where: { H5Zfilter_avail($0.id) <= 0 }) {
                    _ = H5Eclear2(zoo_h5e_default())
                    throw ZooError(.unsupported, "compressed with \(missing.description), which this libhdf5 does not have; \(missing.hint)",
                                   item: d.path)
                }
                try H5Library.ok(status, "cannot read the data", item: d.path)
            }
        }
    }
}

/// What the scan learns about a numeric dataset.
struct DatasetInfo: Sendable {
    var path: String
    var dtype: DType
    var shape: [Int]
    /// True when the memory type is the file type with little-endian order (floats, ints, enums).
    var convertOrder: Bool
    var bigEndian: Bool
    var layout: String
    var filters: [String]
    /// Bytes of one chunk (0 when not chunked).
    var chunkBytes: Int
    /// Chunk shape (empty when not chunked).
    var chunk: [Int]
    /// Position of the deflate filter in the pipeline, when there is one.
    var deflateIndex: Int?
    /// Size of the file.
    var fileSize: Int
    /// Filters of the pipeline that are not built into libhdf5 (nor loaded yet), described for the
    /// error message when reading fails because of one.
    var missingFilters: [MissingFilter] = []
}

/// A filter of a dataset's pipeline that libhdf5 did not have when the file was scanned (it may
/// still load it from its plugin folder when a chunk is read).
struct MissingFilter: Sendable {
    /// The filter id.
    var id: H5Z_filter_t
    /// What it is, e.g. "LZF (h5py's own filter), filter id 32000".
    var description: String
    /// What the user can do about it.
    var hint: String
}

/// Names of registered HDF5 filters that files commonly use and libhdf5 does not build in
/// (https://github.com/HDFGroup/hdf5_plugins/blob/master/docs/RegisteredFilterPlugins.md).
enum KnownFilters {
    static func describe(_ id: Int32, _ declared: String) -> String {
        let known: [Int32: String] = [
            4: "SZIP", 307: "BZip2", 32000: "LZF (h5py's own filter)", 32001: "Blosc", 32004: "LZ4",
            32008: "Bitshuffle", 32013: "ZFP", 32015: "Zstandard", 32017: "SZ",
        ]
        let name = known[id] ?? (declared.isEmpty ? "an unregistered filter" : "\"\(declared)\"")
        return "\(name), filter id \(id)"
    }

    /// What to do about a missing filter, for the message. (For LZF, Debian 12's hdf5-plugin-lzf does
    /// not help: its plugin fails to load, "undefined symbol: lzf_decompress"; docs/formats-hdf5.md.)
    static func hint(_ id: Int32) -> String {
        id == 32000
            ? "re-save the file with gzip compression (h5py: compression=\"gzip\"), which libhdf5 reads"
            : "re-save the file with gzip compression, or install the filter's HDF5 plugin"
    }
}

/// Walks the object tree under the libhdf5 lock.
private struct Scanner {
    let file: H5ID
    let fileSize: Int
    var objects: [String: Object] = [:]
    var datasets: [DatasetInfo] = []
    var skipped: [String] = []
    var visited = Set<haddr_t>()
    typealias Object = HDF5File.Object

    init(file: H5ID, fileSize: Int) {
        self.file = file
        self.fileSize = fileSize
    }

    mutating func scan() throws {
        let root = H5ID(try H5Library.id(H5Gopen2(file.raw, "/", zoo_h5p_default()), "cannot open the root group"))
        try group(root, path: "", depth: 0)
    }

    /// Link names and kinds of a group, in name order.
    func links(_ gid: hid_t, path: String) throws -> [(String, H5L_type_t)] {
        final class Box { var items: [(String, H5L_type_t)] = []; var tooMany = false }
        let box = Box()
        var idx: hsize_t = 0
        let status = H5Literate(gid, H5_INDEX_NAME, H5_ITER_INC, &idx, { _, name, info, data in
            guard let name, let info, let data else { return -1 }
            let box = Unmanaged<Box>.fromOpaque(data).takeUnretainedValue()
            if box.items.count >= HDF5File.maxObjects { box.tooMany = true; return 1 }
            box.items.append((String(cString: name), info.pointee.type))
            return 0
        }, Unmanaged.passUnretained(box).toOpaque())
        if box.tooMany { throw ZooError.bad("group has more than \(HDF5File.maxObjects) members", item: path.isEmpty ? "/" : path) }
        if status < 0 { throw H5Library.failure("cannot list the group", item: path.isEmpty ? "/" : path) }
        return box.items
    }

    mutating func group(_ g: H5ID, path: String, depth: Int) throws {
        guard depth <= HDF5File.maxDepth else { throw ZooError.bad("groups nested deeper than \(HDF5File.maxDepth)", item: path) }
        let members = try links(g.raw, path: path)
        objects[path] = Object(path: path, isGroup: true, children: members.map(\.0),
                               attributes: try H5Attributes.read(g.raw, item: path.isEmpty ? "/" : path))
        for (name, type) in members {
            let child = path.isEmpty ? name : path + "/" + name
            switch type {
            case H5L_TYPE_HARD: break
            case H5L_TYPE_SOFT:
                throw ZooError(.unsupported, "soft link (to \(linkValue(g.raw, name) ?? "?")) refused: only hard links are read", item: child)
            case H5L_TYPE_EXTERNAL:
                throw ZooError(.unsupported, "external link (to another file) refused: a checkpoint must be self-contained", item: child)
            default:
                throw ZooError(.unsupported, "user-defined link refused", item: child)
            }
            guard objects.count + datasets.count < HDF5File.maxObjects else {
                throw ZooError.bad("more than \(HDF5File.maxObjects) objects")
            }
            var info = H5O_info_t()
            try H5Library.ok(H5Oget_info_by_name2(g.raw, name, &info, UInt32(H5O_INFO_BASIC), zoo_h5p_default()),
                             "cannot read the object header", item: child)
            // Each object once (h5py's visititems does the same); this also stops hard-link cycles.
            guard visited.insert(info.addr).inserted else { continue }
            switch info.type {
            case H5O_TYPE_GROUP:
                let sub = H5ID(try H5Library.id(H5Gopen2(g.raw, name, zoo_h5p_default()), "cannot open the group", item: child))
                try group(sub, path: child, depth: depth + 1)
            case H5O_TYPE_DATASET:
                let ds = H5ID(try H5Library.id(H5Dopen2(g.raw, name, zoo_h5p_default()), "cannot open the dataset", item: child))
                try dataset(ds, path: child)
            default:
                continue // named datatypes carry no data
            }
        }
    }

    func linkValue(_ gid: hid_t, _ name: String) -> String? {
        var buf = [CChar](repeating: 0, count: 4096)
        guard H5Lget_val(gid, name, &buf, buf.count, zoo_h5p_default()) >= 0 else { _ = H5Eclear2(zoo_h5e_default()); return nil }
        return H5Library.string(buf)
    }

    mutating func dataset(_ ds: H5ID, path: String) throws {
        let attributes = try H5Attributes.read(ds.raw, item: path)
        objects[path] = Object(path: path, isGroup: false, children: [], attributes: attributes)
        let dcpl = H5ID(try H5Library.id(H5Dget_create_plist(ds.raw), "cannot read the creation properties", item: path))
        let layout = H5Pget_layout(dcpl.raw)
        if layout == H5D_VIRTUAL {
            throw ZooError(.unsupported, "virtual dataset refused: its data lives in other datasets or files", item: path)
        }
        let external = H5Pget_external_count(dcpl.raw)
        if external != 0 {
            throw ZooError(.unsupported, "dataset stored in external raw files refused: a checkpoint must be self-contained", item: path)
        }
        let ftype = H5ID(try H5Library.id(H5Dget_type(ds.raw), "cannot read the datatype", item: path))
        guard let kind = try H5Types.classify(ftype.raw, attributes: attributes, item: path) else {
            skipped.append(path)
            return
        }
        // Shape.
        let space = H5ID(try H5Library.id(H5Dget_space(ds.raw), "cannot read the dataspace", item: path))
        let spaceClass = H5Sget_simple_extent_type(space.raw)
        var shape: [Int] = []
        switch spaceClass {
        case H5S_SCALAR: shape = []
        case H5S_SIMPLE:
            let rank = H5Sget_simple_extent_ndims(space.raw)
            guard rank >= 0, rank <= 32 else { throw H5Library.failure("bad dataspace rank \(rank)", item: path) }
            var dims = [hsize_t](repeating: 0, count: Int(rank))
            guard H5Sget_simple_extent_dims(space.raw, &dims, nil) >= 0 else { throw H5Library.failure("cannot read the dimensions", item: path) }
            shape = try dims.map {
                guard let d = Int(exactly: $0) else { throw ZooError.bad("dimension \($0) out of range", item: path) }
                return d
            }
        default:
            skipped.append(path) // null dataspace: no data at all
            return
        }
        let elements = try Checked.elementCount(shape)
        let logical = try Checked.mul(elements, kind.dtype.byteSize, "byte size of \(path) (shape \(shape))")
        // Filters.
        var filters: [String] = []
        var chunkBytes = 0
        var chunkShape: [Int] = []
        var deflateIndex: Int?
        var missingFilters: [MissingFilter] = []
        if layout == H5D_CHUNKED {
            // libhdf5 allocates whole chunks when reading: a chunk far larger than the data is a memory bomb.
            var chunk = [hsize_t](repeating: 0, count: 32)
            let crank = H5Pget_chunk(dcpl.raw, 32, &chunk)
            guard crank >= 0 else { throw H5Library.failure("cannot read the chunk shape", item: path) }
            chunkBytes = kind.dtype.byteSize
            for d in chunk.prefix(Int(crank)) {
                guard let n = Int(exactly: d) else { throw ZooError.bad("chunk dimension \(d) out of range", item: path) }
                chunkBytes = try Checked.mul(chunkBytes, n, "chunk size of \(path)")
                chunkShape.append(n)
            }
            guard chunkBytes <= max(logical, HDF5File.fillAllowance) else {
                throw ZooError.bad("chunks of \(chunkBytes) bytes are absurd for \(logical) bytes of data", item: path)
            }
            let n = H5Pget_nfilters(dcpl.raw)
            if n > 0 {
                for i in 0..<UInt32(n) {
                    var flags: UInt32 = 0
                    var nelmts: Int = 0
                    var name = [CChar](repeating: 0, count: 64)
                    var config: UInt32 = 0
                    let id = H5Pget_filter2(dcpl.raw, i, &flags, &nelmts, nil, name.count, &name, &config)
                    switch id {
                    case H5Z_FILTER_DEFLATE:
                        filters.append("deflate")
                        if deflateIndex == nil { deflateIndex = Int(i) }
                    case H5Z_FILTER_SHUFFLE: filters.append("shuffle")
                    case H5Z_FILTER_FLETCHER32: filters.append("fletcher32")
                    default:
                        let text = H5Library.string(name)
                        filters.append(text.isEmpty ? "filter \(id)" : "filter \(id) (\(text))")
                        // Not built in: libhdf5 (1.10) looks for a plugin only when it reads a chunk, and
                        // without one fails with "can't open directory" for its plugin folder.
                        let available = H5Zfilter_avail(id)
                        _ = H5Eclear2(zoo_h5e_default())
                        if available <= 0 {
                            missingFilters.append(MissingFilter(id: id, description: KnownFilters.describe(id, text),
                                                                hint: KnownFilters.hint(id)))
                        }
                    }
                }
            }
        }
        // Size checks before anything is allocated: the declared bytes must be plausible for the stored bytes.
        let stored = Int(clamping: H5Dget_storage_size(ds.raw))
        _ = H5Eclear2(zoo_h5e_default())
        guard stored <= fileSize else {
            throw ZooError.bad("dataset claims \(stored) stored bytes, more than the file's \(fileSize)", item: path)
        }
        let layoutName: String
        switch layout {
        case H5D_COMPACT: layoutName = "compact"
        case H5D_CONTIGUOUS: layoutName = "contiguous"
        case H5D_CHUNKED: layoutName = "chunked"
        default: throw ZooError(.unsupported, "unknown storage layout \(layout.rawValue)", item: path)
        }
        if layout == H5D_CONTIGUOUS {
            let offset = H5Dget_offset(ds.raw)
            _ = H5Eclear2(zoo_h5e_default())
            if offset != zoo_haddr_undef() {
                guard stored == logical else {
                    throw ZooError.bad("declares \(logical) bytes (shape \(shape), \(kind.dtype.name)) but stores \(stored)", item: path)
                }
                guard let start = Int(exactly: offset), start <= fileSize, stored <= fileSize - start else {
                    throw ZooError.bad("data (\(stored) bytes at \(offset)) lies outside the file (\(fileSize) bytes)", item: path)
                }
            }
        }
        let compressed = filters.contains { $0 != "shuffle" && $0 != "fletcher32" }
        let budget = try Checked.add(compressed ? Checked.mul(stored, HDF5File.maxCompressionRatio) : stored, HDF5File.fillAllowance)
        guard logical <= budget else {
            throw ZooError.bad("declared size is absurd for the file: shape \(shape) of \(kind.dtype.name) is \(logical) bytes, "
                               + "\(stored) bytes stored in a \(fileSize)-byte file", item: path)
        }
        datasets.append(DatasetInfo(path: path, dtype: kind.dtype, shape: shape, convertOrder: kind.convertOrder,
                                    bigEndian: kind.bigEndian, layout: layoutName, filters: filters, chunkBytes: chunkBytes,
                                    chunk: chunkShape, deflateIndex: deflateIndex, fileSize: fileSize,
                                    missingFilters: missingFilters))
    }
}
