import Foundation

/// One class and its probability.
public struct Prediction: Sendable, Equatable {
    /// Class index.
    public var index: Int
    /// Class name (from the checkpoint's labels, or the index as text).
    public var label: String
    /// Softmax probability.
    public var probability: Float
}

/// A classifier with its preprocessing and labels, read from a native checkpoint: images in, labels out.
///
/// ```swift
/// let model = try ImageClassifier(contentsOf: URL(fileURLWithPath: "resnet50.safetensors"))
/// for top in try model.classify(files: ["cat.jpg"], top: 5) { print(top[0].label, top[0].probability) }
/// ```
public struct ImageClassifier: Sendable {
    /// The network.
    public let classifier: Classifier
    /// How images become its input (from `zoo.preprocessing`).
    public let preprocessing: Preprocessing
    /// Class names in index order.
    public let labels: [String]

    /// Loads `url`. `labels` replaces the checkpoint's own labels (a custom head's class names).
    public init(contentsOf url: URL, labels: [String]? = nil, threads: Int = defaultThreadCount) throws {
        let loaded = try LoadedCheckpoint(path: url.path)
        do {
            guard let pre = loaded.checkpoint.metadata.preprocessing else {
                throw ZooError(.badInput, "no preprocessing metadata (zoo.preprocessing); convert it with `zoo convert --arch NAME`")
            }
            preprocessing = try Preprocessing(json: pre)
            classifier = try Classifier(graph: loaded.graph, weights: loaded.weights, threads: threads)
            let classes = loaded.config.classes
            let names = labels ?? loaded.checkpoint.metadata.labels ?? (0..<classes).map(String.init)
            guard names.count == classes else {
                throw ZooError(.mismatch, "\(names.count) labels for a \(classes)-class head")
            }
            self.labels = names
        } catch let e as ZooError { throw e.inFile(url.path) }
    }

    /// Top-`top` predictions for each image file, in order.
    public func classify(files: [String], top: Int = 5) throws -> [[Prediction]] {
        let x = try preprocessing.tensor(forFiles: files)
        let logits: Tensor
        do {
            logits = try classifier(x)
        } catch let e as ZooError where e.file == nil && !files.isEmpty {
            // The images of a batch preprocess to one size: the first one names the batch.
            throw e.inFile(files[0])
        }
        return try Self.topK(logits: logits, top: top, labels: labels)
    }

    /// Top-`top` predictions for each image file that can be read and decoded, in order, with its path;
    /// each one that cannot goes to `onSkip` (path and the reader's message) and gets no result.
    public func classify(files: [String], top: Int = 5, skippingBad onSkip: (SkippedImage) -> Void) throws -> [(file: String, top: [Prediction])] {
        var out: [(file: String, top: [Prediction])] = []
        try classify(files: files, top: top, batch: max(files.count, 1), decode: DecodeOptions(threads: 0), skipBad: true,
                     onSkip: onSkip, onResults: { out += $0 })
        return out
    }

    /// Classifies `files` `batch` inputs per forward pass while background threads decode the next
    /// ones (`DecodePipeline`, set by `decode`), handing each batch's results to `onResults` in input
    /// order as soon as they are computed. Without `skipBad` the first image that cannot be read or
    /// decoded stops the run with its error (the batches before it have been handed over); with it,
    /// such an image goes to `onSkip` and gets no result.
    public func classify(files: [String], top: Int = 5, batch: Int = 8, decode: DecodeOptions = DecodeOptions(), skipBad: Bool = false,
                         onSkip: (SkippedImage) -> Void = { _ in }, onResults: ([(file: String, top: [Prediction])]) throws -> Void) throws {
        let pipeline = DecodePipeline(files: files, preprocessing: preprocessing, options: decode)
        defer { pipeline.stop() }
        while true {
            let (good, prepared, taken) = try SkippedImage.take(max(batch, 1), from: pipeline, skipBad: skipBad, onSkip: { onSkip($1) })
            if taken == 0 { return }
            guard !prepared.isEmpty else { continue }
            let logits: Tensor
            do {
                logits = try classifier(try preprocessing.tensor(prepared: prepared))
            } catch let e as ZooError where e.file == nil {
                throw e.inFile(good[0].path)
            }
            try onResults(Array(zip(good.map(\.path), try Self.topK(logits: logits, top: top, labels: labels))).map { (file: $0, top: $1) })
        }
    }

    /// Softmax over each row of `logits` [N, classes] and the `top` most probable classes.
    public static func topK(logits: Tensor, top: Int, labels: [String]) throws -> [[Prediction]] {
        guard logits.rank == 2 else { throw ZooError(.badInput, "logits must be [N, classes], got \(logits.shape)") }
        let n = logits.shape[0], c = logits.shape[1]
        let values = logits.floats()
        var out: [[Prediction]] = []
        for i in 0..<n {
            let row = values[(i * c)..<((i + 1) * c)]
            let m = row.max() ?? 0
            var exps = row.map { Double(($0 - m)).exponential }
            let sum = exps.reduce(0, +)
            for j in exps.indices { exps[j] /= sum }
            let order = exps.indices.sorted { exps[$0] != exps[$1] ? exps[$0] > exps[$1] : $0 < $1 }
            out.append(order.prefix(max(0, top)).map { j in
                Prediction(index: j, label: j < labels.count ? labels[j] : String(j), probability: Float(exps[j]))
            })
        }
        return out
    }
}

extension Double {
    fileprivate var exponential: Double { Foundation.exp(self) }
}
