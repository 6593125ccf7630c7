import ArgumentParser
import ModelZoo

@main
struct Zoo: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "zoo",
        abstract: "Pretrained image backbones for Swift: convert, inspect and run checkpoints.",
        version: "0.1.0",
        subcommands: [Inspect.self, Convert.self]
    )

    /// Runs the tool with ModelZoo's error discipline: one line on stderr, documented exit codes.
    static func main() {
        TemporaryFiles.installSignalCleanup()
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch let error as ZooError {
            CLIOutput.fail(error)
        } catch {
            exit(withError: error)
        }
    }
}
