import Foundation
import ZooErrors

/// Softmax cross-entropy over a batch of logits, as `torch.nn.functional.cross_entropy` computes it
/// (reduction `mean`): optional label smoothing and class weights, with the gradient with respect to
/// the logits. Log-sum-exp with the row maximum subtracted, in double precision, so logits of any
/// magnitude give finite results.
///
/// With class weights `w` and smoothing `e` over `C` classes, for rows `i` with labels `y_i` and
/// log-probabilities `l`: `loss = (1 - e) * sum_i w[y_i] * -l[i][y_i] / W + e / C * sum_i sum_c w[c] * -l[i][c] / W`,
/// `W = sum_i w[y_i]` (torch's normalisation; without weights every `w` is 1 and `W` is the batch size).
public struct SoftmaxCrossEntropy: Sendable, Equatable {
    /// Label smoothing in [0, 1).
    public let labelSmoothing: Double
    /// One non-negative weight per class, or nil for equal weights.
    public let classWeights: [Double]?

    /// A loss; throws a usage error for smoothing outside [0, 1) or a negative or non-finite class weight.
    public init(labelSmoothing: Double = 0, classWeights: [Double]? = nil) throws {
        guard labelSmoothing >= 0, labelSmoothing < 1 else {
            throw ZooError(.usage, "label smoothing must be in [0, 1), got \(labelSmoothing)")
        }
        if let w = classWeights {
            guard !w.isEmpty, w.allSatisfy({ $0.isFinite && $0 >= 0 }) else {
                throw ZooError(.usage, "class weights must be finite and non-negative")
            }
        }
        self.labelSmoothing = labelSmoothing
        self.classWeights = classWeights
    }

    /// The mean loss over the batch and its gradient with respect to `logits` ([batch, classes], row-major).
    /// Throws `badInput` for a label outside 0..<classes, a count mismatch, non-finite logits, or
    /// class weights that sum to zero over the batch's labels.
    public func lossAndGradient(logits: [Float], labels: [Int], classes: Int) throws -> (loss: Double, gradient: [Float]) {
        let n = labels.count
        guard classes > 0, n > 0, logits.count == n * classes else {
            throw ZooError(.badInput, "logits hold \(logits.count) values, expected \(n) labels x \(classes) classes")
        }
        if let w = classWeights, w.count != classes {
            throw ZooError(.badInput, "\(w.count) class weights for \(classes) classes")
        }
        for (i, y) in labels.enumerated() where y < 0 || y >= classes {
            throw ZooError(.badInput, "label \(y) of row \(i) is outside 0..<\(classes)")
        }
        let e = labelSmoothing, c = Double(classes)
        var total = 0.0
        for y in labels { total += classWeights?[y] ?? 1 }
        guard total > 0 else { throw ZooError(.badInput, "the class weights of this batch's labels sum to zero") }
        let sumWeights = classWeights?.reduce(0, +) ?? c
        var gradient = [Float](repeating: 0, count: logits.count)
        var loss = 0.0
        var logProbs = [Double](repeating: 0, count: classes)
        try logits.withUnsafeBufferPointer { zp in
            try gradient.withUnsafeMutableBufferPointer { gp in
                guard let z = zp.baseAddress, let gBase = gp.baseAddress else { return }
                for i in 0..<n {
                    let row = z + i * classes
                    var m = -Double.infinity
                    for k in 0..<classes {
                        guard row[k].isFinite else { throw ZooError(.badInput, "logit \(k) of row \(i) is not finite (\(row[k]))") }
                        m = max(m, Double(row[k]))
                    }
                    var s = 0.0
                    for k in 0..<classes { s += exp(Double(row[k]) - m) }
                    let lse = m + log(s)
                    for k in 0..<classes { logProbs[k] = Double(row[k]) - lse }
                    let y = labels[i]
                    let wy = classWeights?[y] ?? 1
                    var smooth = 0.0
                    for k in 0..<classes { smooth -= (classWeights?[k] ?? 1) * logProbs[k] }
                    loss += (1 - e) * wy * -logProbs[y] + e / c * smooth
                    // d/dz_k: (1 - e) w_y (p_k - [k == y]) + e / C (p_k sum_c w_c - w_k), all over W.
                    let g = gBase + i * classes
                    for k in 0..<classes {
                        let p = exp(logProbs[k])
                        var d = (1 - e) * wy * (p - (k == y ? 1 : 0))
                        d += e / c * (p * sumWeights - (classWeights?[k] ?? 1))
                        g[k] = Float(d / total)
                    }
                }
            }
        }
        return (loss / total, gradient)
    }
}

