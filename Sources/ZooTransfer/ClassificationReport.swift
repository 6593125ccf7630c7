import ZooErrors

/// Accuracy, top-5 accuracy, per-class precision and recall, and the confusion matrix of predictions.
public struct ClassificationReport: Sendable, Equatable {
    /// One class's figures.
    public struct ClassFigures: Sendable, Equatable {
        /// The class name.
        public var name: String
        /// Of the images predicted as this class, the fraction that are (0 when none were predicted).
        public var precision: Double
        /// Of the images of this class, the fraction predicted as it (0 when there are none).
        public var recall: Double
        /// Images of this class.
        public var support: Int
    }

    /// Fraction of images whose top prediction is their class.
    public var accuracy: Double
    /// Fraction whose class is among the five highest logits; nil with fewer than 5 classes.
    public var top5: Double?
    /// Class names.
    public var classes: [String]
    /// `confusion[true][predicted]` image counts.
    public var confusion: [[Int]]
    /// Per-class figures, class order.
    public var perClass: [ClassFigures]
    /// Images.
    public var count: Int

    /// The report of `logits` [labels.count, classes.count] (row-major) against `labels`.
    public init(logits: [Float], labels: [Int], classes: [String]) throws {
        let k = classes.count, n = labels.count
        guard k > 0, logits.count == n * k else { throw ZooError(.badInput, "\(logits.count) logits for \(n) images of \(k) classes") }
        guard n > 0 else { throw ZooError(.badInput, "no images to evaluate") }
        if let bad = labels.first(where: { $0 < 0 || $0 >= k }) { throw ZooError(.badInput, "label \(bad) outside the \(k) classes") }
        let predicted = argmax(logits, classes: k)
        var confusion = [[Int]](repeating: [Int](repeating: 0, count: k), count: k)
        for (y, p) in zip(labels, predicted) { confusion[y][p] += 1 }
        var correct = 0, inTop5 = 0
        for (i, y) in labels.enumerated() {
            if predicted[i] == y { correct += 1 }
            if k >= 5 {
                let row = logits[(i * k)..<((i + 1) * k)]
                let target = row[row.startIndex + y]
                // Rank as torch.topk does for distinct values: the classes with a strictly larger logit,
                // plus earlier classes with an equal one.
                var above = 0
                for (j, v) in row.enumerated() where v > target || (v == target && j < y) { above += 1 }
                if above < 5 { inTop5 += 1 }
            }
        }
        accuracy = Double(correct) / Double(n)
        top5 = k >= 5 ? Double(inTop5) / Double(n) : nil
        self.classes = classes
        self.confusion = confusion
        perClass = classes.indices.map { c in
            let support = confusion[c].reduce(0, +)
            let predictedAs = confusion.reduce(0) { $0 + $1[c] }
            let hit = confusion[c][c]
            return ClassFigures(name: classes[c], precision: predictedAs > 0 ? Double(hit) / Double(predictedAs) : 0,
                                recall: support > 0 ? Double(hit) / Double(support) : 0, support: support)
        }
        count = n
    }
}
