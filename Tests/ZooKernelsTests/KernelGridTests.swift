import Foundation
import Testing
import ZooFormats
import ZooKernels
import ZooErrors
import ZooTensor
import ZooTestSupport

/// The kernels against torch: every case of `kernels/grid.safetensors` (tools/fixtures/gen_kernels.py,
/// computed by torch.nn.functional) is run through the ZooKernels entry point it names, with 1, 2
/// and 4 threads, and compared with torch's output. Each case also runs deliberately wrong variants
/// (spatially transposed or channel-permuted weight, padding moved by one pixel, the wrong fused
/// activation, the other pooling rule) that must miss the same torch output by more than the
/// tolerance: the oracle is torch, never the code under test, and the controls show it can fail.
@Suite struct KernelGridTests {
    /// Relative tolerance: max |got - torch| / max |torch|.
    static let tolerance: Float = 1e-5

    struct Grid: @unchecked Sendable {
        let file: SafetensorsFile
        let names: [String]

        init() throws {
            file = try SafetensorsFile(path: try TestSupport.fixture("kernels/grid.safetensors"))
            names = (file.metadataValue("cases") ?? "").split(separator: ",").map(String.init)
        }

        /// `key=value` fields of a case.
        func spec(_ name: String) throws -> [String: String] {
            guard let s = file.metadataValue("case." + name) else { throw ZooError.bad("no metadata for \(name)") }
            var out: [String: String] = [:]
            for field in s.split(separator: " ") {
                let kv = field.split(separator: "=", maxSplits: 1).map(String.init)
                if kv.count == 2 { out[kv[0]] = kv[1] }
            }
            return out
        }

        func tensor(_ name: String) throws -> Tensor { try file.tensor(named: name) }
    }

    static func int(_ spec: [String: String], _ key: String) throws -> Int {
        guard let v = spec[key].flatMap({ Int($0) }) else { throw ZooError.bad("case field \(key) missing") }
        return v
    }

    static func activation(_ name: String?) throws -> Activation {
        switch name {
        case "none": return .none
        case "relu": return .relu
        case "relu6": return .relu6
        case "hardSwish": return .hardSwish
        case "hardSigmoid": return .hardSigmoid
        case "sigmoid": return .sigmoid
        case "silu": return .silu
        case "gelu": return .gelu
        default: throw ZooError.bad("unknown activation \(name ?? "nil")")
        }
    }

    static func padding(_ s: String?) throws -> WindowPadding {
        if s == "same" { return .tfSame }
        let v = (s ?? "").split(separator: ",").compactMap { Int($0) }
        guard v.count == 4 else { throw ZooError.bad("bad padding \(s ?? "nil")") }
        return .explicit(top: v[0], bottom: v[1], left: v[2], right: v[3])
    }

    /// max |a - b| / max |b|; infinity when the shapes differ or a value is NaN.
    static func relError(_ a: [Float], _ b: [Float]) -> Float {
        guard a.count == b.count, !a.isEmpty else { return .infinity }
        var m: Float = 0, r: Float = 0
        for i in a.indices {
            if a[i].isNaN != b[i].isNaN { return .infinity }
            m = max(m, abs(a[i] - b[i])); r = max(r, abs(b[i]))
        }
        return m / max(r, 1e-30)
    }

    // MARK: convolution

    struct ConvRun {
        var descriptor: ConvDescriptor
        var weight: [Float]
        var bias: [Float]?
        var act: Activation
    }

    /// Channels per block of the blocked layout this CPU uses (8 or 16).
    static let block = ConvolutionBackend.blockedLayout == .blocked16 ? 16 : 8

