import ZooErrors
import ZooJSON
import ZooFiles
import ZooTensor

/// Writes safetensors files atomically, streaming one tensor at a time.
///
/// Tensors are ordered by element size (largest first, so every tensor starts aligned to
/// its element size) and then by name; the header is padded with spaces so the data
/// section starts at a multiple of 64 bytes. The file appears at its destination only
/// when complete.
public enum SafetensorsWriter {
    /// The order tensors are written in: element size descending, then name.
    public static func order(_ records: [TensorRecord]) -> [TensorRecord] {
        records.sorted { a, b in
            a.dtype.byteSize != b.dtype.byteSize ? a.dtype.byteSize > b.dtype.byteSize : a.name < b.name
        }
    }

    /// The header bytes (JSON padded to make 8 + length a multiple of 64) for these ordered records.
    public static func header(for ordered: [TensorRecord], metadata: [(String, String)]) throws -> [UInt8] {
        var members: [(String, JSONValue)] = []
        if !metadata.isEmpty {
            members.append(("__metadata__", .object(metadata.map { ($0.0, .string($0.1)) })))
        }
        var offset = 0
        var seen = Set<String>()
        for r in ordered {
            guard r.name != "__metadata__" else { throw ZooError.bad("a tensor may not be named __metadata__") }
            guard seen.insert(r.name).inserted else { throw ZooError.bad("duplicate tensor name", item: r.name) }
            let n = try Checked.elementCount(r.shape)
            let bytes = try Checked.mul(n, r.dtype.byteSize)
            members.append((r.name, .object([
                ("dtype", .string(r.dtype.name)),
                ("shape", .array(r.shape.map { .int(Int64($0)) })),
                ("data_offsets", .array([.int(Int64(offset)), .int(Int64(offset + bytes))])),
            ])))
            offset = try Checked.add(offset, bytes)
        }
        var text = Array(JSONValue.object(members).serialized().utf8)
        let pad = (64 - (8 + text.count) % 64) % 64
        text.append(contentsOf: [UInt8](repeating: 0x20, count: pad))
        var out: [UInt8] = []
        out.reserveCapacity(8 + text.count)
        withUnsafeBytes(of: UInt64(text.count).littleEndian) { out.append(contentsOf: $0) }
        out.append(contentsOf: text)
        return out
    }

    /// Writes `records` with `metadata` to `path`. Each record is loaded once, checked
    /// against its declared dtype and shape, and written; `progress` receives bytes done and total.
    public static func write(_ records: [TensorRecord], metadata: [(String, String)], to path: String, overwrite: Bool,
                             progress: ((Int, Int) -> Void)? = nil) throws {
        let ordered = order(records)
        let head = try header(for: ordered, metadata: metadata)
        let total = ordered.reduce(0) { $0 + $1.byteCount }
        let writer = try AtomicFileWriter(destination: path, overwrite: overwrite)
        try writer.reserve(head.count + total)
        try writer.write(head)
        try writeData(ordered, to: writer, total: total, progress: progress)
        try writer.commit()
    }

    /// The data section: loads each record of `ordered` once, checks it against its declared dtype
    /// and shape, and appends its bytes to `writer`; `progress` receives bytes done and `total`.
    public static func writeData(_ ordered: [TensorRecord], to writer: AtomicFileWriter, total: Int,
                                 progress: ((Int, Int) -> Void)? = nil) throws {
        var done = 0
        for r in ordered {
            if let stream = r.stream {
                // Produced piece by piece (a cast): the whole tensor is never held.
                var bytes = 0
                do {
                    try stream { piece in
                        bytes += piece.count
                        guard bytes <= r.byteCount else { return }
                        try writer.write(piece)
                    }
                } catch var e as ZooError { if e.item == nil { e.item = r.name }; throw e }
                guard bytes == r.byteCount else {
                    throw ZooError.bad("importer produced \(bytes) bytes, declared \(r.dtype.name) \(r.shape) (\(r.byteCount) bytes)", item: r.name)
                }
                done += bytes
                progress?(done, total)
                continue
            }
            let t: Tensor
            do { t = try r.load() } catch var e as ZooError { if e.item == nil { e.item = r.name }; throw e }
            guard t.dtype == r.dtype, t.shape == r.shape else {
                throw ZooError.bad("importer produced \(t.dtype.name) \(t.shape), declared \(r.dtype.name) \(r.shape)", item: r.name)
            }
            try t.withUnsafeBytes { try writer.write($0) }
            done += t.byteCount
            progress?(done, total)
        }
    }
}
