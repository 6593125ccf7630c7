import Foundation
import Testing
import ZooTestSupport

/// Shell completion (README: "Shell completion and manual pages"): `zoo --generate-completion-script`
/// writes a script for bash, zsh and fish that knows every subcommand; bash parses its own script.
@Suite struct CompletionTests {
    static let subcommands = ["inspect", "convert", "list", "info", "bench", "run", "grad", "fetch", "cache", "predict", "features", "init", "env"]

    @Test(arguments: [("bash", "complete -o filenames -F _zoo zoo"), ("zsh", "#compdef zoo"), ("fish", "complete -c 'zoo'")])
    func scriptsGenerateForEachShell(_ shell: String, _ marker: String) throws {
        let r = try TestSupport.zoo(["--generate-completion-script", shell])
        #expect(r.status == 0, "\(shell): \(r.stderr)")
        #expect(r.stdout.contains(marker), "\(shell) script lacks \(marker)")
        for command in Self.subcommands {
            #expect(r.stdout.contains(command), "\(shell) script does not know \(command)")
        }
        if shell == "bash" {
            let dir = try TestSupport.temporaryDirectory()
            defer { try? FileManager.default.removeItem(at: dir) }
            let path = dir.appendingPathComponent("zoo.bash").path
            try r.stdout.write(toFile: path, atomically: true, encoding: .utf8)
            let check = try TestSupport.run("/bin/bash", ["-n", path])
            #expect(check.status == 0, "bash -n: \(check.stderr)")
        }
    }

    /// Negative control: an unknown shell is a usage error (exit 1) that lists the three shells.
    @Test func unknownShellIsAUsageError() throws {
        let r = try TestSupport.zoo(["--generate-completion-script", "tcsh"])
        #expect(r.status == 1)
        #expect(r.stderr.hasPrefix("zoo: ") && r.stderr.contains("zsh bash fish"), "\(r.stderr)")
        #expect(r.stdout.isEmpty)
    }
}
