import ZooErrors
import ZooTraining

/// How a new classifier is trained: optimiser, schedule, epochs, batches, seed.
///
/// The defaults are the feature-extraction recipe (docs/transfer-learning.md): AdamW at 1e-2 with decoupled
/// weight decay 1e-4, batches of 16, 20 epochs under a cosine schedule, shuffled each epoch from the seed,
/// the epoch with the best validation accuracy kept. A linear head on frozen embeddings is a convex
/// problem: Adam's per-parameter steps make it converge whatever the embedding scale; a small dataset gives
/// few steps per epoch, hence the small batches and the rate (Keras's 1e-3 assumes thousands of images);
/// the cosine decay and keeping the best epoch make a too-high rate cheap; epochs over cached embeddings
/// cost milliseconds.
public struct TrainingRecipe: Sendable, Equatable {
    /// The optimiser.
    public enum OptimizerChoice: String, Sendable, CaseIterable, Codable {
        /// SGD with `momentum` (torch's `optim.SGD`).
        case sgd
        /// AdamW (torch's `optim.AdamW`: betas 0.9/0.999, eps 1e-8, decoupled weight decay).
        case adamw
    }

    /// The learning-rate schedule over all steps (after the warm-up).
    public enum ScheduleChoice: String, Sendable, CaseIterable, Codable {
        /// A constant rate.
        case constant
        /// Cosine annealing to zero at the last step.
        case cosine
        /// The rate divided by 10 every third of the run.
        case step
    }

    /// Which epoch's weights the result keeps.
    public enum Keep: String, Sendable, CaseIterable, Codable {
        /// The epoch with the best validation accuracy (the first of equals); the last one without validation data.
        case best
        /// The last epoch.
        case last
    }

    /// Passes over the training set.
    public var epochs = 20
    /// Images per step (the last batch of an epoch may be smaller).
    public var batch = 16
    /// The base learning rate (of the new classifier).
    public var learningRate = 1e-2
    /// Weight decay (L2 for SGD, decoupled for AdamW), applied to every trained parameter.
    public var weightDecay = 1e-4
    /// The optimiser.
    public var optimizer = OptimizerChoice.adamw
    /// SGD momentum.
    public var momentum = 0.9
    /// The schedule.
    public var schedule = ScheduleChoice.cosine
    /// Epochs of linear warm-up from a tenth of the rate.
    public var warmupEpochs = 0
    /// Label smoothing of the cross-entropy loss.
    public var labelSmoothing = 0.0
    /// The seed of the initial classifier, the shuffling and the validation split.
    public var seed: UInt64 = 0
    /// Shuffle the training set each epoch (seeded); false keeps the set's order (for comparisons).
    public var shuffle = true
    /// Which epoch's weights are kept.
    public var keep = Keep.best

    /// The defaults.
    public init() {}

    /// Throws a usage error for a value out of range.
    public func validate() throws {
        guard epochs >= 1 else { throw ZooError(.usage, "--epochs must be at least 1") }
        guard batch >= 1 else { throw ZooError(.usage, "--batch must be at least 1") }
        guard learningRate > 0, learningRate.isFinite else { throw ZooError(.usage, "--lr must be positive") }
        guard weightDecay >= 0, weightDecay.isFinite else { throw ZooError(.usage, "--weight-decay must be non-negative") }
        guard (0..<1).contains(momentum) else { throw ZooError(.usage, "--momentum must be in [0, 1)") }
        guard warmupEpochs >= 0, warmupEpochs < epochs || warmupEpochs == 0 else {
            throw ZooError(.usage, "--warmup-epochs must be less than --epochs")
        }
        guard (0..<1).contains(labelSmoothing) else { throw ZooError(.usage, "--label-smoothing must be in [0, 1)") }
    }

    /// The optimiser for `groups` over `stepsPerEpoch` steps per epoch.
    public func makeOptimizer(groups: [ParameterGroup], stepsPerEpoch: Int) throws -> Optimizer {
        let total = max(1, epochs * stepsPerEpoch), warm = warmupEpochs * stepsPerEpoch
        let shape: Schedule.Shape
        switch schedule {
        case .constant: shape = .constant
        case .cosine: shape = .cosine(totalSteps: total, minFactor: 0)
        case .step: shape = .step(every: max(1, total / 3), gamma: 0.1)
        }
        let algorithm: OptimizerAlgorithm = optimizer == .sgd ? .sgd(momentum: momentum) : .adamW
        return try Optimizer(algorithm, groups: groups, schedule: try Schedule(shape, warmupSteps: warm))
    }

    /// The recipe as JSON members (for the output's provenance and the metrics log).
    public var summary: [(String, String)] {
        [("epochs", "\(epochs)"), ("batch", "\(batch)"), ("lr", "\(learningRate)"), ("weight_decay", "\(weightDecay)"),
         ("optimizer", optimizer.rawValue), ("momentum", "\(momentum)"), ("schedule", schedule.rawValue),
         ("warmup_epochs", "\(warmupEpochs)"), ("label_smoothing", "\(labelSmoothing)"), ("seed", "\(seed)"),
         ("shuffle", "\(shuffle)"), ("keep", keep.rawValue)]
    }
}

/// One epoch's figures.
public struct EpochMetrics: Sendable, Equatable, Codable {
    /// 1-based epoch number.
    public var epoch: Int
    /// Mean training loss over the epoch's images (each batch's loss before its update).
    public var trainLoss: Double
    /// Training accuracy (fraction 0...1) of the predictions made during the epoch.
    public var trainAccuracy: Double
    /// Validation loss after the epoch, when there is validation data.
    public var valLoss: Double?
    /// Validation accuracy (fraction) after the epoch.
    public var valAccuracy: Double?
    /// Wall time of the epoch in seconds.
    public var seconds: Double

    /// A record.
    public init(epoch: Int, trainLoss: Double, trainAccuracy: Double, valLoss: Double?, valAccuracy: Double?, seconds: Double) {
        self.epoch = epoch
        self.trainLoss = trainLoss
        self.trainAccuracy = trainAccuracy
        self.valLoss = valLoss
        self.valAccuracy = valAccuracy
        self.seconds = seconds
    }
}

/// Where an epoch stands after a step: for progress bars.
public struct StepProgress: Sendable, Equatable {
    /// The 1-based epoch.
    public var epoch: Int
    /// Images done in the epoch, and the epoch's total.
    public var done: Int, total: Int
    /// The epoch's mean training loss and accuracy so far.
    public var loss: Double, accuracy: Double

    /// A record.
    public init(epoch: Int, done: Int, total: Int, loss: Double, accuracy: Double) {
        self.epoch = epoch
        self.done = done
        self.total = total
        self.loss = loss
        self.accuracy = accuracy
    }
}
