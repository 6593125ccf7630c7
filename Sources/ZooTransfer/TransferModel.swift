import Foundation
import ZooArchitectures
import ZooErrors
import ZooFormats
import ZooImages
import ZooJSON
import ZooRuntime
import ZooTensor

/// A native checkpoint opened for transfer learning: its graph's final linear layer (the classifier a new
/// one replaces), its embedder, its preprocessing, and the writer of the result.
///
/// ```swift
/// let base = try TransferBase(path: "resnet50.safetensors")
/// let head = try LinearHead.initial(classes: 3, width: base.width, seed: 0)
/// // ... train the head on base.embedder's embeddings (HeadTrainer.fit) ...
/// try base.write(head: head, labels: ["cat", "dog", "fish"], to: "pets.safetensors")
/// ```
public struct TransferBase: Sendable {
    /// The checkpoint's path.
    public let path: String
    /// The opened checkpoint.
    public let loaded: LoadedCheckpoint
    /// Its preprocessing (`zoo.preprocessing`).
    public let preprocessing: Preprocessing
    /// The final linear layer's name (`fc`, `classifier.6`, `classifier.3`, ...).
    public let finalLayer: String
    /// The width of the final layer's input (the embedding width).
    public let width: Int
    /// The architecture with its classifier: the checkpoint's own, or for a backbone-only file (a Keras
    /// "no top" conversion) `ArchitectureConfig.withClassifier()`: a classifier on globally pooled features.
    public let config: ArchitectureConfig
    /// The layer graph of `config`.
    public let graph: LayerGraph
    /// True when the checkpoint holds its classifier; false for a backbone-only file, whose new classifier
    /// (and, for VGG and MobileNetV3, its pooling head) is added by the writer.
    public var hasClassifier: Bool { loaded.config.includeTop }

    /// Opens `path`. Throws `badInput` naming it when it has no preprocessing metadata or its graph does not
    /// end on a linear classifier.
    public init(path: String) throws {
        loaded = try LoadedCheckpoint(path: path)
        guard let json = loaded.checkpoint.metadata.preprocessing else {
            throw ZooError(.badInput, "no preprocessing metadata (zoo.preprocessing)", file: path)
        }
        do {
            preprocessing = try Preprocessing(json: json)
            config = try loaded.config.withClassifier()
            graph = config.includeTop == loaded.config.includeTop ? loaded.graph : try config.graph()
        } catch let e as ZooError { throw e.inFile(path) }
        guard let final = Embedder.finalLinear(of: graph) else {
            throw ZooError(.badInput, "the architecture has no classifier layer to replace", file: path)
        }
        finalLayer = graph.nodes[final.layer].name
        width = final.inFeatures
        self.path = path
    }

    /// The embedder of this checkpoint (the graph up to the final layer's input).
    public func embedder(threads: Int = defaultThreadCount) throws -> Embedder {
        do { return try Embedder(graph: graph, weights: loaded.weights, threads: threads) } catch let e as ZooError { throw e.inFile(path) }
    }

    /// The checkpoint's own classifier as a head (its final layer's weight and bias). Throws `badInput` for
    /// a backbone-only file.
    public func currentHead() throws -> LinearHead {
        guard hasClassifier else { throw ZooError(.badInput, "a backbone without classifier (no top)", file: path) }
        let file = loaded.checkpoint.file
        do {
            let w = try file.tensor(named: finalLayer + ".weight"), b = try file.tensor(named: finalLayer + ".bias")
            guard w.rank == 2, w.shape[1] == width, b.shape == [w.shape[0]] else {
                throw ZooError(.mismatch, "classifier weight \(w.shape) and bias \(b.shape) do not fit width \(width)", item: finalLayer)
            }
            return try LinearHead(classes: w.shape[0], width: width, weight: w.floats(), bias: b.floats())
        } catch let e as ZooError { throw e.inFile(path) }
    }

    /// The configuration with `classes` outputs.
    public func configuration(classes: Int) throws -> ArchitectureConfig {
        var config = self.config
        config.classes = classes
        try config.validate()
        let graph = try config.graph()
        guard let final = Embedder.finalLinear(of: graph), graph.nodes[final.layer].name == finalLayer, final.inFeatures == width else {
            throw ZooError(.mismatch, "the architecture with \(classes) classes has another classifier layer", file: path, item: finalLayer)
        }
        return config
    }