    /// NHWC [n, h, w, c] -> oneDNN's blocked [n, c/B, h, w, B], channels padded with zeros.
    static func toBlocked(_ x: [Float], n: Int, h: Int, w: Int, c: Int) -> [Float] {
        let k = block, cb = (c + k - 1) / k
        var out = [Float](repeating: 0, count: n * cb * h * w * k)
        for b in 0..<n { for y in 0..<h { for xx in 0..<w { for ch in 0..<c {
            out[(((b * cb + ch / k) * h + y) * w + xx) * k + ch % k] = x[((b * h + y) * w + xx) * c + ch]
        } } } }
        return out
    }

    /// oneDNN's blocked layout back to NHWC.
    static func fromBlocked(_ x: [Float], n: Int, h: Int, w: Int, c: Int) -> [Float] {
        let k = block, cb = (c + k - 1) / k
        var out = [Float](repeating: .nan, count: n * h * w * c)
        for b in 0..<n { for y in 0..<h { for xx in 0..<w { for ch in 0..<c {
            out[((b * h + y) * w + xx) * c + ch] = x[(((b * cb + ch / k) * h + y) * w + xx) * k + ch % k]
        } } } }
        return out
    }

    /// Runs Conv2D on an NHWC input (converted to and from the blocked layout with `.oneDNNBlocked`);
    /// nil when the kernel refuses the configuration or (blocked) oneDNN has no blocked kernel for it.
    /// `ranOn` receives the backend that ran it (`own` or `oneDNN:<implementation>`).
    static func run(_ c: ConvRun, input x: [Float], n: Int, h: Int, w: Int, residual: [Float]?, threads: Int,
                    backend: ConvolutionBackend = .own, ranOn: ((String) -> Void)? = nil) -> [Float]? {
        guard let conv = c.weight.withUnsafeBufferPointer({ wp in
            c.bias.map { b in b.withUnsafeBufferPointer { Conv2D(c.descriptor, weight: wp, bias: $0, activation: c.act, backend: backend) } }
                ?? Conv2D(c.descriptor, weight: wp, bias: nil, activation: c.act, backend: backend)
        }), let g = conv.geometry(inH: h, inW: w) else { return nil }
        let cin = c.descriptor.inChannels, cout = c.descriptor.outChannels
        let blocked = backend == .oneDNNBlocked
        let layouts = blocked ? ConvLayouts(input: ConvolutionBackend.blockedLayout, output: ConvolutionBackend.blockedLayout) : .nhwc
        guard let scratchCount = conv.scratchCount(batch: n, geometry: g, threads: threads, residual: residual != nil, layouts: layouts) else {
            return nil
        }
        ranOn?(conv.backend(batch: n, geometry: g, threads: threads, residual: residual != nil, layouts: layouts))
        let input = blocked ? toBlocked(x, n: n, h: h, w: w, c: cin) : x
        let res = residual.map { blocked ? toBlocked($0, n: n, h: g.outH, w: g.outW, c: cout) : $0 }
        var out = [Float](repeating: .nan, count: layouts.output.count(n: n, h: g.outH, w: g.outW, c: cout))
        var scratch = [Float](repeating: .nan, count: max(scratchCount, 1))
        input.withUnsafeBufferPointer { xp in
            out.withUnsafeMutableBufferPointer { op in
                scratch.withUnsafeMutableBufferPointer { sp in
                    guard let xb = xp.baseAddress, let ob = op.baseAddress else { return }
                    if let res {
                        res.withUnsafeBufferPointer { rp in
                            conv.run(input: xb, batch: n, geometry: g, output: ob, residual: rp.baseAddress, scratch: sp.baseAddress,
                                     threads: threads, layouts: layouts)
                        }
                    } else {
                        conv.run(input: xb, batch: n, geometry: g, output: ob, residual: nil, scratch: sp.baseAddress, threads: threads,
                                 layouts: layouts)
                    }
                }
            }
        }
        return blocked ? fromBlocked(out, n: n, h: g.outH, w: g.outW, c: cout) : out
    }

