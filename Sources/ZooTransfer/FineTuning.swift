import Crypto
import Foundation
import ZooArchitectures
import ZooErrors
import ZooImages
import ZooJSON
import ZooRuntime
import ZooTensor
import ZooTraining

/// Fine-tuning transfer learning: the base's classifier layer is replaced by one for your classes and the
/// head plus the last stages (or everything) are trained on the images themselves with ZooTraining's
/// `TrainingGraph`, the backbone at a smaller rate. Validation runs the inference engine on the current
/// weights after every epoch; the best (or last) epoch is written as a native checkpoint.
///
/// ```swift
/// var run = FineTuning(base: try TransferBase(path: "resnet18.safetensors"), recipe: FineTuning.defaultRecipe)
/// run.trainable = .lastStages(1)
/// let result = try run.fit(train: train, validation: val, output: "tuned.safetensors")
/// ```
public struct FineTuning: Sendable {
    /// The base.
    public let base: TransferBase
    /// The recipe (the rate is the head's; the backbone trains at `learningRate x backboneScale`).
    public var recipe: TrainingRecipe
    /// What is trained: the new head (`.head`), the last N stages and the head, or everything.
    public var trainable: TrainableSet = .lastStages(1)
    /// BatchNorm layers: `.eval` (frozen statistics, the default for small data) or `.train` (batch statistics).
    public var batchNorm: BatchNormMode = .eval
    /// The backbone's rate relative to the head's.
    public var backboneScale = 0.1
    /// Dropout and stochastic depth during training (seeded per step from the recipe's seed); off gives the deterministic step
    /// frameworks are compared with.
    public var dropout = true
    /// torchvision's training augmentation (`RandomResizedCrop` to the base's input size with scale 0.08...1
    /// and ratio 3/4...4/3, horizontal flip), seeded per step from the recipe's seed; off by default. The
    /// images are then normalised as the base's preprocessing does; validation is not augmented.
    public var augment = false
    /// Compute threads.
    public var threads: Int

    /// The fine-tuning defaults: SGD with momentum 0.9 at 1e-2 for the head (1e-3 for the backbone), weight
    /// decay 1e-4 (none on BatchNorm parameters and biases), batches of 32, 10 epochs, one epoch of warm-up,
    /// then cosine; the best epoch kept.
    public static var defaultRecipe: TrainingRecipe {
        var r = TrainingRecipe()
        r.optimizer = .sgd
        r.learningRate = 1e-2
        r.batch = 32
        r.epochs = 10
        r.warmupEpochs = 1
        return r
    }

    /// A run.
    public init(base: TransferBase, recipe: TrainingRecipe = FineTuning.defaultRecipe, threads: Int = defaultThreadCount) {
        self.base = base
        self.recipe = recipe
        self.threads = max(1, threads)
    }

    /// What `fit` returns.
    public struct Result: Sendable {
        /// Every epoch's figures.
        public var epochs: [EpochMetrics]
        /// The 1-based epoch written to the output.
        public var keptEpoch: Int
    }

