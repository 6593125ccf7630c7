import ZooErrors
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A whole file mapped read-only into memory.
///
/// Tensors read from a file are views into this mapping, so reading a checkpoint
/// copies nothing until a value is used. The mapping lives as long as any view.
public final class MappedFile: @unchecked Sendable {
    /// The path the file was opened with.
    public let path: String
    /// Start of the mapping (nil for an empty file).
    public let base: UnsafeRawPointer?
    /// Size of the file in bytes.
    public let count: Int
    /// True when `base` is heap memory owned by this object (see `init(copying:path:)`), not a mapping.
    private let ownsHeapCopy: Bool
    /// The mapping's slot in `MappedFileFaults` (-1: none).
    private let faultSlot: Int

    /// Maps `path` read-only. Throws an `io` error naming the file when it cannot be opened.
    public init(path: String) throws {
        self.path = path
        ownsHeapCopy = false
        // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer (a hang); it is
        // then refused as not a regular file. It changes nothing for regular files.
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        if fd < 0 { throw ZooError(.io, "cannot open: \(String(cString: strerror(errno)))", file: path) }
        defer { close(fd) }
        (base, count, faultSlot) = try MappedFile.map(fd, path: path)
    }

    /// Maps the file open as `descriptor` (which the caller still owns and may close afterwards);
    /// `path` names it in errors. For files without a name, such as an unlinked temporary file.
    public init(descriptor: Int32, path: String) throws {
        self.path = path
        ownsHeapCopy = false
        (base, count, faultSlot) = try MappedFile.map(descriptor, path: path)
    }

    /// Maps `fd` whole; returns the mapping, its size and its `MappedFileFaults` slot.
    private static func map(_ fd: Int32, path: String) throws -> (UnsafeRawPointer?, Int, Int) {
        var st = stat()
        if fstat(fd, &st) != 0 { throw ZooError(.io, "cannot stat: \(String(cString: strerror(errno)))", file: path) }
        if (st.st_mode & S_IFMT) == S_IFDIR { throw ZooError(.io, "is a directory", file: path) }
        if (st.st_mode & S_IFMT) != S_IFREG {
            throw ZooError(.io, "not a regular file (a pipe, socket or device); give a file on disk", file: path)
        }
        let size = Int(st.st_size)
        if size == 0 { return (nil, 0, -1) }
        guard let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), p != MAP_FAILED else {
            throw ZooError(.io, "cannot map file: \(String(cString: strerror(errno)))", file: path)
        }
        return (UnsafeRawPointer(p), size, MappedFileFaults.register(base: UnsafeRawPointer(p), count: size, path: path))
    }

    /// An in-memory stand-in for a mapped file holding a copy of `bytes`, named `path` in errors.
    ///
    /// Readers that take a `MappedFile` can then parse bytes that never touched the disk
    /// (fuzzing, tests, data received over the network).
    public init(copying bytes: UnsafeRawBufferPointer, path: String = "<memory>") {
        self.path = path
        count = bytes.count
        ownsHeapCopy = true
        faultSlot = -1
        guard let source = bytes.baseAddress, bytes.count > 0 else { base = nil; return }
        let p = UnsafeMutableRawPointer.allocate(byteCount: bytes.count, alignment: 64)
        p.copyMemory(from: source, byteCount: bytes.count)
        base = UnsafeRawPointer(p)
    }

    deinit {
        guard let base else { return }
        if ownsHeapCopy {
            UnsafeMutableRawPointer(mutating: base).deallocate()
        } else {
            MappedFileFaults.unregister(faultSlot)
            munmap(UnsafeMutableRawPointer(mutating: base), count)
        }
    }

    /// The whole file as bytes. The pointer is valid only while this object is alive: keep a
    /// reference (or use `withBytes`), since Swift may release a local after its last use.
    public var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: count) }

    /// Calls `body` with the file's bytes, keeping the mapping alive for the call.
    public func withBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try withExtendedLifetime(self) { try body(bytes) }
    }
}
