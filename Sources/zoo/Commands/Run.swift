import ArgumentParser
import Foundation
import ModelZoo
import ZooRuntime

/// `zoo run CKPT --input x.npy --output y.npy [--features 1,2,3,4]`: inference from the shell.
struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a native checkpoint on an NCHW float32 .npy batch: logits to .npy, or feature maps to .safetensors."
    )

    @Argument(help: "A native checkpoint (architecture from its metadata).")
    var checkpoint: String

    @Option(help: "Input batch: .npy of shape [N, C, H, W], any float dtype.")
    var input: String

    @OptionGroup var destination: OutputOption<Run>

    @Option(help: "Comma-separated feature tap indices (timm out_indices, e.g. 1,2,3,4): write NCHW maps named by index.")
    var features: String?

    @OptionGroup var compute: ThreadsOption

    @OptionGroup var replace: ForceOption<Run>

    @OptionGroup var result: JSONOption

    @OptionGroup var verbosity: QuietOption

    var output: String { destination.output }
    var threads: Int { compute.threads }
    var overwrite: Bool { replace.force }

    func run() throws {
        verbosity.apply()
        guard threads > 0 else { throw ZooError(.usage, "--threads must be positive") }
        let x = try CLIOutput.readNPY(input)
        let url = URL(fileURLWithPath: checkpoint)
        if let features {
            let indices = try CLIOutput.indices(features, option: "--features")
            let backbone = try Backbone(contentsOf: url, outIndices: indices, threads: threads)
            let maps = try inputAtFault { try backbone.features(x) }
            let records = zip(indices, maps).map { TensorRecord(name: String($0), tensor: $1) }
            let info = FeatureExtractor.stageInfo(indices, backbone.featureInfo)
            do {
                try SafetensorsWriter.write(records, metadata: [("zoo.feature_info", info.serialized())], to: output, overwrite: overwrite)
            } catch let e as ZooError { throw e.inFile(output) }
            if result.json {
                let stages = zip(zip(indices, backbone.featureInfo), maps).map { pair, map in
                    StageResult(index: pair.0, name: pair.1.name, channels: pair.1.channels, reduction: pair.1.reduction, shape: map.shape)
                }
                try CLIOutput.printJSON(RunResult(output: output, input: input, kind: "features", batch: x.shape.first ?? 0,
                                                  logits_shape: nil, stages: stages))
            }
        } else {
            let classifier = try Classifier(contentsOf: url, threads: threads)
            let logits = try inputAtFault { try classifier(x) }
            do {
                let writer = try AtomicFileWriter(destination: output, overwrite: overwrite)
                do {
                    try writer.write(try NPY.encode(logits))
                    try writer.commit()
                } catch {
                    writer.abandon()
                    throw error
                }
            } catch let e as ZooError { throw e.inFile(output) }
            if result.json {
                try CLIOutput.printJSON(RunResult(output: output, input: input, kind: "logits", batch: x.shape.first ?? 0,
                                                  logits_shape: logits.shape, stages: nil))
            }
        }
    }

    /// Runs the network. The checkpoint was checked when it loaded, so an error now is about the
    /// input (its shape, dtype, an empty batch, a size too small for a layer): it names the .npy
    /// file (the runtime's generic `input` item is dropped, a layer's name kept).
    private func inputAtFault<T>(_ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch var e as ZooError where e.file == nil {
            if e.item == "input" { e.item = nil }
            throw e.inFile(input)
        }
    }
}

extension Run: OutputText, ForceText {
    static let outputHelp = "Output: .npy logits [N, classes], or with --features a .safetensors of maps."
    static let forceHelp = "Replace an existing output file (as in convert, fetch and features)."
    static let forceNames: NameSpecification = [.customLong("force"), .customLong("overwrite")]
}
