#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import ZooErrors

/// Reads HDF5 files with libhdf5 in a throw-away process, never in the caller.
///
/// libhdf5 1.10 is not hardened against corrupted or hostile files: random damage to a small
/// Keras file makes it dereference bad pointers a few percent of the time, some damage makes it
/// loop, and some makes it corrupt its heap without crashing. So another process does all of the
/// reading: open, scan, every attribute and every dataset, and hands the result back through an
/// unlinked temporary file (`Handoff`), which the caller maps and checks. If that process dies of
/// a signal, or uses more than its CPU-time budget (RLIMIT_CPU: a loaded machine does not make a
/// good file fail, as a wall-clock deadline would) or its memory ceiling (RLIMIT_DATA,
/// `HDF5ProbeTool.memoryBudget`; the executable only), the file is refused with one clear error;
/// a clean `ZooError` in it is re-thrown in the caller, and a dataset that fails to load fails
/// that record's `load()` only, as an in-process read would. Core dumps of the probe are
/// suppressed. Only on Linux (elsewhere the file is read directly).
///
/// The probe process is the `zoo-hdf5-probe` executable (`HDF5ProbeTool`), started with
/// `posix_spawn`: a new, single-threaded process. It is looked for in `$ZOO_HDF5_PROBE`, then
/// in the running executable itself when that registered as its own probe
/// (`HDF5ProbeTool.probeWithThisExecutable(arguments:)`: `zoo hdf5-probe`), then beside the
/// running executable (where SwiftPM builds it next to `zoo` and the test runner).
/// Without it the probe is a `fork()` of the caller running the same Swift code. That fallback
/// is weaker: a fork of a multi-threaded Swift process copies locks that other threads hold
/// (the Swift runtime's among them), and a child that touches one can block or spin until its
/// budget runs out, refusing a good file. `ZOO_HDF5_PROBE=fork` selects the fallback (tests).
enum Isolation {
    /// CPU seconds (user + system) the probe may use: a base plus one second per 20 MB of file.
    /// Reading a 550 MB Keras file takes about half a second of CPU; a file that makes libhdf5 loop is
    /// stopped here, as is one that makes it fault in gigabytes (Tests/Fixtures/hdf5/libhdf5_slow.h5)
    /// where no memory ceiling stops it first (the fork fallback).
    static func timeout(fileSize: Int) -> Double { 5 + Double(fileSize) / 20e6 }

    /// Wall-clock backstop for a probe that blocks without using CPU: generous, since a busy
    /// machine can stretch the CPU budget's wall time many times over.
    static func wallBackstop(fileSize: Int) -> Double { 10 * timeout(fileSize: fileSize) + 60 }

    /// Name of the probe executable.
    static let probeName = "zoo-hdf5-probe"

    /// How the probe runs.
    enum Runner: Sendable, Equatable {
        /// `posix_spawn` of the probe executable at this path, with `leading` arguments before the
        /// probe's own (`["hdf5-probe"]` when `zoo` is its own probe).
        case helper(String, leading: [String])
        /// `fork()` of the calling process.
        case fork
    }

    /// The runner, found once per process.
    static let runner: Runner = findRunner()

    /// The probe executable, or nil when the runner is the fork fallback.
    static var executable: String? {
        if case .helper(let path, _) = runner { return path }
        return nil
    }

    /// The arguments the running executable takes to act as the probe, once it registered them
    /// (`HDF5ProbeTool.probeWithThisExecutable`). Read and written under `selfProbeLock`.
    nonisolated(unsafe) private static var selfProbeArguments: [String]?
    private static let selfProbeLock = RecursiveLock()

    /// Registers the running executable as its own probe (see `HDF5ProbeTool.probeWithThisExecutable`).
    static func registerSelfProbe(arguments: [String]) {
        selfProbeLock.lock()
        defer { selfProbeLock.unlock() }
        selfProbeArguments = arguments
    }