    /// Writes the base with `head` as its classifier (the architecture with `head.classes` classes), class
    /// names `labels`, the base's preprocessing and source, and `training` (provenance: base file and
    /// digest, recipe, metrics) under the `zoo.training` metadata key; atomically, refusing an existing
    /// file unless `overwrite`. Every other tensor is copied as it is in the base (same dtype).
    public func write(head: LinearHead, labels: [String], training: JSONValue? = nil, to output: String, overwrite: Bool = false) throws {
        guard head.width == width else { throw ZooError(.mismatch, "a head of width \(head.width) for embeddings of \(width)", file: output) }
        try write(replacing: [finalLayer + ".weight": (head.weight, [head.classes, width]), finalLayer + ".bias": (head.bias, [head.classes])],
                  classes: head.classes, labels: labels, training: training, to: output, overwrite: overwrite)
    }

    /// Writes the base with `classes` classes and the float32 values of `replacing` (name: values and shape;
    /// the new classifier and any trained tensor) in place of the base's tensors of those names; the rest as
    /// `write(head:...)` describes. A name the base lacks, or a shape other than the new architecture's
    /// (the base's, for every tensor but the classifier), is an error.
    public func write(replacing: [String: (values: [Float], shape: [Int])], classes: Int, labels: [String], training: JSONValue? = nil,
                      to output: String, overwrite: Bool = false) throws {
        guard labels.count == classes else {
            throw ZooError(.mismatch, "\(labels.count) labels for a classifier of \(classes) classes", file: output)
        }
        let config = try configuration(classes: classes)
        let file = loaded.checkpoint.file
        var records: [TensorRecord] = []
        for entry in file.entries {
            if let (v, shape) = replacing[entry.name] {
                let isClassifier = entry.name.hasPrefix(finalLayer + ".")
                guard isClassifier || shape == entry.shape else {
                    throw ZooError(.mismatch, "shape \(shape), the base has \(entry.shape)", file: output, item: entry.name)
                }
                records.append(TensorRecord(name: entry.name, tensor: try Tensor(shape: shape, floats: v)))
            } else {
                records.append(TensorRecord(name: entry.name, dtype: entry.dtype, shape: entry.shape) { try file.tensor(entry) })
            }
        }
        // A backbone-only base gets its classifier (the only tensors it may lack) appended.
        let spec = Dictionary(try config.parameterSpec().map { ($0.name, $0.shape) }, uniquingKeysWith: { a, _ in a })
        for name in replacing.keys.sorted() where file.entry(named: name) == nil {
            guard !hasClassifier, name.hasPrefix(finalLayer + "."), let (v, shape) = replacing[name] else {
                throw ZooError(.mismatch, "the base checkpoint has no tensor of this name", file: path, item: name)
            }
            guard spec[name] == shape else {
                throw ZooError(.mismatch, "shape \(shape), the architecture needs \(spec[name] ?? [])", file: output, item: name)
            }
            records.append(TensorRecord(name: name, tensor: try Tensor(shape: shape, floats: v)))
        }
        for (name, shape) in spec.sorted(by: { $0.key < $1.key }) where file.entry(named: name) == nil && replacing[name] == nil {
            throw ZooError(.mismatch, "missing tensor; the architecture needs shape \(shape)", file: output, item: name)
        }
        var metadata = loaded.checkpoint.metadata
        metadata.config = try config.json
        metadata.labels = labels
        metadata.report = nil
        metadata.other.removeAll { $0.0 == TransferBase.trainingKey }
        if let training { metadata.other.append((TransferBase.trainingKey, training.serialized())) }
        try NativeCheckpoint.write(records, metadata: metadata, to: output, overwrite: overwrite)
    }

    /// The metadata key of a trained classifier's provenance (JSON: base, base_sha256, mode, recipe, metrics).
    public static let trainingKey = "zoo.training"

    /// The class names of the checkpoint (`zoo.labels`), or `class_<i>` when it has none.
    public var labels: [String] {
        let classes = config.classes
        if let l = loaded.checkpoint.metadata.labels, l.count == classes { return l }
        return (0..<classes).map { "class_\($0)" }
    }
}
