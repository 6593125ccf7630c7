import ArgumentParser
import Foundation
import ModelZoo

/// `zoo train BASE --data DIR -o OUT.safetensors`: a new classifier for your classes on a zoo backbone.
struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a classifier for your own classes on a zoo backbone (feature extraction: frozen backbone, new head).",
        discussion: """
        The data is an ImageFolder tree (DIR/<class>/*.jpg|png, classes sorted by name) or a CSV manifest \
        (path,label). Every image is decoded before training starts; unreadable files stop the run (listed \
        with the reason) unless --skip-bad. The base's classifier layer is replaced by one with your class \
        count; each image's embedding (what that layer reads) is computed once and cached (keyed by the base \
        file's SHA-256, the image's content and the preprocessing), so a second run starts at once. The output \
        is a native checkpoint of the same architecture with your class names as labels: the epoch with the \
        best validation accuracy (--keep last: the last epoch). Fine-tuning the backbone and augmentation are \
        not available yet (docs/transfer-learning.md).
        """
    )

    @Argument(help: "A native checkpoint with its classifier (any zoo architecture), or a model fetched with `zoo fetch`.")
    var model: String

    @Option(help: "Training images: an ImageFolder tree or a .csv manifest (path,label).")
    var data: String

    @Option(help: "Validation images (ImageFolder tree or .csv) with the same classes.")
    var val: String?

    @Option(name: .customLong("val-split"), help: "Without --val: the fraction of each class held out for validation (seeded), 0 for none.")
    var valSplit = 0.2

    @Flag(name: .customLong("skip-bad"), help: "Drop images that cannot be read or decoded (and say how many) instead of refusing to start.")
    var skipBad = false

    @Option(help: "Passes over the training set.")
    var epochs = TrainingRecipe().epochs

    @Option(help: "Images per step.")
    var batch = TrainingRecipe().batch

    @Option(help: "Learning rate.")
    var lr = TrainingRecipe().learningRate

    @Option(name: .customLong("weight-decay"), help: "Weight decay (decoupled for adamw).")
    var weightDecay = TrainingRecipe().weightDecay

    @Option(help: "Optimiser: sgd or adamw.")
    var optimizer = Choice(TrainingRecipe().optimizer)

    @Option(help: "SGD momentum.")
    var momentum = TrainingRecipe().momentum

    @Option(help: "Learning-rate schedule: constant, cosine or step.")
    var schedule = Choice(TrainingRecipe().schedule)

    @Option(name: .customLong("warmup-epochs"), help: "Epochs of linear warm-up.")
    var warmupEpochs = 0

    @Option(name: .customLong("label-smoothing"), help: "Label smoothing of the cross-entropy loss.")
    var labelSmoothing = 0.0

    @Option(help: "Seed of the new classifier, the shuffling and the validation split.")
    var seed: UInt64 = 0

    @Option(help: "Which epoch the output gets: best (validation accuracy) or last.")
    var keep = Choice(TrainingRecipe.Keep.best)

    @Option(help: "Append one JSON object per epoch to this file.")
    var log: String?

    @Flag(name: .customLong("no-cache"), help: "Compute every embedding (neither read nor write the embedding cache).")
    var noCache = false

    @OptionGroup var destination: OutputOption<Train>

    @OptionGroup var compute: ThreadsOption

    @OptionGroup var replace: ForceOption<Train>

    @OptionGroup var result: JSONOption

    @OptionGroup var verbosity: QuietOption

    var output: String { destination.output }

    func validate() throws {
        guard optimizer.value != nil else { throw ValidationError("--optimizer takes sgd or adamw") }
        guard schedule.value != nil else { throw ValidationError("--schedule takes constant, cosine or step") }
        guard keep.value != nil else { throw ValidationError("--keep takes best or last") }
        guard compute.threads > 0 else { throw ValidationError("--threads must be positive") }
        guard valSplit >= 0, valSplit < 1 else { throw ValidationError("--val-split must be in [0, 1)") }
    }

    var recipe: TrainingRecipe {
        var r = TrainingRecipe()
        r.epochs = epochs
        r.batch = batch
        r.learningRate = lr
        r.weightDecay = weightDecay
        r.optimizer = optimizer.value ?? r.optimizer
        r.momentum = momentum
        r.schedule = schedule.value ?? r.schedule
        r.warmupEpochs = warmupEpochs
        r.labelSmoothing = labelSmoothing
        r.seed = seed
        r.keep = keep.value ?? r.keep
        return r
    }

    func run() throws {
        verbosity.apply()
        let recipe = self.recipe
        try recipe.validate()
        try replace.refuseExisting(output)
        let base = try TransferBase(path: try Pretrained.resolve(model))
        var train = try LabelledImages.load(data)
        var validation = try val.map { try LabelledImages.load($0, classes: train.classes) }
        if validation == nil, valSplit > 0 { (train, validation) = try train.split(validationFraction: valSplit, seed: seed) }
        var skipped = 0
        for (name, set) in [("training", train), ("validation", validation)] {
            guard let set else { continue }
            let bar = ProgressBar(enabled: set.files.count > 1, counting: "images checked")
            let bad = set.check(threads: compute.threads, progress: bar.update)
            bar.finish()
            if bad.isEmpty { continue }
            if !skipBad {
                for b in bad.prefix(20) { CLIOutput.note("\(b.path): \(b.reason)") }
                if bad.count > 20 { CLIOutput.note("... and \(bad.count - 20) more") }
                throw ZooError(.badInput, "\(bad.count) of the \(set.files.count) \(name) images cannot be used (listed above); fix or remove them, or pass --skip-bad",
                               file: bad[0].path)
            }
            skipped += bad.count
            let kept = set.removing(bad)
            if name == "training" { train = kept } else { validation = kept }
        }
        if skipped > 0 { CLIOutput.note("skipped \(skipped) image(s) that cannot be read or decoded (--skip-bad)") }
        if let empty = train.counts.firstIndex(of: 0) {
            throw ZooError(.badInput, "class \(train.classes[empty]) has no usable training images", file: data)
        }
        CLIOutput.note("\(train.files.count) training images, \(validation?.files.count ?? 0) validation images, \(train.classes.count) classes; "
                       + "new classifier \(base.finalLayer) [\(train.classes.count), \(base.width)]")
        var run = FeatureExtractionTraining(base: base, recipe: recipe, threads: compute.threads)
        if !noCache { run.cacheRoot = try ModelCache().root + "/embeddings" }
        let embedBar = ProgressBar(enabled: true, counting: "images embedded")
        let logFile = try log.map { try MetricsLog(path: $0) }
        let epochs = recipe.epochs, quiet = verbosity.quiet || result.json
        let fitted = try run.fit(train: train, validation: validation, output: output, overwrite: replace.force, callbacks: .init(
            embedding: { embedBar.update($0, $1) },
            epoch: { m in
                logFile?.append(m)
                if !quiet { CLIOutput.note(Train.describe(m, of: epochs)) }
            }))
        embedBar.finish()
        if fitted.cachedEmbeddings > 0 { CLIOutput.note("\(fitted.cachedEmbeddings) of \(fitted.embeddings) embeddings from the cache") }
        let kept = fitted.epochs[fitted.keptEpoch - 1]
        if result.json {
            try CLIOutput.printJSON(TrainResult(
                epochs: fitted.epochs.map(TrainResult.Epoch.init), best_epoch: fitted.keptEpoch, val_accuracy: kept.valAccuracy,
                output: output, classes: train.classes, train_images: train.files.count, val_images: validation?.files.count ?? 0,
                skipped: skipped, cached_embeddings: fitted.cachedEmbeddings))
            return
        }
        let acc = kept.valAccuracy.map { ", validation accuracy " + String(format: "%.4f", $0) } ?? ""
        print("\(output.escapingControlCharacters): \(train.classes.count) classes, epoch \(fitted.keptEpoch) of \(fitted.epochs.count)\(acc)")
    }

    /// `epoch 3/20: loss 1.2345, accuracy 0.6100, val loss 1.1000, val accuracy 0.6400 (0.01s)`.
    static func describe(_ m: EpochMetrics, of total: Int) -> String {
        var s = "epoch \(m.epoch)/\(total): loss " + String(format: "%.4f", m.trainLoss) + ", accuracy " + String(format: "%.4f", m.trainAccuracy)
        if let l = m.valLoss { s += ", val loss " + String(format: "%.4f", l) }
        if let a = m.valAccuracy { s += ", val accuracy " + String(format: "%.4f", a) }
        return s + " (" + String(format: "%.2f", m.seconds) + "s)"
    }
}

