import ArgumentParser
import Foundation
import ModelZoo

@main
struct Zoo: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "zoo",
        abstract: "Pretrained image backbones for Swift: convert, inspect and run checkpoints.",
        version: ModelZooVersion.current,
        // `zoo hdf5-probe` (Commands/HDF5Probe.swift) is intercepted before parsing, so it is not listed
        // here: help, completion scripts and `make man` show only the commands people run.
        subcommands: [Inspect.self, Convert.self, List.self, Info.self, Bench.self, Run.self, Grad.self, Fetch.self, Cache.self, Predict.self, Features.self, MergeFeatures.self, Train.self, Eval.self, Init.self, Env.self]
    )

    /// Runs the tool with ModelZoo's error discipline (docs/cli.md): one `zoo: ...` line on
    /// stderr and the documented exit code: 0 ok, 1 usage, 2 bad/unsupported input or mismatch, 3 I/O.
    static func main() {
        HDF5Probe.runIfRequested()
        TemporaryFiles.installSignalCleanup()
        MappedFileFaults.installExitHandler(program: "zoo")
        stopIdleBLASThreads()
        var command: ParsableCommand
        do {
            command = try parseAsRoot()
        } catch {
            usageFailure(error)
        }
        do {
            try command.run()
        } catch let error as ZooError {
            CLIOutput.fail(error)
        } catch {
            // ArgumentParser's own errors thrown from run(): help/version requests, ExitCode,
            // ValidationError (a usage error). Anything else is unexpected and treated as I/O.
            let code = exitCode(for: error)
            if code == .success || error is ExitCode { exit(withError: error) }
            if error is ValidationError { usageFailure(error) }
            CLIOutput.fail(ZooError(.io, "\(error)"))
        }
    }

    /// Prints a command-line error as `zoo: MESSAGE` plus the usage lines, and exits 1
    /// (or prints help / the version on stdout and exits 0 when that is what was asked).
    static func usageFailure(_ error: Error) -> Never {
        if exitCode(for: error) == .success { exit(withError: error) }
        var lines = fullMessage(for: error).split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        if let first = lines.first, first.hasPrefix("Error: ") { lines.removeFirst() }
        // The message quotes the command line (an unknown option, a bad value): escaped like every
        // other output (`escapingControlCharacters`).
        var text = "zoo: " + message(for: error).replacingOccurrences(of: "\n", with: " ").escapingControlCharacters + "\n"
        let rest = lines.joined(separator: "\n").trimmingCharacters(in: .whitespacesAndNewlines)
        if !rest.isEmpty { text += CLIOutput.escapedLines(rest) + "\n" }
        FileHandle.standardError.write(Data(text.utf8))
        Foundation.exit(ZooError.Kind.usage.exitCode)
    }
}

/// Stops the BLAS's idle worker threads, first thing in every command. OpenBLAS, linked into every
/// zoo process for the inference kernels, starts its worker threads when it is loaded, and each spins
/// in `sched_yield` for its first ~0.1 s waiting for work. zoo never gives them any: the runtime calls
/// the BLAS single-threaded and splits work across its own threads (ZooKernels' `BLAS.configured`), and
/// a conversion never calls it. On a small machine those threads took CPU from zoo's own (measured: up
/// to 100 ms of CPU per `zoo convert` on 2 cores, benchmarks/RESULTS.md; `zoo predict` on one image
/// 30-60 ms instead of 30 ms). OpenBLAS starts its threads again by itself should a later call need them.
/// Does nothing with a BLAS that has no such function.
func stopIdleBLASThreads() {
    typealias Shutdown = @convention(c) () -> Int32
    guard let symbol = dlsym(nil, "blas_thread_shutdown_") else { return }
    _ = unsafeBitCast(symbol, to: Shutdown.self)()
}
