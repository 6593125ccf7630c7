import Foundation
import Testing
import ZooJSON
import ZooTestSupport

/// `zoo env` (docs/cli.md "zoo env"): every fact compared with an independent source on this
/// machine: OpenBLAS's own start-up report, the installed Debian packages, /proc/cpuinfo, a cache
/// folder of known size.
@Suite struct EnvCommandTests {
    /// The keys docs/cli.md documents, in the order the text output prints them.
    static let keys = [
        "zoo_version", "zoo_commit", "zoo_commit_source", "swift_version", "os", "kernel",
        "cpu_model", "cpu_cores", "cpu_cores_active", "cpu_isa_flags", "kernel_isa",
        "blas", "blas_config", "blas_core", "blas_threads", "onednn",
        "libhdf5", "libpng", "libjpeg_turbo", "loaded_libraries", "hdf5_probe",
        "cache_folder", "cache_bytes", "cache_files",
    ]

    static func report(_ environment: [String: String] = [:]) throws -> (JSONValue, String) {
        let r = try TestSupport.zoo(["env", "--json"], environment: environment)
        #expect(r.status == 0, "\(r.stderr)")
        return (try JSONValue.parse(r.stdout), r.stderr)
    }

    static func dpkgVersion(_ package: String) throws -> String {
        let r = try TestSupport.run("/usr/bin/dpkg-query", ["-W", "-f=${Version}", package])
        #expect(r.status == 0, "dpkg-query \(package): \(r.stderr)")
        return r.stdout
    }

    @Test func jsonHasEveryDocumentedKeyAndTextMatches() throws {
        let (json, _) = try Self.report()
        let object = try #require(json.objectValue)
        #expect(Set(object.map(\.0)) == Set(Self.keys))
        #expect(json["zoo_version"]?.stringValue == (try TestSupport.zoo(["--version"])).stdout.trimmingCharacters(in: .whitespacesAndNewlines))
        #if os(Linux)
        // oneDNN is linked and runs convolutions here: version and instruction set.
        let onednn = json["onednn"]?.stringValue ?? ""
        #expect(onednn.firstMatch(of: /^oneDNN 2\.\d+\.\d+ \([a-z0-9.-]+\)$/) != nil, "\(onednn)")
        #endif
        // The text form: one `key: value` line per documented key, in order.
        let text = try TestSupport.zoo(["env"])
        #expect(text.status == 0)
        let lines = text.stdout.split(separator: "\n").map(String.init)
        #expect(lines.map { String($0.prefix { $0 != ":" }) } == Self.keys)
        #expect(lines.contains("libpng: \(json["libpng"]?.stringValue ?? "?")"))
    }

    /// OpenBLAS prints the core it picked when `OPENBLAS_VERBOSE=2` (its own start-up code, not
    /// `openblas_get_corename`); forcing another core with `OPENBLAS_CORETYPE` must change the report.
    @Test func blasCoreIsTheOneOpenBLASChose() throws {
        let (json, stderr) = try Self.report(["OPENBLAS_VERBOSE": "2"])
        let core = try #require(json["blas_core"]?.stringValue)
        let said = stderr.split(separator: "\n").first { $0.hasPrefix("Core: ") }.map { String($0.dropFirst(6)) }
        #expect(said?.lowercased() == core.lowercased(), "OpenBLAS said \(said ?? "nothing"), zoo env says \(core)")
        #expect(json["blas_config"]?.stringValue?.contains("OpenBLAS") == true)
        #expect(json["blas_threads"]?.intValue == 1)
        // Negative control: another core forced at load time is reported as such.
        let other = core.lowercased() == "nehalem" ? "Prescott" : "Nehalem"
        let (forced, _) = try Self.report(["OPENBLAS_CORETYPE": other])
        #expect(forced["blas_core"]?.stringValue?.lowercased() == other.lowercased())
    }

