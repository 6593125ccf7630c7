/// Element-wise activations: the one activation type of the graphs (`LayerGraph.Activation` is this
/// type, a node `.activation(a)`) and of the kernels' epilogues. The raw value is the name layer
/// tables print (`zoo info`).
public enum Activation: String, Sendable, Hashable, CaseIterable {
    /// The identity.
    case none
    /// max(x, 0)
    case relu
    /// min(max(x, 0), 6)
    case relu6
    /// x * min(max(x + 3, 0), 6) / 6
    case hardSwish
    /// min(max(x + 3, 0), 6) / 6
    case hardSigmoid
    /// 1 / (1 + exp(-x))
    case sigmoid
    /// x / (1 + exp(-x)): SiLU, also called swish (torch's `nn.SiLU`, Keras's `swish`).
    case silu
    /// x * (1 + erf(x / sqrt(2))) / 2: GELU in its exact form (torch's `nn.GELU()` default, Keras's
    /// `gelu(approximate=False)`).
    case gelu
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension Activation {
    /// Applies the activation to one value.
    @inlinable @inline(__always)
    public func apply(_ x: Float) -> Float {
        switch self {
        case .none: return x
        case .relu: return x > 0 ? x : 0
        case .relu6: return min(max(x, 0), 6)
        case .hardSwish: return x * (min(max(x + 3, 0), 6) / 6)
        case .hardSigmoid: return min(max(x + 3, 0), 6) / 6
        case .sigmoid: return 1 / (1 + expf(-x))
        case .silu: return x / (1 + expf(-x))
        case .gelu: return 0.5 * x * (1 + erff(x * 0.70710678118654752))
        }
    }

    /// Applies the activation to eight lanes.
    @inlinable @inline(__always)
    public func apply(_ x: SIMD8<Float>) -> SIMD8<Float> {
        switch self {
        case .none: return x
        case .relu: return x.replacing(with: 0, where: x .< 0)
        case .relu6:
            let z = SIMD8<Float>(repeating: 0), six = SIMD8<Float>(repeating: 6)
            return vmin(vmax(x, z), six)
        case .hardSwish:
            let z = SIMD8<Float>(repeating: 0), six = SIMD8<Float>(repeating: 6)
            return x * (vmin(vmax(x + 3, z), six) / six)
        case .hardSigmoid:
            let z = SIMD8<Float>(repeating: 0), six = SIMD8<Float>(repeating: 6)
            return vmin(vmax(x + 3, z), six) / six
        case .sigmoid:
            var r = x
            for i in 0..<8 { r[i] = 1 / (1 + expf(-x[i])) }
            return r
        case .silu:
            var r = x
            for i in 0..<8 { r[i] = x[i] / (1 + expf(-x[i])) }
            return r
        case .gelu:
            var r = x
            for i in 0..<8 { r[i] = 0.5 * x[i] * (1 + erff(x[i] * 0.70710678118654752)) }
            return r
        }
    }
}

/// Lane-wise max/min through compare-and-select (the stdlib's pointwiseMax/Min is scalar and ~20x slower).
@inlinable @inline(__always)
func vmax(_ a: SIMD8<Float>, _ b: SIMD8<Float>) -> SIMD8<Float> { a.replacing(with: b, where: b .> a) }

@inlinable @inline(__always)
func vmin(_ a: SIMD8<Float>, _ b: SIMD8<Float>) -> SIMD8<Float> { a.replacing(with: b, where: b .< a) }

/// Unaligned SIMD loads and stores on float pointers.
@inlinable @inline(__always)
func load8(_ p: UnsafePointer<Float>) -> SIMD8<Float> {
    UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self)
}

@inlinable @inline(__always)
func store8(_ v: SIMD8<Float>, _ p: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD8<Float>.self)
}

/// Element-wise kernels over NHWC buffers.
public enum Elementwise {
    /// x = act(x) in place, `count` values.
    public static func activate(_ x: UnsafeMutablePointer<Float>, count: Int, _ act: Activation, threads: Int) {
        if act == .none { return }
        let tasks = Parallel.tasks(threads, work: count, minimumPerTask: 65_536)
        Parallel.run(tasks) { t in
            let r = Parallel.chunk(t, of: tasks, count: count, align: 8)
            var i = r.lowerBound
            while i + 8 <= r.upperBound { store8(act.apply(load8(x + i)), x + i); i += 8 }
            while i < r.upperBound { x[i] = act.apply(x[i]); i += 1 }
        }
    }

    /// out = act(a + b), `count` values (out may alias a or b).
    public static func add(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>,
                           count: Int, _ act: Activation, threads: Int) {
        let tasks = Parallel.tasks(threads, work: count, minimumPerTask: 65_536)
        Parallel.run(tasks) { t in
            let r = Parallel.chunk(t, of: tasks, count: count, align: 8)
            var i = r.lowerBound
            while i + 8 <= r.upperBound { store8(act.apply(load8(a + i) + load8(b + i)), out + i); i += 8 }
            while i < r.upperBound { out[i] = act.apply(a[i] + b[i]); i += 1 }
        }
    }

