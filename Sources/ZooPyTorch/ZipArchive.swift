import CZlib
import ZooErrors
import ZooFiles
import ZooTensor

/// One member of a zip archive, as the central directory describes it.
package struct ZipEntry: Sendable {
    /// The member's path inside the archive.
    package let name: String
    /// Compression method: 0 stored, 8 deflated.
    package let method: UInt16
    /// General-purpose flags (bit 0 encrypted, bit 3 data descriptor).
    package let flags: UInt16
    /// CRC-32 of the uncompressed data (0 when the writer skipped it).
    package let crc32: UInt32
    /// Bytes stored in the file.
    package let compressedSize: Int
    /// Bytes after decompression.
    package let uncompressedSize: Int
    /// Position of the local file header.
    package let localHeaderOffset: Int
    /// Position of the member's data (after the local header, its name and extra field).
    package let dataOffset: Int
}

/// A read-only zip archive over a memory-mapped file (the PyTorch >= 1.6 container).
///
/// Members are found through the central directory (zip64 included); each data offset comes
/// from its local header, so any alignment is accepted. Members must not overlap each other or
/// the central directory. Stored members are zero-copy views of the mapping; deflated members are
/// inflated through zlib into exactly their declared size, which is bounded before allocating.
package final class ZipArchive: @unchecked Sendable {
    /// Reading options.
    package struct Options: Sendable {
        /// Verify CRC-32s that are not zero.
        package var verifyCRC: Bool
        /// Largest size a deflated member may inflate to.
        package var maxInflatedBytes: Int
        /// Largest accepted ratio between a deflated member's declared and stored sizes
        /// (deflate cannot exceed about 1032:1).
        package var maxRatio: Int

        /// Defaults: CRCs verified, at most 2 GiB and 1100:1 per deflated member.
        package init(verifyCRC: Bool = true, maxInflatedBytes: Int = 1 << 31, maxRatio: Int = 1100) {
            self.verifyCRC = verifyCRC
            self.maxInflatedBytes = maxInflatedBytes
            self.maxRatio = maxRatio
        }
    }

    /// The mapped file.
    package let file: MappedFile
    /// The options in force.
    package let options: Options
    /// Members in central-directory order.
    package let entries: [ZipEntry]
    private let byName: [String: Int]

    /// Parses the archive's directory. Throws `badInput` naming the member and byte offset on any inconsistency.
    package init(file: MappedFile, options: Options = Options()) throws {
        self.file = file
        self.options = options
        let bytes = file.bytes
        let n = bytes.count
        // End of central directory: the last signature within the final 64 KiB + 22 bytes.
        guard n >= 22 else { throw ZooError.bad("zip: file too short for an end-of-central-directory record", offset: 0) }
        var eocd = -1
        var p = n - 22
        let lowest = max(0, n - 22 - 65535)
        while p >= lowest {
            if bytes.loadUnaligned(fromByteOffset: p, as: UInt32.self).littleEndian == 0x0605_4B50 {
                let commentLength = Int(bytes.loadUnaligned(fromByteOffset: p + 20, as: UInt16.self).littleEndian)
                if p + 22 + commentLength <= n { eocd = p; break }
            }
            p -= 1
        }
        guard eocd >= 0 else { throw ZooError.bad("zip: no end-of-central-directory record (truncated file?)", offset: n) }
        var r = ByteReader(bytes, position: eocd + 4)
        let disk = try r.le(UInt16.self), cdDisk = try r.le(UInt16.self)
        _ = try r.le(UInt16.self)
        var count = Int(try r.le(UInt16.self))
        var cdSize = Int(try r.le(UInt32.self))
        var cdOffset = Int(try r.le(UInt32.self))
        if disk != 0 || cdDisk != 0 { throw ZooError(.unsupported, "zip: multi-disk archives are not supported", offset: eocd) }
        if count == 0xFFFF || cdSize == 0xFFFF_FFFF || cdOffset == 0xFFFF_FFFF {
            // zip64: the locator sits just before the classic record.
            guard eocd >= 20 else { throw ZooError.bad("zip64: no locator before the end record", offset: eocd) }
            var l = ByteReader(bytes, position: eocd - 20)
            guard try l.le(UInt32.self) == 0x0706_4B50 else { throw ZooError.bad("zip64: end-of-central-directory locator missing", offset: eocd - 20) }
            _ = try l.le(UInt32.self)
            let at64 = try l.le(UInt64.self)
            guard let e64 = Int(exactly: at64), e64 <= n - 56 else { throw ZooError.bad("zip64: end record offset \(at64) outside the file", offset: eocd - 12) }
            var z = ByteReader(bytes, position: e64)
            guard try z.le(UInt32.self) == 0x0606_4B50 else { throw ZooError.bad("zip64: bad end-of-central-directory signature", offset: e64) }
            try z.skip(8 + 2 + 2 + 4 + 4 + 8)
            let total = try z.le(UInt64.self), size = try z.le(UInt64.self), off = try z.le(UInt64.self)
            guard let c = Int(exactly: total), let s = Int(exactly: size), let o = Int(exactly: off) else {
                throw ZooError.bad("zip64: directory sizes out of range", offset: e64)
            }
            count = c; cdSize = s; cdOffset = o
        }
        guard cdOffset <= n, cdSize <= n - cdOffset else {
            throw ZooError.bad("zip: central directory (\(cdSize) bytes at \(cdOffset)) lies outside the file (\(n) bytes)", offset: eocd)
        }
        guard count <= cdSize / 46 + 1 else { throw ZooError.bad("zip: \(count) entries cannot fit a \(cdSize)-byte central directory", offset: eocd) }

        var list: [ZipEntry] = []
        list.reserveCapacity(count)
        var names: [String: Int] = [:]
        var c = ByteReader(UnsafeRawBufferPointer(rebasing: bytes[cdOffset..<(cdOffset + cdSize)]), baseOffset: cdOffset)
        for _ in 0..<count {
            let at = cdOffset + c.position
            guard try c.le(UInt32.self, "central directory entry") == 0x0201_4B50 else { throw ZooError.bad("zip: bad central directory signature", offset: at) }
            try c.skip(4)
            let flags = try c.le(UInt16.self), method = try c.le(UInt16.self)
            try c.skip(4)
            let crc = try c.le(UInt32.self)
            var csize = Int(try c.le(UInt32.self)), usize = Int(try c.le(UInt32.self))
            let nameLength = Int(try c.le(UInt16.self)), extraLength = Int(try c.le(UInt16.self)), commentLength = Int(try c.le(UInt16.self))
            try c.skip(2 + 2 + 4)
            var local = Int(try c.le(UInt32.self))
            let nameBytes = try c.take(nameLength, "entry name")
            guard let name = String(validating: nameBytes, as: UTF8.self) else { throw ZooError.bad("zip: entry name is not UTF-8", offset: at) }
            var extra = ByteReader(try c.take(extraLength, "extra field"), baseOffset: at)
            try c.skip(commentLength, "entry comment")
            if usize == 0xFFFF_FFFF || csize == 0xFFFF_FFFF || local == 0xFFFF_FFFF {
                var found = false
                while extra.remaining >= 4 {
                    let id = try extra.le(UInt16.self), size = Int(try extra.le(UInt16.self))
                    var field = ByteReader(try extra.take(size, "extra field"), baseOffset: at)
                    if id != 0x0001 { continue }
                    found = true
                    func big(_ what: String) throws -> Int {
                        let v = try field.le(UInt64.self, what)
                        guard let i = Int(exactly: v) else { throw ZooError.bad("zip64: \(what) \(v) out of range", item: name, offset: at) }
                        return i
                    }
                    if usize == 0xFFFF_FFFF { usize = try big("uncompressed size") }
                    if csize == 0xFFFF_FFFF { csize = try big("compressed size") }
                    if local == 0xFFFF_FFFF { local = try big("local header offset") }
                }
                if !found { throw ZooError.bad("zip64: entry needs a zip64 extra field and has none", item: name, offset: at) }
            }
            if flags & 1 != 0 { throw ZooError(.unsupported, "zip: encrypted entries are not supported", item: name, offset: at) }
            // Local header: its own name and extra lengths decide where the data starts.
            guard local <= n - 30 else { throw ZooError.bad("zip: local header at \(local) lies outside the file", item: name, offset: at) }
            var lh = ByteReader(bytes, position: local)
            guard try lh.le(UInt32.self) == 0x0403_4B50 else { throw ZooError.bad("zip: bad local header signature", item: name, offset: local) }
            try lh.skip(22)
            let lname = Int(try lh.le(UInt16.self)), lextra = Int(try lh.le(UInt16.self))
            let localName = try lh.take(lname, "local header name")
            guard localName.elementsEqual(nameBytes) else { throw ZooError.bad("zip: local header names a different member", item: name, offset: local) }
            try lh.skip(lextra, "local extra field")
            let dataOffset = lh.position
            guard csize <= n - dataOffset else {
                throw ZooError.bad("zip: \(csize) bytes of data at \(dataOffset) run past the end of the file (\(n) bytes)", item: name, offset: dataOffset)
            }
            if names[name] != nil { throw ZooError.bad("zip: duplicate entry", item: name, offset: at) }
            names[name] = list.count
            list.append(ZipEntry(name: name, method: method, flags: flags, crc32: crc, compressedSize: csize,
                                 uncompressedSize: usize, localHeaderOffset: local, dataOffset: dataOffset))
        }
        // Members may not overlap one another or the central directory.
        let sorted = list.sorted { $0.localHeaderOffset < $1.localHeaderOffset }
        var previousEnd = 0
        var previousName = ""
        for e in sorted {
            if e.localHeaderOffset < previousEnd {
                throw ZooError.bad("zip: entries \(previousName) and \(e.name) overlap", item: e.name, offset: e.localHeaderOffset)
            }
            previousEnd = e.dataOffset + e.compressedSize
            previousName = e.name
            if previousEnd > cdOffset {
                throw ZooError.bad("zip: entry data overlaps the central directory", item: e.name, offset: e.dataOffset)
            }
        }
        entries = list
        byName = names
    }

    /// The member named `name`.
    package func entry(_ name: String) -> ZipEntry? { byName[name].map { entries[$0] } }

    /// The uncompressed bytes of a member: a view of the mapping when stored, inflated memory
    /// when deflated. The CRC is verified when `verifyCRC` and the member's CRC is not zero.
    package func storage(of e: ZipEntry, checkCRC: Bool? = nil) throws -> TensorStorage {
        let s = try uncheckedStorage(of: e)
        if checkCRC ?? options.verifyCRC, e.crc32 != 0 {
            let actual = ZipArchive.crc32(s.bytes)
            guard actual == e.crc32 else {
                throw ZooError.bad("zip: CRC-32 mismatch: directory says \(hex32(e.crc32)), data gives \(hex32(actual))", item: e.name, offset: e.dataOffset)
            }
        }
        return s
    }

    /// The bytes without CRC verification.
    func uncheckedStorage(of e: ZipEntry) throws -> TensorStorage {
        switch e.method {
        case 0:
            guard e.compressedSize == e.uncompressedSize else {
                throw ZooError.bad("zip: stored entry has compressed size \(e.compressedSize) but uncompressed size \(e.uncompressedSize)", item: e.name, offset: e.dataOffset)
            }
            return try TensorStorage(file: file, offset: e.dataOffset, count: e.compressedSize)
        case 8:
            return try inflate(e)
        default:
            throw ZooError(.unsupported, "zip: compression method \(e.method) is not supported (only stored and deflated)", item: e.name, offset: e.localHeaderOffset)
        }
    }

    private func inflate(_ e: ZipEntry) throws -> TensorStorage {
        let (ratioLimit, over) = e.compressedSize.multipliedReportingOverflow(by: options.maxRatio)
        if e.uncompressedSize > options.maxInflatedBytes || (!over && e.uncompressedSize > ratioLimit &+ 65536) {
            throw ZooError.bad("zip: deflated entry claims \(e.uncompressedSize) bytes from \(e.compressedSize) (zip bomb?); refusing", item: e.name, offset: e.dataOffset)
        }
        let src = UnsafeRawBufferPointer(rebasing: file.bytes[e.dataOffset..<(e.dataOffset + e.compressedSize)])
        return try TensorStorage(count: e.uncompressedSize) { dst in
            var stream = z_stream()
            let initResult = inflateInit2_(&stream, -15, zlibVersion(), Int32(MemoryLayout<z_stream>.size))
            guard initResult == Z_OK else { throw ZooError(.io, "zlib: cannot initialise inflate (\(initResult))", item: e.name) }
            defer { inflateEnd(&stream) }
            var inPos = 0
            var outPos = 0
            var scratch: UInt8 = 0
            while true {
                let inChunk = min(src.count - inPos, Int(UInt32.max))
                stream.next_in = UnsafeMutablePointer(mutating: src.baseAddress.map { $0.assumingMemoryBound(to: UInt8.self) + inPos })
                stream.avail_in = UInt32(inChunk)
                let outLeft = dst.count - outPos
                let usingScratch = outLeft == 0
                if usingScratch {
                    withUnsafeMutablePointer(to: &scratch) { stream.next_out = $0 }
                    stream.avail_out = 1
                } else {
                    stream.next_out = dst.baseAddress.map { $0.assumingMemoryBound(to: UInt8.self) + outPos }
                    stream.avail_out = UInt32(min(outLeft, Int(UInt32.max)))
                }
                let availOutBefore = Int(stream.avail_out)
                let rc = CZlib.inflate(&stream, Z_NO_FLUSH)
                let consumed = inChunk - Int(stream.avail_in)
                let produced = availOutBefore - Int(stream.avail_out)
                inPos += consumed
                if usingScratch {
                    if produced > 0 { throw ZooError.bad("zip: deflated entry inflates past its declared \(e.uncompressedSize) bytes (zip bomb?)", item: e.name, offset: e.dataOffset) }
                } else {
                    outPos += produced
                }
                if rc == Z_STREAM_END {
                    guard outPos == dst.count else {
                        throw ZooError.bad("zip: deflated entry inflates to \(outPos) bytes, directory says \(e.uncompressedSize)", item: e.name, offset: e.dataOffset)
                    }
                    return
                }
                if rc != Z_OK {
                    if rc == Z_BUF_ERROR && consumed == 0 && produced == 0 {
                        throw ZooError.bad("zip: deflated entry is truncated", item: e.name, offset: e.dataOffset)
                    }
                    throw ZooError.bad("zip: corrupt deflate data (zlib error \(rc))", item: e.name, offset: e.dataOffset)
                }
            }
        }
    }

    /// CRC-32 (the zip polynomial) of `bytes`.
    package static func crc32(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
        guard let base = bytes.baseAddress else { return 0 }
        var crc: UInt = CZlib.crc32(0, nil, 0)
        var pos = 0
        let p = base.assumingMemoryBound(to: UInt8.self)
        while pos < bytes.count {
            let chunk = min(bytes.count - pos, 1 << 30)
            crc = CZlib.crc32(crc, p + pos, UInt32(chunk))
            pos += chunk
        }
        return UInt32(truncatingIfNeeded: crc)
    }
}