    @Test func libraryVersionsAreTheInstalledPackages() throws {
        let (json, _) = try Self.report()
        let png = try #require(json["libpng"]?.stringValue)
        let jpeg = try #require(json["libjpeg_turbo"]?.stringValue)
        let hdf5 = try #require(json["libhdf5"]?.stringValue)
        // Debian versions: 1.6.39-2+deb12u4, 1:2.1.5-2, 1.10.8+repack1-1.
        func upstream(_ v: String) -> String {
            let noEpoch = v.split(separator: ":", maxSplits: 1).last.map(String.init) ?? v
            return String(noEpoch.prefix { $0.isNumber || $0 == "." })
        }
        #expect(upstream(try Self.dpkgVersion("libpng16-16")) == png)
        #expect(jpeg.hasPrefix(upstream(try Self.dpkgVersion("libjpeg62-turbo")) + " "))
        #expect(upstream(try Self.dpkgVersion("libhdf5-103-1")) == hdf5)
        let loaded = json["loaded_libraries"]?.arrayValue?.compactMap(\.stringValue) ?? []
        for name in ["libpng16", "libjpeg", "libhdf5", "openblas", "libdnnl"] {
            #expect(loaded.contains { $0.contains(name) }, "\(name) not among \(loaded)")
        }
    }

    @Test func isaFlagsAreCPUInfos() throws {
        let (json, _) = try Self.report()
        let cpuinfo = try String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)
        let flagsLine = try #require(cpuinfo.split(separator: "\n").first { $0.hasPrefix("flags") })
        let flags = Set(flagsLine.split(separator: ":", maxSplits: 1)[1].split(separator: " ").map(String.init))
        let reported = json["cpu_isa_flags"]?.arrayValue?.compactMap(\.stringValue) ?? []
        for flag in ["avx", "avx2", "fma", "avx512f"] {
            #expect(reported.contains(flag) == flags.contains(flag), "\(flag)")
        }
        #expect(reported.allSatisfy(flags.contains))
        let model = cpuinfo.split(separator: "\n").first { $0.hasPrefix("model name") }
            .map { $0.split(separator: ":", maxSplits: 1)[1].trimmingCharacters(in: .whitespaces) }
        #expect(json["cpu_model"]?.stringValue == model)
        #expect(json["kernel_isa"]?.stringValue?.hasPrefix("x86-64 baseline") == true)
    }

    /// The cache's size: a folder with files of known sizes (one nested, one a symbolic link that must
    /// not be followed) gives exactly their sum.
    @Test func cacheSizeIsTheFolders() throws {
        let dir = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let models = dir.appendingPathComponent("models")
        try FileManager.default.createDirectory(at: models, withIntermediateDirectories: true)
        try Data(count: 12_345).write(to: models.appendingPathComponent("a.safetensors"))
        try Data(count: 678).write(to: dir.appendingPathComponent("b"))
        try FileManager.default.createSymbolicLink(atPath: dir.appendingPathComponent("link").path,
                                                   withDestinationPath: models.appendingPathComponent("a.safetensors").path)
        let (json, _) = try Self.report(["ZOO_HOME": dir.path])
        #expect(json["cache_folder"]?.stringValue == dir.path)
        #expect(json["cache_bytes"]?.intValue == 13_023)
        #expect(json["cache_files"]?.intValue == 2)
        // Negative control: another folder size is reported after a file grows.
        try Data(count: 1000).write(to: dir.appendingPathComponent("b"))
        let (grown, _) = try Self.report(["ZOO_HOME": dir.path])
        #expect(grown["cache_bytes"]?.intValue == 13_345)
    }

    @Test func commitComesFromZOOCOMMIT() throws {
        let (json, _) = try Self.report(["ZOO_COMMIT": "0123abc"])
        #expect(json["zoo_commit"]?.stringValue == "0123abc")
        #expect(json["zoo_commit_source"]?.stringValue == "ZOO_COMMIT")
        // Unset: the test runs the zoo of this checkout's .build, so git names its HEAD.
        let (checkout, _) = try Self.report(["ZOO_COMMIT": ""])
        let head = try TestSupport.run("/usr/bin/env", ["git", "-C", TestSupport.root.path, "rev-parse", "HEAD"])
        #expect(checkout["zoo_commit"]?.stringValue == head.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
    }
}
