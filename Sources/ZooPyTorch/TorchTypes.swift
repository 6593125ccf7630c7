import Foundation
import ZooErrors
import ZooTensor

/// An element type as a torch file names it: either one ModelZoo supports or one it refuses.
package enum TorchDType: Sendable, Equatable {
    /// A dtype with a safetensors equivalent.
    case supported(DType)
    /// A dtype ModelZoo refuses (complex, quantized, ...), with its torch name and element size.
    case unsupported(name: String, byteSize: Int)

    /// Bytes per element.
    package var byteSize: Int {
        switch self {
        case .supported(let d): return d.byteSize
        case .unsupported(_, let n): return n
        }
    }

    /// The torch name (`float32`, `complex64`, ...).
    package var torchName: String {
        switch self {
        case .supported(let d):
            switch d {
            case .f64: return "float64"
            case .f32: return "float32"
            case .f16: return "float16"
            case .bf16: return "bfloat16"
            case .f8e4m3: return "float8_e4m3fn"
            case .f8e5m2: return "float8_e5m2"
            case .i64: return "int64"
            case .i32: return "int32"
            case .i16: return "int16"
            case .i8: return "int8"
            case .u64: return "uint64"
            case .u32: return "uint32"
            case .u16: return "uint16"
            case .u8: return "uint8"
            case .bool: return "bool"
            }
        case .unsupported(let n, _): return n
        }
    }

    /// The dtype named by a `torch.<name>` global (`float32`, `half`, `complex64`, ...); nil when unknown.
    package static func fromTorchName(_ name: String) -> TorchDType? {
        switch name {
        case "float64", "double": return .supported(.f64)
        case "float32", "float": return .supported(.f32)
        case "float16", "half": return .supported(.f16)
        case "bfloat16": return .supported(.bf16)
        case "float8_e4m3fn": return .supported(.f8e4m3)
        case "float8_e5m2": return .supported(.f8e5m2)
        case "int64", "long": return .supported(.i64)
        case "int32", "int": return .supported(.i32)
        case "int16", "short": return .supported(.i16)
        case "int8": return .supported(.i8)
        case "uint64": return .supported(.u64)
        case "uint32": return .supported(.u32)
        case "uint16": return .supported(.u16)
        case "uint8": return .supported(.u8)
        case "bool": return .supported(.bool)
        case "complex32", "chalf": return .unsupported(name: "complex32", byteSize: 4)
        case "complex64", "cfloat": return .unsupported(name: "complex64", byteSize: 8)
        case "complex128", "cdouble": return .unsupported(name: "complex128", byteSize: 16)
        case "qint8", "quint8", "quint4x2", "quint2x4", "float8_e4m3fnuz", "float8_e5m2fnuz", "float8_e8m0fnu", "float4_e2m1fn_x2":
            return .unsupported(name: name, byteSize: 1)
        case "qint32": return .unsupported(name: name, byteSize: 4)
        default: return nil
        }
    }

    /// The dtype of a legacy typed storage class (`FloatStorage`, `HalfStorage`, ...); nil when unknown.
    /// `UntypedStorage` maps to `uint8` (its element is a byte).
    package static func fromStorageClass(_ name: String) -> TorchDType? {
        switch name {
        case "DoubleStorage": return .supported(.f64)
        case "FloatStorage": return .supported(.f32)
        case "HalfStorage": return .supported(.f16)
        case "BFloat16Storage": return .supported(.bf16)
        case "LongStorage": return .supported(.i64)
        case "IntStorage": return .supported(.i32)
        case "ShortStorage": return .supported(.i16)
        case "CharStorage": return .supported(.i8)
        case "ByteStorage", "UntypedStorage": return .supported(.u8)
        case "BoolStorage": return .supported(.bool)
        case "ComplexFloatStorage": return .unsupported(name: "complex64", byteSize: 8)
        case "ComplexDoubleStorage": return .unsupported(name: "complex128", byteSize: 16)
        case "QInt8Storage": return .unsupported(name: "qint8", byteSize: 1)
        case "QUInt8Storage": return .unsupported(name: "quint8", byteSize: 1)
        case "QInt32Storage": return .unsupported(name: "qint32", byteSize: 4)
        case "QUInt4x2Storage": return .unsupported(name: "quint4x2", byteSize: 1)
        case "QUInt2x4Storage": return .unsupported(name: "quint2x4", byteSize: 1)
        default: return nil
        }
    }

    /// Why a tensor of this dtype is refused, or nil when supported.
    var refusal: String? {
        switch self {
        case .supported: return nil
        case .unsupported(let n, _):
            if n.hasPrefix("complex") {
                return "\(n) tensors are not supported (safetensors and the native format have no complex dtype; split real and imaginary parts in PyTorch first)"
            }
            if n.hasPrefix("q") { return "quantized \(n) tensors are not supported (dequantize in PyTorch first)" }
            return "\(n) tensors are not supported"
        }
    }
}