    /// The weight [o, i, kh, kw] with its spatial axes swapped (kh == kw).
    static func spatiallyTransposed(_ w: [Float], o: Int, i: Int, k: Int) -> [Float] {
        var t = w
        for a in 0..<o * i { for y in 0..<k { for x in 0..<k { t[(a * k + y) * k + x] = w[(a * k + x) * k + y] } } }
        return t
    }

    /// The weight [o, i, kh, kw] with its input channels reversed within each group.
    static func inputsReversed(_ w: [Float], o: Int, i: Int, khw: Int) -> [Float] {
        var t = w
        for a in 0..<o { for c in 0..<i { for p in 0..<khw { t[(a * i + c) * khw + p] = w[(a * i + (i - 1 - c)) * khw + p] } } }
        return t
    }

    @Test func gridCoversWhatTheKernelsDo() throws {
        let grid = try Grid()
        var kinds: [String: Int] = [:], acts = Set<String>(), pads = Set<String>()
        var depthwise = 0, grouped = 0, dilated = 0, stride2Odd = 0, ceil = 0, excl = 0, long = 0
        for name in grid.names {
            let s = try grid.spec(name)
            kinds[s["kind"] ?? "", default: 0] += 1
            guard s["kind"] == "conv" else {
                if s["ceil"] == "1" { ceil += 1 }
                if s["include_pad"] == "0" { excl += 1 }
                continue
            }
            acts.insert(s["act"] ?? "")
            pads.insert(s["pad"] == "same" ? "same" : (s["pad"] == "0,0,0,0" ? "valid" : "explicit"))
            let x = try grid.tensor(name + ".input")
            let g = try Self.int(s, "groups")
            if g > 1 && g == x.shape[3] { depthwise += 1 } else if g > 1 { grouped += 1 }
            if s["dh"] != "1" { dilated += 1 }
            if s["sh"] == "2", x.shape[1] % 2 == 1 { stride2Odd += 1 }
            if x.shape[3] / g * (try Self.int(s, "kh")) * (try Self.int(s, "kw")) > 2304 { long += 1 }
        }
        #expect(kinds["conv", default: 0] >= 60 && kinds["max", default: 0] >= 5 && kinds["avg", default: 0] >= 6)
        #expect(kinds["adaptive", default: 0] >= 5 && kinds["act", default: 0] == Activation.allCases.count)
        #expect(acts.count == Activation.allCases.count, "fused activations covered: \(acts.sorted())")
        #expect(pads == ["same", "valid", "explicit"])
        #expect(depthwise >= 6 && grouped >= 3 && dilated >= 4 && stride2Odd >= 8 && ceil >= 5 && excl >= 2)
        #expect(long >= 2, "reductions longer than one oneDNN primitive takes: \(long)")
    }

