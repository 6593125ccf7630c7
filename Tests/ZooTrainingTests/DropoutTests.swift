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
}
