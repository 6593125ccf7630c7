#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import ZooKernels

/// ModelZoo's version: the one `zoo --version` prints and `zoo env` reports.
public enum ModelZooVersion {
    /// The version string (`0.1.0`).
    public static let current = "0.1.0"
}

/// What `zoo env` reports for a bug report: versions, the machine, the compute and I/O libraries
/// as this process loaded them, and the model cache. Every fact is read from the running process
/// (`gather`), except the Swift compiler version, which is the one that compiled ModelZoo.
/// The JSON keys are the `CodingKeys`' raw values (documented in docs/cli.md).
public struct EnvironmentReport: Codable, Sendable, Equatable {
    /// ModelZoo's version (`ModelZooVersion.current`).
    public var zooVersion: String
    /// The git commit zoo was built from: `$ZOO_COMMIT` when set, else `git rev-parse HEAD` of the
    /// checkout when the executable runs from a checkout's `.build` folder, else `unknown`.
    public var zooCommit: String
    /// Where `zooCommit` came from: `ZOO_COMMIT`, `checkout` or `unknown`.
    public var zooCommitSource: String
    /// The Swift compiler that built ModelZoo, from an `#if compiler(>=...)` ladder (major.minor).
    public var swiftVersion: String
    /// The operating system: `/etc/os-release`'s PRETTY_NAME (Linux), or `uname`'s system name.
    public var os: String
    /// `uname`: system, release and machine (`Linux 6.1.0-18-amd64 x86_64`).
    public var kernel: String
    /// The CPU model (`/proc/cpuinfo`'s first "model name"), or `unknown`.
    public var cpuModel: String
    /// Logical CPUs of the machine.
    public var cpuCores: Int
    /// Logical CPUs this process may use.
    public var cpuCoresActive: Int
    /// The vector-instruction flags of `/proc/cpuinfo` among `EnvironmentReport.isaFlagsOfInterest`,
    /// in that order (`avx`, `avx2`, `fma`, `avx512f`, ...).
    public var cpuISAFlags: [String]
    /// The instruction set ZooKernels' own code is compiled for (`KernelBackend.kernelISA`).
    public var kernelISA: String
    /// The BLAS linked for GEMM (`OpenBLAS` or `Accelerate`).
    public var blas: String
    /// OpenBLAS's build configuration (`openblas_get_config()`), or nil.
    public var blasConfig: String?
    /// The CPU kernel OpenBLAS chose at run time (`openblas_get_corename()`), or nil.
    public var blasCore: String?
    /// Threads per BLAS call (`openblas_get_num_threads()`), or nil.
    public var blasThreads: Int?
    /// What runs convolutions: `oneDNN 2.6.0 (avx2)` (version, and the instruction set its JIT kernels
    /// use here), `not available` (Linux without a working libdnnl), `not linked` (Apple platforms), or
    /// `off (ZOO_KERNELS=own)`.
    public var onednn: String
    /// The loaded libhdf5's version (`H5get_libversion`).
    public var libhdf5: String
    /// The loaded libpng's version (`png_access_version_number()`).
    public var libpng: String
    /// libjpeg-turbo's version from the headers ModelZoo was built with (no run-time query exists).
    public var libjpegTurbo: String
    /// The shared-library files of OpenBLAS, libhdf5, libjpeg and libpng this process mapped
    /// (from `/proc/self/maps`; empty elsewhere).
    public var loadedLibraries: [String]
    /// How HDF5 files are read: the probe executable and its leading arguments, `fork`, or `in-process`.
    public var hdf5Probe: String
    /// The model cache folder (`ModelCache`: `$ZOO_HOME`, `$XDG_CACHE_HOME/modelzoo`, `~/.cache/modelzoo`),
    /// or the reason there is none.
    public var cacheFolder: String
    /// Total bytes of the regular files under the cache folder (0 when it does not exist).
    public var cacheBytes: Int
    /// Number of regular files under the cache folder.
    public var cacheFiles: Int

