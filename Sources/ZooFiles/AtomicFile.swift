import ZooErrors
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Writes a file so that the destination either receives the complete content or is untouched.
///
/// Data goes to a temporary file in the destination's folder; `commit()` fsyncs it and
/// renames it over the destination (atomic on POSIX file systems, so `--force` never leaves
/// a half-replaced file: until the rename the old file is intact). Dropping the writer without
/// committing (an error, a thrown tensor) removes the temporary file, and so does SIGINT,
/// SIGTERM or SIGHUP once `TemporaryFiles.installSignalCleanup()` ran: the temporary path is
/// registered before the file is created, so there is no moment a signal can leave it behind.
public final class AtomicFileWriter {
    /// The final path.
    public let destination: String
    /// The temporary path data is written to.
    public let temporaryPath: String
    /// Whether `commit()` may replace an existing destination.
    public let overwrite: Bool
    private var fd: Int32
    private var committed = false
    private let slot: TemporaryFiles.Slot
    private var buffer: [UInt8] = []
    private let bufferLimit = 1 << 20
    /// Bytes handed to the kernel so far (the file's size), and the end of the range whose
    /// writeback was last started.
    private var flushed = 0
    private var writebackStarted = 0
    /// Writeback of the data already written starts once this many bytes are pending.
    private let writebackChunk = 8 << 20
    /// Bytes written so far.
    public private(set) var bytesWritten = 0

    /// Opens a temporary file beside `destination`. Unless `overwrite`, an existing destination is an error.
    public init(destination: String, overwrite: Bool) throws {
        self.destination = destination
        self.overwrite = overwrite
        if !overwrite, access(destination, F_OK) == 0 {
            throw ZooError(.io, "already exists (use --force to replace it)", file: destination)
        }
        let slash = destination.lastIndex(of: "/")
        let dir = slash.map { String(destination[..<$0]) } ?? "."
        let base = slash.map { String(destination[destination.index(after: $0)...]) } ?? destination
        if base.isEmpty { throw ZooError(.usage, "destination is a folder, not a file name", file: destination) }
        var attempt = 0
        while true {
            // Register the name first, then create the file (O_EXCL): a signal at any point
            // finds the name registered (unlinking a name not yet created is harmless).
            var random = SystemRandomNumberGenerator()
            let suffix = String(random.next() & 0xFFFF_FFFF_FFFF, radix: 36)
            let path = "\(dir.isEmpty ? "" : dir)/.\(base).zoo-tmp-\(suffix)"
            let slot = try TemporaryFiles.shared.register(path)
            let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
            if fd >= 0 {
                self.fd = fd
                self.slot = slot
                temporaryPath = path
                return
            }
            let code = errno
            TemporaryFiles.shared.unregister(slot: slot)
            attempt += 1
            if code == EEXIST, attempt < 100 { continue }
            throw ZooError(.io, "cannot create a temporary file in \(dir.isEmpty ? "/" : dir): \(String(cString: strerror(code)))", file: destination)
        }
    }

    deinit { abandon() }

    /// The mode a plain creat() would give (0666 minus the umask, read once), not the 0600 the
    /// temporary file was created with.
    private static let creationMode: mode_t = {
        let mask = umask(0o022)
        umask(mask)
        return 0o666 & ~mask
    }()

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

    /// Hands any buffered bytes to the kernel, so that `temporaryPath` can be read back (a spool file).
    public func flush() throws { try flushBuffer() }

    private func flushBuffer() throws {
        if buffer.isEmpty { return }
        try buffer.withUnsafeBytes { try writeAll($0) }
        buffer.removeAll(keepingCapacity: true)
    }

