import Testing
import ZooKernels

/// Deterministic pseudo-random floats in [-1, 1).
struct Rand {
    var s: UInt64
    mutating func next() -> Float {
        s = s &* 6364136223846793005 &+ 1442695040888963407
        return Float(Int32(truncatingIfNeeded: s >> 32)) / Float(Int32.max)
    }
    mutating func array(_ n: Int) -> [Float] { (0..<n).map { _ in next() } }
}

/// Naive NHWC convolution with the PyTorch weight layout, as the reference.
func naiveConv(_ x: [Float], n: Int, h: Int, w: Int, _ d: ConvDescriptor, _ g: WindowGeometry, weight: [Float],
               bias: [Float]?, act: Activation, residual: [Float]? = nil) -> [Float] {
    let cinG = d.inChannels / d.groups, coutG = d.outChannels / d.groups
    var out = [Float](repeating: 0, count: n * g.outH * g.outW * d.outChannels)
    for b in 0..<n {
        for oy in 0..<g.outH {
            for ox in 0..<g.outW {
                for co in 0..<d.outChannels {
                    let grp = co / coutG
                    var acc: Double = Double(bias?[co] ?? 0)
                    for ci in 0..<cinG {
                        for i in 0..<d.kernelH {
                            for j in 0..<d.kernelW {
                                let iy = oy * d.strideH - g.padTop + i * d.dilationH
                                let ix = ox * d.strideW - g.padLeft + j * d.dilationW
                                if iy < 0 || iy >= h || ix < 0 || ix >= w { continue }
                                let xv = x[((b * h + iy) * w + ix) * d.inChannels + grp * cinG + ci]
                                let wv = weight[((co * cinG + ci) * d.kernelH + i) * d.kernelW + j]
                                acc += Double(xv) * Double(wv)
                            }
                        }
                    }
                    let o = ((b * g.outH + oy) * g.outW + ox) * d.outChannels + co
                    if let residual { acc += Double(residual[o]) }
                    out[o] = act.apply(Float(acc))
                }
            }
        }
    }
    return out
}

func runConv(_ conv: Conv2D, _ x: [Float], n: Int, h: Int, w: Int, threads: Int, residual: [Float]? = nil) -> [Float] {
    guard let g = conv.geometry(inH: h, inW: w) else { return [] }
    var out = [Float](repeating: .nan, count: n * g.outH * g.outW * conv.descriptor.outChannels)
    var scratch = [Float](repeating: .nan, count: max(conv.scratchCount(batch: n, geometry: g, threads: threads), 1))
    x.withUnsafeBufferPointer { xp in
        out.withUnsafeMutableBufferPointer { op in
            scratch.withUnsafeMutableBufferPointer { sp in
                if let residual {
                    residual.withUnsafeBufferPointer { rp in
                        conv.run(input: xp.baseAddress!, batch: n, geometry: g, output: op.baseAddress!, residual: rp.baseAddress,
                                 scratch: sp.baseAddress, threads: threads)
                    }
                } else {
                    conv.run(input: xp.baseAddress!, batch: n, geometry: g, output: op.baseAddress!, residual: nil,
                             scratch: sp.baseAddress, threads: threads)
                }
            }
        }
    }
    return out
}

func maxRelError(_ a: [Float], _ b: [Float]) -> Float {
    guard a.count == b.count, !a.isEmpty else { return .infinity }
    var m: Float = 0, r: Float = 0
    for i in a.indices {
        if a[i].isNaN || b[i].isNaN { return .infinity }
        m = max(m, abs(a[i] - b[i])); r = max(r, abs(b[i]))
    }
    return m / max(r, 1e-30)
}

struct ConvCase: CustomStringConvertible, Sendable {
    var n, h, w, cin, cout, k, s, d, groups: Int
    var padding: WindowPadding
    var act: Activation
    var residual = false
    var description: String { "n\(n) \(cin)->\(cout) \(h)x\(w) k\(k) s\(s) d\(d) g\(groups) \(padding) \(act) res=\(residual)" }
}

