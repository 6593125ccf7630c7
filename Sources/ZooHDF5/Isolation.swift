#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import ZooTensor

/// Runs libhdf5 over a file in a throw-away child process first.
///
/// libhdf5 1.10 is not hardened against corrupted or hostile files: random damage to a small
/// Keras file makes it dereference bad pointers a few percent of the time, and some damage makes
/// it loop. So before the file is read in-process, a forked child (no other thread is inside
/// libhdf5: the fork happens under the libhdf5 lock) does everything the importer will do: open,
/// scan, read every attribute and every dataset. If the child dies of a signal, or uses more
/// than its CPU-time budget (RLIMIT_CPU: a loaded machine does not make a good file fail, as a
/// wall-clock deadline would), the file is refused with one clear error and the calling process never runs
/// the code that crashed; otherwise (success, or a clean `ZooError`) the real read proceeds and
/// behaves the same, libhdf5 being deterministic. Core dumps and crash reports of the child are
/// suppressed. Only on Linux (elsewhere the file is read directly).
enum Isolation {
    /// CPU seconds (user + system) the child may use: a base plus one second per 20 MB of file.
    /// Reading a 550 MB Keras file takes about half a second of CPU; a file that makes libhdf5 fault in
    /// gigabytes (Tests/Fixtures/hdf5/libhdf5_slow.h5) or loop is stopped here.
    static func timeout(fileSize: Int) -> Double { 5 + Double(fileSize) / 20e6 }

    /// Wall-clock backstop for a child that blocks without using CPU: generous, since a busy
    /// machine can stretch the CPU budget's wall time many times over.
    static func wallBackstop(fileSize: Int) -> Double { 10 * timeout(fileSize: fileSize) + 60 }

    /// Probes `path` in a child process; throws when libhdf5 crashed or hung on it.
    static func probe(_ path: String, fileSize: Int) throws {
        #if os(Linux)
        let pid: pid_t = H5Library.sync { fork() }
        if pid < 0 {
            throw ZooError(.io, "cannot fork a process to check the file: \(String(cString: strerror(errno)))")
        }
        if pid == 0 { child(path, cpuSeconds: Int(timeout(fileSize: fileSize).rounded(.up))) }
        let cpuLimit = Int(timeout(fileSize: fileSize).rounded(.up))
        let limit = wallBackstop(fileSize: fileSize)
        var start = timespec()
        clock_gettime(CLOCK_MONOTONIC, &start)
        var status: Int32 = 0
        var pause: UInt32 = 200
        while true {
            let r = waitpid(pid, &status, WNOHANG)
            if r == pid { break }
            if r < 0, errno != EINTR {
                throw ZooError(.io, "lost the process checking the file: \(String(cString: strerror(errno)))")
            }
            var now = timespec()
            clock_gettime(CLOCK_MONOTONIC, &now)
            let elapsed = Double(now.tv_sec - start.tv_sec) + Double(now.tv_nsec - start.tv_nsec) / 1e9
            if elapsed > limit {
                kill(pid, SIGKILL)
                while waitpid(pid, &status, 0) < 0, errno == EINTR {}
                throw ZooError(.badInput, "libhdf5 did not finish reading the file within \(Int(limit)) s (wall clock) "
                               + "(corrupted or hostile HDF5); refused")
            }
            usleep(pause)
            pause = min(pause * 2, 20_000)
        }
        let signal = status & 0x7F
        if signal == SIGXCPU || signal == SIGKILL {
            throw ZooError(.badInput, "libhdf5 did not finish reading the file within \(cpuLimit) s of CPU time "
                           + "(corrupted or hostile HDF5); refused")
        }
        if signal != 0, signal != 0x7F {
            throw ZooError(.badInput, "libhdf5 crashed (signal \(signal)) reading the file (corrupted or hostile HDF5); refused")
        }
        // The child exits 0 (read fine) or 3 (a ZooError, which the in-process read reproduces with
        // its message). Anything else means it died some other way (a sanitizer's report, exit()
        // from inside a library): never follow it with an in-process read.
        let code = (status >> 8) & 0xFF
        if code != 0, code != 3 {
            throw ZooError(.badInput, "libhdf5 failed abnormally (exit status \(code)) reading the file (corrupted or hostile HDF5); refused")
        }
        #endif
    }

    #if os(Linux)
    /// The child: quiet, no core dump, default signal actions (no crash reporter), then the full read.
    private static func child(_ path: String, cpuSeconds: Int) -> Never {
        H5Library.resetAfterFork()
        // SIGXCPU at the soft limit, SIGKILL at the hard one. The parent may run with SIGXCPU
        // blocked (a test runner's children inherit such masks), so unblock it here.
        var cpu = rlimit(rlim_cur: rlim_t(cpuSeconds), rlim_max: rlim_t(cpuSeconds + 1))
        setrlimit(__rlimit_resource_t(RLIMIT_CPU.rawValue), &cpu)
        var unblock = sigset_t()
        sigemptyset(&unblock)
        sigaddset(&unblock, SIGXCPU)
        sigprocmask(SIG_UNBLOCK, &unblock, nil)
        let null = open("/dev/null", O_RDWR)
        if null >= 0 { dup2(null, 1); dup2(null, 2) }
        var noCore = rlimit(rlim_cur: 0, rlim_max: 0)
        setrlimit(__rlimit_resource_t(RLIMIT_CORE.rawValue), &noCore)
        for s in [SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGTRAP, SIGSYS, SIGXCPU] { signal(s, SIG_DFL) }
        var code: Int32 = 0
        do {
            let file = try HDF5File(path: path, isolated: false)
            _ = try HDF5Importer.imported(file)
            for r in file.records { _ = try r.load() }
        } catch {
            code = 3
        }
        _exit(code)
    }
    #endif
}