    /// Checks that `totalBytes` can be written, then tells the file system how many bytes the file will
    /// hold, so it allocates them in one go rather than page by page as the writes arrive.
    ///
    /// Refused with an `.io` error (exit 3), before anything is allocated:
    /// - more than the process may write to one file (`RLIMIT_FSIZE`, `ulimit -f`; a write past it
    ///   would kill the process by SIGXFSZ), naming the destination;
    /// - more than the destination's file system has free, less `FreeSpace.margin(for:)`, naming the
    ///   folder and both sizes (`FreeSpace.check`).
    ///
    /// Then Linux `fallocate(FALLOC_FL_KEEP_SIZE)` (the file's size is unchanged; nothing happens
    /// elsewhere or where the file system cannot). The allocation itself is best effort: a failure
    /// there surfaces at the write that needs the space.
    public func reserve(_ totalBytes: Int) throws {
        guard fd >= 0, totalBytes > 0 else { return }
        var limit = rlimit()
        if getrlimit(FreeSpace.fileSizeResource, &limit) == 0, limit.rlim_cur != rlim_t.max,
           UInt64(totalBytes) > UInt64(limit.rlim_cur) {
            throw ZooError(.io, "the output needs \(totalBytes) bytes (\(ByteSize.describe(totalBytes))), more than this process may write "
                           + "to one file (\(limit.rlim_cur) bytes: ulimit -f)", file: destination)
        }
        var fs = statvfs()
        if fstatvfs(fd, &fs) == 0 {
            let (free, overflow) = UInt64(fs.f_bavail).multipliedReportingOverflow(by: UInt64(fs.f_frsize))
            try FreeSpace.check(needed: totalBytes, available: overflow ? UInt64.max : free, folder: folder)
        }
        #if os(Linux)
        if let fallocate = GNUFileCalls.fallocate {
            _ = fallocate(fd, GNUFileCalls.keepSize, 0, Int64(totalBytes))
        }
        #endif
    }

    /// The destination's folder, as given (`.` for a bare file name).
    private var folder: String {
        guard let slash = destination.lastIndex(of: "/") else { return "." }
        let dir = String(destination[..<slash])
        return dir.isEmpty ? "/" : dir
    }

    /// Hands any buffered bytes to the kernel and asks it to start writing everything written so far
    /// to the device, without waiting (Linux `sync_file_range(SYNC_FILE_RANGE_WRITE)`; nothing
    /// elsewhere). It makes `commit()`'s fsync shorter, it does not replace it: the data is durable
    /// only after `commit()`. Useful before a pause (e.g. waiting for a digest) so the disk works meanwhile.
    public func startWriteback() throws {
        try flushBuffer()
        startWriteback(upTo: flushed)
    }

    /// Starts writeback of `writebackStarted..<end` (best effort: errors surface at fsync).
    private func startWriteback(upTo end: Int) {
        guard end > writebackStarted, fd >= 0 else { return }
        #if os(Linux)
        if let syncFileRange = GNUFileCalls.syncFileRange {
            _ = syncFileRange(fd, Int64(writebackStarted), Int64(end - writebackStarted), GNUFileCalls.write)
        }
        #endif
        writebackStarted = end
    }

    private func writeAll(_ bytes: UnsafeRawBufferPointer) throws {
        guard fd >= 0 else { throw ZooError(.io, "write after commit or abandon", file: destination) }
        guard var p = bytes.baseAddress else { return }
        var left = bytes.count
        while left > 0 {
            #if canImport(Glibc)
            let n = Glibc.write(fd, p, left)
            #else
            let n = Darwin.write(fd, p, left)
            #endif
            if n < 0 {
                if errno == EINTR { continue }
                if errno == EFAULT {
                    // The bytes came from a mapped input that shrank under us (another process truncated it).
                    throw ZooError(.io, "write failed: the data could not be read from its input file "
                                   + "(did the input shrink while in use?)", file: destination)
                }
                throw ZooError(.io, "write failed: \(String(cString: strerror(errno)))", file: destination)
            }
            p += n
            left -= n
            flushed += n
        }
        // Large outputs: keep the disk busy while the rest is produced, so the final fsync has
        // little left to do.
        if flushed - writebackStarted >= writebackChunk { startWriteback(upTo: flushed) }
    }

