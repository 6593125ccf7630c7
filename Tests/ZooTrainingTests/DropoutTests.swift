import Foundation
import Testing
import ZooArchitectures
import ZooRuntime
import ZooTensor
import ZooTraining

/// Seeded dropout in a training step, read off a linear layer's weight gradient: for one image,
/// dW[o, k] = g[o] * x[k] * factor[k], so each column shows the factor dropout applied (0 or 1 / (1 - p)).
@Suite struct DropoutTests {
    static let features = 4000, p = 0.3

    static func graph() throws -> (TrainingGraph, Tensor) {
        typealias Node = LayerGraph.Node
        let g = LayerGraph(nodes: [
            Node(name: "flatten", op: .flatten, inputs: [-1]),
            Node(name: "drop", op: .dropout(p), inputs: [0]),
            Node(name: "fc", op: .linear(inFeatures: features, outFeatures: 2, bias: false), inputs: [1]),
        ], inputChannels: features, taps: [], headStart: 0)
        var w = [Float](repeating: 0, count: 2 * features)
        for k in 0..<features { w[k] = 0.001; w[features + k] = -0.001 }
        let weights = ["fc.weight": try Tensor(shape: [2, features], floats: w)]
        let x = try Tensor(shape: [1, features, 1, 1], floats: (0..<features).map { 1 + Float($0) * 0.001 })
        return (try TrainingGraph(graph: g, weights: { weights[$0] }, trainable: .all, batchNorm: .eval), x)
    }

    /// The factor of each input element, from a step's gradient.
    static func factors(_ step: TrainingGraph.Step, x: Tensor) throws -> [Double] {
        let z = step.logits.map(Double.init)
        let m = z.max() ?? 0
        let e = z.map { exp($0 - m) }
        let g0 = e[0] / e.reduce(0, +) - 1  // label 0
        let dw = try #require(step.gradients["fc.weight"])
        let xs = x.floats()
        return (0..<features).map { Double(dw[$0]) / (g0 * Double(xs[$0])) }
    }

    @Test func masksAreSeededScaledAndUsedInBackward() throws {
        let (graph, x) = try Self.graph()
        let loss = try SoftmaxCrossEntropy()
        let a = try graph.step(input: x, labels: [0], loss: loss, dropoutSeed: 7)
        let f = try Self.factors(a, x: x)
        let keep = 1 / (1 - Self.p)
        #expect(f.allSatisfy { abs($0) < 1e-4 || abs($0 - keep) < 1e-4 * keep }, "factors other than 0 and 1/(1-p)")
        let dropped = Double(f.filter { abs($0) < 1e-4 }.count) / Double(Self.features)
        #expect(abs(dropped - Self.p) < 0.05, "dropped fraction \(dropped), p \(Self.p)")
        // Same seed: bit for bit; another seed: another mask; no seed: the identity (negative controls).
        let again = try graph.step(input: x, labels: [0], loss: loss, dropoutSeed: 7)
        #expect(again.gradients == a.gradients && again.loss == a.loss)
        let other = try Self.factors(try graph.step(input: x, labels: [0], loss: loss, dropoutSeed: 8), x: x)
        #expect(zip(f, other).contains { abs($0 - $1) > 1e-3 }, "seed 8 gave seed 7's mask")
        let none = try Self.factors(try graph.step(input: x, labels: [0], loss: loss), x: x)
        #expect(none.allSatisfy { abs($0 - 1) < 1e-4 }, "without a seed dropout must be the identity")
    }

    /// The backward pass applies the forward mask: the gradient of a layer before the dropout shows the
    /// same factors as the layer after it.
    @Test func backwardUsesTheForwardMask() throws {
        typealias Node = LayerGraph.Node
        let m = 2000
        let g = LayerGraph(nodes: [
            Node(name: "flatten", op: .flatten, inputs: [-1]),
            Node(name: "fc0", op: .linear(inFeatures: 1, outFeatures: m, bias: false), inputs: [0]),
            Node(name: "drop", op: .dropout(Self.p), inputs: [1]),
            Node(name: "fc", op: .linear(inFeatures: m, outFeatures: 2, bias: false), inputs: [2]),
        ], inputChannels: 1, taps: [], headStart: 0)
        var w = [Float](repeating: 0, count: 2 * m)
        for k in 0..<m { w[k] = 0.001; w[m + k] = -0.001 }
        let weights = ["fc.weight": try Tensor(shape: [2, m], floats: w),
                       "fc0.weight": try Tensor(shape: [m, 1], floats: (0..<m).map { 1 + Float($0) * 0.001 })]
        let graph = try TrainingGraph(graph: g, weights: { weights[$0] }, trainable: .all, batchNorm: .eval)
        let step = try graph.step(input: try Tensor(shape: [1, 1, 1, 1], floats: [1]), labels: [0], loss: try SoftmaxCrossEntropy(),
                                  dropoutSeed: 3)
        let dw0 = try #require(step.gradients["fc0.weight"]), dw = try #require(step.gradients["fc.weight"])
        let before = dw0.map { abs($0) > 0 }, after = dw.prefix(m).map { abs($0) > 0 }
        let differ = zip(before, after).filter { $0 != $1 }.count
        #expect(before.count == m && differ == 0, "the forward and backward masks differ in \(differ) of \(m) elements")
        #expect(before.contains(false) && before.contains(true), "the mask drops all or nothing")
    }