extension Train: OutputText, ForceText {
    static let outputHelp = "The trained classifier (.safetensors)."
    static let forceHelp = "Replace an existing output file."
}

/// `--log FILE`: one JSON object per epoch, appended and flushed as each epoch ends.
final class MetricsLog: @unchecked Sendable {
    private let handle: FileHandle
    private let lock = NSLock()

    init(path: String) throws {
        if !FileManager.default.fileExists(atPath: path) { FileManager.default.createFile(atPath: path, contents: nil) }
        guard let h = FileHandle(forWritingAtPath: path) else { throw ZooError(.io, "cannot open the log for writing", file: path) }
        h.seekToEndOfFile()
        handle = h
    }

    func append(_ m: EpochMetrics) {
        guard let line = try? JSONValue(encoding: TrainResult.Epoch(m)).serialized(pretty: false) else { return }
        lock.lock(); defer { lock.unlock() }
        handle.write(Data((line + "\n").utf8))
    }
}

/// `zoo train --json`.
struct TrainResult: Encodable {
    struct Epoch: Encodable {
        var epoch: Int
        var train_loss: Double
        var train_accuracy: Double
        @NullWhenNil var val_loss: Double?
        @NullWhenNil var val_accuracy: Double?
        var seconds: Double

        init(_ m: EpochMetrics) {
            epoch = m.epoch
            train_loss = m.trainLoss
            train_accuracy = m.trainAccuracy
            val_loss = m.valLoss
            val_accuracy = m.valAccuracy
            seconds = m.seconds
        }
    }

    var epochs: [Epoch]
    var best_epoch: Int
    @NullWhenNil var val_accuracy: Double?
    var output: String
    var classes: [String]
    var train_images: Int
    var val_images: Int
    var skipped: Int
    var cached_embeddings: Int
}