    /// Per-channel affine (inference BatchNorm): out[p, c] = act(x[p, c] * scale[c] + shift[c]).
    public static func affine(_ x: UnsafePointer<Float>, scale: UnsafePointer<Float>, shift: UnsafePointer<Float>,
                              into out: UnsafeMutablePointer<Float>, pixels: Int, channels c: Int, _ act: Activation,
                              threads: Int) {
        let tasks = Parallel.tasks(threads, work: pixels * c, minimumPerTask: 65_536)
        Parallel.run(tasks) { t in
            for p in Parallel.chunk(t, of: tasks, count: pixels) {
                let src = x + p * c, dst = out + p * c
                var i = 0
                while i + 8 <= c { store8(act.apply(load8(src + i) * load8(scale + i) + load8(shift + i)), dst + i); i += 8 }
                while i < c { dst[i] = act.apply(src[i] * scale[i] + shift[i]); i += 1 }
            }
        }
    }

    /// Squeeze-and-excitation scale: out[n, p, c] = x[n, p, c] * s[n, c] for `pixels` positions per image.
    public static func scaleChannels(_ x: UnsafePointer<Float>, by s: UnsafePointer<Float>,
                                     into out: UnsafeMutablePointer<Float>, batch: Int, pixels: Int, channels c: Int,
                                     threads: Int) {
        let rows = batch * pixels
        let tasks = Parallel.tasks(threads, work: rows * c, minimumPerTask: 65_536)
        Parallel.run(tasks) { t in
            for r in Parallel.chunk(t, of: tasks, count: rows) {
                let sc = s + (r / pixels) * c, src = x + r * c, dst = out + r * c
                var i = 0
                while i + 8 <= c { store8(load8(src + i) * load8(sc + i), dst + i); i += 8 }
                while i < c { dst[i] = src[i] * sc[i]; i += 1 }
            }
        }
    }

    /// LayerNorm over the channels of every position (NHWC: the `channels` values of a pixel are
    /// contiguous): out[p, c] = (x[p, c] - mean_p) / sqrt(var_p + eps) * gamma[c] + beta[c], with the
    /// biased variance as torch's `LayerNorm`; statistics accumulate in double (two passes), so the
    /// result does not depend on the thread count.
    public static func layerNorm(_ x: UnsafePointer<Float>, gamma: UnsafePointer<Float>, beta: UnsafePointer<Float>, eps: Double,
                                 into out: UnsafeMutablePointer<Float>, pixels: Int, channels c: Int, threads: Int) {
        guard c > 0 else { return }
        let tasks = Parallel.tasks(threads, work: pixels * c, minimumPerTask: 65_536)
        Parallel.run(tasks) { t in
            for p in Parallel.chunk(t, of: tasks, count: pixels) {
                let src = x + p * c, dst = out + p * c
                var sum = 0.0
                for i in 0..<c { sum += Double(src[i]) }
                let mean = sum / Double(c)
                var sq = 0.0
                for i in 0..<c { let d = Double(src[i]) - mean; sq += d * d }
                let inv = 1 / (sq / Double(c) + eps).squareRoot()
                let m = Float(mean), r = Float(inv)
                let mv = SIMD8<Float>(repeating: m), rv = SIMD8<Float>(repeating: r)
                var i = 0
                while i + 8 <= c { store8((load8(src + i) - mv) * rv * load8(gamma + i) + load8(beta + i), dst + i); i += 8 }
                while i < c { dst[i] = (src[i] - m) * r * gamma[i] + beta[i]; i += 1 }
            }
        }
    }

    /// NCHW -> NHWC.
    public static func nchwToNHWC(_ x: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>,
                                  batch: Int, channels c: Int, height h: Int, width w: Int) {
        let hw = h * w
        for n in 0..<batch {
            let src = x + n * c * hw, dst = out + n * c * hw
            for ch in 0..<c {
                let s = src + ch * hw
                var d = dst + ch
                for p in 0..<hw { d.pointee = s[p]; d += c }
            }
        }
    }

    /// NHWC -> NCHW (also flattening in C, H, W order).
    public static func nhwcToNCHW(_ x: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>,
                                  batch: Int, channels c: Int, height h: Int, width w: Int) {
        let hw = h * w
        for n in 0..<batch {
            let src = x + n * c * hw, dst = out + n * c * hw
            for p in 0..<hw {
                let s = src + p * c
                var d = dst + p
                for ch in 0..<c { d.pointee = s[ch]; d += hw }
            }
        }
    }

    /// A channel-blocked [n, c/block, h, w, block] buffer (channels padded to the block) -> NCHW [n, c, h, w].
    public static func blockedToNCHW(_ x: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>,
                                     batch: Int, channels c: Int, height h: Int, width w: Int, block: Int) {
        let hw = h * w, padded = (c + block - 1) / block * block
        for n in 0..<batch {
            let src = x + n * padded * hw, dst = out + n * c * hw
            for ch in 0..<c {
                let s = src + (ch / block) * hw * block + ch % block
                let d = dst + ch * hw
                for p in 0..<hw { d[p] = s[p * block] }
            }
        }
    }
}
