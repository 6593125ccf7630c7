import CHDF5
import CZlib
import ZooErrors

/// Guards libhdf5's deflate (gzip) filter against decompression bombs.
///
/// libhdf5's built-in filter grows its output buffer without limit, so one small chunk of
/// crafted deflate data (ratios above 1000:1 are easy) would make it allocate gigabytes; and
/// predefined filters cannot be replaced through the public API. So before a deflated dataset
/// is read, every stored chunk is read raw (`H5Dread_chunk`, at most the file's size) and
/// inflated here, in a small scratch buffer, counting the output: a chunk that inflates past
/// its own size (plus a checksum's slack) is refused before libhdf5 decodes it.
enum BoundedDeflate {
    /// Most chunks checked for one dataset.
    static let maxChunks = 4_000_000
    /// Bytes a chunk may inflate to beyond its nominal size (fletcher32 checksums and the like).
    static let slack = 1024

    /// Checks every allocated chunk of a dataset whose pipeline holds deflate at filter position
    /// `filterIndex`. Call under the libhdf5 lock.
    static func check(dataset ds: hid_t, shape: [Int], chunk: [Int], chunkBytes: Int, filterIndex: Int,
                      fileSize: Int, item: String) throws {
        guard !shape.isEmpty, shape.count == chunk.count, !shape.contains(0) else { return }
        var counts: [Int] = []
        var cells = 1
        for (d, c) in zip(shape, chunk) {
            guard c > 0 else { throw ZooError.bad("chunk dimension 0", item: item) }
            let n = d / c + (d % c == 0 ? 0 : 1)
            counts.append(n)
            cells = try Checked.mul(cells, n, "chunk count of \(item)")
        }
        guard cells <= maxChunks else {
            throw ZooError(.unsupported, "deflated dataset with \(cells) chunks (more than \(maxChunks)) refused", item: item)
        }
        let bound = try Checked.add(chunkBytes, slack)
        var index = [Int](repeating: 0, count: shape.count)
        var offset = [hsize_t](repeating: 0, count: shape.count)
        var raw: [UInt8] = []
        for _ in 0..<cells {
            for k in 0..<shape.count { offset[k] = hsize_t(index[k] * chunk[k]) }
            var mask: UInt32 = 0
            var addr: haddr_t = 0
            var size: hsize_t = 0
            try H5Library.ok(H5Dget_chunk_info_by_coord(ds, offset, &mask, &addr, &size), "cannot locate a chunk", item: item)
            if addr != zoo_haddr_undef(), size > 0, mask & (1 << UInt32(filterIndex)) == 0 {
                guard let n = Int(exactly: size), n <= fileSize else {
                    throw ZooError.bad("chunk at \(offset) claims \(size) stored bytes, more than the file's \(fileSize)", item: item)
                }
                if raw.count < n { raw = [UInt8](repeating: 0, count: n) }
                var filters: UInt32 = 0
                try H5Library.ok(H5Dread_chunk(ds, zoo_h5p_default(), offset, &filters, &raw), "cannot read a chunk", item: item)
                let out = raw.withUnsafeBytes { inflatedSize(UnsafeRawBufferPointer(rebasing: $0[0..<n]), limit: bound) }
                guard let out else {
                    throw ZooError.bad("chunk at \(offset) does not inflate (corrupt deflate data)", item: item)
                }
                guard out <= bound else {
                    throw ZooError.bad("chunk at \(offset) inflates past its \(chunkBytes) bytes (deflate bomb)", item: item)
                }
            }
            // Next grid position, last dimension fastest.
            var k = shape.count - 1
            while k >= 0 {
                index[k] += 1
                if index[k] < counts[k] { break }
                index[k] = 0
                k -= 1
            }
        }
    }

    /// Bytes a zlib stream inflates to, stopping as soon as it passes `limit` (then returns
    /// `limit + 1`); nil when the stream is corrupt or truncated.
    static func inflatedSize(_ input: UnsafeRawBufferPointer, limit: Int) -> Int? {
        guard let base = input.baseAddress else { return nil }
        var strm = z_stream()
        strm.next_in = UnsafeMutablePointer(mutating: base.assumingMemoryBound(to: Bytef.self))
        strm.avail_in = uInt(clamping: input.count)
        guard inflateInit_(&strm, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else { return nil }
        defer { inflateEnd(&strm) }
        var scratch = [UInt8](repeating: 0, count: 1 << 16)
        var produced = 0
        return scratch.withUnsafeMutableBytes { buf -> Int? in
            guard let out = buf.baseAddress else { return nil }
            while true {
                strm.next_out = out.assumingMemoryBound(to: Bytef.self)
                strm.avail_out = uInt(buf.count)
                let before = strm.avail_in
                let status = inflate(&strm, Z_NO_FLUSH)
                let made = buf.count - Int(strm.avail_out)
                if made == 0, strm.avail_in == before, status != Z_STREAM_END { return nil } // no progress
                produced += made
                if produced > limit { return limit + 1 }
                if status == Z_STREAM_END { return produced }
                guard status == Z_OK || status == Z_BUF_ERROR else { return nil }
                if strm.avail_out != 0, strm.avail_in == 0 { return nil } // truncated stream
            }
        }
    }
}