    /// Trains on `train`, measures `validation` after each epoch, and writes the kept epoch to `output`
    /// (atomically; nothing is written when anything fails). `initial` is the new classifier (torch's
    /// `nn.Linear` initialisation from the recipe's seed when nil). With `checkpointing`, the state after every
    /// epoch is kept in `OUTPUT.train-state/` (removed when the output is written); `resume` continues from it,
    /// and the result equals an uninterrupted run's.
    public func fit(train: LabelledImages, validation: LabelledImages?, output: String, overwrite: Bool = false,
                    initial: LinearHead? = nil, checkpointing: Bool = false, resume: Bool = false,
                    callbacks: FeatureExtractionTraining.Callbacks = .init()) throws -> Result {
        try recipe.validate()
        if let validation, validation.classes != train.classes {
            throw ZooError(.usage, "the validation set's classes \(validation.classes) differ from the training set's \(train.classes)")
        }
        guard !train.files.isEmpty else { throw ZooError(.badInput, "no training images") }
        let classes = train.classes.count
        let config = try base.configuration(classes: classes)
        let graph = try config.graph()
        let head = try initial ?? LinearHead.initial(classes: classes, width: base.width, seed: recipe.seed)
        guard head.classes == classes, head.width == base.width else {
            throw ZooError(.mismatch, "an initial head of \(head.classes) x \(head.width) for \(classes) x \(base.width)")
        }
        let w = base.finalLayer + ".weight", b = base.finalLayer + ".bias"
        let headWeight = try Tensor(shape: [classes, base.width], floats: head.weight), headBias = try Tensor(shape: [classes], floats: head.bias)
        let baseWeights = base.loaded.weights
        let model: TrainingGraph
        do {
            model = try TrainingGraph(graph: graph, weights: { name in name == w ? headWeight : name == b ? headBias : try baseWeights(name) },
                                      trainable: trainable, batchNorm: batchNorm, batchNormMomentum: config.batchNormMomentum)
        } catch let e as ZooError { throw e.inFile(base.path) }
        model.threads = threads
        let loss = try SoftmaxCrossEntropy(labelSmoothing: recipe.labelSmoothing)
        let stepsPerEpoch = (train.files.count + recipe.batch - 1) / recipe.batch
        var optimizer = try recipe.makeOptimizer(
            groups: model.parameterGroups(learningRate: recipe.learningRate, backboneScale: backboneScale, weightDecay: recipe.weightDecay),
            stepsPerEpoch: stepsPerEpoch)
        let preprocessing = base.preprocessing
        var augmentation: RandomResizedCrop?
        if augment {
            guard let size = preprocessing.fixedOutputSize else {
                throw ZooError(.usage, "augmentation needs a fixed input size; the base's preprocessing has none", file: base.path)
            }
            augmentation = try RandomResizedCrop(height: size.height, width: size.width, interpolation: preprocessing.interpolation)
        }
        var order = Array(train.files.indices)
        var history: [EpochMetrics] = []
        var kept = model.values, keptEpoch = 1, best = -1.0
        var step = 0
        var first = 1
        var resumed: TrainingProgress?
        let state = checkpointing ? TrainingStateFolder(output: output, fingerprint: TransferProvenance.fingerprint(
            mode: "finetune \(trainable) \(batchNorm.rawValue) \(backboneScale) \(augment) \(dropout)", baseSHA256: try EmbeddingCache.sha256(file: base.path),
            train: train, validation: validation, recipe: recipe)) : nil
        if resume {
            guard let r = try state?.load() else {
                throw ZooError(.usage, "no saved training state to resume (\(output).train-state)", file: output)
            }
            try model.update(r.values)
            optimizer = r.optimizer
            history = r.history
            kept = r.kept
            keptEpoch = r.keptEpoch
            best = r.bestAccuracy
            step = r.step
            first = r.epoch + 1
            resumed = r
            if recipe.shuffle { for e in stride(from: 1, to: first, by: 1) { HeadTrainer.shuffle(&order, seed: recipe.seed, epoch: e) } }
        }
        for epoch in stride(from: first, through: recipe.epochs, by: 1) {
            let started = Date()
            if recipe.shuffle { HeadTrainer.shuffle(&order, seed: recipe.seed, epoch: epoch) }
            var lossSum = 0.0, correct = 0, done = 0
            var start = 0
            var earlier = 0.0
            // A run stopped mid-epoch (Ctrl-C) goes on from the image it stopped at.
            if epoch == first, let r = resumed, r.position > 0 {
                start = min(r.position, order.count)
                done = start
                lossSum = r.partialLoss
                correct = r.partialCorrect
                earlier = r.partialSeconds
            }
            while start < order.count {
                let idx = Array(order[start..<min(start + recipe.batch, order.count)])
                let x: Tensor
                let files = idx.map { train.files[$0] }
                do {
                    if let augmentation {
                        x = try preprocessing.augmentedTensor(forFiles: files, augmentation: augmentation,
                                                              seed: recipe.seed ^ (UInt64(step) &* 0xC2B2_AE3D_27D4_EB4F))
                    } else {
                        x = try preprocessing.tensor(forFiles: files)
                    }
                } catch let e as ZooError where e.file == nil {
                    throw e.inFile(train.files[idx[0]])
                }
                let y = idx.map { train.labels[$0] }
                let seed: UInt64? = dropout ? recipe.seed &+ UInt64(step) &* 0x9E37_79B9_7F4A_7C15 : nil
                let s: TrainingGraph.Step
                do { s = try model.step(input: x, labels: y, loss: loss, dropoutSeed: seed) } catch let e as ZooError where e.message.contains("not finite") {
                    throw ZooError(.badInput, "training diverged at epoch \(epoch), step \(step + 1): \(e.message) (a lower --lr, or a base whose "
                                   + "outputs are finite on these images)", file: base.path)
                }
                lossSum += s.loss * Double(y.count)
                correct += zip(argmax(s.logits, classes: classes), y).filter { $0 == $1 }.count
                var params = model.values.filter { s.gradients[$0.key] != nil }
                try optimizer.step(&params, gradients: s.gradients)
                try model.update(params)
                step += 1
                start += idx.count
                done += idx.count
                callbacks.step?(StepProgress(epoch: epoch, done: done, total: train.files.count, loss: lossSum / Double(done),
                                             accuracy: Double(correct) / Double(done)))
                if TrainingInterrupt.isRequested, let state {
                    var p = TrainingProgress(epoch: epoch - 1, step: step, history: history, keptEpoch: keptEpoch, bestAccuracy: best,
                                             values: model.values, kept: kept, optimizer: optimizer)
                    p.position = start
                    p.partialLoss = lossSum
                    p.partialCorrect = correct
                    p.partialSeconds = earlier + Date().timeIntervalSince(started)
                    try state.save(p)
                    throw TrainingInterrupted(stateFolder: state.folder, epoch: epoch - 1, position: start)
                }
            }
            var metrics = EpochMetrics(epoch: epoch, trainLoss: lossSum / Double(train.files.count),
                                       trainAccuracy: Double(correct) / Double(train.files.count), valLoss: nil, valAccuracy: nil, seconds: 0)
            if let validation, !validation.files.isEmpty {
                let (l, a) = try evaluate(graph: graph, values: model.values, shapes: model.shapes, on: validation, loss: loss)
                metrics.valLoss = l
                metrics.valAccuracy = a
                if recipe.keep == .best, a > best { best = a; kept = model.values; keptEpoch = epoch }
            }
            if recipe.keep == .last || validation.map({ $0.files.isEmpty }) ?? true { kept = model.values; keptEpoch = epoch }
            metrics.seconds = earlier + Date().timeIntervalSince(started)
            history.append(metrics)
            try state?.save(TrainingProgress(epoch: epoch, step: step, history: history, keptEpoch: keptEpoch, bestAccuracy: best,
                                             values: model.values, kept: kept, optimizer: optimizer))
            callbacks.epoch?(metrics)
        }
        let digest = try EmbeddingCache.sha256(file: base.path)
        let provenance = TransferProvenance.json(mode: "finetune", base: base, digest: digest, train: train, validation: validation, recipe: recipe,
                                                 extra: [("augment", .string(augment ? "standard" : "none")), ("trainable", .string(trainable.description)), ("bn", .string(batchNorm == .eval ? "frozen" : "train")),
                                                         ("backbone_lr_scale", .double(backboneScale))],
                                                 kept: history[keptEpoch - 1])
        var replacing: [String: (values: [Float], shape: [Int])] = [:]
        for (name, v) in kept { if let shape = model.shapes[name] { replacing[name] = (v, shape) } }
        try base.write(replacing: replacing, classes: classes, labels: train.classes, training: provenance, to: output, overwrite: overwrite)
        state?.remove()
        return Result(epochs: history, keptEpoch: keptEpoch)
    }

