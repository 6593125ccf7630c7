import ZooKernels
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// Forward and backward of every op the zoo's graphs use, on NCHW float32 buffers: convolutions through
// the backend's training primitives (ZooKernels' `TrainingConvolution`, oneDNN) when it takes them, else
// as im2col + GEMM through ZooKernels' BLAS door (one thread per call); depthwise convolutions and
// everything else as loops over unsafe buffer pointers; sums that feed a bias, BatchNorm or pooled
// gradient accumulate in double precision. Convolutions and linear layers split the batch over the
// graph's threads (`Parallel`, partitions fixed by the thread count, partial weight gradients added in
// task order), so a step is deterministic for a given thread count.

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
        /// Run through the convolution backend (`TrainingConvolution`, oneDNN) when it takes the shape.
        var backend = false

        /// The backend's description of this convolution on a batch of `n`.
        func shape(batch n: Int, bias: Bool) -> TrainingConvolution.Shape {
            TrainingConvolution.Shape(batch: n, inC: inC, outC: outC, groups: groups, kernel: (kh, kw), stride: (sh, sw),
                                      dilation: (dh, dw), geometry: g, bias: bias)
        }
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

    /// Floats of scratch the convolution needs per task (one group's unfolded image).
    static func scratchCount(_ c: Conv) -> Int { c.inC / c.groups * c.kh * c.kw * c.g.outH * c.g.outW }

    /// A 1x1 convolution with stride 1 and no padding reads its input as the unfolded image itself.
    static func isPointwise(_ c: Conv) -> Bool {
        c.kh == 1 && c.kw == 1 && c.sh == 1 && c.sw == 1 && c.g.padTop == 0 && c.g.padLeft == 0
            && c.g.outH == c.g.inH && c.g.outW == c.g.inW
    }

    /// Image `img`'s group `grp` unfolded as GEMM's [k, P] operand: the input itself for a pointwise
    /// convolution, else its im2col in `col`.
    private static func unfolded(_ c: Conv, x: UnsafePointer<Float>, img: Int, grp: Int, pointwise: Bool,
                                 col: UnsafeMutablePointer<Float>?) -> UnsafePointer<Float> {
        let inPer = c.inC / c.groups, inPlane = c.g.inH * c.g.inW
        guard !pointwise, let col else { return x + (img * c.inC + grp * inPer) * inPlane }
        im2col(c, x: x + img * c.inC * inPlane, c0: grp * inPer, count: inPer, col: col)
        return UnsafePointer(col)
    }

    /// Runs `body(task, images)` over `tasks` contiguous chunks of the batch, each task with its own
    /// scratch of `scratch` floats (none when 0).
    private static func overImages(_ n: Int, tasks: Int, scratch: Int,
                                   _ body: (Int, Range<Int>, UnsafeMutablePointer<Float>?) -> Void) {
        Parallel.run(tasks) { t in
            let images = Parallel.chunk(t, of: tasks, count: n)
            guard !images.isEmpty else { return }
            if scratch > 0 {
                let col = UnsafeMutablePointer<Float>.allocate(capacity: scratch)
                defer { col.deallocate() }
                body(t, images, col)
            } else {
                body(t, images, nil)
            }
        }
    }

    /// A convolution's bias gradient: db[oc] = the sum of dy[n, oc] over the batch and the plane, in double,
    /// images in order (channels split over the tasks, so the split does not change a value).
    static func biasGradient(dy: UnsafePointer<Float>, n: Int, channels: Int, plane: Int, db: UnsafeMutablePointer<Float>,
                             threads: Int) {
        let tasks = Parallel.tasks(threads, work: n * channels * plane, minimumPerTask: 1 << 16)
        Parallel.run(tasks) { t in
            for oc in Parallel.chunk(t, of: tasks, count: channels) {
                var s = 0.0
                for img in 0..<n {
                    let d = dy + (img * channels + oc) * plane
                    for p in 0..<plane { s += Double(d[p]) }
                }
                db[oc] = Float(s)
            }
        }
    }

    // MARK: depthwise convolution

    /// A grouped convolution whose output channels each read one input channel (depthwise, with any
    /// channel multiplier): run as direct loops over the planes instead of one tiny GEMM per channel.
    static func isDepthwise(_ c: Conv) -> Bool { c.groups > 1 && c.inC == c.groups }

    /// The output columns `ox` of a kernel column whose input column `ox * stride + offset` is inside
    /// `0 ..< inW`.
    static func validColumns(offset: Int, stride: Int, inW: Int, outW: Int) -> Range<Int> {
        // ox >= ceil(-offset / stride) and ox <= floor((inW - 1 - offset) / stride)
        let lo = offset >= 0 ? 0 : (-offset + stride - 1) / stride
        let top = inW - 1 - offset
        let hi = top < 0 ? 0 : min(outW, top / stride + 1)
        return lo < hi ? lo..<hi : 0..<0
    }

    /// Forward of a depthwise convolution: y[n, oc] = b[oc] + sum over the window of w[oc] * x[n, oc / m]
    /// (m output channels per input channel), taps summed in kernel order. Groups split over the tasks.
    static func depthwiseForward(_ c: Conv, x: UnsafePointer<Float>, n: Int, w: UnsafePointer<Float>, b: UnsafePointer<Float>?,
                                 y: UnsafeMutablePointer<Float>, threads: Int) {
        let g = c.g, m = c.outC / c.groups, inPlane = g.inH * g.inW, outPlane = g.outH * g.outW, taps = c.kh * c.kw
        let tasks = min(c.groups, Parallel.tasks(threads, work: n * c.outC * outPlane * taps, minimumPerTask: 1 << 16))
        Parallel.run(tasks) { t in
            for grp in Parallel.chunk(t, of: tasks, count: c.groups) {
                for img in 0..<n {
                    let xp = x + (img * c.inC + grp) * inPlane
                    for oc in (grp * m)..<(grp * m + m) {
                        let yp = y + (img * c.outC + oc) * outPlane
                        yp.update(repeating: b?[oc] ?? 0, count: outPlane)
                        let wp = w + oc * taps
                        for ky in 0..<c.kh {
                            for kx in 0..<c.kw {
                                let wv = wp[ky * c.kw + kx]
                                let off = kx * c.dw - g.padLeft
                                let cols = validColumns(offset: off, stride: c.sw, inW: g.inW, outW: g.outW)
                                guard !cols.isEmpty else { continue }
                                for oy in 0..<g.outH {
                                    let iy = oy * c.sh - g.padTop + ky * c.dh
                                    guard iy >= 0, iy < g.inH else { continue }
                                    let row = yp + oy * g.outW, src = xp + iy * g.inW + off
                                    if c.sw == 1 {
                                        for ox in cols { row[ox] += wv * src[ox] }
                                    } else {
                                        for ox in cols { row[ox] += wv * src[ox * c.sw] }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// Backward of a depthwise convolution: `dx` accumulated into, `dw` and `db` overwritten (when given).
    /// Each group's gradients come from one task, summed over the images in order (weight sums per row in
    /// float, across rows and images in double), so the result does not depend on the thread count.
    static func depthwiseBackward(_ c: Conv, x: UnsafePointer<Float>, n: Int, w: UnsafePointer<Float>, dy: UnsafePointer<Float>,
                                  dx: UnsafeMutablePointer<Float>?, dw: UnsafeMutablePointer<Float>?, db: UnsafeMutablePointer<Float>?,
                                  threads: Int) {
        let g = c.g, m = c.outC / c.groups, inPlane = g.inH * g.inW, outPlane = g.outH * g.outW, taps = c.kh * c.kw
        if let db { biasGradient(dy: dy, n: n, channels: c.outC, plane: outPlane, db: db, threads: threads) }
        guard dw != nil || dx != nil else { return }
        let tasks = min(c.groups, Parallel.tasks(threads, work: n * c.outC * outPlane * taps, minimumPerTask: 1 << 16))
        Parallel.run(tasks) { t in
            var acc = [Double](repeating: 0, count: taps)
            for grp in Parallel.chunk(t, of: tasks, count: c.groups) {
                for oc in (grp * m)..<(grp * m + m) {
                    for j in 0..<taps { acc[j] = 0 }
                    let wp = w + oc * taps
                    for img in 0..<n {
                        let xp = x + (img * c.inC + grp) * inPlane
                        let dyp = dy + (img * c.outC + oc) * outPlane
                        let dxp = dx.map { $0 + (img * c.inC + grp) * inPlane }
                        for ky in 0..<c.kh {
                            for kx in 0..<c.kw {
                                let tap = ky * c.kw + kx, wv = wp[tap]
                                let off = kx * c.dw - g.padLeft
                                let cols = validColumns(offset: off, stride: c.sw, inW: g.inW, outW: g.outW)
                                guard !cols.isEmpty else { continue }
                                var sum = 0.0
                                for oy in 0..<g.outH {
                                    let iy = oy * c.sh - g.padTop + ky * c.dh
                                    guard iy >= 0, iy < g.inH else { continue }
                                    let d = dyp + oy * g.outW, src = xp + iy * g.inW + off
                                    if dw != nil {
                                        var rowSum: Float = 0
                                        if c.sw == 1 {
                                            for ox in cols { rowSum += d[ox] * src[ox] }
                                        } else {
                                            for ox in cols { rowSum += d[ox] * src[ox * c.sw] }
                                        }
                                        sum += Double(rowSum)
                                    }
                                    if let dxp {
                                        let dst = dxp + iy * g.inW + off
                                        if c.sw == 1 {
                                            for ox in cols { dst[ox] += wv * d[ox] }
                                        } else {
                                            for ox in cols { dst[ox * c.sw] += wv * d[ox] }
                                        }
                                    }
                                }
                                acc[tap] += sum
                            }
                        }
                    }
                    if let dw { for j in 0..<taps { dw[oc * taps + j] = Float(acc[j]) } }
                }
            }
        }
    }

    /// y[n, oc] = b[oc] + W_group[oc, :] . im2col(x[n], group): one GEMM per image and group, the batch split
    /// over `threads` tasks (each image's result does not depend on the split). Depthwise convolutions
    /// take `depthwiseForward`.
    static func convForward(_ c: Conv, x: UnsafePointer<Float>, n: Int, w: UnsafePointer<Float>, b: UnsafePointer<Float>?,
                            y: UnsafeMutablePointer<Float>, threads: Int) {
        if isDepthwise(c) { return depthwiseForward(c, x: x, n: n, w: w, b: b, y: y, threads: threads) }
        if c.backend, TrainingConvolution.forward(c.shape(batch: n, bias: b != nil), x: x, w: w, b: b, y: y, threads: threads) { return }
        let g = c.g, inPer = c.inC / c.groups, outPer = c.outC / c.groups
        let outPlane = g.outH * g.outW, k = inPer * c.kh * c.kw
        let pointwise = isPointwise(c)
        let tasks = Parallel.tasks(threads, work: n * c.outC * k * outPlane, minimumPerTask: 1 << 20)
        overImages(n, tasks: min(tasks, n), scratch: pointwise ? 0 : scratchCount(c)) { _, images, col in
            for img in images {
                for grp in 0..<c.groups {
                    let src = unfolded(c, x: x, img: img, grp: grp, pointwise: pointwise, col: col)
                    let yp = y + (img * c.outC + grp * outPer) * outPlane
                    GEMM.multiply(m: outPer, n: outPlane, k: k, a: w + grp * outPer * k, lda: k, b: src, ldb: outPlane, c: yp, ldc: outPlane)
                }
                if let b {
                    for oc in 0..<c.outC {
                        let yp = y + (img * c.outC + oc) * outPlane
                        let v = b[oc]
                        for p in 0..<outPlane { yp[p] += v }
                    }
                }
            }
        }
    }

    /// Gradients of a convolution: `dx`, `dw` and `db`, each overwritten when given. Through the backend when it takes the shape; else the batch is split
    /// over `threads` tasks, `dw` sums each task's images in order (GEMM with beta 1) into its own
    /// partial sum, and the partial sums are added in task order. Either way the result is
    /// deterministic for a given thread count.
    static func convBackward(_ c: Conv, x: UnsafePointer<Float>, n: Int, w: UnsafePointer<Float>, dy: UnsafePointer<Float>,
                             dx: UnsafeMutablePointer<Float>?, dw: UnsafeMutablePointer<Float>?, db: UnsafeMutablePointer<Float>?,
                             threads: Int) {
        let g = c.g, inPer = c.inC / c.groups, outPer = c.outC / c.groups
        let inPlane = g.inH * g.inW, outPlane = g.outH * g.outW, k = inPer * c.kh * c.kw
        if !isDepthwise(c), c.backend,
           TrainingConvolution.backward(c.shape(batch: n, bias: db != nil), x: x, w: w, dy: dy, dx: dx, dw: dw, db: db, threads: threads) {
            return
        }
        // The own kernels add into dx.
        dx?.update(repeating: 0, count: n * c.inC * inPlane)
        if isDepthwise(c) { return depthwiseBackward(c, x: x, n: n, w: w, dy: dy, dx: dx, dw: dw, db: db, threads: threads) }
        if let db { biasGradient(dy: dy, n: n, channels: c.outC, plane: outPlane, db: db, threads: threads) }
        guard dw != nil || dx != nil else { return }
        let pointwise = isPointwise(c)
        let tasks = min(n, Parallel.tasks(threads, work: n * c.outC * k * outPlane, minimumPerTask: 1 << 20))
        let wCount = c.outC * k
        // Task t > 0 sums its images' weight gradients into partial[t - 1].
        let partial = dw != nil && tasks > 1 ? UnsafeMutablePointer<Float>.allocate(capacity: (tasks - 1) * wCount) : nil
        defer { partial?.deallocate() }
        overImages(n, tasks: tasks, scratch: pointwise ? 0 : scratchCount(c)) { t, images, col in
            let dwTask: UnsafeMutablePointer<Float>? = dw.map { t == 0 ? $0 : (partial ?? $0) + (t - 1) * wCount }
            for img in images {
                let first = img == images.lowerBound
                for grp in 0..<c.groups {
                    let dyp = dy + (img * c.outC + grp * outPer) * outPlane
                    let wg = w + grp * outPer * k
                    if let dwTask {
                        // dW_group[outPer, k] (+)= dY[outPer, P] . col[k, P]^T
                        let src = unfolded(c, x: x, img: img, grp: grp, pointwise: pointwise, col: col)
                        GEMM.multiply(m: outPer, n: k, k: outPlane, a: dyp, lda: outPlane, b: src, ldb: outPlane, transB: true,
                                      c: dwTask + grp * outPer * k, ldc: k, beta: first ? 0 : 1)
                    }
                    if let dx {
                        let dxg = dx + (img * c.inC + grp * inPer) * inPlane
                        if pointwise {
                            // dX_group[k, P] += W_group[outPer, k]^T . dY[outPer, P]
                            GEMM.multiply(m: k, n: outPlane, k: outPer, a: wg, lda: k, transA: true, b: dyp, ldb: outPlane, c: dxg, ldc: outPlane, beta: 1)
                        } else if let col {
                            // dcol[k, P] = W_group[outPer, k]^T . dY[outPer, P], folded back into dx.
                            GEMM.multiply(m: k, n: outPlane, k: outPer, a: wg, lda: k, transA: true, b: dyp, ldb: outPlane, c: col, ldc: outPlane)
                            col2im(c, col: col, c0: grp * inPer, count: inPer, dx: dx + img * c.inC * inPlane)
                        }
                    }
                }
            }
        }
        if let dw, let partial, tasks > 1 {
            let addTasks = Parallel.tasks(threads, work: wCount * (tasks - 1), minimumPerTask: 1 << 16)
            Parallel.run(addTasks) { a in
                let r = Parallel.chunk(a, of: addTasks, count: wCount)
                for t in 1..<tasks {
                    let p = partial + (t - 1) * wCount
                    for j in r { dw[j] += p[j] }
                }
            }
        }
    }

    // MARK: linear

    /// y[n, o] = b[o] + W[o, :] . x[n, :] as one GEMM over the batch; the output features are split over
    /// the tasks (each output's sum does not depend on the split).
    static func linearForward(x: UnsafePointer<Float>, n: Int, fin: Int, fout: Int, w: UnsafePointer<Float>, b: UnsafePointer<Float>?,
                              y: UnsafeMutablePointer<Float>, threads: Int) {
        let tasks = Parallel.tasks(threads, work: n * fin * fout, minimumPerTask: 1 << 20)
        Parallel.run(tasks) { t in
            let r = Parallel.chunk(t, of: tasks, count: fout, align: 16)
            guard !r.isEmpty else { return }
            // Y[n, r] = X[n, fin] . W[r, fin]^T
            GEMM.multiply(m: n, n: r.count, k: fin, a: x, lda: fin, b: w + r.lowerBound * fin, ldb: fin, transB: true,
                          c: y + r.lowerBound, ldc: fout)
            if let b {
                for img in 0..<n { for o in r { y[img * fout + o] += b[o] } }
            }
        }
    }

    /// Gradients of a linear layer: `dw` = dY^T . X and `db` (sums over the batch, double precision for
    /// the bias), `dx` = dY . W, each overwritten when given; rows split over the tasks.
    static func linearBackward(x: UnsafePointer<Float>, n: Int, fin: Int, fout: Int, w: UnsafePointer<Float>, dy: UnsafePointer<Float>,
                               dx: UnsafeMutablePointer<Float>?, dw: UnsafeMutablePointer<Float>?, db: UnsafeMutablePointer<Float>?,
                               threads: Int) {
        let tasks = Parallel.tasks(threads, work: n * fin * fout, minimumPerTask: 1 << 20)
        Parallel.run(tasks) { t in
            let r = Parallel.chunk(t, of: tasks, count: fout)
            if let db {
                for o in r {
                    var s = 0.0
                    for img in 0..<n { s += Double(dy[img * fout + o]) }
                    db[o] = Float(s)
                }
            }
            if let dw, !r.isEmpty {
                // dW[r, fin] = dY[n, r]^T . X[n, fin]
                GEMM.multiply(m: r.count, n: fin, k: n, a: dy + r.lowerBound, lda: fout, transA: true, b: x, ldb: fin,
                              c: dw + r.lowerBound * fin, ldc: fin)
            }
            if let dx {
                // dX[n, cols] = dY[n, fout] . W[fout, cols]
                let cols = Parallel.chunk(t, of: tasks, count: fin, align: 16)
                guard !cols.isEmpty else { return }
                GEMM.multiply(m: n, n: cols.count, k: fout, a: dy, lda: fout, b: w + cols.lowerBound, ldb: fin,
                              c: dx + cols.lowerBound, ldc: fin)
            }
        }
    }

    // MARK: BatchNorm

    /// Tasks for a per-channel loop over `s` (each channel's result comes from one task, in a fixed
    /// order, so the split does not change a value).
    static func channelTasks(_ s: Shape4, threads: Int) -> Int {
        min(s.c, Parallel.tasks(threads, work: s.count, minimumPerTask: 1 << 15))
    }

    /// The sum of `term(i)` for i in 0..<count in double, over four interleaved accumulators (a fixed
    /// order that depends on `count` alone; four independent chains instead of one).
    @inline(__always)
    static func sum4(_ count: Int, _ term: (Int) -> Double) -> Double {
        var a0 = 0.0, a1 = 0.0, a2 = 0.0, a3 = 0.0
        var i = 0
        while i + 4 <= count {
            a0 += term(i); a1 += term(i + 1); a2 += term(i + 2); a3 += term(i + 3)
            i += 4
        }
        while i < count { a0 += term(i); i += 1 }
        return (a0 + a1) + (a2 + a3)
    }

    /// Per-channel mean and biased variance over N, H, W (double precision); channels split over `threads`.
    static func channelStats(_ x: UnsafePointer<Float>, _ s: Shape4, threads: Int = 1) -> (mean: [Double], variance: [Double]) {
        var mean = [Double](repeating: 0, count: s.c), variance = [Double](repeating: 0, count: s.c)
        let m = Double(s.n * s.plane)
        let tasks = channelTasks(s, threads: threads)
        mean.withUnsafeMutableBufferPointer { meanp in variance.withUnsafeMutableBufferPointer { varp in
            guard let mean = meanp.baseAddress, let variance = varp.baseAddress else { return }
            Parallel.run(tasks) { t in
                for ch in Parallel.chunk(t, of: tasks, count: s.c) {
                    var sum = 0.0
                    for img in 0..<s.n {
                        let p = x + (img * s.c + ch) * s.plane
                        sum += sum4(s.plane) { Double(p[$0]) }
                    }
                    let mu = sum / m
                    var sq = 0.0
                    for img in 0..<s.n {
                        let p = x + (img * s.c + ch) * s.plane
                        sq += sum4(s.plane) { let d = Double(p[$0]) - mu; return d * d }
                    }
                    mean[ch] = mu
                    variance[ch] = sq / m
                }
            }
        } }
        return (mean, variance)
    }

    /// y = (x - mean) * invstd * gamma + beta, per channel.
    static func affine(_ x: UnsafePointer<Float>, _ s: Shape4, mean: [Double], invstd: [Double], gamma: [Float], beta: [Float],
                       y: UnsafeMutablePointer<Float>, threads: Int = 1) {
        let tasks = channelTasks(s, threads: threads)
        Parallel.run(tasks) { t in
            for ch in Parallel.chunk(t, of: tasks, count: s.c) {
                let scale = Float(invstd[ch] * Double(gamma[ch]))
                let shift = Float(Double(beta[ch]) - mean[ch] * invstd[ch] * Double(gamma[ch]))
                for img in 0..<s.n {
                    let o = (img * s.c + ch) * s.plane
                    for i in 0..<s.plane { y[o + i] = x[o + i] * scale + shift }
                }
            }
        }
    }

    /// BatchNorm backward. With batch statistics (`train`), the gradient flows through the mean and
    /// variance too; with running statistics it is per-channel affine. `dx` is accumulated into.
    static func batchNormBackward(_ x: UnsafePointer<Float>, _ s: Shape4, mean: [Double], invstd: [Double], gamma: [Float],
                                  train: Bool, dy: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>?,
                                  dgamma: UnsafeMutablePointer<Float>?, dbeta: UnsafeMutablePointer<Float>?, threads: Int = 1) {
        let m = Double(s.n * s.plane)
        let tasks = channelTasks(s, threads: threads)
        Parallel.run(tasks) { t in
            for ch in Parallel.chunk(t, of: tasks, count: s.c) {
                // Sums in double: sum dy and sum dy * (x - mean); xhat = (x - mean) * invstd.
                let mu = mean[ch]
                var sumDy = 0.0, sumDyCentred = 0.0
                for img in 0..<s.n {
                    let o = (img * s.c + ch) * s.plane
                    let d = dy + o, xp = x + o
                    sumDy += sum4(s.plane) { Double(d[$0]) }
                    sumDyCentred += sum4(s.plane) { Double(d[$0]) * (Double(xp[$0]) - mu) }
                }
                let sumDyXhat = sumDyCentred * invstd[ch]
                dgamma?[ch] = Float(sumDyXhat)
                dbeta?[ch] = Float(sumDy)
                guard let dx else { continue }
                let k = Double(gamma[ch]) * invstd[ch]
                if train {
                    // dx += k * (dy - sumDy / m - xhat * sumDyXhat / m) = a * dy - b - c * (x - mean)
                    let a = Float(k), b = Float(k * sumDy / m), c = Float(k * sumDyXhat / m * invstd[ch]), muf = Float(mu)
                    for img in 0..<s.n {
                        let o = (img * s.c + ch) * s.plane
                        for i in 0..<s.plane { dx[o + i] += a * dy[o + i] - b - c * (x[o + i] - muf) }
                    }
                } else {
                    let a = Float(k)
                    for img in 0..<s.n {
                        let o = (img * s.c + ch) * s.plane
                        for i in 0..<s.plane { dx[o + i] += a * dy[o + i] }
                    }
                }
            }
        }
    }

    // MARK: LayerNorm over channels

    /// LayerNorm over the channels of every position of an NCHW value (biased variance, statistics in
    /// double); `mean` and `invstd` receive the statistics of each position (n * plane of them).
    static func layerNormForward(_ x: UnsafePointer<Float>, _ s: Shape4, eps: Double, gamma: [Float], beta: [Float],
                                 y: UnsafeMutablePointer<Float>, mean: inout [Double], invstd: inout [Double]) {
        let plane = s.plane, cs = Double(s.c)
        for n in 0..<s.n {
            let base = n * s.c * plane
            for p in 0..<plane {
                var sum = 0.0
                for c in 0..<s.c { sum += Double(x[base + c * plane + p]) }
                let m = sum / cs
                var sq = 0.0
                for c in 0..<s.c { let d = Double(x[base + c * plane + p]) - m; sq += d * d }
                let r = 1 / (sq / cs + eps).squareRoot()
                mean[n * plane + p] = m
                invstd[n * plane + p] = r
                for c in 0..<s.c {
                    let i = base + c * plane + p
                    y[i] = Float((Double(x[i]) - m) * r) * gamma[c] + beta[c]
                }
            }
        }
    }

    /// The backward of `layerNormForward`: dx = invstd * (g - mean(g) - xhat * mean(g * xhat)) with
    /// g = dy * gamma per position; dgamma = sum dy * xhat, dbeta = sum dy over batch and positions.
    static func layerNormBackward(_ x: UnsafePointer<Float>, _ s: Shape4, mean: [Double], invstd: [Double], gamma: [Float],
                                  dy: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>?, dgamma: inout [Float], dbeta: inout [Float]) {
        let plane = s.plane, cs = Double(s.c)
        var dg = [Double](repeating: 0, count: s.c), db = dg
        var xhat = [Double](repeating: 0, count: s.c), g = xhat
        for n in 0..<s.n {
            let base = n * s.c * plane
            for p in 0..<plane {
                let m = mean[n * plane + p], r = invstd[n * plane + p]
                var sg = 0.0, sgx = 0.0
                for c in 0..<s.c {
                    let i = base + c * plane + p
                    let xh = (Double(x[i]) - m) * r, d = Double(dy[i])
                    xhat[c] = xh
                    dg[c] += d * xh
                    db[c] += d
                    g[c] = d * Double(gamma[c])
                    sg += g[c]
                    sgx += g[c] * xh
                }
                guard let dx else { continue }
                let mg = sg / cs, mgx = sgx / cs
                for c in 0..<s.c { dx[base + c * plane + p] = Float(r * (g[c] - mg - xhat[c] * mgx)) }
            }
        }
        dgamma = dg.map { Float($0) }
        dbeta = db.map { Float($0) }
    }

    // MARK: elementwise

    /// Runs `body(range)` over `tasks` contiguous chunks of `0..<count` (elementwise work: any split gives
    /// the same values).
    static func elementwise(_ count: Int, threads: Int, _ body: (Range<Int>) -> Void) {
        let tasks = Parallel.tasks(threads, work: count, minimumPerTask: 1 << 16)
        Parallel.run(tasks) { t in
            let r = Parallel.chunk(t, of: tasks, count: count, align: 16)
            if !r.isEmpty { body(r) }
        }
    }

    /// Eight floats at `p + i` (unaligned).
    @inline(__always)
    static func load8(_ p: UnsafePointer<Float>, _ i: Int) -> SIMD8<Float> {
        UnsafeRawPointer(p + i).loadUnaligned(as: SIMD8<Float>.self)
    }

    /// Stores eight floats at `p + i` (unaligned).
    @inline(__always)
    static func store8(_ v: SIMD8<Float>, _ p: UnsafeMutablePointer<Float>, _ i: Int) {
        UnsafeMutableRawPointer(p + i).storeBytes(of: v, as: SIMD8<Float>.self)
    }

    /// min(max(v, 0), 6) lane by lane, with masks (the standard library's generic pointwise minimum and
    /// maximum are not inlined). Equal to the scalar form for every non-NaN input (up to the sign of a zero).
    @inline(__always)
    static func clamp06(_ v: SIMD8<Float>) -> SIMD8<Float> {
        v.replacing(with: 0, where: v .< 0).replacing(with: 6, where: v .> 6)
    }

    /// Runs `vector(i)` for every full group of eight in `r` and `scalar(i)` for the rest; the
    /// two must compute the same function (the vector form is the scalar one lane by lane).
    @inline(__always)
    static func lanes(_ r: Range<Int>, _ vector: (Int) -> Void, _ scalar: (Int) -> Void) {
        var i = r.lowerBound
        while i + 8 <= r.upperBound { vector(i); i += 8 }
        while i < r.upperBound { scalar(i); i += 1 }
    }

    /// y = activation(x) over `count` values; the activation is chosen once, outside the loop, and the
    /// piecewise-linear ones run eight lanes at a time (the same operations as `activate`, lane by lane).
    static func activateForward(_ a: Activation, x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, count: Int, threads: Int) {
        let three = SIMD8<Float>(repeating: 3), six = SIMD8<Float>(repeating: 6)
        elementwise(count, threads: threads) { r in
            switch a {
            case .none:
                (y + r.lowerBound).update(from: x + r.lowerBound, count: r.count)
            case .relu:
                lanes(r, { i in let v = load8(x, i); store8(v.replacing(with: 0, where: .!(v .> 0)), y, i) },
                      { i in y[i] = activate(.relu, x[i]) })
            case .relu6:
                lanes(r, { i in store8(clamp06(load8(x, i)), y, i) },
                      { i in y[i] = activate(.relu6, x[i]) })
            case .hardSwish:
                lanes(r, { i in let v = load8(x, i); store8(v * clamp06(v + three) / six, y, i) },
                      { i in y[i] = activate(.hardSwish, x[i]) })
            case .hardSigmoid:
                lanes(r, { i in store8(clamp06(load8(x, i) + three) / six, y, i) },
                      { i in y[i] = activate(.hardSigmoid, x[i]) })
            default:
                for i in r { y[i] = activate(a, x[i]) }
            }
        }
    }

    /// dx = dy * activation'(x) (output y) over `count` values, torch's conventions at the kinks; masks
    /// instead of branches for the piecewise-linear ones.
    static func activateBackward(_ a: Activation, x: UnsafePointer<Float>, y: UnsafePointer<Float>, dy: UnsafePointer<Float>,
                                 dx: UnsafeMutablePointer<Float>, count: Int, threads: Int) {
        let zero = SIMD8<Float>(repeating: 0)
        elementwise(count, threads: threads) { r in
            switch a {
            case .none:
                (dx + r.lowerBound).update(from: dy + r.lowerBound, count: r.count)
            case .relu:
                lanes(r, { i in store8(zero.replacing(with: load8(dy, i), where: load8(y, i) .> 0), dx, i) },
                      { i in dx[i] = y[i] > 0 ? dy[i] : 0 })
            case .relu6:
                lanes(r, { i in let v = load8(x, i); store8(zero.replacing(with: load8(dy, i), where: (v .> 0) .& (v .< 6)), dx, i) },
                      { i in let v = x[i]; dx[i] = v > 0 && v < 6 ? dy[i] : 0 })
            case .hardSwish:
                lanes(r, { i in
                    let v = load8(x, i)
                    let d = (v / 3 + 0.5).replacing(with: 0, where: v .< -3).replacing(with: 1, where: v .> 3)
                    store8(load8(dy, i) * d, dx, i)
                }, { i in let v = x[i]; dx[i] = dy[i] * (v < -3 ? 0 : (v <= 3 ? v / 3 + 0.5 : 1)) })
            case .hardSigmoid:
                lanes(r, { i in
                    let v = load8(x, i)
                    store8(zero.replacing(with: load8(dy, i) * (1 / 6), where: (v .> -3) .& (v .< 3)), dx, i)
                }, { i in let v = x[i]; dx[i] = v > -3 && v < 3 ? dy[i] * (1 / 6) : 0 })
            default:
                for i in r { dx[i] = dy[i] * derivative(a, x: x[i], y: y[i]) }
            }
        }
    }

    /// dst += src over `count` values.
    static func accumulate(_ dst: UnsafeMutablePointer<Float>, _ src: UnsafePointer<Float>, count: Int, threads: Int) {
        elementwise(count, threads: threads) { r in
            lanes(r, { i in store8(load8(dst, i) + load8(src, i), dst, i) }, { i in dst[i] += src[i] })
        }
    }

    /// y = a + b over `count` values.
    static func sum(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, count: Int, threads: Int) {
        elementwise(count, threads: threads) { r in
            lanes(r, { i in store8(load8(a, i) + load8(b, i), y, i) }, { i in y[i] = a[i] + b[i] })
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
        case .silu: return x / (1 + (-x).exponential)
        case .gelu: return 0.5 * x * (1 + erff(x * 0.70710678118654752))
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
        case .silu:
            let s = 1 / (1 + (-x).exponential)
            return s * (1 + x * (1 - s))
        case .gelu:
            // Phi(x) + x phi(x), in double.
            let d = Double(x)
            return Float(0.5 * (1 + erf(d * 0.70710678118654752)) + d * exp(-0.5 * d * d) * 0.39894228040143268)
        }
    }

    // MARK: pooling

    /// Max pooling; `argmax` receives the input index (within the plane) each output took, -1 for none.
    static func maxPool(_ x: UnsafePointer<Float>, _ s: Shape4, g: WindowGeometry, k: (Int, Int), st: (Int, Int),
                        y: UnsafeMutablePointer<Float>, argmax: UnsafeMutablePointer<Int32>, threads: Int = 1) {
        let outPlane = g.outH * g.outW
        overPlanes(s.n * s.c, work: s.n * s.c * outPlane * k.0 * k.1, threads: threads) { planes in
            for nc in planes {
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
    }

    /// Runs `body(planes)` over contiguous chunks of `0..<count` planes (N x C), split over the threads
    /// when `work` is large enough. Each plane's values come from one task, so any split gives the same.
    static func overPlanes(_ count: Int, work: Int, threads: Int, _ body: (Range<Int>) -> Void) {
        let tasks = min(count, Parallel.tasks(threads, work: work, minimumPerTask: 1 << 16))
        Parallel.run(tasks) { t in
            let r = Parallel.chunk(t, of: tasks, count: count)
            if !r.isEmpty { body(r) }
        }
    }

    /// The backward of `maxPool`: each output's gradient goes to the input its window took (`argmax`,
    /// an offset in the plane; -1 for none), added in output order. `dx` is overwritten.
    static func maxPoolBackward(_ s: Shape4, outPlane: Int, argmax: UnsafePointer<Int32>, dy: UnsafePointer<Float>,
                                dx: UnsafeMutablePointer<Float>, threads: Int) {
        overPlanes(s.n * s.c, work: s.n * s.c * (s.plane + outPlane), threads: threads) { planes in
            for nc in planes {
                let d = dx + nc * s.plane, a = argmax + nc * outPlane, g = dy + nc * outPlane
                d.update(repeating: 0, count: s.plane)
                for p in 0..<outPlane where a[p] >= 0 { d[Int(a[p])] += g[p] }
            }
        }
    }

    /// Average pooling (torch's windows and divisors, `avgWindow`), planes split over the threads.
    static func avgPool(_ x: UnsafePointer<Float>, _ s: Shape4, g: WindowGeometry, k: (Int, Int), st: (Int, Int), includePad: Bool,
                        y: UnsafeMutablePointer<Float>, threads: Int) {
        let outPlane = g.outH * g.outW
        overPlanes(s.n * s.c, work: s.n * s.c * outPlane * k.0 * k.1, threads: threads) { planes in
            for nc in planes {
                let xp = x + nc * s.plane
                for oy in 0..<g.outH {
                    for ox in 0..<g.outW {
                        let win = avgWindow(s, g: g, k: k, st: st, includePad: includePad, oy: oy, ox: ox)
                        var sum: Float = 0
                        for yy in win.y0..<max(win.y0, win.y1) { for xx in win.x0..<max(win.x0, win.x1) { sum += xp[yy * s.w + xx] } }
                        y[nc * outPlane + oy * g.outW + ox] = sum / win.divisor
                    }
                }
            }
        }
    }

    /// The backward of `avgPool`; `dx` is overwritten.
    static func avgPoolBackward(_ s: Shape4, g: WindowGeometry, k: (Int, Int), st: (Int, Int), includePad: Bool, dy: UnsafePointer<Float>,
                                dx: UnsafeMutablePointer<Float>, threads: Int) {
        let outPlane = g.outH * g.outW
        overPlanes(s.n * s.c, work: s.n * s.c * outPlane * k.0 * k.1, threads: threads) { planes in
            for nc in planes {
                let d = dx + nc * s.plane
                d.update(repeating: 0, count: s.plane)
                for oy in 0..<g.outH {
                    for ox in 0..<g.outW {
                        let win = avgWindow(s, g: g, k: k, st: st, includePad: includePad, oy: oy, ox: ox)
                        let v = dy[nc * outPlane + oy * g.outW + ox] / win.divisor
                        for yy in win.y0..<max(win.y0, win.y1) { for xx in win.x0..<max(win.x0, win.x1) { d[yy * s.w + xx] += v } }
                    }
                }
            }
        }
    }

    /// Adaptive average pooling to `oh` x `ow` (torch's bins, `adaptiveRange`), planes split over the threads.
    static func adaptiveAvgPool(_ x: UnsafePointer<Float>, _ s: Shape4, oh: Int, ow: Int, y: UnsafeMutablePointer<Float>, threads: Int) {
        overPlanes(s.n * s.c, work: s.count, threads: threads) { planes in
            for nc in planes {
                let xp = x + nc * s.plane
                for oy in 0..<oh {
                    let (y0, y1) = adaptiveRange(oy, oh, s.h)
                    for ox in 0..<ow {
                        let (x0, x1) = adaptiveRange(ox, ow, s.w)
                        var sum: Float = 0
                        for yy in y0..<y1 { for xx in x0..<x1 { sum += xp[yy * s.w + xx] } }
                        y[nc * oh * ow + oy * ow + ox] = sum / Float((y1 - y0) * (x1 - x0))
                    }
                }
            }
        }
    }

    /// The backward of `adaptiveAvgPool`; `dx` is overwritten.
    static func adaptiveAvgPoolBackward(_ s: Shape4, oh: Int, ow: Int, dy: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>,
                                        threads: Int) {
        overPlanes(s.n * s.c, work: s.count, threads: threads) { planes in
            for nc in planes {
                let d = dx + nc * s.plane
                d.update(repeating: 0, count: s.plane)
                for oy in 0..<oh {
                    let (y0, y1) = adaptiveRange(oy, oh, s.h)
                    for ox in 0..<ow {
                        let (x0, x1) = adaptiveRange(ox, ow, s.w)
                        let v = dy[nc * oh * ow + oy * ow + ox] / Float((y1 - y0) * (x1 - x0))
                        for yy in y0..<y1 { for xx in x0..<x1 { d[yy * s.w + xx] += v } }
                    }
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