    /// Every backend against torch: ZooKernels' own kernels, and oneDNN with NHWC and with blocked
    /// activations (where oneDNN is available: Linux). Each oneDNN run must also have been run by oneDNN
    /// for most cases, so that a silent fall-back to the own kernels cannot pass for oneDNN.
    @Test(arguments: ConvolutionBackend.allCases.filter { $0 != .automatic })
    func convolutionsMatchTorch(backend: ConvolutionBackend) throws {
        if backend.usesOneDNN && !ConvolutionBackend.oneDNNAvailable { return }
        let grid = try Grid()
        var checked = 0, controls = 0, onOneDNN = 0, refused = 0, inParts = 0
        for name in grid.names {
            let s = try grid.spec(name)
            guard s["kind"] == "conv" else { continue }
            let xt = try grid.tensor(name + ".input"), yt = try grid.tensor(name + ".output"), wt = try grid.tensor(name + ".weight")
            let (n, h, w, cin) = (xt.shape[0], xt.shape[1], xt.shape[2], xt.shape[3])
            let cout = wt.shape[0], kh = wt.shape[2], kw = wt.shape[3], groups = try Self.int(s, "groups")
            let padding = try Self.padding(s["pad"])
            let d = ConvDescriptor(inChannels: cin, outChannels: cout, kernel: (kh, kw),
                                   stride: (try Self.int(s, "sh"), try Self.int(s, "sw")),
                                   dilation: (try Self.int(s, "dh"), try Self.int(s, "dw")), groups: groups, padding: padding)
            let act = try Self.activation(s["act"])
            let bias = s["bias"] == "1" ? try grid.tensor(name + ".bias").floats() : nil
            let residual = s["residual"] == "1" ? try grid.tensor(name + ".residual").floats() : nil
            let x = xt.floats(), expected = yt.floats(), weight = wt.floats()
            let right = ConvRun(descriptor: d, weight: weight, bias: bias, act: act)
            let g = try #require(d.geometry(inH: h, inW: w), "\(name): geometry")
            #expect([n, g.outH, g.outW, cout] == yt.shape, "\(name): output shape \([n, g.outH, g.outW, cout]) vs torch \(yt.shape)")
            var ran = ""
            guard let first = Self.run(right, input: x, n: n, h: h, w: w, residual: residual, threads: 1, backend: backend,
                                       ranOn: { ran = $0 }) else {
                // Only blocked layouts may be refused: oneDNN has no fast blocked kernel for most of the grid's
                // small odd channel counts (5 in, 7 out); the engine runs those NHWC.
                #expect(backend == .oneDNNBlocked, "\(name): \(backend) refused the convolution")
                refused += 1
                continue
            }
            if ran.hasPrefix("oneDNN") { onOneDNN += 1 }
            if ran.hasSuffix(" parts") { inParts += 1 }
            #expect(Self.relError(first, expected) < Self.tolerance, "\(name) \(backend) threads 1 (\(ran)): relative error \(Self.relError(first, expected))")
            for threads in [2, 4] {
                let got = try #require(Self.run(right, input: x, n: n, h: h, w: w, residual: residual, threads: threads, backend: backend), "\(name)")
                let e = Self.relError(got, expected)
                #expect(e < Self.tolerance, "\(name) \(backend) threads \(threads) (\(ran)): relative error \(e)")
                // Bit-for-bit reproducible for a given thread count.
                let again = Self.run(right, input: x, n: n, h: h, w: w, residual: residual, threads: threads, backend: backend)
                #expect(again == got, "\(name) \(backend) threads \(threads): two runs differ")
            }
            checked += 1

            // Negative controls: each wrong variant must miss torch's output.
            var wrong: [(String, ConvRun)] = []
            if kh == kw, kh > 1 {
                wrong.append(("transposed weight", ConvRun(descriptor: d, weight: Self.spatiallyTransposed(weight, o: cout, i: cin / groups, k: kh), bias: bias, act: act)))
            } else if cin / groups > 1 {
                wrong.append(("input channels reversed", ConvRun(descriptor: d, weight: Self.inputsReversed(weight, o: cout, i: cin / groups, khw: kh * kw), bias: bias, act: act)))
            }
            // Padding moved by one pixel (same total, so the same output size): top -> bottom, or the
            // TF-same halves the other way round.
            var moved: WindowPadding?
            if case let .explicit(t, b, l, r) = padding {
                if t > 0 { moved = .explicit(top: t - 1, bottom: b + 1, left: l, right: r) }
                else if l > 0 { moved = .explicit(top: t, bottom: b, left: l - 1, right: r + 1) }
                else if b > 0 { moved = .explicit(top: t + 1, bottom: b - 1, left: l, right: r) }
            } else if g.padTop != g.padBottom || g.padLeft != g.padRight {
                moved = .explicit(top: g.padBottom, bottom: g.padTop, left: g.padRight, right: g.padLeft)
            } else if g.padTop > 0 {
                moved = .explicit(top: g.padTop - 1, bottom: g.padBottom + 1, left: g.padLeft, right: g.padRight)
            }
            if let moved {
                var md = d
                md.padding = moved
                wrong.append(("padding moved", ConvRun(descriptor: md, weight: weight, bias: bias, act: act)))
            }
            if act != .none {
                wrong.append(("no activation", ConvRun(descriptor: d, weight: weight, bias: bias, act: .none)))
            } else {
                wrong.append(("relu added", ConvRun(descriptor: d, weight: weight, bias: bias, act: .relu)))
            }
            for (what, run) in wrong {
                let bad = Self.run(run, input: x, n: n, h: h, w: w, residual: residual, threads: 2, backend: backend) ?? []
                let e = Self.relError(bad, expected)
                #expect(e > Self.tolerance, "\(name): the \(what) variant is within tolerance of torch (\(e)), so the check could not fail")
                controls += 1
            }
        }
        #expect(checked + refused >= 60 && controls >= 2 * checked, "\(backend): \(checked) cases, \(controls) controls, \(refused) refused")
        if backend == .oneDNNBlocked {
            #expect(checked >= 20 && onOneDNN == checked, "blocked: \(checked) cases ran, \(onOneDNN) on oneDNN")
            // The long reductions (more than 2304 terms) ran as oneDNN convolutions in parts.
            #expect(inParts >= 2, "blocked: \(inParts) cases ran in parts")
        } else if backend.usesOneDNN {
            #expect(onOneDNN * 4 >= checked * 3, "\(backend): only \(onOneDNN) of \(checked) cases ran on oneDNN")
        } else {
            #expect(onOneDNN == 0, "own kernels were asked for, but \(onOneDNN) cases ran on oneDNN")
        }
    }

