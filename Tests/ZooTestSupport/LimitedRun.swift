import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Running a command under a file-size limit and measuring its peak memory, for the tests of
/// inputs that ask for huge outputs: a regression then fails at the limit instead of filling the
/// machine's disk.
extension TestSupport {
    /// What `runLimited` observed.
    public struct LimitedResult: Sendable {
        /// Exit status (128 + the signal when killed by one).
        public var status: Int32
        /// Standard output.
        public var stdout: String
        /// Standard error.
        public var stderr: String
        /// The child's peak resident memory in bytes (`wait4`'s `ru_maxrss`).
        public var maxRSS: Int
    }

    /// `prlimit`, which runs a command with resource limits (util-linux, on every Debian).
    public static var prlimit: String? {
        ["/usr/bin/prlimit", "/bin/prlimit"].first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// Runs `executable arguments` with RLIMIT_FSIZE = `fileSizeLimit` bytes (through `prlimit`,
    /// which execs the command in the same process) and returns its output and peak RSS.
    public static func runLimited(_ executable: String, _ arguments: [String], fileSizeLimit: Int) throws -> LimitedResult {
        guard let prlimit else { throw ZooTestError("prlimit (util-linux) is needed to run a command under a file-size limit") }
        let argv = [prlimit, "--fsize=\(fileSizeLimit)", "--", executable] + arguments
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let outPath = dir.appendingPathComponent("out").path, errPath = dir.appendingPathComponent("err").path
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_addopen(&actions, 2, errPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        var cArgs: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
        defer { for p in cArgs { free(p) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, prlimit, &actions, nil, &cArgs, environ)
        guard spawned == 0 else { throw ZooTestError("cannot run \(prlimit): \(String(cString: strerror(spawned)))") }
        var status: Int32 = 0
        var usage = rusage()
        while wait4(pid, &status, 0, &usage) < 0 {
            guard errno == EINTR else { throw ZooTestError("wait4 failed: \(String(cString: strerror(errno)))") }
        }
        let signalled = (status & 0x7F) != 0
        let code = signalled ? 128 + (status & 0x7F) : (status >> 8) & 0xFF
        let out = (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? ""
        let err = (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? ""
        return LimitedResult(status: code, stdout: out, stderr: err, maxRSS: Int(usage.ru_maxrss) * 1024)
    }

    /// `zoo` under a file-size limit (`runLimited`).
    public static func zooLimited(_ arguments: [String], fileSizeLimit: Int) throws -> LimitedResult {
        try runLimited(zooBinary, arguments, fileSizeLimit: fileSizeLimit)
    }

    /// True when this process may create a private mount namespace with a tmpfs (`unshare -rm`):
    /// the tests of a full file system then run on a small one of their own.
    public static let canMountPrivateTmpfs: Bool = {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/unshare") else { return false }
        guard let dir = try? temporaryDirectory() else { return false }
        defer { try? FileManager.default.removeItem(at: dir) }
        let r = try? run("/usr/bin/unshare", ["-rm", "/bin/sh", "-c", "mount -t tmpfs -o size=1m tmpfs \"$0\"", dir.path])
        return r?.status == 0
    }()

    /// Runs `zoo arguments` in a private mount namespace where `mountPoint` (an empty folder) is a
    /// fresh tmpfs of `bytes` bytes, also under a file-size limit of 4x `bytes` (above the tmpfs, so the file system is what refuses); returns its result and
    /// the names left in `mountPoint` afterwards (the tmpfs disappears with the namespace).
    public static func zooOnSmallFileSystem(_ arguments: [String], mountPoint: String, bytes: Int) throws -> (ProcessResult, [String]) {
        guard let prlimit else { throw ZooTestError("prlimit (util-linux) is needed") }
        let listing = mountPoint + ".listing"
        defer { try? FileManager.default.removeItem(atPath: listing) }
        let script = """
        mnt="$1"; size="$2"; list="$3"; shift 3
        mount -t tmpfs -o size="$size" tmpfs "$mnt" || exit 99
        "$@"; rc=$?
        ls -A "$mnt" > "$list"
        exit $rc
        """
        let r = try run("/usr/bin/unshare", ["-rm", "/bin/sh", "-c", script, "sh", mountPoint, String(bytes), listing,
                                             prlimit, "--fsize=\(4 * bytes)", "--", zooBinary] + arguments)
        let names = ((try? String(contentsOfFile: listing, encoding: .utf8)) ?? "")
            .split(separator: "\n").map(String.init)
        return (r, names)
    }
}

/// A failure of the test machinery itself (not of the code under test).
public struct ZooTestError: Error, CustomStringConvertible {
    /// What went wrong.
    public let description: String
    /// Creates an error.
    public init(_ description: String) { self.description = description }
}
