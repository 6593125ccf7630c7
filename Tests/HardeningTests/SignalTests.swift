#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing
import ZooErrors
import ZooTestSupport

/// No partial output from `zoo convert`: SIGINT / SIGTERM mid-write leave neither the
/// destination nor a temporary file; `--force` replaces atomically (the old file survives an
/// interrupted or failed conversion).
@Suite(.serialized) struct SignalTests {
    /// A ~256 MB safetensors file (64 float32 tensors of 4 MiB) written by the Python
    /// safetensors package, shared by the tests of this suite. It lives in the gitignored
    /// `.cache/scratch` and is reused by later runs (written under a temporary name and
    /// renamed, so an existing file is complete); a file in $TMPDIR would leak 256 MB a run.
    static let bigInput: Result<String, Error> = Result {
        let dir = TestSupport.root.appendingPathComponent(".cache/scratch")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let path = dir.appendingPathComponent("signal-big-v1.safetensors").path
        if FileManager.default.fileExists(atPath: path) { return path }
        let r = try TestSupport.python("""
            import os, sys, numpy as np
            from safetensors.numpy import save_file
            rng = np.random.default_rng(0)
            tmp = f"{sys.argv[1]}.{os.getpid()}.part"
            save_file({f"layer{i}.weight": rng.standard_normal((1024, 1024), dtype=np.float32) for i in range(64)}, tmp)
            os.replace(tmp, sys.argv[1])
            """, [path])
        guard r.status == 0 else { throw ZooError(.io, "python failed: \(r.stderr)") }
        return path
    }

    func temporaries(_ dir: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter { $0.contains(".zoo-tmp-") }
    }

