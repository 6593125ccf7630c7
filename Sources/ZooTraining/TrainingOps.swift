import ZooKernels

// Forward and backward of every op the zoo's graphs use, on NCHW float32 buffers: convolutions as
// im2col + GEMM through ZooKernels' BLAS door (one thread per call), everything else as loops over
// unsafe buffer pointers; sums that feed a bias, BatchNorm or pooled gradient accumulate in double
// precision. Single-threaded and therefore deterministic. (oneDNN's backward primitives and threading
// are the planned fast path, issue #15.)

/// A 4-D activation shape (N, C, H, W); a flat [N, F] value has H = W = 1 and C = F.
struct Shape4: Hashable, Sendable {
    var n: Int, c: Int, h: Int, w: Int
    var count: Int { n * c * h * w }
    var plane: Int { h * w }
}

enum TrainingOps {
    // MARK: convolution

    struct Conv {
        var inC: Int, outC: Int, kh: Int, kw: Int, sh: Int, sw: Int, dh: Int, dw: Int, groups: Int
        var g: WindowGeometry
    }

    /// Unfolds one image's channels `c0 ..< c0 + count` into `col` [count * kh * kw, outH * outW]
    /// (zeros where the window is in the padding).
    static func im2col(_ c: Conv, x: UnsafePointer<Float>, c0: Int, count: Int, col: UnsafeMutablePointer<Float>) {
        let g = c.g, inPlane = g.inH * g.inW, outPlane = g.outH * g.outW
        var row = 0
        for ic in c0..<(c0 + count) {
            let xp = x + ic * inPlane
            for ky in 0..<c.kh {
                for kx in 0..<c.kw {
                    let out = col + row * outPlane
                    for oy in 0..<g.outH {
                        let iy = oy * c.sh - g.padTop + ky * c.dh
                        let o = out + oy * g.outW
                        guard iy >= 0, iy < g.inH else { o.update(repeating: 0, count: g.outW); continue }
                        let r = xp + iy * g.inW
                        for ox in 0..<g.outW {
                            let ix = ox * c.sw - g.padLeft + kx * c.dw
                            o[ox] = ix >= 0 && ix < g.inW ? r[ix] : 0
                        }
                    }
                    row += 1
                }
            }
        }
    }

    /// The adjoint of `im2col`: adds `col` back into channels `c0 ..< c0 + count` of `dx`.
    static func col2im(_ c: Conv, col: UnsafePointer<Float>, c0: Int, count: Int, dx: UnsafeMutablePointer<Float>) {
        let g = c.g, inPlane = g.inH * g.inW, outPlane = g.outH * g.outW
        var row = 0
        for ic in c0..<(c0 + count) {
            let dp = dx + ic * inPlane
            for ky in 0..<c.kh {
                for kx in 0..<c.kw {
                    let src = col + row * outPlane
                    for oy in 0..<g.outH {
                        let iy = oy * c.sh - g.padTop + ky * c.dh
                        guard iy >= 0, iy < g.inH else { continue }
                        let r = dp + iy * g.inW, s = src + oy * g.outW
                        for ox in 0..<g.outW {
                            let ix = ox * c.sw - g.padLeft + kx * c.dw
                            if ix >= 0, ix < g.inW { r[ix] += s[ox] }
                        }
                    }
                    row += 1
                }
            }
        }
    }

    /// Floats of scratch the convolution needs (one group's unfolded image).
    static func scratchCount(_ c: Conv) -> Int { c.inC / c.groups * c.kh * c.kw * c.g.outH * c.g.outW }

    /// y[n, oc] = b[oc] + W_group[oc, :] . im2col(x[n], group): one GEMM per image and group.
    static func convForward(_ c: Conv, x: UnsafePointer<Float>, n: Int, w: UnsafePointer<Float>, b: UnsafePointer<Float>?,
                            y: UnsafeMutablePointer<Float>, col: UnsafeMutablePointer<Float>) {
        let g = c.g, inPer = c.inC / c.groups, outPer = c.outC / c.groups
        let inPlane = g.inH * g.inW, outPlane = g.outH * g.outW, k = inPer * c.kh * c.kw
        for img in 0..<n {
            for grp in 0..<c.groups {
                im2col(c, x: x + img * c.inC * inPlane, c0: grp * inPer, count: inPer, col: col)
                let yp = y + (img * c.outC + grp * outPer) * outPlane
                GEMM.multiply(m: outPer, n: outPlane, k: k, a: w + grp * outPer * k, lda: k, b: col, ldb: outPlane, c: yp, ldc: outPlane)
            }
            if let b {
                for oc in 0..<c.outC {
                    let yp = y + (img * c.outC + oc) * outPlane
                    for p in 0..<outPlane { yp[p] += b[oc] }
                }
            }
        }
    }

