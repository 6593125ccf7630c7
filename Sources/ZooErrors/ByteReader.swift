/// A bounds-checked cursor over bytes. Every read that would pass the end throws
/// a `badInput` error carrying the byte position, so parsers never trap on short input.
public struct ByteReader {
    /// The bytes being read.
    public let bytes: UnsafeRawBufferPointer
    /// Position of the next byte to read, relative to `bytes`.
    public var position: Int
    /// Added to positions in error messages (where `bytes` starts inside the file).
    public let baseOffset: Int

    /// A reader at `position` (default 0).
    public init(_ bytes: UnsafeRawBufferPointer, position: Int = 0, baseOffset: Int = 0) {
        self.bytes = bytes
        self.position = position
        self.baseOffset = baseOffset
    }

    /// Bytes left to read.
    @inlinable public var remaining: Int { bytes.count - position }
    /// True when nothing is left.
    @inlinable public var isAtEnd: Bool { position >= bytes.count }

    /// An error at the current position.
    public func error(_ message: String) -> ZooError {
        ZooError.bad(message, offset: baseOffset + position)
    }

    /// Throws unless `n` more bytes are present.
    @inlinable
    public func require(_ n: Int, _ what: @autoclosure () -> String) throws {
        if n < 0 || n > remaining {
            throw ZooError.bad("truncated: \(what()) needs \(n) bytes, \(remaining) left", offset: baseOffset + position)
        }
    }

    /// Reads one byte.
    @inlinable
    public mutating func u8(_ what: @autoclosure () -> String = "byte") throws -> UInt8 {
        try require(1, what())
        defer { position += 1 }
        return bytes[position]
    }

    /// Reads a little-endian fixed-width integer.
    @inlinable
    public mutating func le<T: FixedWidthInteger>(_ type: T.Type, _ what: @autoclosure () -> String = "integer") throws -> T {
        let n = MemoryLayout<T>.size
        try require(n, what())
        defer { position += n }
        return T(littleEndian: bytes.loadUnaligned(fromByteOffset: position, as: T.self))
    }

    /// Reads a big-endian fixed-width integer.
    @inlinable
    public mutating func be<T: FixedWidthInteger>(_ type: T.Type, _ what: @autoclosure () -> String = "integer") throws -> T {
        let n = MemoryLayout<T>.size
        try require(n, what())
        defer { position += n }
        return T(bigEndian: bytes.loadUnaligned(fromByteOffset: position, as: T.self))
    }

    /// Reads `n` bytes as a view (no copy).
    @inlinable
    public mutating func take(_ n: Int, _ what: @autoclosure () -> String = "bytes") throws -> UnsafeRawBufferPointer {
        try require(n, what())
        defer { position += n }
        return UnsafeRawBufferPointer(rebasing: bytes[position..<(position + n)])
    }

    /// Skips `n` bytes.
    @inlinable
    public mutating func skip(_ n: Int, _ what: @autoclosure () -> String = "bytes") throws {
        try require(n, what())
        position += n
    }
}
