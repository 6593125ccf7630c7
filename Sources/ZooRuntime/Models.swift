import Foundation
import ZooArchitectures
import ZooFormats
import ZooKernels
import ZooErrors
import ZooTensor

/// Default number of compute threads: the machine's active cores.
public let defaultThreadCount = max(1, ProcessInfo.processInfo.activeProcessorCount)

extension SafetensorsFile {
    /// A weight lookup over this file's tensors (zero-copy views).
    public var weightLookup: WeightLookup {
        var index: [String: SafetensorsFile.Entry] = [:]
        for e in entries { index[e.name] = e }
        let file = self
        return { name in try index[name].map { try file.tensor($0) } }
    }
}

/// A classifier: NCHW float input [N, C, H, W] -> logits [N, classes].
///
/// Weights are packed once at construction (BatchNorm folded into convolutions); calls are
/// thread-safe and can run concurrently (each call takes its own activation arena from a pool).
public struct Classifier: Sendable {
    /// The graph this classifier runs.
    public let graph: LayerGraph
    /// Compute threads per call.
    public var threads: Int
    let engine: Engine

    /// Compiles `graph` with weights from `weights` (any float dtype, widened to float32).
    /// Throws `ZooError.mismatch` naming a missing or mis-shaped tensor.
    /// `backend` chooses the convolution kernels and layouts (the default is right for everything but comparisons).
    public init(graph: LayerGraph, weights: WeightLookup, threads: Int = defaultThreadCount,
                backend: ConvolutionBackend = .processDefault) throws {
        KernelBackend.prepare()
        self.graph = graph
        self.threads = max(1, threads)
        let last = graph.nodes.count - 1
        engine = try Engine.compile(graph, end: graph.nodes.count, materialized: [last], weights: weights, backend: backend)
    }

    /// Compiles `graph` with weights from a dictionary of canonical names.
    public init(graph: LayerGraph, weights: [String: Tensor], threads: Int = defaultThreadCount,
                backend: ConvolutionBackend = .processDefault) throws {
        try self.init(graph: graph, weights: { weights[$0] }, threads: threads, backend: backend)
    }

    /// Logits [N, classes] (or the last node's output, NCHW, when the graph ends on a map).
    public func callAsFunction(_ input: Tensor) throws -> Tensor {
        let last = engine.nodeValue[graph.nodes.count - 1]
        let out = try engine.run(input, outputs: [last], threads: threads)
        guard let first = out.first else { throw ZooError(.badInput, "the graph produced no output") }
        return first
    }
}

/// A feature extractor: feature maps at the graph's taps (timm `features_only` style indices 0...4 at
/// strides 2...32; the tapped nodes follow torchvision's convention, docs/models.md), the classifier
/// head optional, the last map optionally pooled.
public struct Backbone: Sendable {
    /// What one call returns.
    public struct Output: Sendable {
        /// One NCHW map per selected tap, in tap order.
        public var maps: [Tensor]
        /// Global average of the last map [N, C], when pooling was asked for.
        public var pooled: Tensor?
        /// Logits [N, classes], when the head was kept.
        public var logits: Tensor?
    }

    /// The graph.
    public let graph: LayerGraph
    /// The selected taps with their channels and reduction (timm's `feature_info`).
    public let featureInfo: [LayerGraph.FeatureTap]
    /// True when the classifier head is compiled and run.
    public let hasHead: Bool
    /// True when the last map is also globally average-pooled.
    public let poolsLastMap: Bool
    /// Compute threads per call.
    public var threads: Int
    let engine: Engine

    /// Compiles the trunk of `graph` (and the head when `head` is true).
    /// `outIndices` are indices into `graph.taps` (default: all taps); `backend` chooses the convolution kernels.
    public init(graph: LayerGraph, weights: WeightLookup, outIndices: [Int]? = nil, head: Bool = false,
                pool: Bool = false, threads: Int = defaultThreadCount, backend: ConvolutionBackend = .processDefault) throws {
        KernelBackend.prepare()
        let indices = outIndices ?? Array(graph.taps.indices)
        guard !indices.isEmpty || head else { throw ZooError(.usage, "a backbone needs at least one feature tap or the head") }
        var taps: [LayerGraph.FeatureTap] = []
        for i in indices {
            guard graph.taps.indices.contains(i) else {
                throw ZooError(.usage, "feature index \(i) is out of range; the architecture has \(graph.taps.count) taps (0..<\(graph.taps.count))")
            }
            let t = graph.taps[i]
            guard t.node >= 0, t.node < graph.nodes.count else {
                throw ZooError(.badInput, "tap \(t.name) points at node \(t.node) outside the graph")
            }
            taps.append(t)
        }
        let end = head ? graph.nodes.count : max(min(graph.headStart, graph.nodes.count), (taps.map(\.node).max() ?? 0) + 1)
        var keep = Set(taps.map(\.node))
        if head { keep.insert(graph.nodes.count - 1) }
        self.graph = graph
        featureInfo = taps
        hasHead = head
        poolsLastMap = pool
        self.threads = max(1, threads)
        engine = try Engine.compile(graph, end: end, materialized: keep, weights: weights, backend: backend)
    }

    /// Compiles with weights from a dictionary of canonical names.
    public init(graph: LayerGraph, weights: [String: Tensor], outIndices: [Int]? = nil, head: Bool = false,
                pool: Bool = false, threads: Int = defaultThreadCount, backend: ConvolutionBackend = .processDefault) throws {
        try self.init(graph: graph, weights: { weights[$0] }, outIndices: outIndices, head: head, pool: pool, threads: threads,
                      backend: backend)
    }