    private static func findRunner() -> Runner {
        if let raw = getenv("ZOO_HDF5_PROBE") {
            let value = String(cString: raw)
            if value == "fork" { return .fork }
            if !value.isEmpty { return .helper(value, leading: []) } // an unusable path fails loudly at spawn
        }
        #if os(Linux)
        var buf = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buf, buf.count - 1)
        if n > 0 {
            let exe = String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
            selfProbeLock.lock()
            let selfArguments = selfProbeArguments
            selfProbeLock.unlock()
            if let selfArguments, access(exe, X_OK) == 0 { return .helper(exe, leading: selfArguments) }
            if let slash = exe.lastIndex(of: "/") {
                let candidate = String(exe[..<slash]) + "/" + probeName
                if access(candidate, X_OK) == 0 { return .helper(candidate, leading: []) }
            }
        }
        #endif
        return .fork
    }

    #if os(Linux)
    /// Reads `path` in another process; throws when libhdf5 crashed or hung on it, or refused it.
    static func read(_ path: String, fileSize: Int) throws -> Handoff.Scan {
        let cpuLimit = Int(timeout(fileSize: fileSize).rounded(.up))
        let fd = try handoffFile()
        defer { close(fd) }
        let pid: pid_t
        switch runner {
        case .helper(let exe, let leading): pid = try spawn(exe, leading: leading, path: path, cpuSeconds: cpuLimit,
                                               memoryBytes: HDF5ProbeTool.memoryBudget(fileSize: fileSize), output: fd)
        case .fork: pid = try forkChild(path, cpuSeconds: cpuLimit, output: fd)
        }
        let (status, cpuUsed) = try wait(pid, wallLimit: wallBackstop(fileSize: fileSize))
        let signal = status & 0x7F
        if signal == SIGXCPU || (signal == SIGKILL && cpuUsed >= Double(cpuLimit) - 0.5) {
            throw ZooError(.badInput, "libhdf5 did not finish reading the file within \(cpuLimit) s of CPU time "
                           + "(corrupted or hostile HDF5); refused")
        }
        if signal == SIGKILL {
            // Not our limits: something else (the kernel's out-of-memory killer, a user) ended it.
            throw ZooError(.io, "the process reading the file with libhdf5 was killed from outside "
                           + "(SIGKILL after \((cpuUsed * 10).rounded() / 10) s of CPU; out of memory?)")
        }
        if signal != 0, signal != 0x7F {
            throw ZooError(.badInput, "libhdf5 crashed (signal \(signal)) reading the file (corrupted or hostile HDF5); refused")
        }
        // 0: the file was read; 3: the scan refused it with a ZooError. Anything else means the
        // probe died some other way (a sanitizer's report, exit() from inside a library).
        let code = (status >> 8) & 0xFF
        switch code {
        case 0:
            let (manifest, mapped, dataEnd) = try Handoff.manifest(fd: fd)
            return try Handoff.scan(manifest, mapped: mapped, dataEnd: dataEnd)
        case 3:
            throw try Handoff.error(try Handoff.manifest(fd: fd).0)
        case 64:
            throw ZooError(.io, "the HDF5 probe \(executable ?? "(fork)") did not accept its arguments (a \(probeName) from another version?)")
        default:
            throw ZooError(.badInput, "libhdf5 failed abnormally (exit status \(code)) reading the file (corrupted or hostile HDF5); refused")
        }
    }

    /// A new temporary file, already unlinked: nothing is left on disk however the read ends.
    private static func handoffFile() throws -> Int32 {
        var dir = getenv("TMPDIR").map { String(cString: $0) } ?? "/tmp"
        if dir.isEmpty { dir = "/tmp" }
        var template = Array((dir.hasSuffix("/") ? dir : dir + "/").utf8CString.dropLast()) + Array("zoo-hdf5-XXXXXX".utf8CString)
        let fd = mkstemp(&template)
        if fd < 0 {
            throw ZooError(.io, "cannot create a temporary file in \(dir) for the HDF5 probe: \(String(cString: strerror(errno)))")
        }
        unlink(template)
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        return fd
    }
    #endif

    #if os(Linux)
    /// Starts the probe executable: no inherited signal mask or handlers, /dev/null for the
    /// standard streams, an environment of `OPENBLAS_NUM_THREADS=1` only (no `HDF5_PLUGIN_PATH`:
    /// no plugin loading; and an executable that links OpenBLAS, as `zoo` does, starts no BLAS
    /// threads, which would spend the probe's CPU budget).
    private static func spawn(_ exe: String, leading: [String], path: String, cpuSeconds: Int, memoryBytes: Int, output: Int32) throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, output, HDF5ProbeTool.outputDescriptor)
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        var none = sigset_t()
        sigemptyset(&none)
        posix_spawnattr_setsigmask(&attr, &none)
        var all = sigset_t()
        sigfillset(&all)
        posix_spawnattr_setsigdefault(&attr, &all)
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        let args = [exe] + leading + [HDF5ProbeTool.cpuFlag, String(cpuSeconds), HDF5ProbeTool.memoryFlag, String(memoryBytes),
                    HDF5ProbeTool.outputFlag, String(HDF5ProbeTool.outputDescriptor), "--", path]
        let cargs: [UnsafeMutablePointer<CChar>?] = args.map { strdup($0) } + [nil]
        defer { for p in cargs { free(p) } }
        let env: [UnsafeMutablePointer<CChar>?] = [strdup("OPENBLAS_NUM_THREADS=1"), nil]
        defer { for p in env { free(p) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, exe, &actions, &attr, cargs, env)
        if rc != 0 {
            throw ZooError(.io, "cannot start \(exe) to check the file: \(String(cString: strerror(rc))) "
                           + "(set ZOO_HDF5_PROBE to the \(probeName) executable)")
        }
        return pid
    }

    /// Forks a child that probes the file (the fallback; see the type's documentation).
    private static func forkChild(_ path: String, cpuSeconds: Int, output: Int32) throws -> pid_t {
        let pid: pid_t = H5Library.sync { fork() }
        if pid < 0 {
            throw ZooError(.io, "cannot fork a process to check the file: \(String(cString: strerror(errno)))")
        }
        if pid == 0 {
            H5Library.resetAfterFork()
            let null = open("/dev/null", O_RDWR)
            if null >= 0 { dup2(null, 1); dup2(null, 2) }
            var unblock = sigset_t()
            sigemptyset(&unblock)
            sigaddset(&unblock, SIGXCPU)
            sigprocmask(SIG_UNBLOCK, &unblock, nil)
            for s in [SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGTRAP, SIGSYS, SIGXCPU] { signal(s, SIG_DFL) }
            _exit(HDF5ProbeTool.limitAndRead(path, cpuSeconds: cpuSeconds, memoryBytes: nil, output: output))
        }
        return pid
    }

    /// Waits for the probe, polling, and kills it past the wall-clock backstop.
    /// Returns the wait status and the CPU seconds the probe used.
    private static func wait(_ pid: pid_t, wallLimit: Double) throws -> (Int32, Double) {
        var start = timespec()
        clock_gettime(CLOCK_MONOTONIC, &start)
        var status: Int32 = 0
        var usage = rusage()
        var pause: UInt32 = 200
        while true {
            let r = wait4(pid, &status, WNOHANG, &usage)
            if r == pid { break }
            if r < 0, errno != EINTR {
                throw ZooError(.io, "lost the process checking the file: \(String(cString: strerror(errno)))")
            }
            var now = timespec()
            clock_gettime(CLOCK_MONOTONIC, &now)
            let elapsed = Double(now.tv_sec - start.tv_sec) + Double(now.tv_nsec - start.tv_nsec) / 1e9
            if elapsed > wallLimit {
                kill(pid, SIGKILL)
                while wait4(pid, &status, 0, &usage) < 0, errno == EINTR {}
                throw ZooError(.badInput, "libhdf5 did not finish reading the file within \(Int(wallLimit)) s (wall clock) "
                               + "(corrupted or hostile HDF5); refused")
            }
            usleep(pause)
            pause = min(pause * 2, 20_000)
        }
        let cpu = Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6
            + Double(usage.ru_stime.tv_sec) + Double(usage.ru_stime.tv_usec) / 1e6
        return (status, cpu)
    }
    #endif
}