    /// Starts `zoo` with `args`, waits until its temporary file exists in `outDir`, waits `delay`
    /// microseconds more, then calls `act` with the process id; returns how the process ended and
    /// whether `act` came before it finished. Standard error goes to `stderr` when given.
    func duringWrite(_ args: [String], outDir: String, delay: UInt32, stderr: URL? = nil,
                     _ act: (pid_t) -> Void) throws -> (reason: Process.TerminationReason, status: Int32, caught: Bool) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: TestSupport.zooBinary)
        p.arguments = args
        p.standardOutput = FileHandle.nullDevice
        p.standardError = try stderr.map { try FileHandle(forWritingTo: $0) } ?? FileHandle.nullDevice
        try p.run()
        var caught = false
        let deadline = Date().addingTimeInterval(120)
        while p.isRunning, Date() < deadline {
            if !temporaries(outDir).isEmpty {
                if delay > 0 { usleep(delay) }
                caught = p.isRunning
                act(p.processIdentifier)
                break
            }
            usleep(2_000)
        }
        p.waitUntilExit()
        return (p.terminationReason, p.terminationStatus, caught)
    }

    /// Starts `zoo convert`, waits until its temporary file exists, sends `sig`, and returns
    /// how the process ended and whether the signal arrived before it finished.
    func interrupt(_ args: [String], outDir: String, with sig: Int32) throws -> (reason: Process.TerminationReason, status: Int32, caught: Bool) {
        // Let it write a little first.
        try duringWrite(args, outDir: outDir, delay: 20_000) { kill($0, sig) }
    }

    @Test(arguments: [SIGINT, SIGTERM]) func signalLeavesNoOutputAndNoTemporaryFile(_ sig: Int32) throws {
        let input = try Self.bigInput.get()
        let dir = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("out.safetensors").path
        let r = try interrupt(["convert", input, "-o", out, "--dtype", "f16"], outDir: dir.path, with: sig)
        try #require(r.caught, "the conversion finished before it could be interrupted")
        // Killed by the signal (re-raised after cleanup), as a shell expects.
        #expect(r.reason == .uncaughtSignal && r.status == sig, "ended with \(r.reason) \(r.status)")
        #expect(!FileManager.default.fileExists(atPath: out), "partial destination left")
        #expect(temporaries(dir.path).isEmpty, "temporary file left: \(temporaries(dir.path))")
    }

    /// Another process truncates the (mapped) input mid-conversion: SIGBUS, which zoo turns into
    /// one line naming the input, exit status 3, and no output or temporary file.
    @Test func truncatedInputStopsWithOneLineNamingIt() throws {
        let dir = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let input = dir.appendingPathComponent("in.safetensors").path
        try FileManager.default.copyItem(atPath: try Self.bigInput.get(), toPath: input)
        let outDir = dir.appendingPathComponent("out").path
        try FileManager.default.createDirectory(atPath: outDir, withIntermediateDirectories: false)
        let out = outDir + "/out.safetensors"
        let errURL = dir.appendingPathComponent("stderr.txt")
        FileManager.default.createFile(atPath: errURL.path, contents: nil)
        let r = try duringWrite(["convert", input, "-o", out, "--dtype", "f16"], outDir: outDir, delay: 0, stderr: errURL) { _ in
            #expect(truncate(input, 4096) == 0)
        }
        try #require(r.caught, "the conversion finished before the input could be truncated")
        let stderr = try String(contentsOf: errURL, encoding: .utf8)
        #expect(r.reason == .exit && r.status == 3, "ended with \(r.reason) \(r.status): \(stderr)")
        #expect(stderr == "zoo: \(input): the file shrank or could not be read while in use (SIGBUS); stopped\n", "\(stderr)")
        #expect(!FileManager.default.fileExists(atPath: out), "partial destination left")
        #expect(temporaries(outDir).isEmpty, "temporary file left: \(temporaries(outDir))")
    }

    @Test func interruptedForceKeepsTheOldFile() throws {
        let input = try Self.bigInput.get()
        let dir = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("out.safetensors").path
        try Data("old content".utf8).write(to: URL(fileURLWithPath: out))
        let r = try interrupt(["convert", input, "-o", out, "--force", "--dtype", "f16"], outDir: dir.path, with: SIGINT)
        try #require(r.caught, "the conversion finished before it could be interrupted")
        #expect(try String(contentsOfFile: out, encoding: .utf8) == "old content")
        #expect(temporaries(dir.path).isEmpty)
    }

    @Test func failedForceKeepsTheOldFileAndCompletedForceReplacesIt() throws {
        let dir = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("out.safetensors").path
        try Data("old content".utf8).write(to: URL(fileURLWithPath: out))
        // A safetensors whose second tensor lies past the end: fails after the header.
        let bad = dir.appendingPathComponent("bad.safetensors").path
        let header = #"{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"b":{"dtype":"F32","shape":[4],"data_offsets":[16,32]}}"#
        var bytes = withUnsafeBytes(of: UInt64(header.utf8.count).littleEndian) { Array($0) } + Array(header.utf8)
        bytes += [UInt8](repeating: 0, count: 20)
        try Data(bytes).write(to: URL(fileURLWithPath: bad))
        let failed = try TestSupport.zoo(["convert", bad, "-o", out, "--force"])
        #expect(failed.status == 2, "\(failed.stderr)")
        #expect(try String(contentsOfFile: out, encoding: .utf8) == "old content")
        #expect(temporaries(dir.path).isEmpty)
        // Without --force an existing destination is an I/O error, and untouched.
        let good = dir.appendingPathComponent("good.safetensors").path
        try Data(Array(bytes.prefix(8 + header.utf8.count)) + [UInt8](repeating: 0, count: 32)).write(to: URL(fileURLWithPath: good))
        let refused = try TestSupport.zoo(["convert", good, "-o", out])
        #expect(refused.status == 3, "\(refused.stderr)")
        #expect(try String(contentsOfFile: out, encoding: .utf8) == "old content")
        // With --force a good conversion replaces it.
        let replaced = try TestSupport.zoo(["convert", good, "-o", out, "--force"])
        #expect(replaced.status == 0, "\(replaced.stderr)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: out)).prefix(8) != Data("old cont".utf8))
        #expect(temporaries(dir.path).isEmpty)
    }
}
