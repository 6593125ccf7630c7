import Foundation
import ZooArchitectures
import ZooFormats
import ZooKernels
import ZooErrors
import ZooTensor

/// A native checkpoint opened for inference: its architecture graph (from the `zoo.architecture`
/// and `zoo.config` metadata) and a zero-copy weight lookup over the mapped file.
public struct LoadedCheckpoint: Sendable {
    /// The checkpoint.
    public let checkpoint: NativeCheckpoint
    /// The configuration read from the metadata.
    public let config: ArchitectureConfig
    /// The layer graph of that configuration.
    public let graph: LayerGraph

    /// Opens `path`; throws when it has no architecture metadata or names an unknown architecture.
    public init(path: String) throws {
        do {
            checkpoint = try NativeCheckpoint(path: path)
            guard let name = checkpoint.metadata.architecture else {
                throw ZooError(.badInput, "no architecture metadata (zoo.architecture); convert it with `zoo convert --arch NAME`")
            }
            config = try ArchitectureConfig(name: name, json: checkpoint.metadata.config ?? .object([]))
            graph = try config.graph()
        } catch let e as ZooError {
            throw e.inFile(path)
        }
    }

    /// Weight lookup over the file's tensors (views of the mapping, widened at packing).
    public var weights: WeightLookup { checkpoint.file.weightLookup }
}

extension Classifier {
    /// Loads a native checkpoint (architecture from its metadata) as a classifier.
    public init(contentsOf url: URL, threads: Int = defaultThreadCount, backend: ConvolutionBackend = .processDefault) throws {
        let ckpt = try LoadedCheckpoint(path: url.path)
        do {
            try self.init(graph: ckpt.graph, weights: ckpt.weights, threads: threads, backend: backend)
        } catch let e as ZooError { throw e.inFile(url.path) }
    }
}

extension Backbone {
    /// Loads a native checkpoint as a backbone (see `init(graph:weights:outIndices:head:pool:threads:)`).
    public init(contentsOf url: URL, outIndices: [Int]? = nil, head: Bool = false, pool: Bool = false,
                threads: Int = defaultThreadCount, backend: ConvolutionBackend = .processDefault) throws {
        let ckpt = try LoadedCheckpoint(path: url.path)
        do {
            try self.init(graph: ckpt.graph, weights: ckpt.weights, outIndices: outIndices, head: head, pool: pool, threads: threads,
                          backend: backend)
        } catch let e as ZooError { throw e.inFile(url.path) }
    }
}

/// Random weights for an architecture (He-scaled convolutions, unit BatchNorm statistics), for benchmarks.
public enum RandomWeights {
    /// A tensor for every parameter of `graph`, deterministic for a seed.
    public static func make(for graph: LayerGraph, seed: UInt64 = 42) throws -> [String: Tensor] {
        var state = seed | 1
        func next() -> Float {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Float(Int32(truncatingIfNeeded: state >> 32)) / Float(Int32.max)
        }
        var out: [String: Tensor] = [:]
        for spec in graph.parameterSpec {
            let n = spec.elementCount
            var values = [Float](repeating: 0, count: n)
            switch spec.role {
            case .convWeight, .linearWeight, .pointwiseWeight:
                let fanIn = max(1, spec.shape.dropFirst().reduce(1, *))
                let a = (6 / Float(fanIn)).squareRoot()
                for i in 0..<n { values[i] = next() * a }
            case .bias, .bnBias, .normBias: for i in 0..<n { values[i] = next() * 0.05 }
            case .bnWeight, .normWeight: for i in 0..<n { values[i] = 1 + next() * 0.1 }
            case .layerScale: for i in 0..<n { values[i] = 0.5 + next() * 0.25 }
            case .runningMean: for i in 0..<n { values[i] = next() * 0.05 }
            case .runningVar: for i in 0..<n { values[i] = 1 + next() * 0.2 }
            case .numBatchesTracked:
                out[spec.name] = try Tensor(dtype: .i64, shape: [], bytes: [UInt8](repeating: 0, count: 8))
                continue
            }
            out[spec.name] = try Tensor(shape: spec.shape, floats: values)
        }
        return out
    }
}