/// The `zoo-hdf5-probe` executable's work: reads an HDF5 file with libhdf5 inside resource
/// limits and writes what it read to a descriptor the caller passed (`Handoff`). Exit status:
/// 0 read, 3 the file was refused with a `ZooError` (written to the descriptor), 64 bad arguments.
/// ZooHDF5 starts it for every HDF5 file it reads; see docs/formats-hdf5.md.
public enum HDF5ProbeTool {
    /// The flag that sets the CPU-time budget in seconds.
    public static let cpuFlag = "--cpu-seconds"
    /// The flag that sets the memory ceiling in bytes (RLIMIT_DATA); ZooHDF5 passes `memoryBudget`.
    public static let memoryFlag = "--memory-bytes"
    /// The flag that names the descriptor the result goes to (without it, the file is only read).
    public static let outputFlag = "--output-fd"
    /// The descriptor ZooHDF5 passes the result file as.
    public static let outputDescriptor: Int32 = 3

    /// The version of the libhdf5 loaded in this process (`H5get_libversion`, e.g. `1.10.8`).
    public static var libraryVersion: String { H5Library.version }

    /// How this process reads HDF5 files: the probe executable it starts (its path, followed by
    /// the arguments it passes first, e.g. `/usr/bin/zoo hdf5-probe`), `fork` for the fork fallback,
    /// or `in-process` off Linux. Chosen once per process (see `Isolation`).
    public static var probeInUse: String {
        #if os(Linux)
        switch Isolation.runner {
        case .helper(let path, let leading): return ([path] + leading).joined(separator: " ")
        case .fork: return "fork"
        }
        #else
        return "in-process"
        #endif
    }