let convCases: [ConvCase] = [
    ConvCase(n: 1, h: 9, w: 11, cin: 5, cout: 7, k: 3, s: 1, d: 1, groups: 1, padding: .explicit(top: 1, bottom: 1, left: 1, right: 1), act: .relu),
    ConvCase(n: 2, h: 8, w: 8, cin: 16, cout: 40, k: 1, s: 1, d: 1, groups: 1, padding: .explicit(top: 0, bottom: 0, left: 0, right: 0), act: .none, residual: true),
    ConvCase(n: 1, h: 3, w: 3, cin: 64, cout: 200, k: 1, s: 1, d: 1, groups: 1, padding: .explicit(top: 0, bottom: 0, left: 0, right: 0), act: .relu6),
    ConvCase(n: 1, h: 4, w: 5, cin: 24, cout: 100, k: 3, s: 1, d: 1, groups: 1, padding: .explicit(top: 1, bottom: 1, left: 1, right: 1), act: .hardSwish),
    ConvCase(n: 2, h: 17, w: 16, cin: 3, cout: 16, k: 3, s: 2, d: 1, groups: 1, padding: .tfSame, act: .hardSwish),
    ConvCase(n: 1, h: 15, w: 12, cin: 3, cout: 32, k: 3, s: 2, d: 1, groups: 1, padding: .explicit(top: 1, bottom: 1, left: 1, right: 1), act: .relu6, residual: true),
    ConvCase(n: 1, h: 11, w: 10, cin: 2, cout: 16, k: 3, s: 1, d: 2, groups: 1, padding: .explicit(top: 0, bottom: 1, left: 2, right: 0), act: .none),
    ConvCase(n: 2, h: 15, w: 13, cin: 3, cout: 8, k: 7, s: 2, d: 1, groups: 1, padding: .explicit(top: 3, bottom: 3, left: 3, right: 3), act: .relu),
    ConvCase(n: 1, h: 10, w: 9, cin: 8, cout: 16, k: 3, s: 2, d: 1, groups: 4, padding: .explicit(top: 1, bottom: 1, left: 1, right: 1), act: .none),
    ConvCase(n: 1, h: 3, w: 3, cin: 64, cout: 64, k: 3, s: 1, d: 1, groups: 32, padding: .explicit(top: 1, bottom: 1, left: 1, right: 1), act: .relu),
    ConvCase(n: 1, h: 12, w: 11, cin: 6, cout: 9, k: 3, s: 1, d: 2, groups: 1, padding: .explicit(top: 2, bottom: 2, left: 2, right: 2), act: .none),
    ConvCase(n: 2, h: 7, w: 9, cin: 20, cout: 20, k: 3, s: 1, d: 1, groups: 20, padding: .explicit(top: 1, bottom: 1, left: 1, right: 1), act: .hardSwish, residual: true),
    ConvCase(n: 1, h: 11, w: 12, cin: 16, cout: 16, k: 5, s: 2, d: 1, groups: 16, padding: .tfSame, act: .relu6),
    ConvCase(n: 1, h: 8, w: 8, cin: 13, cout: 13, k: 3, s: 2, d: 1, groups: 13, padding: .tfSame, act: .none),
    ConvCase(n: 1, h: 9, w: 10, cin: 4, cout: 6, k: 3, s: 2, d: 1, groups: 1, padding: .explicit(top: 0, bottom: 1, left: 0, right: 1), act: .none),
    ConvCase(n: 1, h: 9, w: 9, cin: 8, cout: 12, k: 1, s: 2, d: 1, groups: 1, padding: .explicit(top: 0, bottom: 0, left: 0, right: 0), act: .none),
]

@Test("convolution kernels match a naive reference", arguments: convCases)
func convMatchesNaive(_ c: ConvCase) throws {
    var r = Rand(s: UInt64(c.cin * 31 + c.cout * 7 + c.k))
    let d = ConvDescriptor(inChannels: c.cin, outChannels: c.cout, kernel: (c.k, c.k), stride: (c.s, c.s),
                           dilation: (c.d, c.d), groups: c.groups, padding: c.padding)
    let weight = r.array(d.weightCount)
    let bias = r.array(c.cout)
    let x = r.array(c.n * c.h * c.w * c.cin)
    let g = try #require(d.geometry(inH: c.h, inW: c.w))
    let residual = c.residual ? r.array(c.n * g.outH * g.outW * c.cout) : nil
    let conv = try #require(weight.withUnsafeBufferPointer { w in bias.withUnsafeBufferPointer { Conv2D(d, weight: w, bias: $0, activation: c.act) } })
    let expected = naiveConv(x, n: c.n, h: c.h, w: c.w, d, g, weight: weight, bias: bias, act: c.act, residual: residual)
    for threads in [1, 2, 4] {
        let got = runConv(conv, x, n: c.n, h: c.h, w: c.w, threads: threads, residual: residual)
        #expect(maxRelError(got, expected) < 1e-5, "\(c) threads \(threads)")
    }
    // Negative control: a perturbed weight is detected.
    var wrong = weight
    wrong[0] += 0.5
    let bad = naiveConv(x, n: c.n, h: c.h, w: c.w, d, g, weight: wrong, bias: bias, act: .none, residual: residual)
    let plain = naiveConv(x, n: c.n, h: c.h, w: c.w, d, g, weight: weight, bias: bias, act: .none, residual: residual)
    #expect(maxRelError(bad, plain) > 1e-5)
}

