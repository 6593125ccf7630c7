import Foundation
import ModelZoo
import ZooArchitectures
import ZooKernels
import ZooRuntime
import ZooTraining

extension Bench {
    /// The process's peak resident set size in MB (`getrusage`).
    static func peakRSSMegabytes() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Double(usage.ru_maxrss) / 1024
    }

    /// `--train`: times training steps (forward in training mode, loss, backward, SGD update) of an
    /// architecture with random weights or of a native checkpoint, on a random batch with random labels.
    func timeTraining(_ model: String) throws {
        guard let mode = bn.value else {
            throw ZooError(.usage, "--bn takes train or eval, got \(bn.text.escapingControlCharacters)")
        }
        let set = try TrainableSet(parsing: trainable)
        let loadStart = DispatchTime.now()
        let graph: LayerGraph, weights: WeightLookup, momentum: Double, classes: Int
        if FileManager.default.fileExists(atPath: model) {
            let ckpt = try LoadedCheckpoint(path: model)
            (graph, weights, momentum, classes) = (ckpt.graph, ckpt.weights, ckpt.config.batchNormMomentum, ckpt.config.classes)
        } else {
            guard let f = flavour.value else { throw ZooError(.usage, "unknown flavour \(flavour.text)") }
            let config = try CLIOutput.typedByUser { try Architectures.preset(model, flavour: f) }
            graph = try config.graph()
            let random = try RandomWeights.make(for: graph)
            (weights, momentum, classes) = ({ random[$0] }, config.batchNormMomentum, config.classes)
        }
        guard let backend = kernels.value else {
            throw ZooError(.usage, "unknown --kernels \(kernels.text.escapingControlCharacters); use one of \(Choice<ConvolutionBackend>.allValueStrings.joined(separator: ", "))")
        }
        let reusesMemory = TrainingGraph.keepFreedMemoryForReuse()
        let engine = try TrainingGraph(graph: graph, weights: weights, trainable: set, batchNorm: mode, batchNormMomentum: momentum,
                                       convolutions: backend)
        engine.threads = threads
        let loadMs = Double(DispatchTime.now().uptimeNanoseconds - loadStart.uptimeNanoseconds) / 1e6
        let input = try Bench.randomInput(batch: batch, channels: graph.inputChannels, size: size)
        let labels = (0..<batch).map { ($0 * 7919) % max(classes, 1) }
        let loss = try SoftmaxCrossEntropy()
        var optimizer = try Optimizer(.sgd(momentum: 0.9), groups: engine.parameterGroups(learningRate: 1e-3, backboneScale: 1))
        let bar = ProgressBar(counting: "steps")
        let (times, cpuPerPass) = try Bench.time(iterations: iterations, warmup: warmup, bar: bar) {
            let step = try engine.step(input: input, labels: labels, loss: loss)
            var params = engine.values.filter { step.gradients[$0.key] != nil }
            try optimizer.step(&params, gradients: step.gradients)
            try engine.update(params)
        }
        let stats = Bench.Stats(times)
        let rss = Bench.peakRSSMegabytes()
        // Forward MACs only (the backward pass of the trainable part costs up to twice as much again).
        let macs = try graph.macs(height: size, width: size).reduce(0, +) * batch
        let described = "\(set), bn \(mode.rawValue)"
        if json {
            try CLIOutput.printJSON(BenchResult(
                median_ms: stats.median, p10_ms: stats.p10, p90_ms: stats.p90, images_per_s: Double(batch) / (stats.median / 1000),
                threads: threads, batch: batch, size: size, iterations: iterations, load_ms: loadMs, cpu_ms_per_pass: cpuPerPass,
                model: model, blas: KernelBackend.blasDescription, kernels: "ZooTraining (convolutions: \(engine.convolutionsDescription))" + (engine.runsFrozenPartAsInference ? "; frozen part: inference engine" : "") + (reusesMemory ? "; freed memory kept for reuse" : ""), macs: macs,
                gflops_per_s: Double(macs) * 2 / (stats.median / 1000) / 1e9, samples_ms: samples ? times : nil,
                train: described, peak_rss_mb: rss), pretty: false)
        } else {
            func f(_ v: Double) -> String { String(format: "%.2f", v) }
            print("model:      \(model.escapingControlCharacters) training steps (\(described); batch \(batch), \(size)x\(size), \(threads) threads, \(iterations) steps)")
            print("step:       median \(f(stats.median)) ms, p10 \(f(stats.p10)) ms, p90 \(f(stats.p90)) ms")
            print("throughput: \(f(Double(batch) / (stats.median / 1000))) images/s")
            print("memory:     \(f(rss)) MB peak resident")
            print("cpu:        \(f(cpuPerPass)) ms of process CPU time per step (all threads)")
        }
    }
}