    /// Stochastic depth (`LayerGraph.stochasticDepth`) on `x + branch(x)`, branch a 1x1 convolution, then a linear
    /// layer: with a seed each sample's logits are those of the dropped branch (x alone) or of the kept one scaled
    /// by 1 / (1 - p), about a fraction p of them dropped; the same seed repeats, another does not, no seed is the
    /// plain sum; and the gradient of the branch's weights is the loss's own slope (central differences with the
    /// same seed), so backward applies the forward's per-sample factors.
    @Test func stochasticDepthDropsTheBranchPerSample() throws {
        typealias Node = LayerGraph.Node
        let n = 64, c = 3, p = 0.4
        var g = LayerGraph(nodes: [
            Node(name: "branch", op: .conv2d(inChannels: c, outChannels: c, kernel: (1, 1), stride: (1, 1), padding: .symmetric(0),
                                              dilation: (1, 1), groups: 1, bias: false), inputs: [-1]),
            Node(name: "add", op: .add, inputs: [-1, 0]),
            Node(name: "flatten", op: .flatten, inputs: [1]),
            Node(name: "fc", op: .linear(inFeatures: c, outFeatures: 2, bias: false), inputs: [2]),
        ], inputChannels: c, taps: [], headStart: 2)
        g.stochasticDepth = [1: p]
        let wb: [Float] = [0.5, -0.2, 0.1, 0.3, 0.4, -0.6, -0.1, 0.2, 0.7], wf: [Float] = [0.9, -0.4, 0.3, -0.5, 0.8, 0.2]
        let weights = ["branch.weight": try Tensor(shape: [c, c, 1, 1], floats: wb), "fc.weight": try Tensor(shape: [2, c], floats: wf)]
        let graph = try TrainingGraph(graph: g, weights: { weights[$0] }, trainable: .all, batchNorm: .eval)
        let xs = (0..<(n * c)).map { Float(sin(Double($0) * 0.7)) }
        let x = try Tensor(shape: [n, c, 1, 1], floats: xs)
        let labels = (0..<n).map { $0 % 2 }
        let loss = try SoftmaxCrossEntropy()
        /// The logits of sample `i` with the branch scaled by `f`, in double precision.
        func logits(_ i: Int, _ f: Double) -> [Double] {
            let v = (0..<c).map { k in Double(xs[i * c + k]) + f * (0..<c).reduce(0.0) { $0 + Double(wb[k * c + $1]) * Double(xs[i * c + $1]) } }
            return (0..<2).map { o in (0..<c).reduce(0.0) { $0 + Double(wf[o * c + $1]) * v[$1] } }
        }
        func factors(_ step: TrainingGraph.Step) -> [Double?] {
            (0..<n).map { i in
                let z = step.logits[(2 * i)..<(2 * i + 2)].map(Double.init)
                return [0, 1 / (1 - p)].first { f in zip(z, logits(i, f)).allSatisfy { abs($0 - $1) < 1e-5 } }
            }
        }
        let a = try graph.step(input: x, labels: labels, loss: loss, dropoutSeed: 11)
        let fa = factors(a)
        #expect(fa.allSatisfy { $0 != nil }, "samples whose branch was neither dropped nor scaled by 1/(1-p)")
        let dropped = Double(fa.filter { $0 == 0 }.count) / Double(n)
        #expect(abs(dropped - p) < 0.2, "dropped fraction \(dropped), p \(p)")
        let again = try graph.step(input: x, labels: labels, loss: loss, dropoutSeed: 11)
        #expect(again.logits == a.logits && again.gradients == a.gradients)
        #expect(factors(try graph.step(input: x, labels: labels, loss: loss, dropoutSeed: 12)) != fa, "seed 12 gave seed 11's mask")
        let plain = try graph.step(input: x, labels: labels, loss: loss)
        #expect((0..<n).allSatisfy { i in zip(plain.logits[(2 * i)..<(2 * i + 2)].map(Double.init), logits(i, 1)).allSatisfy { abs($0 - $1) < 1e-5 } },
                "without a seed the residual sum must be plain")
        // The analytic gradient of the branch's weights against central differences of the loss, same seed.
        let analytic = try #require(a.gradients["branch.weight"])
        let h: Float = 1e-2
        for k in [0, 4, 7] {
            var plus = wb, minus = wb
            plus[k] += h
            minus[k] -= h
            try graph.update(["branch.weight": plus])
            let lp = try graph.step(input: x, labels: labels, loss: loss, dropoutSeed: 11).loss
            try graph.update(["branch.weight": minus])
            let lm = try graph.step(input: x, labels: labels, loss: loss, dropoutSeed: 11).loss
            let numeric = (lp - lm) / Double(2 * h)
            #expect(abs(numeric - Double(analytic[k])) <= 1e-3 * max(1, abs(numeric)), "branch.weight[\(k)]: \(analytic[k]) vs \(numeric)")
        }
        try graph.update(["branch.weight": wb])
        // Negative control: the plain step's gradient (no branch dropped) differs from the seeded one.
        #expect(try #require(plain.gradients["branch.weight"]) != analytic)
    }
}