    /// Loss and accuracy of the current weights on `set`: the inference engine (BatchNorm with running
    /// statistics) up to the classifier's input, then the classifier layer, 8 images per pass: the computation
    /// `ClassifierEvaluation` runs on the written file, so `zoo eval` reproduces the figure.
    func evaluate(graph: LayerGraph, values: [String: [Float]], shapes: [String: [Int]], on set: LabelledImages,
                  loss: SoftmaxCrossEntropy) throws -> (loss: Double, accuracy: Double) {
        var tensors: [String: Tensor] = [:]
        for (name, v) in values { if let shape = shapes[name] { tensors[name] = try Tensor(shape: shape, floats: v) } }
        let baseWeights = base.loaded.weights
        let embedder = try Embedder(graph: graph, weights: { name in try tensors[name] ?? baseWeights(name) }, threads: threads)
        let classes = set.classes.count
        let head = try LinearHead(classes: classes, width: base.width, weight: values[base.finalLayer + ".weight"] ?? [],
                                  bias: values[base.finalLayer + ".bias"] ?? [])
        let source = EmbeddingSource(embedder: embedder, preprocessing: base.preprocessing, cache: nil, batch: 8)
        let logits = try head.logits(source.embeddings(of: set.files).values, rows: set.files.count)
        let l = try loss.lossAndGradient(logits: logits, labels: set.labels, classes: classes).loss
        let correct = zip(argmax(logits, classes: classes), set.labels).filter { $0 == $1 }.count
        return (l, Double(correct) / Double(set.files.count))
    }
}

/// The `zoo.training` metadata of a trained classifier.
enum TransferProvenance {
    /// A digest of everything a resumed run must share with the interrupted one.
    static func fingerprint(mode: String, baseSHA256: String, train: LabelledImages, validation: LabelledImages?, recipe: TrainingRecipe) -> String {
        var text = "\(mode)\n\(baseSHA256)\n" + recipe.summary.map { "\($0.0)=\($0.1)" }.joined(separator: ",") + "\n"
        for set in [train, validation ?? train.subset([])] {
            text += set.classes.joined(separator: "\u{1}") + "\n"
            for (f, y) in zip(set.files, set.labels) { text += "\(f)\u{1}\(y)\n" }
        }
        return EmbeddingCache.hex(SHA256.hash(data: Data(text.utf8)))
    }

    static func json(mode: String, base: TransferBase, digest: String, train: LabelledImages, validation: LabelledImages?,
                     recipe: TrainingRecipe, extra: [(String, JSONValue)], kept: EpochMetrics) -> JSONValue {
        var metrics: [(String, JSONValue)] = [("epoch", .int(Int64(kept.epoch))), ("train_loss", .double(kept.trainLoss)),
                                              ("train_accuracy", .double(kept.trainAccuracy))]
        if let v = kept.valAccuracy { metrics.append(("val_accuracy", .double(v))) }
        if let v = kept.valLoss { metrics.append(("val_loss", .double(v))) }
        return .object([
            ("mode", .string(mode)),
            ("base", .string((base.path as NSString).lastPathComponent)),
            ("base_sha256", .string(digest)),
            ("classifier", .string(base.finalLayer)),
            ("train_images", .int(Int64(train.files.count))),
            ("val_images", .int(Int64(validation?.files.count ?? 0))),
            ("recipe", .object(recipe.summary.map { ($0.0, .string($0.1)) } + extra)),
            ("metrics", .object(metrics)),
        ])
    }
}