    /// Flushes, fsyncs and renames the temporary file to the destination, then fsyncs the folder.
    /// Without `overwrite`, a destination that appeared since the writer opened is left untouched
    /// and the commit fails with "already exists" (the temporary file is removed).
    public func commit() throws {
        guard !committed, fd >= 0 else { throw ZooError(.io, "commit after commit or abandon", file: destination) }
        try flushBuffer()
        if fsync(fd) != 0 { throw ZooError(.io, "fsync failed: \(String(cString: strerror(errno)))", file: destination) }
        fchmod(fd, AtomicFileWriter.creationMode)
        close(fd)
        fd = -1
        if overwrite {
            if rename(temporaryPath, destination) != 0 {
                let reason = String(cString: strerror(errno))
                abandon()
                throw ZooError(.io, "cannot rename into place: \(reason)", file: destination)
            }
        } else {
            // The destination was absent when the writer opened, but another process may have
            // created it since: move into place only if it is still absent, atomically.
            let code = AtomicFileWriter.moveWithoutReplacing(temporaryPath, destination)
            if code != 0 {
                abandon()
                if code == EEXIST {
                    throw ZooError(.io, "already exists: it appeared while the file was being written, and was left as it is (use --force to replace it)", file: destination)
                }
                throw ZooError(.io, "cannot move into place: \(String(cString: strerror(code)))", file: destination)
            }
        }
        committed = true
        TemporaryFiles.shared.unregister(slot: slot)
        let slash = destination.lastIndex(of: "/")
        let dir = slash.map { String(destination[..<$0]) } ?? "."
        let dfd = open(dir.isEmpty ? "/" : dir, O_RDONLY | O_CLOEXEC)
        if dfd >= 0 { _ = fsync(dfd); close(dfd) }
    }

    /// Moves `from` to `to` unless `to` exists, atomically; returns 0 or the errno (EEXIST when
    /// `to` exists). `renameat2(RENAME_NOREPLACE)` where the kernel and file system have it, else a
    /// hard link then an unlink of the old name (`link` never replaces); a file system with
    /// neither (some FUSE ones) gets a check and a plain rename, the best it allows.
    /// `useRenameat2: false` takes the link route directly (for tests).
    public static func moveWithoutReplacing(_ from: String, _ to: String, useRenameat2: Bool = true) -> Int32 {
        #if os(Linux)
        if useRenameat2, let renameat2 = GNUFileCalls.renameat2 {
            if renameat2(AT_FDCWD, from, AT_FDCWD, to, GNUFileCalls.noReplace) == 0 { return 0 }
            let code = errno
            if code != EINVAL && code != ENOSYS && code != ENOTSUP { return code }
        }
        #endif
        if link(from, to) == 0 {
            unlink(from)
            return 0
        }
        let code = errno
        if code == EEXIST { return EEXIST }
        if code != EPERM && code != ENOTSUP && code != EMLINK { return code }
        if access(to, F_OK) == 0 { return EEXIST }
        return rename(from, to) == 0 ? 0 : errno
    }

