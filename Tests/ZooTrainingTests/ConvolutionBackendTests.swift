import Foundation
import Testing
import ZooArchitectures
import ZooKernels
import ZooTensor
import ZooTraining

/// The training engine's convolutions through the backend (oneDNN's forward-training, backward-data and
/// backward-weights primitives) against its own im2col + GEMM path, which the torch gradient fixtures
/// check: a grid of kernel sizes, strides, dilations, groups, symmetric, asymmetric and TF-same padding,
/// odd sizes, with and without bias. Loss, logits and every gradient must agree, including the gradient
/// that flows back through the convolution under test into a trainable convolution before it; a step
/// through the backend is bit-for-bit the same when repeated. (GradientTests checks whole networks
/// through the backend against torch.)
@Suite struct ConvolutionBackendTests {
    struct Case: CustomStringConvertible {
        var inC: Int, outC: Int, groups: Int
        var kernel: (Int, Int), stride: (Int, Int) = (1, 1), dilation: (Int, Int) = (1, 1)
        var padding: LayerGraph.Padding
        var height: Int, width: Int
        var bias = false
        var description: String {
            "\(inC)->\(outC) g\(groups) k\(kernel) s\(stride) d\(dilation) \(padding) \(height)x\(width)\(bias ? " bias" : "")"
        }
    }

    static let cases = [
        Case(inC: 16, outC: 24, groups: 1, kernel: (3, 3), padding: .symmetric(1), height: 9, width: 11),
        Case(inC: 16, outC: 32, groups: 1, kernel: (3, 3), stride: (2, 2), padding: .symmetric(1), height: 13, width: 10),
        Case(inC: 24, outC: 16, groups: 1, kernel: (1, 1), padding: .symmetric(0), height: 7, width: 9, bias: true),
        Case(inC: 16, outC: 32, groups: 1, kernel: (1, 1), stride: (2, 2), padding: .symmetric(0), height: 9, width: 9),
        Case(inC: 3, outC: 16, groups: 1, kernel: (7, 7), stride: (2, 2), padding: .symmetric(3), height: 21, width: 19),
        Case(inC: 8, outC: 16, groups: 1, kernel: (5, 5), stride: (2, 2), padding: .tfSame, height: 12, width: 15, bias: true),
        Case(inC: 16, outC: 16, groups: 1, kernel: (3, 3), dilation: (2, 2), padding: .symmetric(2), height: 10, width: 10),
        Case(inC: 12, outC: 20, groups: 1, kernel: (3, 1), stride: (1, 2), padding: .explicit(top: 2, bottom: 0, left: 0, right: 1),
             height: 8, width: 9, bias: true),
        Case(inC: 32, outC: 32, groups: 4, kernel: (3, 3), padding: .symmetric(1), height: 8, width: 8),
        Case(inC: 32, outC: 64, groups: 2, kernel: (3, 3), stride: (2, 2), padding: .symmetric(1), height: 9, width: 7),
        Case(inC: 10, outC: 15, groups: 5, kernel: (3, 3), padding: .symmetric(1), height: 6, width: 6, bias: true),
    ]

    /// Deterministic values in [-1, 1).
    static func values(_ count: Int, seed: UInt64) -> [Float] {
        var s = seed
        return (0..<count).map { _ in
            s = s &* 6364136223846793005 &+ 1442695040888963407
            return Float(Int64(bitPattern: s >> 11) % 2_000_000) / 1_000_000 - 1
        }
    }

    /// pw (1x1, 3 -> inC, through the backend too) -> the convolution under test -> flatten -> fc.
    static func graph(_ c: Case, features: Int) -> LayerGraph {
        typealias Node = LayerGraph.Node
        return LayerGraph(nodes: [
            Node(name: "pw", op: .conv2d(inChannels: 3, outChannels: c.inC, kernel: (1, 1), stride: (1, 1), padding: .symmetric(0),
                                         dilation: (1, 1), groups: 1, bias: false), inputs: [-1]),
            Node(name: "conv", op: .conv2d(inChannels: c.inC, outChannels: c.outC, kernel: c.kernel, stride: c.stride, padding: c.padding,
                                           dilation: c.dilation, groups: c.groups, bias: c.bias), inputs: [0]),
            Node(name: "flat", op: .flatten, inputs: [1]),
            Node(name: "fc", op: .linear(inFeatures: features, outFeatures: 5, bias: true), inputs: [2]),
        ], inputChannels: 3, taps: [], headStart: 3)
    }

