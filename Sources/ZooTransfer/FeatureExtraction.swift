import Foundation
import ZooErrors
import ZooJSON
import ZooRuntime
import ZooTensor

/// Feature-extraction transfer learning: the base checkpoint stays frozen; each image's embedding (the
/// input of the base's classifier layer) is computed once, through the cache, and a new linear
/// classifier for your classes is trained on the embeddings and written as a native checkpoint of the
/// same architecture with your class count and names.
///
/// ```swift
/// let data = try LabelledImages.folder("pets/")
/// let (train, val) = try data.split(validationFraction: 0.2, seed: 0)
/// let run = try FeatureExtractionTraining(base: TransferBase(path: "resnet50.safetensors"))
/// let result = try run.fit(train: train, validation: val, output: "pets.safetensors")
/// print(result.epochs.last?.valAccuracy ?? 0)
/// ```
public struct FeatureExtractionTraining: Sendable {
    /// The base.
    public let base: TransferBase
    /// The recipe.
    public var recipe: TrainingRecipe
    /// Compute threads of the backbone.
    public var threads: Int
    /// The root folder of the embedding cache (`ModelCache.root + "/embeddings"`), or nil for none.
    public var cacheRoot: String?
    /// Images per backbone pass.
    public var batch: Int

    /// A run with `recipe` (the feature-extraction defaults when omitted).
    public init(base: TransferBase, recipe: TrainingRecipe = TrainingRecipe(), threads: Int = defaultThreadCount,
                cacheRoot: String? = nil, batch: Int = 8) {
        self.base = base
        self.recipe = recipe
        self.threads = max(1, threads)
        self.cacheRoot = cacheRoot
        self.batch = max(1, batch)
    }

    /// Progress callbacks.
    public struct Callbacks: Sendable {
        /// Embeddings done and total (training then validation images).
        public var embedding: (@Sendable (Int, Int) -> Void)?
        /// Each epoch's figures.
        public var epoch: (@Sendable (EpochMetrics) -> Void)?
        /// Where the current epoch stands after each step.
        public var step: (@Sendable (StepProgress) -> Void)?

        /// Callbacks (all optional).
        public init(embedding: (@Sendable (Int, Int) -> Void)? = nil, epoch: (@Sendable (EpochMetrics) -> Void)? = nil,
                    step: (@Sendable (StepProgress) -> Void)? = nil) {
            self.embedding = embedding
            self.epoch = epoch
            self.step = step
        }
    }

    /// What `fit` returns.
    public struct Result: Sendable {
        /// Every epoch's figures.
        public var epochs: [EpochMetrics]
        /// The 1-based epoch written to the output.
        public var keptEpoch: Int
        /// The written head.
        public var head: LinearHead
        /// Embeddings read from the cache (of all computed).
        public var cachedEmbeddings: Int
        /// Embeddings in all (training and validation).
        public var embeddings: Int
    }

    /// The embedding source of this run: the cache (when `cacheRoot` is set) is keyed by `baseSHA256`, the
    /// base checkpoint's digest, and its preprocessing.
    public func source(baseSHA256: String) throws -> EmbeddingSource {
        let embedder = try base.embedder(threads: threads)
        let cache = cacheRoot.map {
            EmbeddingCache(root: $0, baseSHA256: baseSHA256, preprocessing: base.preprocessing, width: embedder.width)
        }
        return EmbeddingSource(embedder: embedder, preprocessing: base.preprocessing, cache: cache, batch: batch)
    }

