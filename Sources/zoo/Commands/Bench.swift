import ArgumentParser
import Foundation
import ModelZoo
import ZooArchitectures
import ZooKernels
import ZooRuntime

/// `zoo bench MODEL|CKPT`: in-process inference latency and throughput.
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Time forward passes of an architecture (random weights) or a native checkpoint."
    )

    @Argument(help: "An architecture name (resnet50, mobilenet_v3_small, ...) or a native checkpoint path.")
    var model: String

    @Option(help: "Batch size.")
    var batch = 1

    @Option(help: "Input height and width in pixels.")
    var size = 224

    @OptionGroup var compute: ThreadsOption

    @Option(help: "Timed forward passes.")
    var iterations = 10

    @Option(help: "Untimed warm-up passes.")
    var warmup = 2

    @Option(help: "Flavour when MODEL is an architecture name (torchvision or keras).")
    var flavour = Choice(Flavour.torchvision)

    @Flag(help: "With --json, also list every timed pass as samples_ms (in run order).")
    var samples = false

    @Flag(help: "Print {\"median_ms\", \"p10_ms\", \"p90_ms\", \"images_per_s\", \"threads\", \"batch\"} as JSON.")
    var json = false

    @OptionGroup var verbosity: QuietOption

    /// CPU time of the whole process (all threads) in nanoseconds.
    static func processCPUTime() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    var threads: Int { compute.threads }

    func run() throws {
        verbosity.apply()
        guard batch > 0, size > 0, threads > 0, iterations > 0, warmup >= 0 else {
            throw ZooError(.usage, "--batch, --size, --threads and --iterations must be positive")
        }
        let loadStart = DispatchTime.now()
        let classifier: Classifier
        if FileManager.default.fileExists(atPath: model) {
            classifier = try Classifier(contentsOf: URL(fileURLWithPath: model), threads: threads)
        } else {
            guard let f = flavour.value else { throw ZooError(.usage, "unknown flavour \(flavour.text)") }
            // The name and flavour are the user's: an unknown one, or a flavour the architecture
            // lacks, is a usage error (exit 1).
            let graph = try CLIOutput.typedByUser { try Architectures.preset(model, flavour: f) }.graph()
            let weights = try RandomWeights.make(for: graph)
            classifier = try Classifier(graph: graph, weights: weights, threads: threads)
        }
        let loadMs = Double(DispatchTime.now().uptimeNanoseconds - loadStart.uptimeNanoseconds) / 1e6
        var seed: UInt64 = 12345
        let count = batch * classifier.graph.inputChannels * size * size
        var values = [Float](repeating: 0, count: count)
        for i in 0..<count {
            seed = seed &* 6364136223846793005 &+ 1442695040888963407
            values[i] = Float(Int32(truncatingIfNeeded: seed >> 32)) / Float(Int32.max)
        }
        let input = try Tensor(shape: [batch, classifier.graph.inputChannels, size, size], floats: values)
        let bar = ProgressBar(counting: "passes")
        for i in 0..<warmup {
            _ = try classifier(input)
            bar.update(i + 1, warmup + iterations)
        }
        var times: [Double] = []
        let cpu0 = Bench.processCPUTime()
        for i in 0..<iterations {
            let t0 = DispatchTime.now().uptimeNanoseconds
            _ = try classifier(input)
            times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6)
            bar.update(warmup + i + 1, warmup + iterations)
        }
        bar.finish()
        let cpuPerPass = Double(Bench.processCPUTime() - cpu0) / 1e6 / Double(iterations)
        let runOrder = times
        times.sort()
        func pct(_ p: Double) -> Double {
            let pos = p * Double(times.count - 1)
            let lo = Int(pos.rounded(.down)), hi = min(lo + 1, times.count - 1)
            return times[lo] + (times[hi] - times[lo]) * (pos - Double(lo))
        }
        let median = pct(0.5), p10 = pct(0.1), p90 = pct(0.9)
        let ips = Double(batch) / (median / 1000)
        if json {
            try CLIOutput.printJSON(BenchResult(
                median_ms: median, p10_ms: p10, p90_ms: p90, images_per_s: ips, threads: threads, batch: batch, size: size,
                iterations: iterations, load_ms: loadMs, cpu_ms_per_pass: cpuPerPass, model: model,
                blas: KernelBackend.blasDescription, samples_ms: samples ? runOrder : nil), pretty: false)
        } else {
            func f(_ v: Double) -> String { String(format: "%.2f", v) }
            print("model:      \(model.escapingControlCharacters) (batch \(batch), \(size)x\(size), \(threads) threads, \(iterations) passes)")
            print("latency:    median \(f(median)) ms, p10 \(f(p10)) ms, p90 \(f(p90)) ms")
            print("throughput: \(f(ips)) images/s")
            print("cpu:        \(f(cpuPerPass)) ms of process CPU time per pass (all threads)")
            print("load:       \(f(loadMs)) ms; \(KernelBackend.blasDescription)")
        }
    }
}
