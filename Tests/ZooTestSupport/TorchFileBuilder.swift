import Foundation

/// Builds small `torch.save`-style zip files in the tests (hostile inputs are made here rather than
/// committed): a protocol-2 pickle of a dict of tensors (`_rebuild_tensor_v2` over persistent
/// storage ids, as torch writes them) and a zip with stored or "deflated" records.
public enum TorchFileBuilder {
    /// One tensor of the dict: a strided view of storage `storage`.
    public struct TensorSpec: Sendable {
        /// Key in the dict.
        public var key: String
        /// Storage key (`"0"`): the record `archive/data/<storage>`.
        public var storage: String
        /// torch storage class (`FloatStorage`, `HalfStorage`).
        public var storageClass: String
        /// Elements in the storage.
        public var storageElements: Int
        /// View geometry, in elements.
        public var offset: Int
        /// Sizes.
        public var shape: [Int]
        /// Strides (0 repeats the same element).
        public var strides: [Int]

        /// Creates a spec.
        public init(key: String, storage: String = "0", storageClass: String = "FloatStorage", storageElements: Int,
                    offset: Int = 0, shape: [Int], strides: [Int]) {
            self.key = key
            self.storage = storage
            self.storageClass = storageClass
            self.storageElements = storageElements
            self.offset = offset
            self.shape = shape
            self.strides = strides
        }
    }

    /// A zip member.
    public struct Record: Sendable {
        /// Name in the archive.
        public var name: String
        /// The bytes stored in the file.
        public var data: [UInt8]
        /// 0 stored, 8 deflated.
        public var method: UInt16
        /// The uncompressed size the directory declares (stored: `data.count`).
        public var uncompressedSize: Int
        /// CRC-32 written in the directory (0: none, not checked by readers).
        public var crc: UInt32

        /// A stored member with its correct CRC-32.
        public static func stored(_ name: String, _ data: [UInt8]) -> Record {
            Record(name: name, data: data, method: 0, uncompressedSize: data.count, crc: crc32(data))
        }

        /// Creates a member.
        public init(name: String, data: [UInt8], method: UInt16, uncompressedSize: Int, crc: UInt32) {
            self.name = name
            self.data = data
            self.method = method
            self.uncompressedSize = uncompressedSize
            self.crc = crc
        }
    }

    /// A protocol-2 pickle of `{key: tensor}`. Tensors whose `shareWith` is another key reuse that
    /// key's object through the pickle memo (BINGET), as torch writes names that share one tensor.
    public static func pickle(_ tensors: [TensorSpec], sharing: [(key: String, sameAs: String)] = []) -> [UInt8] {
        var p: [UInt8] = [0x80, 0x02, 0x7D, 0x71, 0x00, 0x28] // PROTO 2, EMPTY_DICT, BINPUT 0, MARK
        var memo: [String: UInt8] = [:]
        var next: UInt8 = 1
        func unicode(_ s: String) -> [UInt8] { [0x58] + le32(s.utf8.count) + Array(s.utf8) }
        func global(_ module: String, _ name: String) -> [UInt8] { [0x63] + Array("\(module)\n\(name)\n".utf8) }
        func int(_ v: Int) -> [UInt8] { [0x4A] + le32(v) }
        func tuple(_ items: [Int]) -> [UInt8] { [0x28] + items.flatMap(int) + [0x74] }
        for t in tensors {
            p += unicode(t.key)
            p += global("torch._utils", "_rebuild_tensor_v2") + [0x28]
            p += [0x28] + unicode("storage") + global("torch", t.storageClass) + unicode(t.storage) + unicode("cpu")
                + int(t.storageElements) + [0x74, 0x51] // TUPLE, BINPERSID
            p += int(t.offset) + tuple(t.shape) + tuple(t.strides) + [0x89] // NEWFALSE
            p += global("collections", "OrderedDict") + [0x29, 0x52] // EMPTY_TUPLE, REDUCE
            p += [0x74, 0x52, 0x71, next] // TUPLE, REDUCE, BINPUT
            memo[t.key] = next
            next &+= 1
        }
        for s in sharing {
            guard let slot = memo[s.sameAs] else { continue }
            p += unicode(s.key) + [0x68, slot] // BINGET
        }
        p += [0x75, 0x2E] // SETITEMS, STOP
        return p
    }

    /// A zip archive of `records` (no zip64: every size must stay below 4 GiB).
    public static func zip(_ records: [Record]) -> [UInt8] {
        var out: [UInt8] = []
        var central: [UInt8] = []
        for r in records {
            let name = Array(r.name.utf8)
            let local = out.count
            out += le32(0x0403_4B50) + le16(20) + le16(0) + le16(Int(r.method)) + le16(0) + le16(0)
            out += le32(Int(r.crc)) + le32(r.data.count) + le32(r.uncompressedSize) + le16(name.count) + le16(0) + name
            out += r.data
            central += le32(0x0201_4B50) + le16(20) + le16(20) + le16(0) + le16(Int(r.method)) + le16(0) + le16(0)
            central += le32(Int(r.crc)) + le32(r.data.count) + le32(r.uncompressedSize) + le16(name.count) + le16(0) + le16(0)
            central += le16(0) + le16(0) + le32(0) + le32(local) + name
        }
        let cdOffset = out.count
        out += central
        out += le32(0x0605_4B50) + le16(0) + le16(0) + le16(records.count) + le16(records.count)
        out += le32(central.count) + le32(cdOffset) + le16(0)
        return out
    }

    /// A torch.save zip: `archive/data.pkl`, `archive/byteorder`, the storage records, `archive/version`.
    public static func torchZip(pickle: [UInt8], storages: [Record]) -> [UInt8] {
        zip([.stored("archive/data.pkl", pickle), .stored("archive/byteorder", Array("little".utf8))]
            + storages + [.stored("archive/version", Array("3\n".utf8))])
    }

    /// CRC-32 (zip's polynomial), bit by bit: for the small records tests build.
    public static func crc32(_ bytes: [UInt8]) -> UInt32 {
        var c: UInt32 = 0xFFFF_FFFF
        for b in bytes {
            c ^= UInt32(b)
            for _ in 0..<8 { c = (c & 1) != 0 ? (c >> 1) ^ 0xEDB8_8320 : c >> 1 }
        }
        return ~c
    }

    static func le16(_ v: Int) -> [UInt8] { [UInt8(truncatingIfNeeded: v), UInt8(truncatingIfNeeded: v >> 8)] }
    static func le32(_ v: Int) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }

    /// The file the red-team report describes (issue #20): `keys` names that all share, through the
    /// pickle memo, one stride-0 float32 view of `side` x `side` over a 24-byte storage.
    public static func sharedStrideZero(keys: Int, side: Int = 16384) -> [UInt8] {
        let first = TensorSpec(key: "k0", storageElements: 6, shape: [side, side], strides: [0, 0])
        let sharing = (1..<max(keys, 1)).map { (key: "k\($0)", sameAs: "k0") }
        let storage = [UInt8](repeating: 0, count: 24)
        return torchZip(pickle: pickle([first], sharing: sharing), storages: [.stored("archive/data/0", storage)])
    }
}