    /// Embeds `train` and `validation` (when given), trains a head from `initial` (torch's `nn.Linear`
    /// initialisation from the recipe's seed when nil) and writes the kept epoch's classifier to `output`
    /// (atomically; nothing is written when anything fails). `validation` must use `train`'s classes.
    /// With `checkpointing`, the state after every epoch is kept in `OUTPUT.train-state/` (removed when the
    /// output is written); `resume` continues from it, and the result equals an uninterrupted run's.
    public func fit(train: LabelledImages, validation: LabelledImages?, output: String, overwrite: Bool = false,
                    initial: LinearHead? = nil, checkpointing: Bool = false, resume: Bool = false,
                    callbacks: Callbacks = Callbacks()) throws -> Result {
        if let validation, validation.classes != train.classes {
            throw ZooError(.usage, "the validation set's classes \(validation.classes) differ from the training set's \(train.classes)")
        }
        let digest: String
        do { digest = try EmbeddingCache.sha256(file: base.path) } catch let e as ZooError { throw e.inFile(base.path) }
        let source = try source(baseSHA256: digest)
        let total = train.files.count + (validation?.files.count ?? 0)
        let trainEmbeddings = try source.embeddings(of: train.files) { done, _ in callbacks.embedding?(done, total) }
        let valEmbeddings = try validation.map { v in
            try source.embeddings(of: v.files) { done, _ in callbacks.embedding?(train.files.count + done, total) }
        }
        let width = source.embedder.width
        let head = try initial ?? LinearHead.initial(classes: train.classes.count, width: width, seed: recipe.seed)
        guard head.classes == train.classes.count else {
            throw ZooError(.mismatch, "an initial head of \(head.classes) classes for \(train.classes.count) classes")
        }
        var validationSet: EmbeddedSet?
        if let validation, let valEmbeddings {
            validationSet = try EmbeddedSet(values: valEmbeddings.values, labels: validation.labels, width: width)
        }
        let state = checkpointing ? TrainingStateFolder(output: output, fingerprint: TransferProvenance.fingerprint(
            mode: "features", baseSHA256: digest, train: train, validation: validation, recipe: recipe)) : nil
        var progress: TrainingProgress?
        if resume {
            guard let r = try state?.load() else {
                throw ZooError(.usage, "no saved training state to resume (\(output).train-state)", file: output)
            }
            progress = r
        }
        let fitted = try HeadTrainer.fit(
            train: EmbeddedSet(values: trainEmbeddings.values, labels: train.labels, width: width), validation: validationSet,
            initial: head, recipe: recipe, resume: progress, onEpochEnd: { p in
                guard let state else { return }
                try state.save(p)
                // Ctrl-C (TrainingInterrupt): epochs over embeddings are short, so the run stops at an epoch's end.
                if TrainingInterrupt.isRequested, p.epoch < recipe.epochs {
                    throw TrainingInterrupted(stateFolder: state.folder, epoch: p.epoch, position: 0)
                }
            }, onEpoch: callbacks.epoch, onStep: callbacks.step)
        let provenance = TransferProvenance.json(mode: "features", base: base, digest: digest, train: train, validation: validation,
                                                 recipe: recipe, extra: [], kept: fitted.epochs[fitted.keptEpoch - 1])
        try base.write(head: fitted.head, labels: train.classes, training: provenance, to: output, overwrite: overwrite)
        state?.remove()
        return Result(epochs: fitted.epochs, keptEpoch: fitted.keptEpoch, head: fitted.head,
                      cachedEmbeddings: trainEmbeddings.cached + (valEmbeddings?.cached ?? 0), embeddings: total)
    }
}

/// Evaluates a classifier checkpoint on labelled images.
public enum ClassifierEvaluation {
    /// The report of the checkpoint at `path` on `data` (whose classes must be the checkpoint's labels,
    /// in order: load it with `classes: TransferBase(path:).labels`). Runs the embedder and the checkpoint's
    /// own classifier layer, the same computation training measured its validation accuracy with.
    public static func evaluate(checkpoint path: String, data: LabelledImages, threads: Int = defaultThreadCount, batch: Int = 8,
                                progress: (@Sendable (Int, Int) -> Void)? = nil) throws -> ClassificationReport {
        let base = try TransferBase(path: path)
        let head = try base.currentHead()
        guard data.classes.count == head.classes else {
            throw ZooError(.mismatch, "\(data.classes.count) classes in the data, \(head.classes) in the classifier", file: path)
        }
        let source = EmbeddingSource(embedder: try base.embedder(threads: threads), preprocessing: base.preprocessing, cache: nil, batch: batch)
        let embeddings = try source.embeddings(of: data.files, progress: progress)
        let logits = try head.logits(embeddings.values, rows: data.files.count)
        return try ClassificationReport(logits: logits, labels: data.labels, classes: data.classes)
    }
}