    /// Removes the temporary file (called automatically when the writer is dropped uncommitted).
    public func abandon() {
        if fd >= 0 { close(fd); fd = -1 }
        if !committed {
            unlink(temporaryPath)
            TemporaryFiles.shared.unregister(slot: slot)
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

/// Byte counts for messages.
public enum ByteSize {
    /// `n` in binary units with one decimal (`1.0 GiB`, `11.5 KiB`), or `628 B`.
    public static func describe(_ n: Int) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"]
        var v = Double(max(n, 0))
        var u = 0
        while v >= 1024, u < units.count - 1 { v /= 1024; u += 1 }
        if u == 0 { return "\(n) B" }
        return "\((v * 10).rounded() / 10) \(units[u])"
    }
}

/// Whether a file of a given size fits on a file system: the check `AtomicFileWriter.reserve` makes
/// before allocating an output.
public enum FreeSpace {
    /// The margin kept free beside an output of `bytes`: 1% of it, at least 4 MiB (the file system's
    /// own metadata, the folder's fsync, and whatever else is writing there meanwhile).
    public static func margin(for bytes: Int) -> Int { max(4 << 20, bytes / 100) }

    /// Throws an `.io` error naming `folder` and both sizes when `needed` bytes plus the margin
    /// exceed `available`.
    public static func check(needed: Int, available: UInt64, folder: String) throws {
        let margin = margin(for: needed)
        let (want, overflow) = needed.addingReportingOverflow(margin)
        guard overflow || UInt64(want) > available else { return }
        throw ZooError(.io, "not enough free space: the output needs \(needed) bytes (\(ByteSize.describe(needed))) plus a margin of "
                       + "\(ByteSize.describe(margin)), the file system has \(available) bytes (\(ByteSize.describe(Int(clamping: available)))) free", file: folder)
    }

    #if canImport(Glibc)
    static let fileSizeResource = __rlimit_resource_t(RLIMIT_FSIZE.rawValue)
    #else
    static let fileSizeResource = RLIMIT_FSIZE
    #endif
}

/// `sync_file_range(2)`, `fallocate(2)` and `renameat2(2)`, looked up at run time: Glibc's Swift module does not
/// declare them (they are GNU extensions). Nil where the C library has no such function.
enum GNUFileCalls {
    typealias SyncFileRange = @convention(c) (Int32, Int64, Int64, UInt32) -> Int32
    typealias Fallocate = @convention(c) (Int32, Int32, Int64, Int64) -> Int32
    /// `SYNC_FILE_RANGE_WRITE`: start writeback of the dirty pages in the range, do not wait.
    static let write: UInt32 = 2
    /// `FALLOC_FL_KEEP_SIZE`: allocate without changing the file's size.
    static let keepSize: Int32 = 1
    typealias Renameat2 = @convention(c) (Int32, UnsafePointer<CChar>, Int32, UnsafePointer<CChar>, UInt32) -> Int32
    /// `RENAME_NOREPLACE`: fail with EEXIST instead of replacing the target.
    static let noReplace: UInt32 = 1
    #if os(Linux)
    /// `renameat2(2)` (glibc 2.28+).
    static let renameat2: Renameat2? = {
        guard let symbol = dlsym(nil, "renameat2") else { return nil }
        return unsafeBitCast(symbol, to: Renameat2.self)
    }()
    static let syncFileRange: SyncFileRange? = {
        guard let symbol = dlsym(nil, "sync_file_range") else { return nil }
        return unsafeBitCast(symbol, to: SyncFileRange.self)
    }()
    static let fallocate: Fallocate? = {
        guard let symbol = dlsym(nil, "fallocate") else { return nil }
        return unsafeBitCast(symbol, to: Fallocate.self)
    }()
    #endif
}

/// The temporary files in flight, removed on SIGINT/SIGTERM/SIGHUP and by `removeAll()`.
///
/// The registry is a fixed block of C memory allocated once and never freed or moved: one
/// state word and one NUL-terminated path per slot. The signal handler only reads it and calls
/// `unlink`, which is async-signal-safe; it takes no lock and allocates nothing.
package final class TemporaryFiles: @unchecked Sendable {
    /// The process-wide registry.
    package static let shared = TemporaryFiles()
    /// How many temporary files may be in flight at once.
    package static let capacity = 128
    private static let pathBytes = 4096
    private static let free: Int32 = 0, writing: Int32 = 1, live: Int32 = 2

    /// A registration: the slot index and the generation it was claimed in, so that a stale
    /// handle (after `removeAll()`) can never free a slot someone else claimed since.
    struct Slot: Sendable { let index: Int; let generation: UInt64 }

    private let states: UnsafeMutablePointer<Int32>
    private let generations: UnsafeMutablePointer<UInt64>
    private let paths: UnsafeMutablePointer<CChar>
    private let lock: UnsafeMutablePointer<pthread_mutex_t>

    private init() {
        states = .allocate(capacity: Self.capacity)
        states.initialize(repeating: Self.free, count: Self.capacity)
        generations = .allocate(capacity: Self.capacity)
        generations.initialize(repeating: 0, count: Self.capacity)
        paths = .allocate(capacity: Self.capacity * Self.pathBytes)
        paths.initialize(repeating: 0, count: Self.capacity * Self.pathBytes)
        lock = .allocate(capacity: 1)
        lock.initialize(to: pthread_mutex_t())
        pthread_mutex_init(lock, nil)
    }

    /// Records `path` for removal on a signal; returns its slot.
    func register(_ path: String) throws -> Slot {
        let utf8 = Array(path.utf8)
        guard utf8.count < Self.pathBytes, !utf8.contains(0) else {
            throw ZooError(.io, "temporary path too long", file: path)
        }
        pthread_mutex_lock(lock); defer { pthread_mutex_unlock(lock) }
        for i in 0..<Self.capacity where states[i] == Self.free {
            states[i] = Self.writing
            let dst = paths + i * Self.pathBytes
            for (j, b) in utf8.enumerated() { dst[j] = CChar(bitPattern: b) }
            dst[utf8.count] = 0
            states[i] = Self.live
            generations[i] &+= 1
            return Slot(index: i, generation: generations[i])
        }
        throw ZooError(.io, "more than \(Self.capacity) temporary files in flight", file: path)
    }

    /// Forgets a slot (its file was renamed into place or removed).
    func unregister(slot: Slot) {
        guard slot.index >= 0, slot.index < Self.capacity else { return }
        pthread_mutex_lock(lock); defer { pthread_mutex_unlock(lock) }
        if generations[slot.index] == slot.generation { states[slot.index] = Self.free }
    }

    /// Number of registered temporary files (for tests and diagnostics).
    package var count: Int {
        pthread_mutex_lock(lock); defer { pthread_mutex_unlock(lock) }
        return (0..<Self.capacity).filter { states[$0] == Self.live }.count
    }

    /// Removes every registered temporary file now (before `exit`, which runs no deinit).
    package func removeAll() {
        pthread_mutex_lock(lock); defer { pthread_mutex_unlock(lock) }
        unlinkLive()
        for i in 0..<Self.capacity { states[i] = Self.free }
    }

    /// Async-signal-safe: reads the fixed block and calls unlink, nothing else.
    package func unlinkLive() {
        for i in 0..<Self.capacity where states[i] == Self.live {
            unlink(paths + i * Self.pathBytes)
        }
    }

    /// Installs SIGINT/SIGTERM/SIGHUP handlers that delete in-flight temporary files, then
    /// re-raise the signal with its default action (the shell sees 130 / 143 / 129).
    ///
    /// A signal the process inherited as ignored (e.g. SIGINT for a background job of a
    /// non-interactive shell) stays ignored. One inherited as blocked is unblocked: a cleanup
    /// handler that never runs would let an interrupted conversion finish instead of stopping.
    package static func installSignalCleanup() {
        _ = TemporaryFiles.shared // initialise outside the handler
        let handler: @convention(c) (Int32) -> Void = { sig in
            TemporaryFiles.shared.unlinkLive()
            signal(sig, SIG_DFL)
            raise(sig)
        }
        let signals = [SIGINT, SIGTERM, SIGHUP]
        var unblock = sigset_t()
        sigemptyset(&unblock)
        for sig in signals {
            var old = sigaction()
            sigaction(sig, nil, &old)
            #if canImport(Glibc)
            let previous = old.__sigaction_handler.sa_handler
            #else
            let previous = old.__sigaction_u.__sa_handler
            #endif
            if unsafeBitCast(previous, to: Int.self) == unsafeBitCast(SIG_IGN, to: Int.self) { continue }
            var action = sigaction()
            #if canImport(Glibc)
            action.__sigaction_handler.sa_handler = handler
            #else
            action.__sigaction_u.__sa_handler = handler
            #endif
            sigemptyset(&action.sa_mask)
            // Block the other cleanup signals while one is handled.
            for other in signals { sigaddset(&action.sa_mask, other) }
            action.sa_flags = 0
            sigaction(sig, &action, nil)
            sigaddset(&unblock, sig)
        }
        pthread_sigmask(SIG_UNBLOCK, &unblock, nil)
    }
}
