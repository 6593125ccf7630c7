import ArgumentParser
import Foundation
import ModelZoo

/// `zoo train BASE --data DIR -o OUT.safetensors`: a new classifier for your classes on a zoo backbone.
struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a classifier for your own classes on a zoo backbone (feature extraction or fine-tuning).",
        discussion: """
        The data is an ImageFolder tree (DIR/<class>/*.jpg|png, classes sorted by name) or a CSV manifest \
        (path,label). Every image is decoded before training starts; unreadable files stop the run (listed \
        with the reason) unless --skip-bad. The base's classifier layer is replaced by one with your class \
        count; each image's embedding (what that layer reads) is computed once and cached (keyed by the base \
        file's SHA-256, the image's content and the preprocessing), so a second run starts at once. The output \
        is a native checkpoint of the same architecture with your class names as labels: the epoch with the \
        best validation accuracy (--keep last: the last epoch). --mode finetune trains the new classifier \
        with the last stages (--trainable last:N) or everything (all) on the images themselves, the backbone at \
        --backbone-lr-scale times the rate; the recipe defaults differ by mode (docs/transfer-learning.md). \
        Augmentation is not available yet.
        """
    )

    @Argument(help: "A native checkpoint with its classifier (any zoo architecture), or a model fetched with `zoo fetch`.")
    var model: String

    @Option(help: "Training images: an ImageFolder tree or a .csv manifest (path,label).")
    var data: String

    @Option(help: "features (frozen backbone, cached embeddings) or finetune (the last stages or everything train too).")
    var mode = Choice(TransferMode.features)

    @Option(help: "finetune: what trains besides the new classifier: head, last:N (stages) or all.")
    var trainable = "last:1"

    @Option(help: "finetune: BatchNorm layers frozen (running statistics) or train (batch statistics).")
    var bn = Choice(BatchNormChoice.frozen)

    @Option(name: .customLong("backbone-lr-scale"), help: "finetune: the backbone's rate relative to --lr.")
    var backboneLRScale = 0.1

    @Option(help: "finetune: none, or standard (torchvision's RandomResizedCrop and horizontal flip, seeded). Feature extraction computes each embedding once, so it takes no augmentation.")
    var augment = Choice(AugmentChoice.none)

    @Option(help: "Validation images (ImageFolder tree or .csv) with the same classes.")
    var val: String?

    @Option(name: .customLong("val-split"), help: "Without --val: the fraction of each class held out for validation (seeded), 0 for none.")
    var valSplit = 0.2

    @Flag(name: .customLong("skip-bad"), help: "Drop images that cannot be read or decoded (and say how many) instead of refusing to start.")
    var skipBad = false

    @Option(help: "Passes over the training set (default: features 20, finetune 10).")
    var epochs: Int?

    @Option(help: "Images per step (default: features 16, finetune 32).")
    var batch: Int?

    @Option(help: "Learning rate of the new classifier (default 1e-2).")
    var lr: Double?

    @Option(name: .customLong("weight-decay"), help: "Weight decay (decoupled for adamw; default 1e-4).")
    var weightDecay: Double?

    @Option(help: "Optimiser: sgd or adamw (default: features adamw, finetune sgd).")
    var optimizer: Choice<TrainingRecipe.OptimizerChoice>?

    @Option(help: "SGD momentum.")
    var momentum = TrainingRecipe().momentum

    @Option(help: "Learning-rate schedule: constant, cosine or step (default cosine).")
    var schedule: Choice<TrainingRecipe.ScheduleChoice>?

    @Option(name: .customLong("warmup-epochs"), help: "Epochs of linear warm-up (default: features 0, finetune 1).")
    var warmupEpochs: Int?

    @Option(name: .customLong("label-smoothing"), help: "Label smoothing of the cross-entropy loss.")
    var labelSmoothing = 0.0

    @Option(help: "Seed of the new classifier, the shuffling and the validation split.")
    var seed: UInt64 = 0

    @Option(help: "Which epoch the output gets: best (validation accuracy) or last.")
    var keep = Choice(TrainingRecipe.Keep.best)

    @Option(help: "Append one JSON object per epoch to this file.")
    var log: String?

    @Option(help: "Draw loss and accuracy per epoch (training and validation) into this SVG file.")
    var plot: String?

    @Flag(help: "Continue an interrupted run from OUTPUT.train-state (saved after every epoch) with the same settings and data.")
    var resume = false

    @Flag(name: .customLong("no-cache"), help: "Compute every embedding (neither read nor write the embedding cache).")
    var noCache = false

    @OptionGroup var destination: OutputOption<Train>

    @OptionGroup var compute: ThreadsOption

    @OptionGroup var replace: ForceOption<Train>

    @OptionGroup var result: JSONOption

    @OptionGroup var verbosity: QuietOption

    var output: String { destination.output }

    func validate() throws {
        guard optimizer.map({ $0.value != nil }) ?? true else { throw ValidationError("--optimizer takes sgd or adamw") }
        guard schedule.map({ $0.value != nil }) ?? true else { throw ValidationError("--schedule takes constant, cosine or step") }
        guard mode.value != nil else { throw ValidationError("--mode takes features or finetune") }
        guard bn.value != nil else { throw ValidationError("--bn takes frozen or train") }
        guard augment.value != nil else { throw ValidationError("--augment takes none or standard") }
        guard backboneLRScale >= 0, backboneLRScale.isFinite else { throw ValidationError("--backbone-lr-scale must be non-negative") }
        if mode.value == .features {
            for (flag, given) in [("--trainable", trainable != "last:1"), ("--bn", bn.value != .frozen), ("--backbone-lr-scale", backboneLRScale != 0.1),
                                  ("--augment", augment.value != AugmentChoice.none)] where given {
                throw ValidationError("\(flag) applies to --mode finetune only (feature extraction trains the new classifier alone)")
            }
        }
        guard keep.value != nil else { throw ValidationError("--keep takes best or last") }
        guard compute.threads > 0 else { throw ValidationError("--threads must be positive") }
        guard valSplit >= 0, valSplit < 1 else { throw ValidationError("--val-split must be in [0, 1)") }
    }

    var recipe: TrainingRecipe {
        var r = mode.value == .finetune ? FineTuning.defaultRecipe : TrainingRecipe()
        if let epochs { r.epochs = epochs }
        if let batch { r.batch = batch }
        if let lr { r.learningRate = lr }
        if let weightDecay { r.weightDecay = weightDecay }
        if let o = optimizer?.value { r.optimizer = o }
        r.momentum = momentum
        if let s = schedule?.value { r.schedule = s }
        // The default warm-up (an epoch, fine-tuning) shrinks to fit a shorter run; a given one is checked.
        if let warmupEpochs { r.warmupEpochs = warmupEpochs } else { r.warmupEpochs = min(r.warmupEpochs, max(0, r.epochs - 1)) }
        r.labelSmoothing = labelSmoothing
        r.seed = seed
        r.keep = keep.value ?? r.keep
        return r
    }

    func run() throws {
        verbosity.apply()
        let recipe = self.recipe
        try recipe.validate()
        if !resume { try replace.refuseExisting(output) }
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
        let logFile = try log.map { try MetricsLog(path: $0) }
        let epochs = recipe.epochs, quiet = verbosity.quiet || result.json
        let embedBar = ProgressBar(enabled: !quiet, counting: "images embedded")
        let stepBar = EpochProgress(enabled: !quiet)
        let callbacks = FeatureExtractionTraining.Callbacks(
            embedding: { embedBar.update($0, $1) },
            epoch: { m in
                stepBar.finish()
                logFile?.append(m)
                if !quiet { CLIOutput.note(Train.describe(m, of: epochs)) }
            },
            step: { embedBar.finish(); stepBar.update($0) })
        let fitted: (epochs: [EpochMetrics], keptEpoch: Int, cachedEmbeddings: Int)
        TrainingInterrupt.install()
        do {
            if mode.value == .finetune {
                TrainingGraph.keepFreedMemoryForReuse()
                var run = FineTuning(base: base, recipe: recipe, threads: compute.threads)
                run.trainable = try TrainableSet(parsing: trainable)
                run.batchNorm = bn.value == .train ? .train : .eval
                run.backboneScale = backboneLRScale
                run.augment = augment.value == .standard
                let r = try run.fit(train: train, validation: validation, output: output, overwrite: replace.force || resume,
                                    checkpointing: true, resume: resume, callbacks: callbacks)
                fitted = (r.epochs, r.keptEpoch, 0)
            } else {
                var run = FeatureExtractionTraining(base: base, recipe: recipe, threads: compute.threads)
                if !noCache { run.cacheRoot = try ModelCache().root + "/embeddings" }
                let r = try run.fit(train: train, validation: validation, output: output, overwrite: replace.force || resume,
                                    checkpointing: true, resume: resume, callbacks: callbacks)
                if r.cachedEmbeddings > 0 { CLIOutput.note("\(r.cachedEmbeddings) of \(r.embeddings) embeddings from the cache") }
                fitted = (r.epochs, r.keptEpoch, r.cachedEmbeddings)
            }
        } catch let stop as TrainingInterrupted {
            stepBar.finish()
            embedBar.finish()
            let at = stop.position > 0 ? "epoch \(stop.epoch + 1), image \(stop.position)" : "the end of epoch \(stop.epoch)"
            let line = stop.embedding
                ? "zoo: interrupted while computing embeddings; those computed are cached: run the same command again to continue\n"
                : "zoo: interrupted at \(at); the state is saved in \(stop.stateFolder.escapingControlCharacters): run the same command with --resume to continue\n"
            FileHandle.standardError.write(Data(line.utf8))
            Foundation.exit(130)
        }
        stepBar.finish()
        if let plot { try AtomicFileWriter.write(Array(Plots.trainingCurves(fitted.epochs).utf8), to: plot, overwrite: true) }
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

/// A progress bar per epoch (`epoch 3: [####  ] 40% 40 images / 100 images, loss 0.512, accuracy 0.840, 12.5 images/s,
/// ETA 5s`): a new bar, with its own rate and ETA, for each epoch.
final class EpochProgress: @unchecked Sendable {
    private let enabled: Bool
    private let lock = NSLock()
    private var bar: ProgressBar?
    private var epoch = 0
    private let latest = Locked(StepProgress(epoch: 0, done: 0, total: 0, loss: 0, accuracy: 0))

    init(enabled: Bool) { self.enabled = enabled }

    func update(_ p: StepProgress) {
        lock.lock(); defer { lock.unlock() }
        latest.value = p
        if bar == nil || p.epoch != epoch {
            bar?.finish()
            epoch = p.epoch
            let latest = self.latest
            bar = ProgressBar(enabled: enabled, format: { "\($0) images" }, rate: { String(format1: $0) + " images" },
                              prefix: "epoch \(p.epoch): ", suffix: {
                                  let s = latest.value
                                  return ", loss " + String(format: "%.4f", s.loss) + ", accuracy " + String(format: "%.4f", s.accuracy)
                              })
        }
        bar?.update(p.done, p.total)
    }

    func finish() {
        lock.lock(); defer { lock.unlock() }
        bar?.finish()
        bar = nil
    }
}

/// `--mode`.
enum TransferMode: String, CaseIterable, Sendable {
    case features, finetune
}

/// `--augment`.
enum AugmentChoice: String, CaseIterable, Sendable {
    case none, standard
}

/// `--bn`.
enum BatchNormChoice: String, CaseIterable, Sendable {
    case frozen, train
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
        if !FileManager.default.fileExists(atPath: path) { _ = FileManager.default.createFile(atPath: path, contents: nil) }
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