/// The bytes of one serialized storage and how to get them.
///
/// For a stored zip record or a legacy storage these are a zero-copy view of the mapped file;
/// a deflated record is inflated on each request. The CRC-32 is checked the first time.
final class StorageBytes: @unchecked Sendable {
    /// Record name (zip) or storage key (legacy), for messages.
    let name: String
    /// Number of bytes.
    let count: Int
    /// True when `storage()` is a view of the mapped file.
    let isMapped: Bool
    private let produce: @Sendable () throws -> TensorStorage
    private let crc: UInt32?
    private let lock = NSLock()
    private var verified = false

    init(name: String, count: Int, isMapped: Bool, crc: UInt32?, produce: @escaping @Sendable () throws -> TensorStorage) {
        self.name = name
        self.count = count
        self.isMapped = isMapped
        self.crc = crc
        self.produce = produce
    }

    /// True when the bytes are CRC-checked on first use.
    var hasCRC: Bool { crc != nil }

    /// The bytes, CRC-checked the first time when a CRC is known.
    func storage() throws -> TensorStorage {
        let s = try produce()
        guard let crc else { return s }
        lock.lock()
        let done = verified
        lock.unlock()
        if !done {
            let actual = ZipArchive.crc32(s.bytes)
            guard actual == crc else {
                throw ZooError.bad("CRC-32 mismatch: record says \(hex32(crc)), data gives \(hex32(actual)) (file corrupt; --no-crc skips the check)", item: name)
            }
            lock.lock()
            verified = true
            lock.unlock()
        }
        return s
    }
}

func hex32(_ v: UInt32) -> String {
    let h = String(v, radix: 16)
    return "0x" + String(repeating: "0", count: max(0, 8 - h.count)) + h
}

/// A serialized storage: one key in the file, its declared size, and (once the container
/// reader has found them) its bytes.
package final class TorchStorage: @unchecked Sendable {
    /// The storage key (`"0"`, `"140234..."`).
    package let key: String
    /// The device the storage was saved from (`cpu`, `cuda:0`); ModelZoo ignores it.
    package let location: String
    /// The element type of the first reference.
    package let dtype: TorchDType
    /// Declared size in bytes.
    package let byteCount: Int
    var bytes: StorageBytes?

    init(key: String, location: String, dtype: TorchDType, byteCount: Int) {
        self.key = key
        self.location = location
        self.dtype = dtype
        self.byteCount = byteCount
    }
}

/// A typed view of a storage, as the persistent-id hook returns it.
package struct TorchStorageView {
    /// The storage.
    package let storage: TorchStorage
    /// Element type of this view.
    package let dtype: TorchDType
    /// Byte offset of the view in the storage.
    package let byteOffset: Int
    /// Bytes in the view.
    package let byteCount: Int
    /// True for `UntypedStorage` (the tensor's dtype comes from `_rebuild_tensor_v3`).
    package let untyped: Bool
}