    /// Gradients of a convolution: `dx` (accumulated into, when given), `dw` and `db` (overwritten, when
    /// given). `dw` sums over the batch in image order (GEMM with beta 1), so it is deterministic.
    static func convBackward(_ c: Conv, x: UnsafePointer<Float>, n: Int, w: UnsafePointer<Float>, dy: UnsafePointer<Float>,
                             dx: UnsafeMutablePointer<Float>?, dw: UnsafeMutablePointer<Float>?, db: UnsafeMutablePointer<Float>?,
                             col: UnsafeMutablePointer<Float>) {
        let g = c.g, inPer = c.inC / c.groups, outPer = c.outC / c.groups
        let inPlane = g.inH * g.inW, outPlane = g.outH * g.outW, k = inPer * c.kh * c.kw
        if let db {
            for oc in 0..<c.outC {
                var s = 0.0
                for img in 0..<n {
                    let d = dy + (img * c.outC + oc) * outPlane
                    for p in 0..<outPlane { s += Double(d[p]) }
                }
                db[oc] = Float(s)
            }
        }
        for img in 0..<n {
            for grp in 0..<c.groups {
                let dyp = dy + (img * c.outC + grp * outPer) * outPlane
                let wg = w + grp * outPer * k
                if let dw {
                    // dW_group[outPer, k] (+)= dY[outPer, P] . col[k, P]^T
                    im2col(c, x: x + img * c.inC * inPlane, c0: grp * inPer, count: inPer, col: col)
                    GEMM.multiply(m: outPer, n: k, k: outPlane, a: dyp, lda: outPlane, b: col, ldb: outPlane, transB: true,
                                  c: dw + grp * outPer * k, ldc: k, beta: img == 0 ? 0 : 1)
                }
                if let dx {
                    // dcol[k, P] = W_group[outPer, k]^T . dY[outPer, P], folded back into dx.
                    GEMM.multiply(m: k, n: outPlane, k: outPer, a: wg, lda: k, transA: true, b: dyp, ldb: outPlane, c: col, ldc: outPlane)
                    col2im(c, col: col, c0: grp * inPer, count: inPer, dx: dx + img * c.inC * inPlane)
                }
            }
        }
    }

    // MARK: BatchNorm

    /// Per-channel mean and biased variance over N, H, W (double precision).
    static func channelStats(_ x: UnsafePointer<Float>, _ s: Shape4) -> (mean: [Double], variance: [Double]) {
        var mean = [Double](repeating: 0, count: s.c), variance = [Double](repeating: 0, count: s.c)
        let m = Double(s.n * s.plane)
        for ch in 0..<s.c {
            var sum = 0.0
            for img in 0..<s.n {
                let p = x + (img * s.c + ch) * s.plane
                for i in 0..<s.plane { sum += Double(p[i]) }
            }
            let mu = sum / m
            var sq = 0.0
            for img in 0..<s.n {
                let p = x + (img * s.c + ch) * s.plane
                for i in 0..<s.plane { let d = Double(p[i]) - mu; sq += d * d }
            }
            mean[ch] = mu
            variance[ch] = sq / m
        }
        return (mean, variance)
    }

    /// y = (x - mean) * invstd * gamma + beta, per channel.
    static func affine(_ x: UnsafePointer<Float>, _ s: Shape4, mean: [Double], invstd: [Double], gamma: [Float], beta: [Float],
                       y: UnsafeMutablePointer<Float>) {
        for ch in 0..<s.c {
            let scale = Float(invstd[ch] * Double(gamma[ch]))
            let shift = Float(Double(beta[ch]) - mean[ch] * invstd[ch] * Double(gamma[ch]))
            for img in 0..<s.n {
                let o = (img * s.c + ch) * s.plane
                for i in 0..<s.plane { y[o + i] = x[o + i] * scale + shift }
            }
        }
    }