@Test func tfSameGeometry() throws {
    // TF: out = ceil(in / s); total pad = max((out - 1) * s + k - in, 0), smaller half first.
    let even = try #require(WindowGeometry(inH: 8, inW: 8, kernel: (3, 3), stride: (2, 2), padding: .tfSame))
    #expect(even.outH == 4 && even.padTop == 0 && even.padBottom == 1)
    let odd = try #require(WindowGeometry(inH: 7, inW: 7, kernel: (3, 3), stride: (2, 2), padding: .tfSame))
    #expect(odd.outH == 4 && odd.padTop == 1 && odd.padBottom == 1)
    let five = try #require(WindowGeometry(inH: 8, inW: 8, kernel: (5, 5), stride: (2, 2), padding: .tfSame))
    #expect(five.padTop == 1 && five.padBottom == 2)
    #expect(WindowGeometry(inH: 2, inW: 2, kernel: (3, 3), stride: (1, 1), padding: .explicit(top: 0, bottom: 0, left: 0, right: 0)) == nil)
}

@Test func ceilModeGeometry() throws {
    // torch: 13 -> ceil((13 - 3) / 2) + 1 = 6; 12 with pad 0: ceil(9/2)+1 = 6, last window starts at 10 < 12.
    let g = try #require(WindowGeometry(inH: 13, inW: 12, kernel: (3, 3), stride: (2, 2), padding: .explicit(top: 0, bottom: 0, left: 0, right: 0), ceilMode: true))
    #expect(g.outH == 6 && g.outW == 6)
    let f = try #require(WindowGeometry(inH: 13, inW: 12, kernel: (3, 3), stride: (2, 2), padding: .explicit(top: 0, bottom: 0, left: 0, right: 0)))
    #expect(f.outH == 6 && f.outW == 5)
}

@Test func invalidDescriptorsAreRejected() {
    let d = ConvDescriptor(inChannels: 6, outChannels: 4, kernel: (3, 3), groups: 4, padding: .tfSame)
    #expect(!d.isValid)
    let ok = ConvDescriptor(inChannels: 4, outChannels: 4, kernel: (3, 3), padding: .tfSame)
    let short = [Float](repeating: 0, count: 10)
    #expect(short.withUnsafeBufferPointer { Conv2D(ok, weight: $0, bias: nil) } == nil)
}

@Test func activationsPointwise() {
    let xs: [Float] = [-5, -3, -1.5, 0, 0.5, 2.9, 3, 4, 7]
    for x in xs {
        #expect(Activation.relu.apply(x) == max(x, 0))
        #expect(Activation.relu6.apply(x) == min(max(x, 0), 6))
        #expect(abs(Activation.hardSwish.apply(x) - x * min(max(x + 3, 0), 6) / 6) < 1e-6)
        #expect(abs(Activation.hardSigmoid.apply(x) - min(max(x + 3, 0), 6) / 6) < 1e-6)
        let v = Activation.hardSwish.apply(SIMD8<Float>(repeating: x))
        #expect(v[3] == Activation.hardSwish.apply(x))
    }
}

@Test func poolingMatchesNaive() throws {
    var r = Rand(s: 99)
    let n = 2, h = 9, w = 8, c = 11
    let x = r.array(n * h * w * c)
    let g = try #require(WindowGeometry(inH: h, inW: w, kernel: (3, 3), stride: (2, 2), padding: .explicit(top: 1, bottom: 1, left: 1, right: 1)))
    var mx = [Float](repeating: 0, count: n * g.outH * g.outW * c)
    var av = mx
    x.withUnsafeBufferPointer { xp in
        mx.withUnsafeMutableBufferPointer { Pooling.max(xp.baseAddress!, into: $0.baseAddress!, batch: n, channels: c, geometry: g, kernel: (3, 3), stride: (2, 2), threads: 2) }
        av.withUnsafeMutableBufferPointer { Pooling.average(xp.baseAddress!, into: $0.baseAddress!, batch: n, channels: c, geometry: g, kernel: (3, 3), stride: (2, 2), countIncludePad: true, threads: 2) }
    }
    var worst: Float = 0
    for b in 0..<n { for oy in 0..<g.outH { for ox in 0..<g.outW { for ch in 0..<c {
        var m = -Float.infinity, s: Float = 0
        for i in 0..<3 { for j in 0..<3 {
            let iy = oy * 2 - 1 + i, ix = ox * 2 - 1 + j
            if iy < 0 || iy >= h || ix < 0 || ix >= w { continue }
            let v = x[((b * h + iy) * w + ix) * c + ch]
            m = max(m, v); s += v
        } }
        let o = ((b * g.outH + oy) * g.outW + ox) * c + ch
        #expect(mx[o] == m)
        worst = max(worst, abs(av[o] - s / 9))
    } } } }
    #expect(worst < 1e-6)
}