/// A tensor rebuilt by an allowlisted torch function: a strided view of a storage.
package final class TorchTensor {
    /// The storage view.
    package let storage: TorchStorageView
    /// Element type.
    package let dtype: TorchDType
    /// Offset of the first element, in elements.
    package let offset: Int
    /// Sizes.
    package let shape: [Int]
    /// Strides in elements.
    package let strides: [Int]
    /// Set when this is a kind of tensor ModelZoo refuses (quantized, sparse, ...).
    package let refusal: String?

    init(storage: TorchStorageView, dtype: TorchDType, offset: Int, shape: [Int], strides: [Int], refusal: String? = nil) {
        self.storage = storage
        self.dtype = dtype
        self.offset = offset
        self.shape = shape
        self.strides = strides
        self.refusal = refusal
    }

    /// True when the elements are laid out row-major without gaps.
    package var isContiguous: Bool {
        var expected = 1
        for i in stride(from: shape.count - 1, through: 0, by: -1) {
            if shape[i] != 1 && strides[i] != expected { return false }
            expected &*= shape[i]
        }
        return true
    }
}

/// Copies strided elements to a contiguous buffer, and swaps byte order.
enum Strided {
    /// Copies the elements of a strided view (`offset`, `shape`, `strides` in elements) of `src`
    /// into `dst` in row-major order. The caller has bounds-checked the view.
    static func gather(_ src: UnsafeRawPointer, elementSize es: Int, offset: Int, shape: [Int], strides: [Int],
                       into dst: UnsafeMutableRawPointer) {
        let rank = shape.count
        if rank == 0 {
            dst.copyMemory(from: src + offset * es, byteCount: es)
            return
        }
        let inner = shape[rank - 1]
        let innerStride = strides[rank - 1]
        var index = [Int](repeating: 0, count: max(rank - 1, 0))
        var out = dst
        var outer = 1
        for d in 0..<(rank - 1) { outer *= shape[d] }
        if inner == 0 || outer == 0 { return }
        for _ in 0..<outer {
            var base = offset
            for d in 0..<(rank - 1) { base += index[d] * strides[d] }
            let p = src + base * es
            if innerStride == 1 {
                out.copyMemory(from: p, byteCount: inner * es)
            } else {
                let step = innerStride * es
                switch es {
                case 1:
                    for j in 0..<inner { out.storeBytes(of: p.load(fromByteOffset: j * step, as: UInt8.self), toByteOffset: j, as: UInt8.self) }
                case 2:
                    for j in 0..<inner { out.storeBytes(of: p.loadUnaligned(fromByteOffset: j * step, as: UInt16.self), toByteOffset: 2 * j, as: UInt16.self) }
                case 4:
                    for j in 0..<inner { out.storeBytes(of: p.loadUnaligned(fromByteOffset: j * step, as: UInt32.self), toByteOffset: 4 * j, as: UInt32.self) }
                case 8:
                    for j in 0..<inner { out.storeBytes(of: p.loadUnaligned(fromByteOffset: j * step, as: UInt64.self), toByteOffset: 8 * j, as: UInt64.self) }
                default:
                    for j in 0..<inner { (out + j * es).copyMemory(from: p + j * step, byteCount: es) }
                }
            }
            out += inner * es
            var d = rank - 2
            while d >= 0 {
                index[d] += 1
                if index[d] < shape[d] { break }
                index[d] = 0
                d -= 1
            }
        }
    }

    /// Reverses the bytes of every `width`-byte element in place.
    static func swapBytes(_ p: UnsafeMutableRawBufferPointer, width: Int) {
        guard let base = p.baseAddress, width > 1 else { return }
        let n = p.count / width
        switch width {
        case 2:
            for i in 0..<n { base.storeBytes(of: base.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self).byteSwapped, toByteOffset: 2 * i, as: UInt16.self) }
        case 4:
            for i in 0..<n { base.storeBytes(of: base.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self).byteSwapped, toByteOffset: 4 * i, as: UInt32.self) }
        case 8:
            for i in 0..<n { base.storeBytes(of: base.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self).byteSwapped, toByteOffset: 8 * i, as: UInt64.self) }
        default:
            for i in 0..<n {
                let e = base + i * width
                for j in 0..<(width / 2) {
                    let a = e.load(fromByteOffset: j, as: UInt8.self)
                    e.storeBytes(of: e.load(fromByteOffset: width - 1 - j, as: UInt8.self), toByteOffset: j, as: UInt8.self)
                    e.storeBytes(of: a, toByteOffset: width - 1 - j, as: UInt8.self)
                }
            }
        }
    }
}
