/// Pooling kernels over NHWC buffers, vectorised over channels.
public enum Pooling {
    /// Max pooling (padding never wins: it behaves as -infinity). Windows with no valid input give -infinity.
    /// The window is read straight from the input (8 channels at a time, then one by one), no table of
    /// pointers per output pixel: a blocked value is images of 8 channels, so that table cost more than the
    /// comparisons.
    public static func max(_ x: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>, batch: Int, channels c: Int,
                           geometry g: WindowGeometry, kernel: (Int, Int), stride: (Int, Int), threads: Int) {
        let rows = batch * g.outH
        let kh = kernel.0, kw = kernel.1
        let tasks = Parallel.tasks(threads, work: rows * g.outW * c * kh * kw, minimumPerTask: 65_536)
        Parallel.run(tasks) { t in
            for row in Parallel.chunk(t, of: tasks, count: rows) {
                let img = row / g.outH, oy = row - img * g.outH
                let src = x + img * g.inH * g.inW * c
                let ys = oy * stride.0 - g.padTop
                let y0 = Swift.max(ys, 0), y1 = Swift.min(ys + kh, g.inH)
                for ox in 0..<g.outW {
                    let xs = ox * stride.1 - g.padLeft
                    let x0 = Swift.max(xs, 0), x1 = Swift.min(xs + kw, g.inW)
                    let o = out + (row * g.outW + ox) * c
                    let rowsOfWindow = y1 > y0 && x1 > x0 ? y0..<y1 : 0..<0
                    var ch = 0
                    while ch + 8 <= c {
                        var m = SIMD8<Float>(repeating: -.infinity)
                        for iy in rowsOfWindow {
                            let line = src + iy * g.inW * c + ch
                            for ix in x0..<x1 { m = vmax(m, load8(line + ix * c)) }
                        }
                        store8(m, o + ch)
                        ch += 8
                    }
                    while ch < c {
                        var m = -Float.infinity
                        for iy in rowsOfWindow {
                            let line = src + iy * g.inW * c + ch
                            for ix in x0..<x1 { let v = line[ix * c]; if v > m || v.isNaN { m = v } }
                        }
                        o[ch] = m
                        ch += 1
                    }
                }
            }
        }
    }

    /// Average pooling with torch's divisor rules (`countIncludePad`: padded window size clipped to the
    /// padded input; otherwise the number of valid inputs).
    public static func average(_ x: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>, batch: Int, channels c: Int,
                               geometry g: WindowGeometry, kernel: (Int, Int), stride: (Int, Int), countIncludePad: Bool,
                               threads: Int) {
        window(x, into: out, batch: batch, channels: c, geometry: g, kernel: kernel, stride: stride, threads: threads) { o, ptrs, padded, valid in
            let div = Float(countIncludePad ? padded : valid)
            let inv = SIMD8<Float>(repeating: div)
            var ch = 0
            while ch + 8 <= c {
                var s = SIMD8<Float>(repeating: 0)
                for p in ptrs { s += load8(p + ch) }
                store8(s / inv, o + ch)
                ch += 8
            }
            while ch < c {
                var s: Float = 0
                for p in ptrs { s += p[ch] }
                o[ch] = s / div
                ch += 1
            }
        }
    }

    /// Calls `body(out, inputPointers, paddedWindowSize, validCount)` for every output pixel.
    @inline(__always)
    static func window(_ x: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>, batch: Int, channels c: Int,
                       geometry g: WindowGeometry, kernel: (Int, Int), stride: (Int, Int), threads: Int,
                       _ body: (UnsafeMutablePointer<Float>, UnsafeBufferPointer<UnsafePointer<Float>>, Int, Int) -> Void) {
        let rows = batch * g.outH
        let tasks = Parallel.tasks(threads, work: rows * g.outW * c * kernel.0 * kernel.1, minimumPerTask: 65_536)
        let kh = kernel.0, kw = kernel.1
        Parallel.run(tasks) { t in
            withUnsafeTemporaryAllocation(of: UnsafePointer<Float>.self, capacity: Swift.max(kh * kw, 1)) { ptrs in
                guard let pbase = ptrs.baseAddress else { return }
                for row in Parallel.chunk(t, of: tasks, count: rows) {
                    let img = row / g.outH, oy = row - img * g.outH
                    let src = x + img * g.inH * g.inW * c
                    let ys = oy * stride.0 - g.padTop
                    let ye = Swift.min(ys + kh, g.inH + g.padBottom)
                    let y0 = Swift.max(ys, 0), y1 = Swift.min(ye, g.inH)
                    for ox in 0..<g.outW {
                        let xs = ox * stride.1 - g.padLeft
                        let xe = Swift.min(xs + kw, g.inW + g.padRight)
                        let x0 = Swift.max(xs, 0), x1 = Swift.min(xe, g.inW)
                        var n = 0
                        if y1 > y0 && x1 > x0 {
                            for iy in y0..<y1 { for ix in x0..<x1 { (pbase + n).pointee = src + (iy * g.inW + ix) * c; n += 1 } }
                        }
                        body(out + (row * g.outW + ox) * c, UnsafeBufferPointer(start: pbase, count: n),
                             (ye - ys) * (xe - xs), n)
                    }
                }
            }
        }
    }

