import ArgumentParser
import ModelZoo

/// `zoo env [--json]`: the environment for a bug report (versions, CPU, BLAS and its kernel, the
/// I/O libraries, the HDF5 probe, the cache), gathered by `EnvironmentReport.gather`.
struct Env: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Report zoo's version, the machine, the BLAS and its CPU kernel, the libraries and the cache (for bug reports)."
    )

    @Flag(help: "Print JSON: {\"zoo_version\", \"swift_version\", \"cpu_isa_flags\", \"blas_core\", \"libhdf5\", \"cache_bytes\", ...}.")
    var json = false

    func run() throws {
        let report = EnvironmentReport.gather()
        if json {
            print(try report.json())
        } else {
            print(CLIOutput.escapedLines(try report.lines().joined(separator: "\n")))
        }
    }
}
