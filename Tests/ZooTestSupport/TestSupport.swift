import Foundation
import ZooErrors

/// Locations and process helpers shared by the test targets.
///
/// Fixtures come from the real frameworks: `make test` runs `tools/fixtures/generate.sh`
/// first, which writes them to `.cache/fixtures` (or `$ZOO_FIXTURES`). Tests never skip
/// when a fixture is missing: they fail, naming the file.
public enum TestSupport {
    /// The repository root.
    public static let root: URL = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url
    }()

    /// The folder the fixture generators write to.
    public static var fixtures: URL {
        if let env = ProcessInfo.processInfo.environment["ZOO_FIXTURES"], !env.isEmpty { return URL(fileURLWithPath: env) }
        return root.appendingPathComponent(".cache/fixtures")
    }

    /// Path of a fixture; fails clearly when it was not generated.
    public static func fixture(_ relative: String) throws -> String {
        let path = fixtures.appendingPathComponent(relative).path
        guard FileManager.default.fileExists(atPath: path) else {
            throw ZooError(.io, "fixture missing; run `make fixtures` (tools/fixtures/generate.sh)", file: path)
        }
        return path
    }

    /// Path of a file committed under Tests/Fixtures.
    public static func committed(_ relative: String) -> String {
        root.appendingPathComponent("Tests/Fixtures").appendingPathComponent(relative).path
    }

    /// The Python of the reference environment.
    public static var python: String {
        if let env = ProcessInfo.processInfo.environment["ZOO_PYTHON"], !env.isEmpty { return env }
        return root.appendingPathComponent(".venv/bin/python").path
    }

    /// The built `zoo` executable (beside the test bundle, or `$ZOO_BIN`).
    public static var zooBinary: String {
        if let env = ProcessInfo.processInfo.environment["ZOO_BIN"], !env.isEmpty { return env }
        let exe = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        var dir = exe.deletingLastPathComponent()
        // swift test runs <build>/<Package>PackageTests.xctest (a file on Linux, a bundle on macOS).
        for _ in 0..<4 {
            let candidate = dir.appendingPathComponent("zoo").path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
            dir.deleteLastPathComponent()
        }
        return root.appendingPathComponent(".build/debug/zoo").path
    }

    /// Result of running a process.
    public struct ProcessResult: Sendable {
        /// Exit status.
        public var status: Int32
        /// Standard output.
        public var stdout: String
        /// Standard error.
        public var stderr: String
    }

    /// Runs an executable with arguments; waits for it.
    @discardableResult
    public static func run(_ executable: String, _ arguments: [String], environment: [String: String] = [:],
                           currentDirectory: String? = nil) throws -> ProcessResult {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: executable)
        p.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        for (k, v) in environment { env[k] = v }
        p.environment = env
        if let currentDirectory { p.currentDirectoryURL = URL(fileURLWithPath: currentDirectory) }
        let outURL = FileManager.default.temporaryDirectory.appendingPathComponent("zoo-test-\(UUID().uuidString).out")
        let errURL = FileManager.default.temporaryDirectory.appendingPathComponent("zoo-test-\(UUID().uuidString).err")
        _ = FileManager.default.createFile(atPath: outURL.path, contents: nil)
        _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
        defer {
            try? FileManager.default.removeItem(at: outURL)
            try? FileManager.default.removeItem(at: errURL)
        }
        let outHandle = try FileHandle(forWritingTo: outURL)
        let errHandle = try FileHandle(forWritingTo: errURL)
        p.standardOutput = outHandle
        p.standardError = errHandle
        p.standardInput = FileHandle.nullDevice
        try p.run()
        p.waitUntilExit()
        try outHandle.close()
        try errHandle.close()
        let out = String(decoding: try Data(contentsOf: outURL), as: UTF8.self)
        let err = String(decoding: try Data(contentsOf: errURL), as: UTF8.self)
        return ProcessResult(status: p.terminationStatus, stdout: out, stderr: err)
    }

    /// Runs the built `zoo` tool.
    @discardableResult
    public static func zoo(_ arguments: [String], environment: [String: String] = [:]) throws -> ProcessResult {
        try run(zooBinary, arguments, environment: environment)
    }

    /// Runs Python code in the reference environment (`python -c CODE args...`).
    @discardableResult
    public static func python(_ code: String, _ arguments: [String] = []) throws -> ProcessResult {
        try run(python, ["-c", code] + arguments, environment: ["TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONHASHSEED": "0"])
    }

    /// A fresh temporary folder, removed by the caller when done.
    public static func temporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("zoo-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }
}
