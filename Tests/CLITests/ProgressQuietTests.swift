import Foundation
import Testing
import ZooTestSupport

/// Progress bars appear on a terminal only (with a rate and an ETA), `--quiet` silences them and the
/// remarks, and a pipe never receives a bar. The terminal is a pseudo-terminal from util-linux's
/// `script`, which copies what the command writes to it.
@Suite(.serialized) struct ProgressQuietTests {
    /// Runs `zoo arguments` with stdout and stderr on a pseudo-terminal; returns what it printed.
    static func onTerminal(_ arguments: [String]) throws -> TestSupport.ProcessResult {
        let command = ([TestSupport.zooBinary] + arguments).map { "'" + $0.replacingOccurrences(of: "'", with: "'\\''") + "'" }.joined(separator: " ")
        return try TestSupport.run("/usr/bin/script", ["-qec", command, "/dev/null"])
    }

    static var hasScript: Bool { FileManager.default.isExecutableFile(atPath: "/usr/bin/script") }

    @Test(.enabled(if: hasScript)) func benchDrawsABarOnATerminalWithRateAndETA() throws {
        // Long enough (about a second in a release build) for the bar to show its rate, which it does after 0.2 s.
        let r = try Self.onTerminal(["bench", "mobilenet_v3_small", "--size", "224", "--iterations", "150", "--warmup", "1"])
        #expect(r.status == 0, "\(r.stdout)")
        #expect(r.stdout.contains("\r[#"), "no bar: \(r.stdout.prefix(300))")
        #expect(r.stdout.contains("passes/s"), "no rate: \(r.stdout.prefix(300))")
        #expect(r.stdout.contains("100% 151 passes / 151 passes"))
        #expect(r.stdout.contains("latency:"))
    }

    @Test(.enabled(if: hasScript)) func quietDrawsNoBar() throws {
        let r = try Self.onTerminal(["bench", "mobilenet_v3_small", "--size", "64", "--iterations", "30", "--warmup", "1", "--quiet"])
        #expect(r.status == 0, "\(r.stdout)")
        #expect(!r.stdout.contains("\r["))
        #expect(r.stdout.contains("latency:"))
    }

    @Test func aPipeGetsNoBar() throws {
        let r = try TestSupport.zoo(["bench", "mobilenet_v3_small", "--size", "64", "--iterations", "5", "--warmup", "0"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.isEmpty, "stderr: \(r.stderr)")
    }

    /// `--quiet` also silences the remarks on stderr (here convert's `recognised as ...`), while an
    /// error is still printed.
    @Test func quietSilencesRemarksButNotErrors() throws {
        let dir = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let model = dir.appendingPathComponent("m.safetensors").path
        let source = try TestSupport.fixture("predict/mobilenet_v3_small.pth")
        let loud = try TestSupport.zoo(["convert", source, "--arch", "auto", "-o", model])
        #expect(loud.status == 0, "\(loud.stderr)")
        #expect(loud.stderr.contains("zoo: "), "expected a remark: \(loud.stderr)")
        let quiet = try TestSupport.zoo(["convert", source, "--arch", "auto", "-o", model, "--force", "-q"])
        #expect(quiet.status == 0)
        #expect(quiet.stderr.isEmpty, "stderr: \(quiet.stderr)")
        let failing = try TestSupport.zoo(["convert", dir.appendingPathComponent("missing.pth").path, "-o", model, "--force", "-q"])
        #expect(failing.status != 0)
        #expect(failing.stderr.hasPrefix("zoo: "))
    }

    /// At most ten drawings a second, plus the last one.
    @Test(.enabled(if: hasScript)) func theBarIsRateLimited() throws {
        let start = Date()
        let r = try Self.onTerminal(["bench", "mobilenet_v3_small", "--size", "32", "--iterations", "300", "--warmup", "0"])
        let seconds = Date().timeIntervalSince(start)
        #expect(r.status == 0)
        let drawings = r.stdout.components(separatedBy: "\r[").count - 1
        #expect(drawings >= 1)
        #expect(Double(drawings) <= seconds * 10 + 2, "\(drawings) drawings in \(seconds) s")
    }
}
