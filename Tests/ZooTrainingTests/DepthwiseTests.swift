import Foundation
import Testing
import ZooArchitectures
import ZooKernels
import ZooTensor
import ZooTraining

/// The training engine's direct depthwise kernels against the general grouped path: a depthwise
/// convolution (groups = input channels, m output channels per input channel) is the dense convolution
/// whose weight is block-diagonal, and the dense one runs through im2col + GEMM (the path the torch
/// gradient fixtures check for ResNet, ResNeXt and VGG). Loss, logits and every gradient must agree,
/// including the gradient that flows back through the depthwise layer into a trainable layer before it,
/// for strides, dilations, asymmetric and TF-same padding and a channel multiplier no zoo family uses yet.
@Suite struct DepthwiseTests {
    struct Case {
        var name: String
        var channels: Int, multiplier: Int
        var kernel: (Int, Int), stride: (Int, Int), dilation: (Int, Int)
        var padding: LayerGraph.Padding
        var height: Int, width: Int
    }

    static let cases = [
        Case(name: "k3 stride (2, 1) dilation (2, 1) asymmetric, x2", channels: 4, multiplier: 2, kernel: (3, 3), stride: (2, 1),
             dilation: (2, 1), padding: .explicit(top: 2, bottom: 1, left: 0, right: 2), height: 9, width: 8),
        Case(name: "k5 stride 2 TF-same", channels: 6, multiplier: 1, kernel: (5, 5), stride: (2, 2), dilation: (1, 1),
             padding: .tfSame, height: 11, width: 10),
        Case(name: "k3 stride 1 pad 1, 16 columns", channels: 5, multiplier: 1, kernel: (3, 3), stride: (1, 1), dilation: (1, 1),
             padding: .symmetric(1), height: 6, width: 19),
    ]

    /// Deterministic values in [-1, 1).
    static func values(_ count: Int, seed: UInt64) -> [Float] {
        var s = seed
        return (0..<count).map { _ in
            s = s &* 6364136223846793005 &+ 1442695040888963407
            return Float(Int64(bitPattern: s >> 11) % 2_000_000) / 1_000_000 - 1
        }
    }

    /// pw (1x1, 3 -> C) -> the convolution under test (depthwise, or its dense block-diagonal twin) -> flatten -> fc.
    static func graph(_ c: Case, dense: Bool, outH: Int, outW: Int) -> LayerGraph {
        typealias Node = LayerGraph.Node
        let out = c.channels * c.multiplier
        return LayerGraph(nodes: [
            Node(name: "pw", op: .conv2d(inChannels: 3, outChannels: c.channels, kernel: (1, 1), stride: (1, 1), padding: .symmetric(0),
                                         dilation: (1, 1), groups: 1, bias: false), inputs: [-1]),
            Node(name: "dw", op: .conv2d(inChannels: c.channels, outChannels: out, kernel: c.kernel, stride: c.stride, padding: c.padding,
                                         dilation: c.dilation, groups: dense ? 1 : c.channels, bias: true), inputs: [0]),
            Node(name: "flat", op: .flatten, inputs: [1]),
            Node(name: "fc", op: .linear(inFeatures: out * outH * outW, outFeatures: 5, bias: true), inputs: [2]),
        ], inputChannels: 3, taps: [], headStart: 3)
    }

    /// Runs both graphs; `twist` rearranges the taps when building the dense weight (the negative control).
    static func compare(_ c: Case, twist: Bool = false) throws -> (loss: Double, worst: Double) {
        guard let g = WindowGeometry(inH: c.height, inW: c.width, kernel: c.kernel, stride: c.stride, dilation: c.dilation,
                                     padding: c.padding) else { throw CocoaError(.featureUnsupported) }
        let out = c.channels * c.multiplier, taps = c.kernel.0 * c.kernel.1, features = out * g.outH * g.outW
        let pw = values(c.channels * 3, seed: 1), dw = values(out * taps, seed: 2), db = values(out, seed: 3)
        let fc = values(5 * features, seed: 4).map { $0 * 0.1 }, fb = values(5, seed: 5)
        var dense = [Float](repeating: 0, count: out * c.channels * taps)
        for oc in 0..<out {
            let ic = oc / c.multiplier
            for t in 0..<taps {
                let from = twist ? (t % c.kernel.1) * c.kernel.0 + t / c.kernel.1 : t
                dense[(oc * c.channels + ic) * taps + t] = dw[oc * taps + from]
            }
        }
        func weights(_ dwWeight: [Float], groups: Int) throws -> [String: Tensor] {
            [
                "pw.weight": try Tensor(shape: [c.channels, 3, 1, 1], floats: pw),
                "dw.weight": try Tensor(shape: [out, c.channels / groups, c.kernel.0, c.kernel.1], floats: dwWeight),
                "dw.bias": try Tensor(shape: [out], floats: db),
                "fc.weight": try Tensor(shape: [5, features], floats: fc),
                "fc.bias": try Tensor(shape: [5], floats: fb),
            ]
        }
        let a = try weights(dw, groups: c.channels), b = try weights(dense, groups: 1)
        let depthwise = try TrainingGraph(graph: graph(c, dense: false, outH: g.outH, outW: g.outW), weights: { a[$0] },
                                          trainable: .all, batchNorm: .eval)
        let reference = try TrainingGraph(graph: graph(c, dense: true, outH: g.outH, outW: g.outW), weights: { b[$0] },
                                          trainable: .all, batchNorm: .eval)
        depthwise.threads = 2
        let x = try Tensor(shape: [3, 3, c.height, c.width], floats: values(3 * 3 * c.height * c.width, seed: 6))
        let loss = try SoftmaxCrossEntropy()
        let p = try depthwise.step(input: x, labels: [0, 3, 4], loss: loss), q = try reference.step(input: x, labels: [0, 3, 4], loss: loss)
        var worst = abs(p.loss - q.loss) / abs(q.loss)
        func check(_ ours: [Float], _ ref: [Float]) {
            let scale = Double(ref.map { abs($0) }.max() ?? 0)
            let diff = Double(zip(ours, ref).map { abs($0 - $1) }.max() ?? .infinity)
            worst = max(worst, ours.count == ref.count ? diff / max(scale, 1e-30) : .infinity)
        }
        for name in ["pw.weight", "dw.bias", "fc.weight", "fc.bias"] {
            check(p.gradients[name] ?? [], q.gradients[name] ?? [])
        }
        // The dense gradient's diagonal blocks are the depthwise gradient.
        let full = q.gradients["dw.weight"] ?? []
        let diagonal = (0..<out).flatMap { oc in (0..<taps).map { t in full.isEmpty ? 0 : full[(oc * c.channels + oc / c.multiplier) * taps + t] } }
        check(p.gradients["dw.weight"] ?? [], diagonal)
        return (p.loss, worst)
    }

    @Test(arguments: cases.indices)
    func depthwiseEqualsItsDenseTwin(_ i: Int) throws {
        let c = Self.cases[i]
        let (loss, worst) = try Self.compare(c)
        #expect(loss.isFinite && loss > 0, "\(c.name)")
        #expect(worst < 1e-5, "\(c.name): worst relative difference \(worst)")
        // Negative control: a dense twin with the taps transposed is another convolution.
        let (_, twisted) = try Self.compare(c, twist: true)
        #expect(twisted > 1e-2, "\(c.name): transposed taps still agree (\(twisted))")
    }
}
