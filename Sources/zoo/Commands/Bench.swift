import ArgumentParser
import Foundation
import ModelZoo
import ZooArchitectures
import ZooKernels
import ZooRuntime
import ZooTraining

/// `zoo bench MODEL|CKPT`: in-process inference latency and throughput.
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Time forward passes of an architecture (random weights) or a native checkpoint."
    )

    @Argument(help: "An architecture name (resnet50, mobilenet_v3_small, ...) or a native checkpoint path (not with --conv-peak).")
    var model: String?

    @Option(help: "Convolution kernels: automatic (oneDNN where it has a fast kernel, else ZooKernels' own), own, onednn-nhwc or onednn-blocked (for comparisons).")
    var kernels = Choice(ConvolutionBackend.automatic)

    @Flag(help: "Instead of a model, time one large 1x1 convolution (256 -> 1024 channels on 56x56, per image): the convolution peak in GFLOP/s that model figures are compared with.")
    var convPeak = false

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

    @Flag(help: "Time training steps instead of inference: forward in training mode, softmax cross-entropy, backward and an SGD update (momentum 0.9); random labels.")
    var train = false

    @Option(help: "With --train: the trainable parameters, all, head or last:N.")
    var trainable = "all"

    @Option(help: "With --train: BatchNorm train (batch statistics) or eval (running statistics).")
    var bn = Choice(BatchNormMode.train)

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

    func validate() throws {
        guard (model == nil) == convPeak else {
            throw ValidationError(convPeak ? "--conv-peak times its own convolution: give no MODEL" : "give a MODEL (or --conv-peak)")
        }
        if convPeak && train { throw ValidationError("--train times a model: not with --conv-peak") }
    }

    func run() throws {
        verbosity.apply()
        guard batch > 0, size > 0, threads > 0, iterations > 0, warmup >= 0 else {
            throw ZooError(.usage, "--batch, --size, --threads and --iterations must be positive")
        }
        guard let backend = kernels.value else {
            throw ZooError(.usage, "unknown --kernels \(kernels.text.escapingControlCharacters); use one of \(Choice<ConvolutionBackend>.allValueStrings.joined(separator: ", "))")
        }
        guard let model else {
            return try timeConvPeak(backend)
        }
        if train { return try timeTraining(model) }
        let loadStart = DispatchTime.now()
        let classifier: Classifier
        if FileManager.default.fileExists(atPath: model) {
            classifier = try Classifier(contentsOf: URL(fileURLWithPath: model), threads: threads, backend: backend)
        } else {
            guard let f = flavour.value else { throw ZooError(.usage, "unknown flavour \(flavour.text)") }
            // The name and flavour are the user's: an unknown one, or a flavour the architecture
            // lacks, is a usage error (exit 1).
            let graph = try CLIOutput.typedByUser { try Architectures.preset(model, flavour: f) }.graph()
            let weights = try RandomWeights.make(for: graph)
            classifier = try Classifier(graph: graph, weights: weights, threads: threads, backend: backend)
        }
        let loadMs = Double(DispatchTime.now().uptimeNanoseconds - loadStart.uptimeNanoseconds) / 1e6
        let input = try Bench.randomInput(batch: batch, channels: classifier.graph.inputChannels, size: size)
        let bar = ProgressBar(counting: "passes")
        for i in 0..<warmup {
            _ = try classifier(input)
            bar.update(i + 1, warmup + iterations)
        }
        let (times, cpuPerPass) = try Bench.time(iterations: iterations, warmup: warmup, bar: bar) { _ = try classifier(input) }
        let stats = Bench.Stats(times)
        let median = stats.median, p10 = stats.p10, p90 = stats.p90
        let ips = Double(batch) / (median / 1000)
        let macs = try classifier.graph.macs(height: size, width: size).reduce(0, +) * batch
        let gflops = Double(macs) * 2 / (median / 1000) / 1e9
        if json {
            try CLIOutput.printJSON(BenchResult(
                median_ms: median, p10_ms: p10, p90_ms: p90, images_per_s: ips, threads: threads, batch: batch, size: size,
                iterations: iterations, load_ms: loadMs, cpu_ms_per_pass: cpuPerPass, model: model,
                blas: KernelBackend.blasDescription, kernels: backend.description, macs: macs, gflops_per_s: gflops,
                samples_ms: samples ? times : nil), pretty: false)
        } else {
            func f(_ v: Double) -> String { String(format: "%.2f", v) }
            print("model:      \(model.escapingControlCharacters) (batch \(batch), \(size)x\(size), \(threads) threads, \(iterations) passes)")
            print("latency:    median \(f(median)) ms, p10 \(f(p10)) ms, p90 \(f(p90)) ms")
            print("throughput: \(f(ips)) images/s, \(f(gflops)) GFLOP/s (\(f(Double(macs) / 1e9)) GMACs per pass)")
            print("cpu:        \(f(cpuPerPass)) ms of process CPU time per pass (all threads)")
            print("load:       \(f(loadMs)) ms; convolutions: \(backend.description); \(KernelBackend.blasDescription)")
        }
    }

    /// A deterministic pseudo-random input batch [batch, channels, size, size] in [-1, 1].
    static func randomInput(batch: Int, channels: Int, size: Int) throws -> Tensor {
        var seed: UInt64 = 12345
        let count = batch * channels * size * size
        var values = [Float](repeating: 0, count: count)
        for i in 0..<count {
            seed = seed &* 6364136223846793005 &+ 1442695040888963407
            values[i] = Float(Int32(truncatingIfNeeded: seed >> 32)) / Float(Int32.max)
        }
        return try Tensor(shape: [batch, channels, size, size], floats: values)
    }

    /// Runs `pass` `warmup` times untimed, then `iterations` times timed: the times in run order (ms)
    /// and the process CPU time per timed pass (ms).
    static func time(iterations: Int, warmup: Int, bar: ProgressBar, _ pass: () throws -> Void) throws -> ([Double], Double) {
        for i in 0..<warmup {
            try pass()
            bar.update(i + 1, warmup + iterations)
        }
        var times: [Double] = []
        let cpu0 = Bench.processCPUTime()
        for i in 0..<iterations {
            let t0 = DispatchTime.now().uptimeNanoseconds
            try pass()
            times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6)
            bar.update(warmup + i + 1, warmup + iterations)
        }
        bar.finish()
        return (times, Double(Bench.processCPUTime() - cpu0) / 1e6 / Double(iterations))
    }

    /// Median and 10th/90th percentiles (linear interpolation) of timings.
    struct Stats {
        var median: Double, p10: Double, p90: Double
        init(_ samples: [Double]) {
            let t = samples.sorted()
            func pct(_ p: Double) -> Double {
                guard !t.isEmpty else { return .nan }
                let pos = p * Double(t.count - 1)
                let lo = Int(pos.rounded(.down)), hi = min(lo + 1, t.count - 1)
                return t[lo] + (t[hi] - t[lo]) * (pos - Double(lo))
            }
            median = pct(0.5); p10 = pct(0.1); p90 = pct(0.9)
        }
    }

    /// `--conv-peak`: one 1x1 convolution, 256 -> 1024 channels on 56x56 per image (ResNet-50's widest
    /// pointwise shape at its largest map), random weights, through the chosen backend.
    func timeConvPeak(_ backend: ConvolutionBackend) throws {
        let cin = 256, cout = 1024, hw = 56
        let d = ConvDescriptor(inChannels: cin, outChannels: cout, kernel: (1, 1), stride: (1, 1), dilation: (1, 1), groups: 1,
                               padding: .explicit(top: 0, bottom: 0, left: 0, right: 0))
        var seed: UInt64 = 7
        func random(_ n: Int) -> [Float] {
            (0..<n).map { _ in
                seed = seed &* 6364136223846793005 &+ 1442695040888963407
                return Float(Int32(truncatingIfNeeded: seed >> 32)) / Float(Int32.max) * 0.05
            }
        }
        let weight = random(cin * cout), x = random(batch * hw * hw * cin)
        guard let conv = weight.withUnsafeBufferPointer({ Conv2D(d, weight: $0, bias: nil, activation: .relu, backend: backend) }),
              let g = conv.geometry(inH: hw, inW: hw) else {
            throw ZooError(.badInput, "cannot build the peak convolution")
        }
        var out = [Float](repeating: 0, count: batch * hw * hw * cout)
        var scratch = [Float](repeating: 0, count: max(conv.scratchCount(batch: batch, geometry: g, threads: threads), 1))
        let bar = ProgressBar(counting: "passes")
        let (times, cpu) = try Bench.time(iterations: iterations, warmup: warmup, bar: bar) {
            x.withUnsafeBufferPointer { xp in
                out.withUnsafeMutableBufferPointer { op in
                    scratch.withUnsafeMutableBufferPointer { sp in
                        guard let xb = xp.baseAddress, let ob = op.baseAddress else { return }
                        conv.run(input: xb, batch: batch, geometry: g, output: ob, scratch: sp.baseAddress, threads: threads)
                    }
                }
            }
        }
        let stats = Bench.Stats(times)
        let macs = batch * hw * hw * cin * cout
        let gflops = Double(macs) * 2 / (stats.median / 1000) / 1e9
        let ran = conv.backend(batch: batch, geometry: g, threads: threads)
        if json {
            try CLIOutput.printJSON(BenchResult(
                median_ms: stats.median, p10_ms: stats.p10, p90_ms: stats.p90, images_per_s: Double(batch) / (stats.median / 1000),
                threads: threads, batch: batch, size: hw, iterations: iterations, load_ms: 0, cpu_ms_per_pass: cpu,
                model: "conv1x1-256-1024-56", blas: KernelBackend.blasDescription, kernels: ran, macs: macs, gflops_per_s: gflops,
                samples_ms: samples ? times : nil), pretty: false)
        } else {
            func f(_ v: Double) -> String { String(format: "%.2f", v) }
            print("convolution: 1x1, \(cin) -> \(cout) channels, \(hw)x\(hw), batch \(batch), \(threads) threads (\(ran))")
            print("latency:     median \(f(stats.median)) ms, p10 \(f(stats.p10)) ms, p90 \(f(stats.p90)) ms")
            print("peak:        \(f(gflops)) GFLOP/s")
        }
    }
}
