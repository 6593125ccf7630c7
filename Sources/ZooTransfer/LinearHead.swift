import ZooErrors
import ZooKernels
import ZooTensor

/// A linear classifier on embeddings: logits = x W^T + b, W [classes, width], b [classes] (torch's
/// `nn.Linear` layout, the layer a new classifier replaces).
public struct LinearHead: Sendable, Equatable {
    /// Output classes K.
    public let classes: Int
    /// Input width D.
    public let width: Int
    /// Weight [K, D], row-major.
    public var weight: [Float]
    /// Bias [K].
    public var bias: [Float]

    /// A head from its tensors; throws `badInput` when the counts do not match the sizes.
    public init(classes: Int, width: Int, weight: [Float], bias: [Float]) throws {
        guard classes > 0, width > 0, weight.count == classes * width, bias.count == classes else {
            throw ZooError(.badInput, "a linear head of \(classes) x \(width) needs \(classes * width) weights and \(classes) biases, got \(weight.count) and \(bias.count)")
        }
        self.classes = classes
        self.width = width
        self.weight = weight
        self.bias = bias
    }

    /// torch's `nn.Linear` initialisation, seeded: weight and bias uniform in [-1/sqrt(D), 1/sqrt(D))
    /// (kaiming_uniform with a = sqrt(5) gives that bound for the weight). The values come from the zoo's
    /// SplitMix64, not torch's generator.
    public static func initial(classes: Int, width: Int, seed: UInt64) throws -> LinearHead {
        var rng = SplitMix64(state: seed)
        let bound = 1 / Double(width).squareRoot()
        func draw() -> Float { Float((rng.nextUnit() * 2 - 1) * bound) }
        let w = (0..<(classes * width)).map { _ in draw() }
        let b = (0..<classes).map { _ in draw() }
        return try LinearHead(classes: classes, width: width, weight: w, bias: b)
    }

    /// Logits [rows, K] for embeddings [rows, D] (row-major); one BLAS call.
    public func logits(_ x: [Float], rows: Int) throws -> [Float] {
        guard rows >= 0, x.count == rows * width else {
            throw ZooError(.badInput, "\(x.count) embedding values for \(rows) rows of width \(width)")
        }
        var out = [Float](repeating: 0, count: rows * classes)
        guard rows > 0 else { return out }
        out.withUnsafeMutableBufferPointer { o in
            guard let ob = o.baseAddress else { return }
            for r in 0..<rows { (ob + r * classes).update(from: bias, count: classes) }
            x.withUnsafeBufferPointer { xp in
                weight.withUnsafeBufferPointer { wp in
                    guard let xb = xp.baseAddress, let wb = wp.baseAddress else { return }
                    GEMM.multiply(m: rows, n: classes, k: width, a: xb, lda: width, b: wb, ldb: width, transB: true, c: ob, ldc: classes, beta: 1)
                }
            }
        }
        return out
    }

    /// The gradients of weight [K, D] and bias [K] given d loss / d logits [rows, K] and the inputs [rows, D].
    public func gradients(input x: [Float], logitGradient g: [Float], rows: Int) -> (weight: [Float], bias: [Float]) {
        var dw = [Float](repeating: 0, count: classes * width)
        var db = [Float](repeating: 0, count: classes)
        guard rows > 0, x.count == rows * width, g.count == rows * classes else { return (dw, db) }
        dw.withUnsafeMutableBufferPointer { o in
            g.withUnsafeBufferPointer { gp in
                x.withUnsafeBufferPointer { xp in
                    guard let ob = o.baseAddress, let gb = gp.baseAddress, let xb = xp.baseAddress else { return }
                    GEMM.multiply(m: classes, n: width, k: rows, a: gb, lda: classes, transA: true, b: xb, ldb: width, c: ob, ldc: width)
                }
            }
        }
        g.withUnsafeBufferPointer { gp in
            db.withUnsafeMutableBufferPointer { bp in
                guard let gb = gp.baseAddress, let bb = bp.baseAddress else { return }
                for r in 0..<rows {
                    let row = gb + r * classes
                    for k in 0..<classes { bb[k] += row[k] }
                }
            }
        }
        return (dw, db)
    }
}