    static func geometry(_ c: Case) throws -> WindowGeometry {
        guard let g = WindowGeometry(inH: c.height, inW: c.width, kernel: c.kernel, stride: c.stride, dilation: c.dilation,
                                     padding: c.padding) else { throw CocoaError(.featureUnsupported) }
        return g
    }

    /// One step of the case's graph on `backend`; `transposeKernel` swaps the kernel's rows and columns
    /// (a square kernel's transpose: another convolution, for the negative control).
    static func step(_ c: Case, backend: ConvolutionBackend, transposeKernel: Bool = false) throws -> TrainingGraph.Step {
        let g = try geometry(c)
        let features = c.outC * g.outH * g.outW, taps = c.kernel.0 * c.kernel.1, perGroup = c.inC / c.groups
        var w = values(c.outC * perGroup * taps, seed: 2)
        if transposeKernel {
            let original = w
            for f in 0..<(c.outC * perGroup) {
                for ky in 0..<c.kernel.0 { for kx in 0..<c.kernel.1 { w[f * taps + ky * c.kernel.1 + kx] = original[f * taps + kx * c.kernel.0 + ky] } }
            }
        }
        var weights: [String: Tensor] = [
            "pw.weight": try Tensor(shape: [c.inC, 3, 1, 1], floats: values(c.inC * 3, seed: 1)),
            "conv.weight": try Tensor(shape: [c.outC, perGroup, c.kernel.0, c.kernel.1], floats: w),
            "fc.weight": try Tensor(shape: [5, features], floats: values(5 * features, seed: 4).map { $0 * 0.1 }),
            "fc.bias": try Tensor(shape: [5], floats: values(5, seed: 5)),
        ]
        if c.bias { weights["conv.bias"] = try Tensor(shape: [c.outC], floats: values(c.outC, seed: 3)) }
        let model = try TrainingGraph(graph: graph(c, features: features), weights: { weights[$0] }, trainable: .all, batchNorm: .eval,
                                      convolutions: backend)
        model.threads = 2
        let x = try Tensor(shape: [3, 3, c.height, c.width], floats: values(3 * 3 * c.height * c.width, seed: 6))
        return try model.step(input: x, labels: [0, 3, 4], loss: SoftmaxCrossEntropy())
    }

    /// The worst relative difference of loss, logits and gradients (max abs diff / max abs reference).
    static func worst(_ p: TrainingGraph.Step, _ q: TrainingGraph.Step) -> Double {
        var worst = abs(p.loss - q.loss) / abs(q.loss)
        func check(_ ours: [Float], _ ref: [Float]) {
            let scale = Double(ref.map { abs($0) }.max() ?? 0)
            let diff = Double(zip(ours, ref).map { abs($0 - $1) }.max() ?? .infinity)
            worst = max(worst, ours.count == ref.count && !ref.isEmpty ? diff / max(scale, 1e-30) : .infinity)
        }
        check(p.logits, q.logits)
        for name in Set(p.gradients.keys).union(q.gradients.keys) { check(p.gradients[name] ?? [], q.gradients[name] ?? []) }
        return worst
    }

    @Test(arguments: cases.indices)
    func backendEqualsTheOwnKernels(_ i: Int) throws {
        let c = Self.cases[i]
        guard ConvolutionBackend.oneDNNAvailable else { return }
        let g = try Self.geometry(c)
        let shape = TrainingConvolution.Shape(batch: 3, inC: c.inC, outC: c.outC, groups: c.groups, kernel: c.kernel, stride: c.stride,
                                              dilation: c.dilation, geometry: g, bias: c.bias)
        // The backend must take the convolution (else the comparison below is the own path twice).
        let implementations = TrainingConvolution.implementations(shape, threads: 2)
        #expect(implementations != nil, "\(c): oneDNN refused")
        let backend = try Self.step(c, backend: .automatic), own = try Self.step(c, backend: .own)
        #expect(backend.loss.isFinite && backend.loss > 0, "\(c)")
        let w = Self.worst(backend, own)
        #expect(w < 1e-5, "\(c) [\(implementations ?? "-")]: worst relative difference \(w)")
        // Deterministic for a thread count.
        let again = try Self.step(c, backend: .automatic)
        #expect(again.loss == backend.loss && again.gradients == backend.gradients, "\(c): a repeated step differs")
        // Negative control: the transposed kernel is another convolution (square kernels larger than 1x1).
        if c.kernel.0 == c.kernel.1, c.kernel.0 > 1 {
            let twisted = Self.worst(try Self.step(c, backend: .automatic, transposeKernel: true), own)
            #expect(twisted > 1e-2, "\(c): the transposed kernel still agrees (\(twisted))")
        }
    }
}