    /// Runs the backbone: maps for every selected tap, plus pooled vector and logits when configured.
    public func forward(_ input: Tensor) throws -> Output {
        var values = featureInfo.map { engine.nodeValue[$0.node] }
        if hasHead { values.append(engine.nodeValue[graph.nodes.count - 1]) }
        // Pool the last map: put it last so the engine pools it.
        var pooledIndex: Int? = nil
        if poolsLastMap, let lastMap = featureInfo.last {
            values.append(engine.nodeValue[lastMap.node])
            pooledIndex = values.count
        }
        var out = try engine.run(input, outputs: values, threads: threads, poolLast: pooledIndex != nil)
        var result = Output(maps: Array(out.prefix(featureInfo.count)), pooled: nil, logits: nil)
        if pooledIndex != nil { result.pooled = out.popLast() }
        if hasHead { result.logits = out[featureInfo.count] }
        return result
    }

    /// The feature maps (NCHW), one per selected tap.
    public func features(_ input: Tensor) throws -> [Tensor] { try forward(input).maps }
}

/// The first nodes of a graph compiled for inference (BatchNorm folded, the fast kernels), returning one
/// node's output: what a training step runs for the frozen part of a network whose BatchNorm layers use
/// their running statistics (`TrainingGraph`), so that part costs what inference costs.
public struct InferencePrefix: Sendable {
    /// The graph.
    public let graph: LayerGraph
    /// The node whose output a call returns.
    public let output: Int
    /// Compute threads per call.
    public var threads: Int
    let engine: Engine

    /// Compiles nodes `0 ... output` of `graph` with weights from `weights`.
    /// Throws a usage error when `output` is not a node of the graph, and `ZooError.mismatch` naming a
    /// missing or mis-shaped tensor.
    public init(graph: LayerGraph, output: Int, weights: WeightLookup, threads: Int = defaultThreadCount,
                backend: ConvolutionBackend = .processDefault) throws {
        guard graph.nodes.indices.contains(output) else {
            throw ZooError(.usage, "node \(output) is not in the graph (\(graph.nodes.count) nodes)")
        }
        KernelBackend.prepare()
        self.graph = graph
        self.output = output
        self.threads = max(1, threads)
        engine = try Engine.compile(graph, end: output + 1, materialized: [output], weights: weights, backend: backend)
    }

    /// The output node's value for a preprocessed batch [N, C, H, W]: NCHW for a map, [N, F] for a flat value.
    public func callAsFunction(_ input: Tensor) throws -> Tensor {
        let out = try engine.run(input, outputs: [engine.nodeValue[output]], threads: threads)
        guard let first = out.first else { throw ZooError(.badInput, "the graph produced no output") }
        return first
    }
}

/// Embeddings for transfer learning: what the classifier's final linear layer reads, [N, D] per batch.
///
/// For a graph that ends on a linear layer (every family's own head), that layer's input at inference
/// (dropout is the identity): ResNet's pooled 512/2048 channels, VGG's 4096 after `classifier.4`,
/// MobileNetV3's 1280 after `classifier.2`. A new classifier trained on these embeddings replaces the
/// last layer alone, as `torchvision.models.<arch>(num_classes=K)` does. For a graph without a head
/// (`include_top` false) it is the global average of the last feature map.
public struct Embedder: Sendable {
    /// The graph.
    public let graph: LayerGraph
    /// The graph's final linear layer (the one a new classifier replaces), or nil when the graph has none.
    public let finalLayer: Int?
    /// The embedding width D.
    public let width: Int
    /// Compute threads per call.
    public var threads: Int
    let engine: Engine
    let output: Int

    /// Compiles the graph up to the input of its final linear layer (without that layer's weights).
    public init(graph: LayerGraph, weights: WeightLookup, threads: Int = defaultThreadCount,
                backend: ConvolutionBackend = .processDefault) throws {
        KernelBackend.prepare()
        self.graph = graph
        self.threads = max(1, threads)
        if let (layer, input, fin) = Embedder.finalLinear(of: graph) {
            finalLayer = layer
            width = fin
            engine = try Engine.compile(graph, end: layer, materialized: [input], weights: weights, backend: backend)
            output = input
        } else {
            guard let tap = graph.taps.last else { throw ZooError(.badInput, "the architecture has neither a classifier nor a feature tap") }
            finalLayer = nil
            width = tap.channels
            engine = try Engine.compile(graph, end: tap.node + 1, materialized: [tap.node], weights: weights, backend: backend)
            output = tap.node
        }
    }

    /// The graph's last node when it is a linear layer reading an earlier node: (layer, its input, in features).
    public static func finalLinear(of graph: LayerGraph) -> (layer: Int, input: Int, inFeatures: Int)? {
        guard let last = graph.nodes.indices.last, case let .linear(fin, _, _) = graph.nodes[last].op,
              graph.nodes[last].inputs.count == 1, let input = graph.nodes[last].inputs.first, input >= 0, input < last else { return nil }
        return (last, input, fin)
    }

    /// Embeddings [N, D] (float32) of a preprocessed batch [N, C, H, W].
    public func callAsFunction(_ input: Tensor) throws -> Tensor {
        let out = try engine.run(input, outputs: [engine.nodeValue[output]], threads: threads, poolLast: finalLayer == nil)
        guard let first = out.last else { throw ZooError(.badInput, "the graph produced no output") }
        let n = input.shape[0]
        guard first.elementCount == n * width else {
            throw ZooError(.badInput, "embeddings of \(first.elementCount) values for \(n) images of width \(width)")
        }
        return try first.reshaped([n, width])
    }
}
