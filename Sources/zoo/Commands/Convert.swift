import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import ArgumentParser
import ModelZoo

/// `zoo convert INPUT -o OUTPUT [--arch NAME|auto [--allow-partial] [--key PATH]] [--dtype keep|f32|f16|bf16] [--force]`:
/// conversion to the native format, raw or mapped to an architecture's canonical tensors.
struct Convert: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Convert a checkpoint (PyTorch .pt/.pth, TorchScript, safetensors, ...) to a native safetensors file.",
        discussion: """
        Without --arch every tensor is written under its flat dotted name; with --arch NAME (or auto) the \
        tensors are mapped to the architecture's canonical (torchvision) names and layouts, validated, \
        and the file records the architecture, its config, preprocessing and labels. A checkpoint holding \
        several state dicts (model and model_ema, teacher and student) is mapped from the most complete one, \
        not an EMA copy; a note on stderr names it and the others, and --key picks another. With --dtype keep \
        (the default) the data is bit-exact. Non-tensor values (epoch, args, ...) are kept as JSON in the zoo.extras metadata. \
        Nothing in the input is ever executed. The output appears only when complete. \
        A file whose tensors would materialise to more than the larger of 1 GiB and 8x its own size \
        (stride-0 views, shared names, compressed records) is refused unless --max-output allows it; \
        an output that does not fit the destination's free space is refused before anything is written.
        """
    )

    @Argument(help: "The checkpoint to convert (format detected from the bytes).")
    var input: String

    @OptionGroup var destination: OutputOption<Convert>

    @Option(help: "Float dtype of the output: keep, f32, f16 or bf16.")
    var dtype = Choice(Converter.TargetDType.keep)

    @OptionGroup var replace: ForceOption<Convert>

    @Flag(name: .customLong("no-crc"), help: "Do not verify the CRC-32s of zip records.")
    var noCRC = false

    @Option(help: "Map to an architecture of the catalogue (`zoo list`), or `auto` to recognise it from the tensors.")
    var arch: String?

    @Option(help: ArgumentHelp(
        "With --arch: take the state dict under this dotted prefix (e.g. model_ema, state_dict); `zoo inspect` lists the candidates. Default: the most complete one, not an EMA copy.",
        valueName: "path"))
    var key: String?

    @Option(name: .customLong("max-output"), help: ArgumentHelp(
        "Most bytes of tensors the output may hold (e.g. 4G, 512M, 1.5GiB, 1073741824; K/M/G/T are powers of 1024). Default: the larger of 1 GiB and 8x the input's size.",
        valueName: "size"))
    var maxOutput: String?

    @Flag(name: .customLong("allow-partial"), help: "With --arch: write the tensors that fit even when some are missing, unexpected or mismatched (the report goes into the metadata).")
    var allowPartial = false

    @OptionGroup var result: JSONOption

    @OptionGroup var verbosity: QuietOption

    var output: String { destination.output }

    func run() throws {
        verbosity.apply()
        guard let target = dtype.value else {
            throw ZooError(.usage, "--dtype must be keep, f32, f16 or bf16 (got \"\(dtype.text)\")")
        }
        var options = Converter.Options(dtype: target, overwrite: replace.force, arch: arch, allowPartial: allowPartial, key: key)
        if let maxOutput {
            guard let bytes = OutputLimit.parse(maxOutput) else {
                throw ZooError(.usage, "--max-output must be a size such as 4G, 512M or 1073741824 (got \"\(maxOutput)\")")
            }
            options.maxOutputBytes = bytes
        }
        options.pytorch.verifyCRC = !noCRC
        if arch == nil, allowPartial { throw ZooError(.usage, "--allow-partial needs --arch") }
        let bar = ProgressBar()
        let summary = try Converter.convert(input: input, output: output, options: options, progress: bar.update)
        bar.finish()
        let config = summary.metadata.config
        if let report = summary.report {
            if let stateDict = report.stateDictNote { CLIOutput.note(stateDict) }
            for note in report.notes { CLIOutput.note(note) }
            if !report.isComplete {
                CLIOutput.note("partial: \(report.missing.count) missing, \(report.unexpected.count) unexpected, \(report.mismatched.count) mismatched (report in zoo.report)")
                for line in report.lines.prefix(20) { CLIOutput.note("  " + line) }
            }
        }
        if result.json {
            try CLIOutput.printJSON(ConvertResult(
                output: output, input: input, format: summary.format, tensors: summary.tensors, bytes: summary.bytes,
                sha256: summary.sha256, architecture: summary.report?.architecture, flavour: config?["flavour"]?.stringValue,
                classes: config?["classes"]?.intValue, complete: summary.report?.isComplete, mapping: summary.report?.json))
            return
        }
        guard let report = summary.report else {
            print("\(output.escapingControlCharacters): \(summary.tensors) tensors, \(summary.bytes) bytes (\(CLIOutput.bytes(summary.bytes))) from \(summary.format), sha256 \(summary.sha256)")
            return
        }
        let flavour = config?["flavour"]?.stringValue ?? "?"
        let classes = config?["classes"]?.intValue.map(String.init) ?? "?"
        print("\(output): \(report.architecture) (\(flavour), \(classes) classes), \(summary.tensors) tensors, \(summary.bytes) bytes (\(CLIOutput.bytes(summary.bytes))) from \(summary.format), sha256 \(summary.sha256)"
            .escapingControlCharacters)
    }
}

extension Convert: OutputText, ForceText {
    static let outputHelp = "The native safetensors file to write."
    static let forceHelp = "Replace OUTPUT if it exists."
}
