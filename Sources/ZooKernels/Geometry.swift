/// How a convolution or pooling window pads its input: the one padding type of the graphs
/// (`LayerGraph.Padding` is this type) and the kernels.
public enum WindowPadding: Sendable, Hashable {
    /// Fixed zero padding on each side.
    case explicit(top: Int, bottom: Int, left: Int, right: Int)
    /// TensorFlow "same": total `max((ceil(in/s) - 1) * s + (k - 1) * d + 1 - in, 0)`, smaller half first,
    /// computed from the actual input size.
    case tfSame

    /// Symmetric padding `p` on every side.
    public static func symmetric(_ p: Int) -> WindowPadding { .explicit(top: p, bottom: p, left: p, right: p) }

    /// The padding (top, bottom, left, right) this rule applies to an `inH`x`inW` input.
    public func resolved(inH: Int, inW: Int, kernel: (Int, Int), stride: (Int, Int), dilation: (Int, Int) = (1, 1))
        -> (top: Int, bottom: Int, left: Int, right: Int) {
        switch self {
        case let .explicit(t, b, l, r): return (t, b, l, r)
        case .tfSame:
            func same(_ n: Int, _ k: Int, _ s: Int, _ d: Int) -> (Int, Int) {
                guard s > 0 else { return (0, 0) }
                let out = (n + s - 1) / s
                let total = max((out - 1) * s + (k - 1) * d + 1 - n, 0)
                return (total / 2, total - total / 2)
            }
            let (t, b) = same(inH, kernel.0, stride.0, dilation.0)
            let (l, r) = same(inW, kernel.1, stride.1, dilation.1)
            return (t, b, l, r)
        }
    }
}

/// The resolved geometry of one sliding-window layer for one input size.
public struct WindowGeometry: Sendable, Hashable {
    /// Input height and width.
    public var inH: Int, inW: Int
    /// Output height and width.
    public var outH: Int, outW: Int
    /// Padding actually applied before (top/left) and after (bottom/right) the input.
    public var padTop: Int, padLeft: Int, padBottom: Int, padRight: Int

    /// Resolves a window (kernel, stride, dilation, padding) on an input; nil when the input is too small.
    /// `ceilMode` follows torch pooling: the last window may start in the right/bottom padding but not beyond it.
    /// The one window arithmetic of the package: the runtime's plans and `LayerGraph.shapes` both use it.
    public init?(inH: Int, inW: Int, kernel: (Int, Int), stride: (Int, Int), dilation: (Int, Int) = (1, 1),
                 padding: WindowPadding, ceilMode: Bool = false) {
        let same = padding == .tfSame
        func axis(_ n: Int, _ k: Int, _ s: Int, _ d: Int, _ before: Int, _ after: Int) -> Int? {
            guard n > 0, k > 0, s > 0, d > 0 else { return nil }
            if same { return (n + s - 1) / s }
            let span = (k - 1) * d + 1
            let padded = n + before + after - span
            guard padded >= 0 else { return nil }
            var out = (ceilMode ? (padded + s - 1) / s : padded / s) + 1
            if ceilMode, (out - 1) * s >= n + before { out -= 1 }
            return out > 0 ? out : nil
        }
        let p = padding.resolved(inH: inH, inW: inW, kernel: kernel, stride: stride, dilation: dilation)
        guard p.top >= 0, p.bottom >= 0, p.left >= 0, p.right >= 0,
              let y = axis(inH, kernel.0, stride.0, dilation.0, p.top, p.bottom),
              let x = axis(inW, kernel.1, stride.1, dilation.1, p.left, p.right) else { return nil }
        self.inH = inH; self.inW = inW
        outH = y; outW = x
        padTop = p.top; padBottom = p.bottom; padLeft = p.left; padRight = p.right
    }
}

/// The static description of a 2-D convolution.
public struct ConvDescriptor: Sendable, Hashable {
    /// Input channels.
    public var inChannels: Int
    /// Output channels.
    public var outChannels: Int
    /// Kernel height and width.
    public var kernelH: Int, kernelW: Int
    /// Stride.
    public var strideH: Int, strideW: Int
    /// Dilation.
    public var dilationH: Int, dilationW: Int
    /// Groups (inChannels for depthwise).
    public var groups: Int
    /// Padding.
    public var padding: WindowPadding

    /// Creates a descriptor.
    public init(inChannels: Int, outChannels: Int, kernel: (Int, Int), stride: (Int, Int) = (1, 1),
                dilation: (Int, Int) = (1, 1), groups: Int = 1, padding: WindowPadding) {
        self.inChannels = inChannels
        self.outChannels = outChannels
        kernelH = kernel.0; kernelW = kernel.1
        strideH = stride.0; strideW = stride.1
        dilationH = dilation.0; dilationW = dilation.1
        self.groups = groups
        self.padding = padding
    }

    /// True when every positive size is consistent (channels divisible by groups, ...).
    public var isValid: Bool {
        inChannels > 0 && outChannels > 0 && groups > 0 && inChannels % groups == 0 && outChannels % groups == 0
            && kernelH > 0 && kernelW > 0 && strideH > 0 && strideW > 0 && dilationH > 0 && dilationW > 0
    }

    /// One output channel per input channel, each its own group.
    public var isDepthwise: Bool { groups > 1 && groups == inChannels && outChannels == inChannels }

    /// Weight elements: out * in/groups * kh * kw.
    public var weightCount: Int { outChannels * (inChannels / max(groups, 1)) * kernelH * kernelW }

    /// The window geometry on an input, nil when too small.
    public func geometry(inH: Int, inW: Int) -> WindowGeometry? {
        WindowGeometry(inH: inH, inW: inW, kernel: (kernelH, kernelW), stride: (strideH, strideW),
                       dilation: (dilationH, dilationW), padding: padding)
    }
}
