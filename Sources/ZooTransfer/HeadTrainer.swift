import Foundation
import ZooErrors
import ZooTensor
import ZooTraining

/// Embeddings [count, width] (row-major) with their class labels.
public struct EmbeddedSet: Sendable, Equatable {
    /// Row-major values.
    public var values: [Float]
    /// The class of each row.
    public var labels: [Int]
    /// The embedding width.
    public var width: Int

    /// A set; throws `badInput` when the sizes disagree.
    public init(values: [Float], labels: [Int], width: Int) throws {
        guard width > 0, values.count == labels.count * width else {
            throw ZooError(.badInput, "\(values.count) embedding values for \(labels.count) rows of width \(width)")
        }
        self.values = values
        self.labels = labels
        self.width = width
    }

    /// Rows.
    public var count: Int { labels.count }

    /// The rows at `indices`, in that order.
    func rows(_ indices: ArraySlice<Int>) -> (values: [Float], labels: [Int]) {
        var v = [Float](); v.reserveCapacity(indices.count * width)
        for i in indices { v.append(contentsOf: values[(i * width)..<((i + 1) * width)]) }
        return (v, indices.map { labels[$0] })
    }
}

/// Trains a `LinearHead` on embeddings (the feature-extraction mode of transfer learning): mini-batch
/// steps of softmax cross-entropy with the recipe's optimiser and schedule, the validation set measured
/// after every epoch, the best (or last) epoch's head kept.
public enum HeadTrainer {
    /// What `fit` returns.
    public struct Result: Sendable {
        /// The kept head (best validation accuracy, or last).
        public var head: LinearHead
        /// Every epoch's figures.
        public var epochs: [EpochMetrics]
        /// The 1-based epoch whose head was kept.
        public var keptEpoch: Int
    }

    /// The parameter names the optimiser sees.
    static let weightName = "weight", biasName = "bias"

