import ZooErrors
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What a process does when a mapped input file shrinks under it.
///
/// Readers map their input files (`MappedFile`). If another process truncates such a file, or
/// the storage under it fails, touching a page past the new end raises SIGBUS, which by default
/// kills the process with no word about why. Once `installExitHandler(program:)` ran, SIGBUS
/// instead prints one line naming the mapped file the faulting address belongs to
/// (`zoo: FILE: the file shrank or could not be read while in use (SIGBUS); stopped`), removes the
/// temporary files in flight (`TemporaryFiles`), so no partial output is left, and exits with
/// status 3 (I/O). Nothing can resume after such a fault, so stopping cleanly is the whole of it.
///
/// The registry behind it is a fixed block of C memory, written under a lock by `MappedFile`
/// and only read by the handler, which takes no lock and allocates nothing.
public enum MappedFileFaults {
    static let capacity = 256
    static let pathBytes = 1024
    static let messageBytes = 256

    /// Per slot: start address, length (0: free), path (NUL-terminated, truncated).
    nonisolated(unsafe) private static let starts = UnsafeMutablePointer<UInt>.allocate(capacity: capacity)
    nonisolated(unsafe) private static let lengths = UnsafeMutablePointer<Int>.allocate(capacity: capacity)
    nonisolated(unsafe) private static let paths = UnsafeMutablePointer<CChar>.allocate(capacity: capacity * pathBytes)
    /// The program name for messages.
    nonisolated(unsafe) private static let program = UnsafeMutablePointer<CChar>.allocate(capacity: messageBytes)
    /// Read end of a pipe holding one byte: the thread whose `read` gets it reports and exits.
    /// Several threads can fault on the same shrunk file at once (a conversion reads its input
    /// on two); `read` is async-signal-safe and hands the byte to one of them only.
    nonisolated(unsafe) private static let token = UnsafeMutablePointer<Int32>.allocate(capacity: 1)
    nonisolated(unsafe) private static let lock: UnsafeMutablePointer<pthread_mutex_t> = {
        let p = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
        p.initialize(to: pthread_mutex_t())
        pthread_mutex_init(p, nil)
        starts.initialize(repeating: 0, count: capacity)
        lengths.initialize(repeating: 0, count: capacity)
        paths.initialize(repeating: 0, count: capacity * pathBytes)
        program.initialize(repeating: 0, count: messageBytes)
        return p
    }()

    /// Records a mapping; returns its slot, or -1 when the table is full (the mapping then
    /// faults without a file name).
    static func register(base: UnsafeRawPointer, count: Int, path: String) -> Int {
        let shown = path.escapingControlCharacters // printed on a terminal by the handler
        let l = lock
        pthread_mutex_lock(l); defer { pthread_mutex_unlock(l) }
        for i in 0..<capacity where lengths[i] == 0 {
            let dst = paths + i * pathBytes
            var n = 0
            for b in shown.utf8 where n < pathBytes - 1 { dst[n] = CChar(bitPattern: b); n += 1 }
            dst[n] = 0
            starts[i] = UInt(bitPattern: base)
            lengths[i] = count
            return i
        }
        return -1
    }

    /// Forgets a slot (the mapping is going away).
    static func unregister(_ slot: Int) {
        guard slot >= 0, slot < capacity else { return }
        let l = lock
        pthread_mutex_lock(l); defer { pthread_mutex_unlock(l) }
        lengths[slot] = 0
    }

    /// Installs the SIGBUS handler described above; `program` prefixes the message (`zoo`).
    public static func installExitHandler(program name: String) {
        _ = lock // initialise outside the handler
        _ = TemporaryFiles.shared
        var n = 0
        for b in name.utf8 where n < messageBytes - 1 { program[n] = CChar(bitPattern: b); n += 1 }
        program[n] = 0
        var fds: [Int32] = [-1, -1]
        if pipe(&fds) == 0 {
            var one: UInt8 = 1
            _ = write(fds[1], &one, 1)
            _ = fcntl(fds[0], F_SETFL, O_NONBLOCK)
            _ = fcntl(fds[0], F_SETFD, FD_CLOEXEC)
            _ = fcntl(fds[1], F_SETFD, FD_CLOEXEC)
        }
        token.pointee = fds[0]
        let handler: @convention(c) (Int32, UnsafeMutablePointer<siginfo_t>?, UnsafeMutableRawPointer?) -> Void = { _, info, _ in
            var byte: UInt8 = 0
            if MappedFileFaults.token.pointee >= 0, read(MappedFileFaults.token.pointee, &byte, 1) != 1 {
                // Another thread is reporting; its _exit ends this one too.
                while true { pause() }
            }
            var address: UInt = 0
            #if canImport(Glibc)
            if let info { address = UInt(bitPattern: info.pointee._sifields._sigfault.si_addr) }
            #else
            if let info { address = UInt(bitPattern: info.pointee.si_addr) }
            #endif
            MappedFileFaults.say(MappedFileFaults.program)
            var named = false
            for i in 0..<MappedFileFaults.capacity {
                let length = MappedFileFaults.lengths[i]
                let start = MappedFileFaults.starts[i]
                if length > 0, address >= start, address - start < UInt(length) {
                    MappedFileFaults.say(": ")
                    MappedFileFaults.say(MappedFileFaults.paths + i * MappedFileFaults.pathBytes)
                    MappedFileFaults.say(": the file shrank or could not be read while in use (SIGBUS); stopped\n")
                    named = true
                    break
                }
            }
            if !named { MappedFileFaults.say(": a mapped file shrank or could not be read while in use (SIGBUS); stopped\n") }
            TemporaryFiles.shared.unlinkLive()
            _exit(3)
        }
        var action = sigaction()
        #if canImport(Glibc)
        action.__sigaction_handler.sa_sigaction = handler
        #else
        action.__sigaction_u.__sa_sigaction = handler
        #endif
        sigemptyset(&action.sa_mask)
        action.sa_flags = SA_SIGINFO
        sigaction(SIGBUS, &action, nil)
        var unblock = sigset_t()
        sigemptyset(&unblock)
        sigaddset(&unblock, SIGBUS)
        pthread_sigmask(SIG_UNBLOCK, &unblock, nil)
    }

    /// Async-signal-safe write of a C string to standard error.
    private static func say(_ text: UnsafePointer<CChar>) {
        _ = write(2, text, strlen(text))
    }
}
