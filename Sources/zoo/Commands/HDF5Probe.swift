import ArgumentParser
import Foundation
import ModelZoo

/// `zoo hdf5-probe --cpu-seconds N [--memory-bytes M] [--output-fd FD] -- FILE` (hidden): the process
/// ZooHDF5 reads an HDF5 file in, so that a file which crashes or hangs libhdf5 cannot harm the `zoo`
/// that asked (docs/formats-hdf5.md). `zoo` is its own probe, so the tool is one binary; programs
/// using the library ship the `zoo-hdf5-probe` executable instead (same arguments, same exit statuses).
struct HDF5Probe: ParsableCommand {
    /// The subcommand's name, which ZooHDF5 passes before the probe's arguments.
    static let name = "hdf5-probe"

    static let configuration = CommandConfiguration(
        commandName: name,
        abstract: "Read an HDF5 file for another zoo process (started by zoo itself, not by hand).",
        shouldDisplay: false
    )

    @Argument(parsing: .captureForPassthrough, help: "The probe's arguments (see zoo-hdf5-probe).")
    var arguments: [String] = []

    func run() throws {
        throw ExitCode(HDF5ProbeTool.main([CommandLine.arguments.first ?? "zoo"] + arguments))
    }

    /// First thing in `zoo`: runs the probe and exits when the command line asks for it, before
    /// `zoo` installs any signal handler (the probe's verdict is how it ends: a crash must stay a
    /// signal); otherwise makes this executable the probe ZooHDF5 starts.
    static func runIfRequested() {
        let arguments = CommandLine.arguments
        if arguments.count > 1, arguments[1] == name {
            Foundation.exit(HDF5ProbeTool.main([arguments[0]] + arguments.dropFirst(2)))
        }
        HDF5ProbeTool.probeWithThisExecutable(arguments: [name])
    }
}
