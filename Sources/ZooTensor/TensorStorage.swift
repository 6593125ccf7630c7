import ZooErrors
import ZooFiles
/// Immutable bytes behind one or more tensors: either owned memory or a range of a mapped file.
///
/// Storage is never mutated after creation while shared; `Tensor` copies it on write.
public final class TensorStorage: @unchecked Sendable {
    /// First byte.
    public let base: UnsafeRawPointer?
    /// Number of bytes.
    public let count: Int
    private let owner: MappedFile?
    private let owned: UnsafeMutableRawPointer?

    /// Allocates `count` zeroed bytes, 64-byte aligned.
    public init(zeroedCount count: Int) {
        self.count = count
        owner = nil
        if count > 0 {
            let p = UnsafeMutableRawPointer.allocate(byteCount: count, alignment: 64)
            p.initializeMemory(as: UInt8.self, repeating: 0, count: count)
            owned = p
            base = UnsafeRawPointer(p)
        } else {
            owned = nil
            base = nil
        }
    }

    /// Allocates storage and lets `fill` write every byte.
    public init(count: Int, fill: (UnsafeMutableRawBufferPointer) throws -> Void) rethrows {
        self.count = count
        owner = nil
        let p = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1), alignment: 64)
        do {
            try fill(UnsafeMutableRawBufferPointer(start: p, count: count))
        } catch {
            p.deallocate()
            throw error
        }
        owned = p
        base = UnsafeRawPointer(p)
    }

    /// A view of `count` bytes at `offset` in a mapped file; the file stays mapped while the storage lives.
    public init(file: MappedFile, offset: Int, count: Int) throws {
        guard offset >= 0, count >= 0, offset <= file.count, count <= file.count - offset else {
            throw ZooError(.badInput, "byte range \(offset)..<\(offset &+ count) lies outside the file (\(file.count) bytes)", file: file.path)
        }
        owner = file
        owned = nil
        self.count = count
        base = file.base.map { $0 + offset }
    }

    deinit { owned?.deallocate() }

    /// True when the bytes live in a memory-mapped file rather than owned memory.
    public var isMapped: Bool { owner != nil }

    /// The bytes.
    public var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: count) }
}
