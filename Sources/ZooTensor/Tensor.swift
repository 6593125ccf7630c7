import ZooErrors
/// A dense, row-major (C order), little-endian n-dimensional array.
///
/// `Tensor` is a value type over copy-on-write storage. The storage is either owned
/// memory or a slice of a memory-mapped file, so tensors read from a checkpoint are
/// zero-copy views until they are mutated.
///
/// ```swift
/// let t = try Tensor(shape: [2, 3], floats: [1, 2, 3, 4, 5, 6])
/// let values = try t.floats()          // [Float], widened from any float dtype
/// ```
public struct Tensor: Sendable {
    /// Element type.
    public let dtype: DType
    /// Dimensions; `[]` is a scalar (one element).
    public let shape: [Int]
    /// Number of elements (product of `shape`).
    public let elementCount: Int
    @usableFromInline var storage: TensorStorage
    @usableFromInline var byteOffset: Int

    /// Bytes of data: `elementCount * dtype.byteSize`.
    public var byteCount: Int { elementCount * dtype.byteSize }

    /// Row-major strides in elements.
    public var strides: [Int] { Tensor.contiguousStrides(shape) }

    /// Number of dimensions.
    public var rank: Int { shape.count }

    /// True when the bytes are a view of a memory-mapped file.
    public var isMapped: Bool { storage.isMapped }

    /// Creates a tensor over existing storage. Throws when the shape does not fit the byte range.
    public init(dtype: DType, shape: [Int], storage: TensorStorage, byteOffset: Int = 0) throws {
        let n = try Checked.elementCount(shape)
        let bytes = try Checked.mul(n, dtype.byteSize, "byte size of shape \(shape)")
        guard byteOffset >= 0, byteOffset <= storage.count, bytes <= storage.count - byteOffset else {
            throw ZooError.bad("\(dtype.name) tensor of shape \(shape) needs \(bytes) bytes at offset \(byteOffset), storage has \(storage.count)")
        }
        self.dtype = dtype
        self.shape = shape
        self.elementCount = n
        self.storage = storage
        self.byteOffset = byteOffset
    }

    /// A zero-filled tensor.
    public init(zeros dtype: DType, shape: [Int]) throws {
        let n = try Checked.elementCount(shape)
        let bytes = try Checked.mul(n, dtype.byteSize)
        try self.init(dtype: dtype, shape: shape, storage: TensorStorage(zeroedCount: bytes))
    }

    /// A tensor whose bytes are written by `fill` (exactly `byteCount` of them, little-endian).
    public init(dtype: DType, shape: [Int], fill: (UnsafeMutableRawBufferPointer) throws -> Void) throws {
        let n = try Checked.elementCount(shape)
        let bytes = try Checked.mul(n, dtype.byteSize)
        let storage = try TensorStorage(count: bytes, fill: fill)
        try self.init(dtype: dtype, shape: shape, storage: storage)
    }

    /// A tensor copying raw little-endian bytes.
    public init<C: Collection>(dtype: DType, shape: [Int], bytes: C) throws where C.Element == UInt8 {
        let n = try Checked.elementCount(shape)
        let need = try Checked.mul(n, dtype.byteSize)
        guard bytes.count == need else {
            throw ZooError.bad("\(dtype.name) tensor of shape \(shape) needs \(need) bytes, got \(bytes.count)")
        }
        try self.init(dtype: dtype, shape: shape) { dst in
            _ = dst.initializeMemory(as: UInt8.self, from: bytes)
        }
    }

    /// A float32 tensor from values in row-major order.
    public init(shape: [Int], floats: [Float]) throws {
        let n = try Checked.elementCount(shape)
        guard floats.count == n else { throw ZooError.bad("shape \(shape) needs \(n) values, got \(floats.count)") }
        try self.init(dtype: .f32, shape: shape) { dst in
            floats.withUnsafeBytes { dst.copyMemory(from: $0) }
        }
    }

    /// Row-major strides (in elements) of a shape.
    public static func contiguousStrides(_ shape: [Int]) -> [Int] {
        var strides = [Int](repeating: 1, count: shape.count)
        var acc = 1
        for i in stride(from: shape.count - 1, through: 0, by: -1) {
            strides[i] = acc
            acc &*= shape[i]
        }
        return strides
    }

    /// Calls `body` with the tensor's bytes (little-endian, row-major).
    @inlinable
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        let start = storage.base.map { $0 + byteOffset }
        return try body(UnsafeRawBufferPointer(start: start, count: byteCount))
    }

    /// Calls `body` with mutable bytes, copying the storage first when it is shared or mapped.
    public mutating func withUnsafeMutableBytes<R>(_ body: (UnsafeMutableRawBufferPointer) throws -> R) rethrows -> R {
        if !isKnownUniquelyReferenced(&storage) || storage.isMapped || byteOffset != 0 || storage.count != byteCount {
            let old = self
            storage = TensorStorage(count: byteCount) { dst in
                old.withUnsafeBytes { if $0.count > 0 { dst.copyMemory(from: $0) } }
            }
            byteOffset = 0
        }
        let start = storage.base.map { UnsafeMutableRawPointer(mutating: $0) }
        return try body(UnsafeMutableRawBufferPointer(start: start, count: byteCount))
    }

    /// The raw bytes as an array.
    public var bytes: [UInt8] { withUnsafeBytes { Array($0) } }

    /// The same data under another shape with the same element count.
    public func reshaped(_ newShape: [Int]) throws -> Tensor {
        let n = try Checked.elementCount(newShape)
        guard n == elementCount else {
            throw ZooError.bad("cannot reshape \(shape) (\(elementCount) elements) to \(newShape) (\(n) elements)")
        }
        return try Tensor(dtype: dtype, shape: newShape, storage: storage, byteOffset: byteOffset)
    }

    /// True when both tensors have the same dtype, shape and bytes.
    public func bitwiseEqual(_ other: Tensor) -> Bool {
        guard dtype == other.dtype, shape == other.shape else { return false }
        return withUnsafeBytes { a in other.withUnsafeBytes { b in a.elementsEqual(b) } }
    }
}