    /// The JSON keys, in the order `zoo env` prints them.
    public enum CodingKeys: String, CodingKey, CaseIterable {
        case zooVersion = "zoo_version", zooCommit = "zoo_commit", zooCommitSource = "zoo_commit_source"
        case swiftVersion = "swift_version", os, kernel
        case cpuModel = "cpu_model", cpuCores = "cpu_cores", cpuCoresActive = "cpu_cores_active"
        case cpuISAFlags = "cpu_isa_flags", kernelISA = "kernel_isa"
        case blas, blasConfig = "blas_config", blasCore = "blas_core", blasThreads = "blas_threads", onednn
        case libhdf5, libpng, libjpegTurbo = "libjpeg_turbo", loadedLibraries = "loaded_libraries"
        case hdf5Probe = "hdf5_probe", cacheFolder = "cache_folder", cacheBytes = "cache_bytes", cacheFiles = "cache_files"
    }

    /// The `/proc/cpuinfo` flags `cpuISAFlags` reports when present (x86 `flags`, arm `Features`).
    public static let isaFlagsOfInterest = [
        "sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16", "amx_tile",
        "asimd", "asimddp", "sve", "sve2", "bf16", "i8mm",
    ]

    /// Gathers the report from the running process and `environment` (`ZOO_COMMIT`, the cache's
    /// `ZOO_HOME`/`XDG_CACHE_HOME`/`HOME`).
    public static func gather(environment: [String: String] = ProcessInfo.processInfo.environment) -> EnvironmentReport {
        let commit = Self.commit(environment: environment)
        let openBLAS = KernelBackend.openBLAS
        let cpuinfo = readWhole("/proc/cpuinfo") ?? ""
        let cache: (folder: String, bytes: Int, files: Int)
        do {
            let root = try ModelCache(environment: environment).root
            let size = folderSize(root)
            cache = (root, size.bytes, size.files)
        } catch {
            cache = ("none (\(error))", 0, 0)
        }
        return EnvironmentReport(
            zooVersion: ModelZooVersion.current, zooCommit: commit.value, zooCommitSource: commit.source,
            swiftVersion: compilerVersion, os: operatingSystem(), kernel: unameLine(),
            cpuModel: cpuinfoValue(cpuinfo, "model name") ?? "unknown",
            cpuCores: ProcessInfo.processInfo.processorCount, cpuCoresActive: ProcessInfo.processInfo.activeProcessorCount,
            cpuISAFlags: isaFlags(cpuinfo: cpuinfo), kernelISA: KernelBackend.kernelISA,
            blas: KernelBackend.blasName, blasConfig: openBLAS?.config, blasCore: openBLAS?.coreName,
            blasThreads: openBLAS?.threads, onednn: EnvironmentReport.oneDNN,
            libhdf5: HDF5ProbeTool.libraryVersion, libpng: ImageLibraries.pngVersion, libjpegTurbo: ImageLibraries.jpegTurboVersion,
            loadedLibraries: loadedLibraries(), hdf5Probe: HDF5ProbeTool.probeInUse,
            cacheFolder: cache.folder, cacheBytes: cache.bytes, cacheFiles: cache.files)
    }

    /// The report as JSON (keys sorted), in the layout of every other `--json` output.
    public func json() throws -> String {
        try JSONValue(encoding: self, sortedKeys: true).serialized(pretty: true)
    }

    /// The report as `key: value` lines in `CodingKeys` order, from its own JSON encoding (so the
    /// text and `--json` cannot disagree): arrays joined with `, `, a missing value as `none`.
    public func lines() throws -> [String] {
        let value = try JSONValue(encoding: self, sortedKeys: true)
        return CodingKeys.allCases.map { key in
            "\(key.rawValue): " + Self.text(value[key.rawValue] ?? .null)
        }
    }

    private static func text(_ value: JSONValue) -> String {
        switch value {
        case .string(let s): return s
        case .array(let a): return a.map(text).joined(separator: ", ")
        case .null: return "none"
        default: return value.serialized()
        }
    }

    /// The compiler version, from a compile-time ladder.
    static var compilerVersion: String {
        #if compiler(>=7.0)
        return "7.0 or later"
        #elseif compiler(>=6.4)
        return "6.4"
        #elseif compiler(>=6.3)
        return "6.3"
        #elseif compiler(>=6.2)
        return "6.2"
        #elseif compiler(>=6.1)
        return "6.1"
        #else
        return "6.0"
        #endif
    }