    /// BatchNorm backward. With batch statistics (`train`), the gradient flows through the mean and
    /// variance too; with running statistics it is per-channel affine. `dx` is accumulated into.
    static func batchNormBackward(_ x: UnsafePointer<Float>, _ s: Shape4, mean: [Double], invstd: [Double], gamma: [Float],
                                  train: Bool, dy: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>?,
                                  dgamma: UnsafeMutablePointer<Float>?, dbeta: UnsafeMutablePointer<Float>?) {
        let m = Double(s.n * s.plane)
        for ch in 0..<s.c {
            var sumDy = 0.0, sumDyXhat = 0.0
            for img in 0..<s.n {
                let o = (img * s.c + ch) * s.plane
                for i in 0..<s.plane {
                    let d = Double(dy[o + i])
                    sumDy += d
                    sumDyXhat += d * (Double(x[o + i]) - mean[ch]) * invstd[ch]
                }
            }
            dgamma?[ch] = Float(sumDyXhat)
            dbeta?[ch] = Float(sumDy)
            guard let dx else { continue }
            let k = Double(gamma[ch]) * invstd[ch]
            for img in 0..<s.n {
                let o = (img * s.c + ch) * s.plane
                for i in 0..<s.plane {
                    if train {
                        let xhat = (Double(x[o + i]) - mean[ch]) * invstd[ch]
                        dx[o + i] += Float(k * (Double(dy[o + i]) - sumDy / m - xhat * sumDyXhat / m))
                    } else {
                        dx[o + i] += Float(k * Double(dy[o + i]))
                    }
                }
            }
        }
    }

    // MARK: activations

    static func activate(_ a: Activation, _ x: Float) -> Float {
        switch a {
        case .none: return x
        case .relu: return x > 0 ? x : 0
        case .relu6: return min(max(x, 0), 6)
        case .hardSwish: return x * min(max(x + 3, 0), 6) / 6
        case .hardSigmoid: return min(max(x + 3, 0), 6) / 6
        case .sigmoid: return 1 / (1 + (-x).exponential)
        }
    }

    /// d activation / d x at input `x` (output `y`), torch's conventions at the kinks.
    static func derivative(_ a: Activation, x: Float, y: Float) -> Float {
        switch a {
        case .none: return 1
        case .relu: return y > 0 ? 1 : 0
        case .relu6: return x > 0 && x < 6 ? 1 : 0
        case .hardSwish: return x < -3 ? 0 : (x <= 3 ? x / 3 + 0.5 : 1)
        case .hardSigmoid: return x > -3 && x < 3 ? 1 / 6 : 0
        case .sigmoid: return y * (1 - y)
        }
    }

    // MARK: pooling

    /// Max pooling; `argmax` receives the input index (within the plane) each output took, -1 for none.
    static func maxPool(_ x: UnsafePointer<Float>, _ s: Shape4, g: WindowGeometry, k: (Int, Int), st: (Int, Int),
                        y: UnsafeMutablePointer<Float>, argmax: UnsafeMutablePointer<Int32>) {
        let outPlane = g.outH * g.outW
        for nc in 0..<(s.n * s.c) {
            let xp = x + nc * s.plane
            for oy in 0..<g.outH {
                for ox in 0..<g.outW {
                    var best = -Float.infinity, at: Int32 = -1
                    for ky in 0..<k.0 {
                        let iy = oy * st.0 - g.padTop + ky
                        guard iy >= 0, iy < s.h else { continue }
                        for kx in 0..<k.1 {
                            let ix = ox * st.1 - g.padLeft + kx
                            guard ix >= 0, ix < s.w else { continue }
                            let v = xp[iy * s.w + ix]
                            if v > best || v.isNaN || at < 0 { best = v; at = Int32(iy * s.w + ix) }
                        }
                    }
                    y[nc * outPlane + oy * g.outW + ox] = best
                    argmax[nc * outPlane + oy * g.outW + ox] = at
                }
            }
        }
    }

    /// The average-pooling window of output (oy, ox): rows, columns and torch's divisor.
    static func avgWindow(_ s: Shape4, g: WindowGeometry, k: (Int, Int), st: (Int, Int), includePad: Bool, oy: Int, ox: Int)
        -> (y0: Int, y1: Int, x0: Int, x1: Int, divisor: Float) {
        var y0 = oy * st.0 - g.padTop, x0 = ox * st.1 - g.padLeft
        var y1 = min(y0 + k.0, s.h + g.padBottom), x1 = min(x0 + k.1, s.w + g.padRight)
        let padded = (y1 - y0) * (x1 - x0)
        y0 = max(y0, 0); x0 = max(x0, 0); y1 = min(y1, s.h); x1 = min(x1, s.w)
        let count = includePad ? padded : (y1 - y0) * (x1 - x0)
        return (y0, y1, x0, x1, Float(max(count, 1)))
    }

    /// The adaptive pooling window of output index `o` of `outSize` over `inSize` (torch: floor and ceil).
    static func adaptiveRange(_ o: Int, _ outSize: Int, _ inSize: Int) -> (Int, Int) {
        (o * inSize / outSize, ((o + 1) * inSize + outSize - 1) / outSize)
    }
}

extension Float {
    /// e^self (through the C library, in double precision, rounded once).
    var exponential: Float { Float(Double(self).exponentialValue) }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension Double {
    var exponentialValue: Double { exp(self) }
}