    // MARK: pooling and activations

    @Test func poolingMatchesTorch() throws {
        let grid = try Grid()
        var checked = 0
        for name in grid.names {
            let s = try grid.spec(name)
            guard let kind = s["kind"], ["max", "avg", "adaptive"].contains(kind) else { continue }
            let xt = try grid.tensor(name + ".input"), yt = try grid.tensor(name + ".output")
            let (n, h, w, c) = (xt.shape[0], xt.shape[1], xt.shape[2], xt.shape[3])
            let x = xt.floats(), expected = yt.floats()
            if kind == "adaptive" {
                let oh = try Self.int(s, "oh"), ow = try Self.int(s, "ow")
                #expect(yt.shape == [n, oh, ow, c])
                for threads in [1, 3] {
                    let got = Self.adaptive(x, n: n, c: c, h: h, w: w, oh: oh, ow: ow, threads: threads)
                    #expect(Self.relError(got, expected) < 1e-6, "\(name) threads \(threads)")
                }
                checked += 1
                continue
            }
            let k = (try Self.int(s, "kh"), try Self.int(s, "kw")), st = (try Self.int(s, "sh"), try Self.int(s, "sw"))
            let padding = try Self.padding(s["pad"])
            let ceil = s["ceil"] == "1", include = s["include_pad"] == "1"
            let g = try #require(WindowGeometry(inH: h, inW: w, kernel: k, stride: st, padding: padding, ceilMode: ceil), "\(name)")
            #expect([n, g.outH, g.outW, c] == yt.shape, "\(name): output shape \([n, g.outH, g.outW, c]) vs torch \(yt.shape)")
            for threads in [1, 2, 4] {
                let got = Self.pool(kind, x, n: n, c: c, g, k, st, include: include, threads: threads)
                if kind == "max" {
                    #expect(got == expected, "\(name) threads \(threads): max pooling differs from torch")
                } else {
                    #expect(Self.relError(got, expected) < 1e-6, "\(name) threads \(threads): \(Self.relError(got, expected))")
                }
            }
            checked += 1
            // Negative controls: the other pooling rule; with padding, the other divisor (without
            // padding torch clips the window to the input either way, ceil mode included).
            let other = Self.pool(kind == "max" ? "avg" : "max", x, n: n, c: c, g, k, st, include: include, threads: 2)
            #expect(Self.relError(other, expected) > 1e-6, "\(name): the other pooling op matches torch")
            if kind == "avg", g.padTop + g.padBottom + g.padLeft + g.padRight > 0 {
                let flipped = Self.pool(kind, x, n: n, c: c, g, k, st, include: !include, threads: 2)
                #expect(Self.relError(flipped, expected) > 1e-6, "\(name): count_include_pad flipped matches torch")
            }
            if ceil {
                // Floor mode drops the last partial windows: a different output size.
                let floor = WindowGeometry(inH: h, inW: w, kernel: k, stride: st, padding: padding, ceilMode: false)
                #expect(floor.map { [$0.outH, $0.outW] } != [g.outH, g.outW], "\(name): ceil mode makes no difference")
            }
        }
        #expect(checked >= 18)
    }

