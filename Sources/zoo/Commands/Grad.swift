import ArgumentParser
import Foundation
import ModelZoo

/// `zoo grad CKPT --input X.npy --labels Y.npy -o G.safetensors`: the loss and the gradient of every
/// trainable parameter for one batch, to check the training engine against a framework.
struct Grad: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The mean softmax cross-entropy of a batch and the gradient of every trainable parameter, as .safetensors.",
        discussion: """
        X is NCHW float32 input, already preprocessed; Y holds int64 class indices [N]. The output holds `loss` \
        (0-d float32) and one gradient per trainable parameter under its canonical (torchvision state_dict) name; \
        with --bn train also every BatchNorm's updated running_mean and running_var (torch's momentum 0.1, unbiased \
        variance; MobileNetV3 0.01, as torchvision builds it). No dropout is applied: this is the deterministic part of a training step.
        """
    )

    @Argument(help: "A native checkpoint (architecture from its metadata).")
    var checkpoint: String

    @Option(help: "Input batch: .npy of shape [N, C, H, W], any float dtype.")
    var input: String

    @Option(help: "Labels: .npy of N integer class indices.")
    var labels: String

    @OptionGroup var destination: OutputOption<Grad>

    @Option(help: "BatchNorm: train (batch statistics, running statistics updated) or eval (running statistics).")
    var bn = Choice(BatchNormMode.eval)

    @Option(help: "Trainable parameters: all, head (the classifier) or last:N (the last N stages and the head).")
    var trainable = "all"

    @Option(help: "Label smoothing in [0, 1).")
    var labelSmoothing = 0.0

    @OptionGroup var compute: ThreadsOption

    @OptionGroup var replace: ForceOption<Grad>

    @OptionGroup var verbosity: QuietOption

    var output: String { destination.output }

    func run() throws {
        verbosity.apply()
        guard let mode = bn.value else {
            throw ZooError(.usage, "--bn takes train or eval, got \(bn.text.escapingControlCharacters)")
        }
        guard compute.threads > 0 else { throw ZooError(.usage, "--threads must be positive") }
        let set = try TrainableSet(parsing: trainable)
        let loss = try SoftmaxCrossEntropy(labelSmoothing: labelSmoothing)
        try replace.refuseExisting(output)
        let x = try CLIOutput.readNPY(input)
        let y = try CLIOutput.readNPY(labels)
        let classes: [Int]
        do { classes = try Grad.integers(y) } catch let e as ZooError { throw e.inFile(labels) }
        let ckpt = try LoadedCheckpoint(path: checkpoint)
        TrainingGraph.keepFreedMemoryForReuse()
        let engine: TrainingGraph
        do {
            engine = try TrainingGraph(graph: ckpt.graph, weights: ckpt.weights, trainable: set, batchNorm: mode,
                                       batchNormMomentum: ckpt.config.batchNormMomentum)
        } catch let e as ZooError { throw e.kind == .usage ? e : e.inFile(checkpoint) }
        engine.threads = compute.threads
        // The labels file's own mistakes name it (not the input's).
        guard classes.count == x.shape.first else {
            throw ZooError(.badInput, "\(classes.count) labels for a batch of \(x.shape.first ?? 0) images", file: labels)
        }
        if let bad = classes.firstIndex(where: { $0 < 0 || $0 >= ckpt.config.classes }) {
            throw ZooError(.badInput, "label \(classes[bad]) of row \(bad) is outside 0..<\(ckpt.config.classes)", file: labels)
        }
        let step: TrainingGraph.Step
        do { step = try engine.step(input: x, labels: classes, loss: loss) } catch let e as ZooError { throw e.inFile(input) }
        var records = [TensorRecord(name: "loss", tensor: try Tensor(shape: [], floats: [Float(step.loss)]))]
        for name in engine.trainable {
            guard let g = step.gradients[name], let shape = engine.shapes[name] else { continue }
            records.append(TensorRecord(name: name, tensor: try Tensor(shape: shape, floats: g)))
        }
        if mode == .train {
            for node in ckpt.graph.nodes {
                guard case .batchNorm = node.op else { continue }
                for stat in ["running_mean", "running_var"] {
                    let name = "\(node.name).\(stat)"
                    guard let v = engine.values[name], let shape = engine.shapes[name] else { continue }
                    records.append(TensorRecord(name: name, tensor: try Tensor(shape: shape, floats: v)))
                }
            }
        }
        do {
            try SafetensorsWriter.write(records, metadata: [("zoo.loss", String(step.loss)), ("zoo.bn", mode.rawValue),
                                                            ("zoo.trainable", set.description)],
                                        to: output, overwrite: replace.force)
        } catch let e as ZooError { throw e.inFile(output) }
        CLIOutput.note("loss \(step.loss), \(records.count - 1) tensors -> \(output)")
    }

    /// The values of an integer tensor of rank 1.
    static func integers(_ t: Tensor) throws -> [Int] {
        guard t.rank == 1 else { throw ZooError(.badInput, "labels must be a vector [N], got shape \(t.shape)") }
        let n = t.elementCount
        switch t.dtype {
        case .i64: return t.withUnsafeBytes { raw in (0..<n).map { Int(raw.loadUnaligned(fromByteOffset: $0 * 8, as: Int64.self)) } }
        case .i32: return t.withUnsafeBytes { raw in (0..<n).map { Int(raw.loadUnaligned(fromByteOffset: $0 * 4, as: Int32.self)) } }
        default: throw ZooError(.badInput, "labels must be int64 (or int32), got \(t.dtype.name)")
        }
    }
}

extension Grad: OutputText, ForceText {
    static let outputHelp = "Output .safetensors: loss, gradients (and with --bn train the updated running statistics)."
    static let forceHelp = "Replace an existing output file."
    static let forceNames: NameSpecification = [.customLong("force")]
}