    /// Makes the running executable its own probe: ZooHDF5 then starts it with `arguments` before
    /// the probe's own, and the executable must hand what follows them to `main` (as `zoo` does for
    /// `zoo hdf5-probe ...`), so that a tool is one binary. `ZOO_HDF5_PROBE` still comes first. Call
    /// it before the first HDF5 file is read (the probe is chosen once per process). Linux only
    /// (elsewhere files are read in the calling process).
    public static func probeWithThisExecutable(arguments: [String]) {
        Isolation.registerSelfProbe(arguments: arguments)
    }

    /// Runs the probe with `arguments` (`[program, "--cpu-seconds", N, ("--memory-bytes", M,) ("--output-fd", FD,) "--", FILE]`)
    /// and returns the exit status.
    public static func main(_ arguments: [String]) -> Int32 {
        var args = Array(arguments.dropFirst())
        var cpu: Int?
        var output: Int32?
        var memory: Int?
        while args.count >= 2, args[0] != "--" {
            switch args[0] {
            case cpuFlag: cpu = Int(args[1])
            case memoryFlag:
                guard let m = Int(args[1]), m > 0 else { return usage() }
                memory = m
            case outputFlag: output = Int32(args[1])
            default: return usage()
            }
            args.removeFirst(2)
        }
        guard args.count == 2, args[0] == "--", let cpu, cpu > 0 else { return usage() }
        if let output, output < 0 { return usage() }
        return limitAndRead(args[1], cpuSeconds: cpu, memoryBytes: memory, output: output)
    }

    /// The probe's memory ceiling (RLIMIT_DATA): 1 GiB plus four times the file's size. Generous for
    /// real files (a dataset is read into one buffer, a fraction of the file); a hostile file that
    /// makes libhdf5 allocate without bound fails in the probe instead of exhausting the machine.
    public static func memoryBudget(fileSize: Int) -> Int {
        let (times4, o1) = max(0, fileSize).multipliedReportingOverflow(by: 4)
        let (sum, o2) = times4.addingReportingOverflow(1 << 30)
        return o1 || o2 ? Int.max : sum
    }

    private static func usage() -> Int32 {
        let text = Array("usage: zoo-hdf5-probe \(cpuFlag) N [\(memoryFlag) M] [\(outputFlag) FD] -- FILE (started by ModelZoo, not by hand)\n".utf8)
        text.withUnsafeBytes { _ = write(2, $0.baseAddress, $0.count) }
        return 64
    }

    /// Sets the CPU-time budget (SIGXCPU at the soft limit, SIGKILL one second later), the memory
    /// ceiling when given, and no core dumps, then reads everything the importer reads, writing it
    /// to `output` when given. Returns 0, or 3 on a `ZooError`.
    ///
    /// The fork fallback passes no memory ceiling: its child shares the caller's address-space
    /// reservations (a sanitizer's shadow memory, say), which RLIMIT_DATA would count.
    static func limitAndRead(_ path: String, cpuSeconds: Int, memoryBytes: Int?, output: Int32?) -> Int32 {
        #if os(Linux)
        var cpu = rlimit(rlim_cur: rlim_t(cpuSeconds), rlim_max: rlim_t(cpuSeconds + 1))
        setrlimit(__rlimit_resource_t(RLIMIT_CPU.rawValue), &cpu)
        if let memoryBytes {
            var data = rlimit(rlim_cur: rlim_t(memoryBytes), rlim_max: rlim_t(memoryBytes))
            setrlimit(__rlimit_resource_t(RLIMIT_DATA.rawValue), &data)
        }
        var noCore = rlimit(rlim_cur: 0, rlim_max: 0)
        setrlimit(__rlimit_resource_t(RLIMIT_CORE.rawValue), &noCore)
        #endif
        if let output { return Handoff.write(path: path, to: output) }
        do {
            let file = try HDF5File(path: path, isolated: false)
            for r in file.records { _ = try r.load() }
            return 0
        } catch {
            return 3
        }
    }
}