    static func pool(_ kind: String, _ x: [Float], n: Int, c: Int, _ g: WindowGeometry, _ k: (Int, Int), _ s: (Int, Int),
                     include: Bool, threads: Int) -> [Float] {
        var out = [Float](repeating: .nan, count: n * g.outH * g.outW * c)
        x.withUnsafeBufferPointer { xp in
            out.withUnsafeMutableBufferPointer { op in
                guard let xb = xp.baseAddress, let ob = op.baseAddress else { return }
                if kind == "max" {
                    Pooling.max(xb, into: ob, batch: n, channels: c, geometry: g, kernel: k, stride: s, threads: threads)
                } else {
                    Pooling.average(xb, into: ob, batch: n, channels: c, geometry: g, kernel: k, stride: s, countIncludePad: include, threads: threads)
                }
            }
        }
        return out
    }

    static func adaptive(_ x: [Float], n: Int, c: Int, h: Int, w: Int, oh: Int, ow: Int, threads: Int) -> [Float] {
        var out = [Float](repeating: .nan, count: n * oh * ow * c)
        x.withUnsafeBufferPointer { xp in
            out.withUnsafeMutableBufferPointer { op in
                guard let xb = xp.baseAddress, let ob = op.baseAddress else { return }
                Pooling.adaptiveAverage(xb, into: ob, batch: n, channels: c, inH: h, inW: w, outH: oh, outW: ow, threads: threads)
            }
        }
        return out
    }

    @Test func activationsMatchTorch() throws {
        let grid = try Grid()
        var checked = 0
        for name in grid.names {
            let s = try grid.spec(name)
            guard s["kind"] == "act" else { continue }
            let act = try Self.activation(s["act"])
            let x = try grid.tensor(name + ".input").floats(), expected = try grid.tensor(name + ".output").floats()
            // Scalar, eight lanes, and the in-place buffer kernel (vector body plus scalar tail).
            let scalar = x.map { act.apply($0) }
            var lanes = scalar
            for i in stride(from: 0, to: x.count - 7, by: 8) {
                let v = act.apply(SIMD8<Float>((0..<8).map { x[i + $0] }))
                for j in 0..<8 { lanes[i + j] = v[j] }
            }
            var buffer = x
            buffer.withUnsafeMutableBufferPointer { if let b = $0.baseAddress { Elementwise.activate(b, count: x.count, act, threads: 2) } }
            for (label, got) in [("scalar", scalar), ("simd8", lanes), ("buffer", buffer)] {
                var worst: Float = 0
                for i in x.indices { worst = max(worst, abs(got[i] - expected[i]) / max(1, abs(expected[i]))) }
                #expect(worst < 1e-6, "\(name) \(label): error \(worst)")
            }
            // Negative control: every other activation misses torch's output for this one.
            for other in Activation.allCases where other != act {
                var worst: Float = 0
                for i in x.indices { worst = max(worst, abs(other.apply(x[i]) - expected[i])) }
                #expect(worst > 1e-3, "\(name): \(other) is indistinguishable")
            }
            checked += 1
        }
        #expect(checked == Activation.allCases.count)
    }
}