    private static func commit(environment: [String: String]) -> (value: String, source: String) {
        if let c = environment["ZOO_COMMIT"], !c.isEmpty { return (c, "ZOO_COMMIT") }
        // Running from a checkout's build folder (`swift build`, `swift run`): ask git about that checkout.
        let exe = CommandLine.arguments.first.map { URL(fileURLWithPath: $0).resolvingSymlinksInPath().path } ?? ""
        guard let range = exe.range(of: "/.build/") else { return ("unknown", "unknown") }
        let checkout = String(exe[..<range.lowerBound])
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["git", "-C", checkout, "rev-parse", "HEAD"]
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice
        guard (try? process.run()) != nil else { return ("unknown", "unknown") }
        let data = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let hash = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard process.terminationStatus == 0, hash.count == 40 || hash.count == 64 else { return ("unknown", "unknown") }
        return (hash, "checkout")
    }

    private static func operatingSystem() -> String {
        if let release = readWhole("/etc/os-release") {
            for line in release.split(separator: "\n") where line.hasPrefix("PRETTY_NAME=") {
                return String(line.dropFirst("PRETTY_NAME=".count)).trimmingCharacters(in: CharacterSet(charactersIn: "\"'"))
            }
        }
        var u = utsname()
        uname(&u)
        return field(&u.sysname)
    }

    private static func unameLine() -> String {
        var u = utsname()
        guard uname(&u) == 0 else { return "unknown" }
        return [field(&u.sysname), field(&u.release), field(&u.machine)].joined(separator: " ")
    }

    private static func field<T>(_ value: inout T) -> String {
        withUnsafeBytes(of: &value) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
    }

    /// The value of the first `key : value` line of /proc/cpuinfo named `key`.
    static func cpuinfoValue(_ cpuinfo: String, _ key: String) -> String? {
        for line in cpuinfo.split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 1)
            if parts.count == 2, parts[0].trimmingCharacters(in: .whitespaces) == key {
                return parts[1].trimmingCharacters(in: .whitespaces)
            }
        }
        return nil
    }

    static func isaFlags(cpuinfo: String) -> [String] {
        let line = cpuinfoValue(cpuinfo, "flags") ?? cpuinfoValue(cpuinfo, "Features") ?? ""
        let flags = Set(line.split(separator: " ").map(String.init))
        return isaFlagsOfInterest.filter(flags.contains)
    }

    private static func loadedLibraries() -> [String] {
        guard let maps = readWhole("/proc/self/maps") else { return [] }
        var seen: [String] = []
        for line in maps.split(separator: "\n") {
            guard let slash = line.firstIndex(of: "/") else { continue }
            let path = String(line[slash...])
            let name = path.split(separator: "/").last.map(String.init) ?? ""
            guard name.hasPrefix("lib"), name.contains(".so"),
                  ["openblas", "dnnl", "gomp", "hdf5", "jpeg", "png"].contains(where: name.contains), !seen.contains(path) else { continue }
            seen.append(path)
        }
        return seen
    }

    /// A whole file read to its end with `read(2)`: /proc files report size 0, and Foundation's
    /// `String(contentsOfFile:)` stops after the first 4 KB of them.
    static func readWhole(_ path: String) -> String? {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while bytes.count < 64 << 20 {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0, errno == EINTR { continue }
            guard n > 0 else { break }
            bytes += chunk[0..<n]
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Total size and count of the regular files under `root` (symbolic links are not followed).
    static func folderSize(_ root: String) -> (bytes: Int, files: Int) {
        var bytes = 0, files = 0
        guard let walker = FileManager.default.enumerator(atPath: root) else { return (0, 0) }
        while let relative = walker.nextObject() as? String {
            var st = stat()
            guard lstat(root + "/" + relative, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { continue }
            bytes += Int(st.st_size)
            files += 1
        }
        return (bytes, files)
    }
}

extension EnvironmentReport {
    /// The `onednn` value of this process.
    static var oneDNN: String {
        #if os(Linux)
        guard ConvolutionBackend.oneDNNAvailable else { return "not available" }
        let on = ConvolutionBackend.automatic.description
        return ConvolutionBackend.processDefault == .own ? "off (ZOO_KERNELS=own); \(on)" : on
        #else
        return "not linked"
        #endif
    }
}