    /// Adaptive average pooling to `outH` x `outW` (torch bins: floor(i*in/out) ..< ceil((i+1)*in/out)).
    public static func adaptiveAverage(_ x: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>, batch: Int,
                                       channels c: Int, inH: Int, inW: Int, outH: Int, outW: Int, threads: Int) {
        let rows = batch * outH
        let tasks = Parallel.tasks(threads, work: batch * inH * inW * c, minimumPerTask: 65_536)
        Parallel.run(tasks) { t in
            for row in Parallel.chunk(t, of: tasks, count: rows) {
                let img = row / outH, oy = row - img * outH
                let y0 = oy * inH / outH, y1 = ((oy + 1) * inH + outH - 1) / outH
                let src = x + img * inH * inW * c
                for ox in 0..<outW {
                    let x0 = ox * inW / outW, x1 = ((ox + 1) * inW + outW - 1) / outW
                    let o = out + (row * outW + ox) * c
                    let div = Float((y1 - y0) * (x1 - x0))
                    var ch = 0
                    while ch + 8 <= c {
                        var s = SIMD8<Float>(repeating: 0)
                        for iy in y0..<y1 { for ix in x0..<x1 { s += load8(src + (iy * inW + ix) * c + ch) } }
                        store8(s / SIMD8<Float>(repeating: div), o + ch)
                        ch += 8
                    }
                    while ch < c {
                        var s: Float = 0
                        for iy in y0..<y1 { for ix in x0..<x1 { s += src[(iy * inW + ix) * c + ch] } }
                        o[ch] = s / div
                        ch += 1
                    }
                }
            }
        }
    }
}

/// A fully connected layer y = act(x W^T + b); W [out, in] row-major, used in place (not copied).
public final class Linear: @unchecked Sendable {
    /// Input features.
    public let inFeatures: Int
    /// Output features.
    public let outFeatures: Int
    /// Activation after the bias.
    public let activation: Activation
    @usableFromInline let weight: UnsafePointer<Float>
    @usableFromInline let bias: UnsafeMutablePointer<Float>
    let owner: AnyObject?

    /// Wraps `weight` ([out, in], kept alive by `owner`) and copies `bias` ([out], zeros when nil).
    /// Returns nil when `bias` has the wrong count.
    public init?(inFeatures: Int, outFeatures: Int, weight: UnsafePointer<Float>, owner: AnyObject?,
                 bias b: UnsafeBufferPointer<Float>?, activation: Activation = .none) {
        guard inFeatures > 0, outFeatures > 0, b.map({ $0.count == outFeatures }) ?? true else { return nil }
        self.inFeatures = inFeatures
        self.outFeatures = outFeatures
        self.activation = activation
        self.weight = weight
        self.owner = owner
        bias = .allocate(capacity: outFeatures)
        if let b, let bp = b.baseAddress { bias.initialize(from: bp, count: outFeatures) } else { bias.initialize(repeating: 0, count: outFeatures) }
    }

    deinit { bias.deallocate() }

    /// `input` [batch, in] -> `output` [batch, out].
    public func run(input: UnsafePointer<Float>, batch: Int, output: UnsafeMutablePointer<Float>, threads: Int) {
        _ = BLAS.configured
        let n = outFeatures, k = inFeatures
        let tasks = Parallel.tasks(threads, work: batch * n * k, minimumPerTask: 262_144)
        Parallel.run(tasks) { t in
            let c = Parallel.chunk(t, of: tasks, count: n, align: 16)
            guard !c.isEmpty else { return }
            if batch == 1 {
                BLAS.gemv(m: c.count, n: k, a: self.weight + c.lowerBound * k, lda: k, x: input, y: output + c.lowerBound)
            } else {
                BLAS.gemm(m: batch, n: c.count, k: k, a: input, lda: k, b: self.weight + c.lowerBound * k, ldb: k,
                          transB: true, c: output + c.lowerBound, ldc: n)
            }
            let act = self.activation, bias = self.bias
            for r in 0..<batch {
                let o = output + r * n
                var i = c.lowerBound
                while i + 8 <= c.upperBound { store8(act.apply(load8(o + i) + load8(bias + i)), o + i); i += 8 }
                while i < c.upperBound { o[i] = act.apply(o[i] + bias[i]); i += 1 }
            }
        }
    }
}
