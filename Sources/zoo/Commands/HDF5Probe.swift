import Foundation
import ModelZoo

/// `zoo hdf5-probe --cpu-seconds N [--memory-bytes M] [--output-fd FD] -- FILE` (hidden): the process
/// ZooHDF5 reads an HDF5 file in, so that a file which crashes or hangs libhdf5 cannot harm the `zoo`
/// that asked (docs/formats-hdf5.md). `zoo` is its own probe, so the tool is one binary; programs
/// using the library ship the `zoo-hdf5-probe` executable instead (same arguments, same exit statuses).
///
/// It is not one of `Zoo`'s parsed subcommands: `runIfRequested` takes the command line before
/// ArgumentParser sees it, so help, shell completion and the manual pages never list it.
enum HDF5Probe {
    /// The subcommand's name, which ZooHDF5 passes before the probe's arguments.
    static let name = "hdf5-probe"

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
