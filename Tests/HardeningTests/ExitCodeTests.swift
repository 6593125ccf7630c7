import Foundation
import Testing
import ZooErrors
import ZooTestSupport

/// The CLI's exit codes and message format (docs/cli.md): 0 ok, 1 usage, 2 bad or
/// unsupported input or mismatch, 3 I/O; errors are one `zoo: FILE: ...` line on stderr.
@Suite struct ExitCodeTests {
    @Test func usageErrorsExitOneWithAZooLine() throws {
        for args in [["inspect"], ["no-such-command"], ["inspect", "--no-such-flag", "x"], ["inspect", "a", "b"]] {
            let r = try TestSupport.zoo(args)
            #expect(r.status == 1, "\(args): \(r.status) \(r.stderr)")
            #expect(r.stderr.hasPrefix("zoo: "), "\(args): \(r.stderr)")
            #expect(!r.stderr.contains("Error: "), "\(args): \(r.stderr)")
            #expect(r.stdout.isEmpty)
        }
    }

    @Test func helpAndVersionExitZero() throws {
        for args in [["--help"], ["inspect", "--help"], ["--version"]] {
            let r = try TestSupport.zoo(args)
            #expect(r.status == 0, "\(args): \(r.stderr)")
            #expect(!r.stdout.isEmpty)
        }
    }

    /// A FIFO would block `open(2)` until a writer comes (a hang), a device maps as empty: both
    /// are refused at once as not regular files. Run under `timeout`, so a regression fails the
    /// test instead of hanging the suite.
    @Test func pipesAndDevicesAreRefusedNotWaitedOn() throws {
        let dir = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let fifo = dir.appendingPathComponent("pipe.safetensors").path
        try #require(mkfifo(fifo, 0o600) == 0)
        let cases: [([String], String)] = [
            (["inspect", fifo], fifo), (["inspect", "/dev/zero"], "/dev/zero"),
            (["convert", fifo, "-o", dir.appendingPathComponent("out.safetensors").path], fifo),
        ]
        for (args, named) in cases {
            let r = try TestSupport.run("/usr/bin/timeout", ["20", TestSupport.zooBinary] + args)
            #expect(r.status == 3, "\(args): \(r.status) \(r.stderr)")
            #expect(r.stderr == "zoo: \(named): not a regular file (a pipe, socket or device); give a file on disk\n",
                    "\(args): \(r.stderr)")
        }
        #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent("out.safetensors").path))
    }

    @Test func inputAndIOErrorsUseTheirKindsCode() throws {
        let dir = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let garbage = dir.appendingPathComponent("garbage.bin").path
        try Data("this is not a checkpoint".utf8).write(to: URL(fileURLWithPath: garbage))
        let truncated = dir.appendingPathComponent("t.safetensors").path
        try Data([0x40, 0, 0, 0, 0, 0, 0, 0] + Array(#"{"a":{"dtype"#.utf8)).write(to: URL(fileURLWithPath: truncated))
        let cases: [([String], Int32, String)] = [
            (["inspect", dir.appendingPathComponent("missing").path], 3, "cannot open"),
            (["inspect", dir.path], 3, "directory"),
            (["inspect", garbage], 2, "unknown format"),
            (["inspect", truncated], 2, "past the end"),
        ]
        for (args, code, words) in cases {
            let r = try TestSupport.zoo(args)
            #expect(r.status == code, "\(args): \(r.status) \(r.stderr)")
            #expect(r.stderr.hasPrefix("zoo: \(args[1])"), "\(args): \(r.stderr)")
            #expect(r.stderr.contains(words), "\(args): \(r.stderr)")
            #expect(r.stderr.split(separator: "\n").count == 1, "\(args): \(r.stderr)")
        }
    }

    @Test func kindsMapToTheDocumentedCodes() {
        #expect(ZooError.Kind.usage.exitCode == 1)
        #expect(ZooError.Kind.badInput.exitCode == 2)
        #expect(ZooError.Kind.unsupported.exitCode == 2)
        #expect(ZooError.Kind.mismatch.exitCode == 2)
        #expect(ZooError.Kind.io.exitCode == 3)
    }
}