    /// Trains from `initial` on `train`, measuring `validation` (when given and not empty) after each
    /// epoch. `onEpoch` receives each epoch's figures as soon as they are known, `onStep` where the current
    /// epoch stands after each step. Deterministic: the same inputs and recipe give the
    /// same head bit for bit. `resume` continues from a saved `TrainingProgress` (the run then ends as an
    /// uninterrupted one would); `onEpochEnd` receives the progress after every epoch (to save it).
    public static func fit(train: EmbeddedSet, validation: EmbeddedSet?, initial: LinearHead, recipe: TrainingRecipe,
                           resume: TrainingProgress? = nil, onEpochEnd: ((TrainingProgress) throws -> Void)? = nil,
                           onEpoch: ((EpochMetrics) -> Void)? = nil, onStep: ((StepProgress) -> Void)? = nil) throws -> Result {
        try recipe.validate()
        guard train.count > 0 else { throw ZooError(.badInput, "no training images") }
        guard train.width == initial.width else {
            throw ZooError(.mismatch, "embeddings of width \(train.width) for a head that reads \(initial.width)")
        }
        if let validation, validation.width != initial.width {
            throw ZooError(.mismatch, "validation embeddings of width \(validation.width) for a head that reads \(initial.width)")
        }
        let loss = try SoftmaxCrossEntropy(labelSmoothing: recipe.labelSmoothing)
        let stepsPerEpoch = (train.count + recipe.batch - 1) / recipe.batch
        var optimizer = try recipe.makeOptimizer(groups: [ParameterGroup(names: [weightName, biasName], learningRate: recipe.learningRate,
                                                                         weightDecay: recipe.weightDecay)],
                                                 stepsPerEpoch: stepsPerEpoch)
        var head = initial
        var params = [weightName: head.weight, biasName: head.bias]
        var history: [EpochMetrics] = []
        var kept = head, keptEpoch = 1, bestAccuracy = -1.0
        var order = Array(0..<train.count)
        var first = 1
        if let r = resume {
            func restore(_ values: [String: [Float]]) throws -> LinearHead {
                try LinearHead(classes: initial.classes, width: initial.width, weight: values[weightName] ?? [], bias: values[biasName] ?? [])
            }
            head = try restore(r.values)
            kept = try restore(r.kept)
            params = [weightName: head.weight, biasName: head.bias]
            optimizer = r.optimizer
            history = r.history
            keptEpoch = r.keptEpoch
            bestAccuracy = r.bestAccuracy
            first = r.epoch + 1
            if recipe.shuffle { for e in stride(from: 1, to: first, by: 1) { shuffle(&order, seed: recipe.seed, epoch: e) } }
        }
        for epoch in stride(from: first, through: recipe.epochs, by: 1) {
            let started = Date()
            if recipe.shuffle { shuffle(&order, seed: recipe.seed, epoch: epoch) }
            var lossSum = 0.0, correct = 0, done = 0
            var start = 0
            while start < order.count {
                let idx = order[start..<min(start + recipe.batch, order.count)]
                let (x, y) = train.rows(idx)
                let logits = try head.logits(x, rows: y.count)
                correct += zip(argmax(logits, classes: head.classes), y).filter { $0 == $1 }.count
                let (l, g) = try loss.lossAndGradient(logits: logits, labels: y, classes: head.classes)
                lossSum += l * Double(y.count)
                let grads = head.gradients(input: x, logitGradient: g, rows: y.count)
                try optimizer.step(&params, gradients: [weightName: grads.weight, biasName: grads.bias])
                head.weight = params[weightName] ?? head.weight
                head.bias = params[biasName] ?? head.bias
                start += idx.count
                done += idx.count
                onStep?(StepProgress(epoch: epoch, done: done, total: train.count, loss: lossSum / Double(done),
                                     accuracy: Double(correct) / Double(done)))
            }
            var metrics = EpochMetrics(epoch: epoch, trainLoss: lossSum / Double(train.count), trainAccuracy: Double(correct) / Double(train.count),
                                       valLoss: nil, valAccuracy: nil, seconds: 0)
            if let validation, validation.count > 0 {
                let logits = try head.logits(validation.values, rows: validation.count)
                metrics.valLoss = try loss.lossAndGradient(logits: logits, labels: validation.labels, classes: head.classes).loss
                let acc = Double(zip(argmax(logits, classes: head.classes), validation.labels).filter { $0 == $1 }.count) / Double(validation.count)
                metrics.valAccuracy = acc
                if recipe.keep == .best, acc > bestAccuracy { bestAccuracy = acc; kept = head; keptEpoch = epoch }
            }
            if recipe.keep == .last || validation.map({ $0.count == 0 }) ?? true { kept = head; keptEpoch = epoch }
            metrics.seconds = Date().timeIntervalSince(started)
            history.append(metrics)
            try onEpochEnd?(TrainingProgress(epoch: epoch, step: 0, history: history, keptEpoch: keptEpoch, bestAccuracy: bestAccuracy,
                                             values: params, kept: [weightName: kept.weight, biasName: kept.bias], optimizer: optimizer))
            onEpoch?(metrics)
        }
        return Result(head: kept, epochs: history, keptEpoch: keptEpoch)
    }

    /// The epoch's order: a Fisher-Yates shuffle of the previous order from a generator seeded by the
    /// recipe's seed and the epoch.
    static func shuffle(_ order: inout [Int], seed: UInt64, epoch: Int) {
        var rng = SplitMix64(state: seed ^ (UInt64(epoch) &* 0xD1B5_4A32_D192_ED03))
        guard order.count > 1 else { return }
        for i in stride(from: order.count - 1, to: 0, by: -1) {
            order.swapAt(i, Int(rng.next() % UInt64(i + 1)))
        }
    }
}

/// The index of the largest value of each row (the first of equals, as torch's `argmax`).
public func argmax(_ logits: [Float], classes: Int) -> [Int] {
    guard classes > 0 else { return [] }
    return stride(from: 0, to: logits.count - classes + 1, by: classes).map { start in
        var best = start
        for j in (start + 1)..<(start + classes) where logits[j] > logits[best] { best = j }
        return best - start
    }
}
