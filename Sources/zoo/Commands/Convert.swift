#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import ArgumentParser
import ModelZoo

/// `zoo convert INPUT -o OUTPUT [--dtype keep|f32|f16|bf16] [--force]`: raw conversion to the native format.
struct Convert: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Convert a checkpoint (PyTorch .pt/.pth, TorchScript, safetensors, ...) to a native safetensors file.",
        discussion: """
        Every tensor is written under its flat dotted name; with --dtype keep (the default) the data is \
        bit-exact. Non-tensor values (epoch, args, ...) are kept as JSON in the zoo.extras metadata. \
        Nothing in the input is ever executed. The output appears only when complete.
        """
    )

    @Argument(help: "The checkpoint to convert (format detected from the bytes).")
    var input: String

    @Option(name: .shortAndLong, help: "The native safetensors file to write.")
    var output: String

    @Option(help: "Float dtype of the output: keep, f32, f16 or bf16.")
    var dtype: String = "keep"

    @Flag(help: "Replace OUTPUT if it exists.")
    var force = false

    @Flag(name: .customLong("no-crc"), help: "Do not verify the CRC-32s of zip records.")
    var noCRC = false

    func run() throws {
        guard let target = Converter.TargetDType(rawValue: dtype) else {
            throw ZooError(.usage, "--dtype must be keep, f32, f16 or bf16 (got \"\(dtype)\")")
        }
        var options = Converter.Options(dtype: target, overwrite: force)
        options.pytorch.verifyCRC = !noCRC
        let bar = ProgressBar(enabled: isatty(2) != 0)
        let summary = try Converter.convert(input: input, output: output, options: options, progress: bar.update)
        bar.finish()
        print("\(output): \(summary.tensors) tensors, \(summary.bytes) bytes (\(CLIOutput.bytes(summary.bytes))) from \(summary.format), sha256 \(summary.sha256)")
    }
}

/// A one-line progress bar on stderr, drawn only on a terminal.
final class ProgressBar {
    private let enabled: Bool
    private var lastPercent = -1

    init(enabled: Bool) { self.enabled = enabled }

    func update(_ done: Int, _ total: Int) {
        guard enabled, total > 0 else { return }
        let percent = Int(Double(done) / Double(total) * 100)
        if percent == lastPercent { return }
        lastPercent = percent
        let width = 30
        let filled = width * percent / 100
        let line = "\r[" + String(repeating: "#", count: filled) + String(repeating: " ", count: width - filled) + "] \(percent)% "
            + CLIOutput.bytes(done) + " / " + CLIOutput.bytes(total)
        let bytes = Array(line.utf8)
        bytes.withUnsafeBytes { _ = write(2, $0.baseAddress, $0.count) }
    }

    func finish() {
        guard enabled, lastPercent >= 0 else { return }
        let clear = Array("\r\u{1B}[K".utf8)
        clear.withUnsafeBytes { _ = write(2, $0.baseAddress, $0.count) }
    }
}
