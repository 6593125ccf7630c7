#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Writes a file so that the destination either receives the complete content or is untouched.
///
/// Data goes to a temporary file in the destination's folder; `commit()` fsyncs it and
/// renames it over the destination. Dropping the writer without committing (an error, a
/// thrown tensor, SIGINT/SIGTERM once `AtomicFile.installSignalCleanup()` ran) removes the
/// temporary file, so no partial output is ever left behind.
public final class AtomicFileWriter {
    /// The final path.
    public let destination: String
    /// The temporary path data is written to.
    public let temporaryPath: String
    private var fd: Int32
    private var committed = false
    private var buffer: [UInt8] = []
    private let bufferLimit = 1 << 20
    /// Bytes written so far.
    public private(set) var bytesWritten = 0

    /// Opens a temporary file beside `destination`. Unless `overwrite`, an existing destination is an error.
    public init(destination: String, overwrite: Bool) throws {
        self.destination = destination
        if !overwrite, access(destination, F_OK) == 0 {
            throw ZooError(.io, "already exists (use --force to replace it)", file: destination)
        }
        let slash = destination.lastIndex(of: "/")
        let dir = slash.map { String(destination[..<$0]) } ?? "."
        let base = slash.map { String(destination[destination.index(after: $0)...]) } ?? destination
        var template = Array("\(dir.isEmpty ? "/" : dir)/.\(base).zoo-tmp-XXXXXX".utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        if fd < 0 {
            throw ZooError(.io, "cannot create a temporary file in \(dir): \(String(cString: strerror(errno)))", file: destination)
        }
        self.fd = fd
        temporaryPath = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        TemporaryFiles.shared.register(temporaryPath)
    }

    deinit { abandon() }

    /// Appends bytes.
    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        if bytes.count >= bufferLimit {
            try flushBuffer()
            try writeAll(bytes)
        } else {
            buffer.append(contentsOf: bytes)
            if buffer.count >= bufferLimit { try flushBuffer() }
        }
        bytesWritten += bytes.count
    }

    /// Appends bytes.
    public func write(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try write($0) }
    }

    private func flushBuffer() throws {
        if buffer.isEmpty { return }
        try buffer.withUnsafeBytes { try writeAll($0) }
        buffer.removeAll(keepingCapacity: true)
    }

    private func writeAll(_ bytes: UnsafeRawBufferPointer) throws {
        guard var p = bytes.baseAddress else { return }
        var left = bytes.count
        while left > 0 {
            let n = Glibc.write(fd, p, left)
            if n < 0 {
                if errno == EINTR { continue }
                throw ZooError(.io, "write failed: \(String(cString: strerror(errno)))", file: destination)
            }
            p += n
            left -= n
        }
    }

    /// Flushes, fsyncs and renames the temporary file to the destination.
    public func commit() throws {
        try flushBuffer()
        if fsync(fd) != 0 { throw ZooError(.io, "fsync failed: \(String(cString: strerror(errno)))", file: destination) }
        fchmod(fd, 0o644)
        close(fd)
        fd = -1
        if rename(temporaryPath, destination) != 0 {
            let reason = String(cString: strerror(errno))
            unlink(temporaryPath)
            TemporaryFiles.shared.unregister(temporaryPath)
            committed = true
            throw ZooError(.io, "cannot rename into place: \(reason)", file: destination)
        }
        TemporaryFiles.shared.unregister(temporaryPath)
        committed = true
    }

    /// Removes the temporary file (called automatically when the writer is dropped uncommitted).
    public func abandon() {
        if fd >= 0 { close(fd); fd = -1 }
        if !committed {
            unlink(temporaryPath)
            TemporaryFiles.shared.unregister(temporaryPath)
            committed = true
        }
    }

    /// Writes `bytes` to `path` atomically.
    public static func write(_ bytes: [UInt8], to path: String, overwrite: Bool) throws {
        let w = try AtomicFileWriter(destination: path, overwrite: overwrite)
        try w.write(bytes)
        try w.commit()
    }
}

/// The temporary files in flight, removed on SIGINT/SIGTERM.
public final class TemporaryFiles: @unchecked Sendable {
    /// The process-wide registry.
    public static let shared = TemporaryFiles()
    private var lock = pthread_mutex_t()
    // Fixed-size C strings so the signal handler needs no allocation.
    fileprivate var slots = [UnsafeMutablePointer<CChar>?](repeating: nil, count: 64)

    private init() { pthread_mutex_init(&lock, nil) }

    func register(_ path: String) {
        pthread_mutex_lock(&lock); defer { pthread_mutex_unlock(&lock) }
        if let i = slots.firstIndex(where: { $0 == nil }) { slots[i] = strdup(path) }
    }

    func unregister(_ path: String) {
        pthread_mutex_lock(&lock); defer { pthread_mutex_unlock(&lock) }
        for i in slots.indices {
            if let p = slots[i], String(cString: p) == path { free(p); slots[i] = nil }
        }
    }

    fileprivate func unlinkAll() {
        for p in slots { if let p { unlink(p) } }
    }

    /// Installs SIGINT/SIGTERM handlers that delete in-flight temporary files, then exit 130/143.
    public static func installSignalCleanup() {
        let handler: @convention(c) (Int32) -> Void = { sig in
            TemporaryFiles.shared.unlinkAll()
            _exit(128 + sig)
        }
        signal(SIGINT, handler)
        signal(SIGTERM, handler)
    }
}
