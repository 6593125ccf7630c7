#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// How an activation buffer is laid out in memory.
public enum ActivationLayout: Sendable, Hashable {
    /// [N, H, W, C]: the runtime's layout, and the only one ZooKernels' own kernels read.
    case nhwc
    /// [N, C/8, H, W, 8], channels padded with zeros to a multiple of 8: the blocked layout oneDNN's
    /// AVX2 convolutions run fastest on, kept between consecutive convolutions.
    case blocked8
    /// [N, C/16, H, W, 16]: the same for AVX-512.
    case blocked16
    /// [N, C, H, W]: the network's input as given, for a first convolution with few input channels
    /// (oneDNN's fast kernels read it planar and write blocked).
    case nchw

    /// Floats a [n, c, h, w] value takes in this layout.
    public func count(n: Int, h: Int, w: Int, c: Int) -> Int {
        n * h * w * ((c + block - 1) / block * block)
    }

    /// Channels per block of the blocked layouts (1 for the others).
    public var block: Int {
        switch self {
        case .blocked8: return 8
        case .blocked16: return 16
        case .nhwc, .nchw: return 1
        }
    }

    /// True for the channel-blocked layouts.
    public var isBlocked: Bool { self == .blocked8 || self == .blocked16 }

    /// The images and channels of an NHWC value with the same memory as a [n, c, h, w] value in this
    /// layout: a blocked [n, c/b, h, w, b] value is n x c/b images of b channels (what a per-channel
    /// kernel such as pooling needs; the padding channels are computed too).
    public func pooledAsNHWC(n: Int, c: Int) -> (images: Int, channels: Int) {
        switch self {
        case .nhwc: return (n, c)
        case .nchw: return (n * c, 1)
        case .blocked8, .blocked16: return (n * ((c + block - 1) / block), block)
        }
    }
}

/// The layouts of a convolution's input and output (a residual is in the output's layout).
public struct ConvLayouts: Sendable, Hashable {
    /// The input's layout.
    public var input: ActivationLayout
    /// The output's (and the residual's) layout.
    public var output: ActivationLayout
    /// Creates layouts.
    public init(input: ActivationLayout, output: ActivationLayout) { self.input = input; self.output = output }
    /// NHWC in and out.
    public static let nhwc = ConvLayouts(input: .nhwc, output: .nhwc)
}

/// Convolution weights packed for the kernels, once, at load: [kh*kw, C] for depthwise, else per
/// group [kh, kw, in/groups, out/groups] (the GEMM's B). A BatchNorm that follows the convolution is
/// folded in with `scaleOutputChannels` before the weights are handed to a `Conv2D`.
///
/// Made with `init(_:deferring:owner:)`, the weights stay in PyTorch's layout until something needs
/// the packed copy: a convolution oneDNN runs copies them straight into its own layout, folding the
/// scales in on the way, and the packed copy is never filled (unless ZooKernels' kernels are needed
/// after all). That spares `zoo predict` a second pass over every weight at load.
public final class PackedConvWeights: @unchecked Sendable {
    /// The convolution.
    public let descriptor: ConvDescriptor
    @usableFromInline let packed: UnsafeMutablePointer<Float>
    @usableFromInline let depthwise: Bool
    /// Bytes of `packed` (page-aligned, so that `releasePages` can hand whole pages back).
    private let byteCount: Int
    private let lock = KernelLock()
    /// Set while the pages of `packed` are released: refills `packed` from the backend's copy.
    private var restore: ((UnsafeMutablePointer<Float>) -> Bool)?
    /// Set while the weights are not packed yet: PyTorch's layout, kept alive by `owner`, and the output-channel
    /// scales still to apply, in order.
    private var deferred: (weight: UnsafePointer<Float>, owner: AnyObject?, scales: [[Float]])?

    /// Packs `weight` (PyTorch layout [out, in/groups, kh, kw], row-major); nil when the descriptor is
    /// invalid or the count is wrong.
    public convenience init?(_ d: ConvDescriptor, weight: UnsafeBufferPointer<Float>) {
        self.init(d, deferring: weight, owner: nil)
        ensureResident()
    }

    /// Keeps `weight` (PyTorch layout, alive as long as `owner` is) and packs it only when the packed copy is
    /// first needed; nil when the descriptor is invalid or the count is wrong.
    public init?(_ d: ConvDescriptor, deferring weight: UnsafeBufferPointer<Float>, owner: AnyObject?) {
        guard d.isValid, weight.count == d.weightCount, let w = weight.baseAddress else { return nil }
        descriptor = d
        depthwise = d.isDepthwise
        byteCount = max(d.weightCount, 1) * MemoryLayout<Float>.stride
        packed = WeightMemory.allocate(byteCount: byteCount).bindMemory(to: Float.self, capacity: max(d.weightCount, 1))
        deferred = (w, owner, [])
    }

    deinit { UnsafeMutableRawPointer(packed).deallocate() }

    private static func pack(_ w: UnsafePointer<Float>, _ d: ConvDescriptor, into packed: UnsafeMutablePointer<Float>) {
        let taps = d.kernelH * d.kernelW
        if d.isDepthwise {
            let c = d.outChannels
            for t in 0..<taps { for ch in 0..<c { (packed + t * c + ch).initialize(to: w[ch * taps + t]) } }
        } else {
            let g = d.groups, cinG = d.inChannels / g, coutG = d.outChannels / g, kg = taps * cinG
            for grp in 0..<g {
                let dst = packed + grp * kg * coutG
                let src = w + grp * coutG * kg
                for ci in 0..<cinG {
                    for t in 0..<taps {
                        let row = dst + (t * cinG + ci) * coutG
                        let s0 = src + ci * taps + t
                        for co in 0..<coutG { (row + co).initialize(to: s0[co * kg]) }
                    }
                }
            }
        }
    }

    /// Hands the pages of the packed copy back to the system while a backend (oneDNN) holds the
    /// weights in its own layout; `restore` refills them, once, if ZooKernels' own kernels are ever
    /// needed after all (`ensureResident`). Keeps one copy of the weights in memory, not two. Drops
    /// deferred weights (the backend's copy has them).
    func releasePages(restore: @escaping (UnsafeMutablePointer<Float>) -> Bool) {
        lock.locked {
            guard self.restore == nil else { return }
            self.restore = restore
            deferred = nil
            _ = madvise(UnsafeMutableRawPointer(packed), byteCount / Int(KernelLock.pageSize) * Int(KernelLock.pageSize), MADV_DONTNEED)
        }
    }

    /// Makes sure `packed` holds the weights (packing deferred ones, refilling released pages); false when
    /// the refill failed.
    @discardableResult
    func ensureResident() -> Bool {
        lock.locked {
            if let (w, _, scales) = deferred {
                PackedConvWeights.pack(w, descriptor, into: packed)
                for s in scales { scalePacked(s) }
                deferred = nil
                return true
            }
            guard let r = restore else { return true }
            guard r(packed) else { return false }
            restore = nil
            return true
        }
    }

    /// Runs `body` on the deferred weights (PyTorch layout) and their pending output-channel scales, with
    /// the lock held; nil when the weights are packed (or released) already.
    func withDeferredWeights<T>(_ body: (UnsafePointer<Float>, [[Float]]) -> T) -> T? {
        lock.locked {
            guard let (w, _, scales) = deferred else { return nil }
            return body(w, scales)
        }
    }

    /// Multiplies every weight of output channel `c` by `scale[c]` (BatchNorm folding).
    public func scaleOutputChannels(_ scale: [Float]) {
        guard scale.count == descriptor.outChannels else { return }
        let wasDeferred: Bool = lock.locked {
            guard deferred != nil else { return false }
            deferred?.scales.append(scale)
            return true
        }
        if wasDeferred { return }
        ensureResident()
        scalePacked(scale)
    }

    private func scalePacked(_ scale: [Float]) {
        let d = descriptor
        let taps = d.kernelH * d.kernelW
        if depthwise {
            for t in 0..<taps { for c in 0..<d.outChannels { packed[t * d.outChannels + c] *= scale[c] } }
            return
        }
        let g = d.groups, coutG = d.outChannels / g, kg = taps * (d.inChannels / g)
        for grp in 0..<g {
            for k in 0..<kg {
                let row = packed + (grp * kg + k) * coutG
                for co in 0..<coutG { row[co] *= scale[grp * coutG + co] }
            }
        }
    }
}

/// A 2-D convolution with its weights packed once, bias and activation fused into the epilogue,
/// and optionally a residual added before the activation.
///
/// Activations are NHWC. 1x1 stride-1 convolutions are one SGEMM over the input; other kernels
/// go through im2col in cache-sized row tiles; depthwise convolutions (groups == channels) run a
/// direct kernel vectorised over channels. Work is split across rows (or output columns when there
/// are few rows) into `threads` tasks; the split depends only on `threads`.
public final class Conv2D: @unchecked Sendable {
    /// The convolution.
    public let descriptor: ConvDescriptor
    /// Activation applied after bias (and residual).
    public let activation: Activation
    let weights: PackedConvWeights
    @usableFromInline let packed: UnsafeMutablePointer<Float>
    @usableFromInline let bias: UnsafeMutablePointer<Float>
    @usableFromInline let depthwise: Bool

    /// Packs `weight` (PyTorch layout [out, in/groups, kh, kw], row-major) and `bias` ([out], zeros when nil).
    /// Returns nil when the descriptor is invalid or the buffers have the wrong element counts.
    /// `backend` chooses oneDNN (where it runs the convolution) or ZooKernels' own kernels.
    public convenience init?(_ d: ConvDescriptor, weight: UnsafeBufferPointer<Float>, bias b: UnsafeBufferPointer<Float>?,
                             activation: Activation = .none, backend: ConvolutionBackend = .processDefault) {
        guard let w = PackedConvWeights(d, weight: weight) else { return nil }
        self.init(w, bias: b, activation: activation, backend: backend)
    }

    /// A convolution over already packed weights; nil when `bias` has the wrong count.
    public init?(_ w: PackedConvWeights, bias b: UnsafeBufferPointer<Float>?, activation: Activation = .none,
                 backend: ConvolutionBackend = .processDefault) {
        let d = w.descriptor
        guard b.map({ $0.count == d.outChannels }) ?? true else { return nil }
        descriptor = d
        self.activation = activation
        weights = w
        packed = w.packed
        depthwise = w.depthwise
        bias = .allocate(capacity: d.outChannels)
        if let b, let bp = b.baseAddress { bias.initialize(from: bp, count: d.outChannels) } else { bias.initialize(repeating: 0, count: d.outChannels) }
        #if canImport(CDNNL)
        let whole = backend.usesOneDNN ? DNNLConvolution(w, activation: activation) : nil
        dnnl = whole
        dnnlSplit = backend.usesOneDNN && whole == nil ? DNNLSplitConvolution(w, activation: activation) : nil
        if whole == nil && dnnlSplit == nil { w.ensureResident() }
        #else
        w.ensureResident()
        #endif
    }

    deinit { bias.deallocate() }

    #if canImport(CDNNL)
    /// The oneDNN path of this convolution (nil when oneDNN is off or cannot take it).
    let dnnl: DNNLConvolution?
    /// The oneDNN path of a convolution with a reduction too long for one primitive, in parts (blocked layouts).
    let dnnlSplit: DNNLSplitConvolution?
    #endif

    /// The backend that runs this convolution for a batch, input size and thread count: `oneDNN:<implementation>`
    /// or `own` (ZooKernels' kernels: oneDNN unavailable, off, or offering only its reference implementation).
    public func backend(batch: Int, geometry g: WindowGeometry, threads: Int, residual: Bool = false, layouts: ConvLayouts = .nhwc) -> String {
        #if canImport(CDNNL)
        if let e = dnnlEntry(batch: batch, g, threads: threads, residual: residual, layouts: layouts) {
            return "oneDNN:" + e.implementation
        }
        if let es = dnnlSplitEntries(batch: batch, g, threads: threads, residual: residual, layouts: layouts), let e = es.first {
            return "oneDNN:" + e.implementation + " in \(es.count) parts"
        }
        #endif
        return "own"
    }

    /// True when a backend may run this convolution on other layouts than NHWC (oneDNN is on).
    public var acceptsBlockedLayouts: Bool {
        #if canImport(CDNNL)
        return dnnl != nil || dnnlSplit != nil
        #else
        return false
        #endif
    }

    #if canImport(CDNNL)
    private func dnnlKey(batch: Int, _ g: WindowGeometry, threads: Int, residual: Bool, layouts: ConvLayouts) -> DNNLConvolution.Key {
        .init(batch: batch, h: g.inH, w: g.inW, threads: threads, residual: residual, input: layouts.input, output: layouts.output)
    }

    func dnnlEntry(batch: Int, _ g: WindowGeometry, threads: Int, residual: Bool, layouts: ConvLayouts) -> DNNLConvolution.Entry? {
        dnnl?.entry(dnnlKey(batch: batch, g, threads: threads, residual: residual, layouts: layouts), geometry: g)
    }

    func dnnlSplitEntries(batch: Int, _ g: WindowGeometry, threads: Int, residual: Bool, layouts: ConvLayouts) -> [DNNLConvolution.Entry]? {
        dnnlSplit?.entries(dnnlKey(batch: batch, g, threads: threads, residual: residual, layouts: layouts), geometry: g)
    }
    #endif

    /// Output geometry on an input of `inH` x `inW`; nil when the input is too small.
    public func geometry(inH: Int, inW: Int) -> WindowGeometry? { descriptor.geometry(inH: inH, inW: inW) }

    // MARK: planning

    @usableFromInline enum Mode { case depthwise, stem, direct, rows, columns }

    @usableFromInline struct Plan {
        var mode: Mode
        var tasks: Int
        var tileRows: Int
        var scratch: Int
    }

    @usableFromInline
    func plan(batch: Int, _ g: WindowGeometry, threads: Int) -> Plan {
        let d = descriptor
        let m = batch * g.outH * g.outW
        let kt = d.kernelH * d.kernelW * d.inChannels
        let work = m * kt * d.outChannels / max(d.groups, 1)
        if depthwise {
            return Plan(mode: .depthwise, tasks: Parallel.tasks(threads, work: work, minimumPerTask: 32_768), tileRows: 0, scratch: 0)
        }
        let tasks = Parallel.tasks(threads, work: work, minimumPerTask: 131_072)
        // Few input channels (the RGB stem) and 16 or 32 outputs: a direct kernel beats a skinny GEMM.
        if d.groups == 1 && d.inChannels <= 4 && (d.outChannels == 16 || d.outChannels == 32) {
            return Plan(mode: .stem, tasks: Parallel.tasks(threads, work: work, minimumPerTask: 65_536), tileRows: 0, scratch: 0)
        }
        let direct = d.kernelH == 1 && d.kernelW == 1 && d.strideH == 1 && d.strideW == 1 && d.groups == 1
            && g.padTop == 0 && g.padLeft == 0 && g.padBottom == 0 && g.padRight == 0
        let splitRows = tasks == 1 || m >= 64 * tasks
        if direct { return Plan(mode: .direct, tasks: tasks, tileRows: splitRows ? 0 : -1, scratch: 0) }
        if splitRows {
            // Tiles of at least 256 rows keep the GEMM efficient (the BLAS repacks the weights per call);
            // up to ~4 MB of patches per task.
            let tile = max(16, min(Parallel.chunk(0, of: tasks, count: m).count + 8, max(256, 1_048_576 / max(kt, 1))))
            return Plan(mode: .rows, tasks: tasks, tileRows: tile, scratch: tasks * tile * kt)
        }
        return Plan(mode: .columns, tasks: tasks, tileRows: m, scratch: m * kt)
    }

    /// Floats of scratch `run` needs for this batch, input size and thread count; `residual` says whether
    /// `run` will be given a residual (the oneDNN primitive differs). Creates the oneDNN primitive.
    public func scratchCount(batch: Int, geometry g: WindowGeometry, threads: Int, residual: Bool = false) -> Int {
        scratchCount(batch: batch, geometry: g, threads: threads, residual: residual, layouts: .nhwc) ?? 0
    }

    /// Floats of scratch `run` needs with these layouts; nil when no backend runs the convolution on them
    /// (only oneDNN takes blocked layouts; NHWC always works). Creates the oneDNN primitive.
    public func scratchCount(batch: Int, geometry g: WindowGeometry, threads: Int, residual: Bool, layouts: ConvLayouts) -> Int? {
        #if canImport(CDNNL)
        if let e = dnnlEntry(batch: batch, g, threads: threads, residual: residual, layouts: layouts) {
            return max(layouts == .nhwc ? plan(batch: batch, g, threads: threads).scratch : 0, (e.totalScratchBytes + 3) / 4)
        }
        if let es = dnnlSplitEntries(batch: batch, g, threads: threads, residual: residual, layouts: layouts) {
            return (DNNLSplitConvolution.scratchBytes(es) + 3) / 4
        }
        #endif
        return layouts == .nhwc ? plan(batch: batch, g, threads: threads).scratch : nil
    }

    // MARK: running

    /// Runs the convolution: `input` [batch, inH, inW, in] -> `output` [batch, outH, outW, out],
    /// `output = act(conv + bias + residual)`. `scratch` holds `scratchCount(...)` floats (asked with the
    /// same `residual` and `layouts`). `output` must not overlap `input`, `residual` or `scratch`.
    /// `layouts` other than NHWC need a `scratchCount` that was not nil (the output is NaN otherwise);
    /// the residual is in the output's layout.
    public func run(input: UnsafePointer<Float>, batch: Int, geometry g: WindowGeometry,
                    output: UnsafeMutablePointer<Float>, residual: UnsafePointer<Float>? = nil,
                    scratch: UnsafeMutablePointer<Float>?, threads: Int, layouts: ConvLayouts = .nhwc) {
        let outCount = layouts.output.count(n: batch, h: g.outH, w: g.outW, c: descriptor.outChannels)
        #if canImport(CDNNL)
        if let dn = dnnl, let e = dnnlEntry(batch: batch, g, threads: threads, residual: residual != nil, layouts: layouts) {
            if dn.run(e, input: input, output: output, residual: residual, bias: bias, scratch: scratch.map(UnsafeMutableRawPointer.init),
                      threads: threads) {
                return
            }
        }
        if let sp = dnnlSplit, let es = dnnlSplitEntries(batch: batch, g, threads: threads, residual: residual != nil, layouts: layouts),
           sp.run(es, batch: batch, geometry: g, layout: layouts.output, input: input, output: output, residual: residual, bias: bias,
                  scratch: scratch.map(UnsafeMutableRawPointer.init), threads: threads) {
            return
        }
        #endif
        // ZooKernels' own kernels read NHWC and the packed copy, refilled here if a backend released it.
        guard layouts == .nhwc, weights.ensureResident() else {
            output.update(repeating: .nan, count: outCount)
            return
        }
        _ = BLAS.configured
        let p = plan(batch: batch, g, threads: threads)
        let d = descriptor
        let m = batch * g.outH * g.outW
        let cout = d.outChannels
        switch p.mode {
        case .stem:
            let rows = batch * g.outH
            Parallel.run(p.tasks) { t in
                self.stemRows(Parallel.chunk(t, of: p.tasks, count: rows), input: input, g, output: output, residual: residual)
            }
        case .depthwise:
            let rows = batch * g.outH
            Parallel.run(p.tasks) { t in
                self.depthwiseRows(Parallel.chunk(t, of: p.tasks, count: rows), input: input, g, output: output, residual: residual)
            }
        case .direct:
            let k = d.inChannels
            if p.tileRows == 0 {
                Parallel.run(p.tasks) { t in
                    let r = Parallel.chunk(t, of: p.tasks, count: m, align: 8)
                    guard !r.isEmpty else { return }
                    BLAS.gemm(m: r.count, n: cout, k: k, a: input + r.lowerBound * k, lda: k, b: self.packed, ldb: cout,
                              transB: false, c: output + r.lowerBound * cout, ldc: cout)
                    self.epilogue(output, rows: r, columns: 0..<cout, residual: residual)
                }
            } else {
                Parallel.run(p.tasks) { t in
                    let c = Parallel.chunk(t, of: p.tasks, count: cout, align: 16)
                    guard !c.isEmpty else { return }
                    BLAS.gemm(m: m, n: c.count, k: k, a: input, lda: k, b: self.packed + c.lowerBound, ldb: cout,
                              transB: false, c: output + c.lowerBound, ldc: cout)
                    self.epilogue(output, rows: 0..<m, columns: c, residual: residual)
                }
            }
        case .rows:
            guard let scratch else { return }
            Parallel.run(p.tasks) { t in
                let r = Parallel.chunk(t, of: p.tasks, count: m, align: 8)
                let buf = scratch + t * p.tileRows * d.kernelH * d.kernelW * d.inChannels
                var a = r.lowerBound
                while a < r.upperBound {
                    let b = min(a + p.tileRows, r.upperBound)
                    self.im2col(input: input, g, rows: a..<b, into: buf)
                    self.gemmGroups(buf, rows: a..<b, groups: 0..<d.groups, columnsOfGroup1: 0..<cout, output: output)
                    self.epilogue(output, rows: a..<b, columns: 0..<cout, residual: residual)
                    a = b
                }
            }
        case .columns:
            guard let scratch else { return }
            Parallel.run(p.tasks) { t in
                self.im2col(input: input, g, rows: Parallel.chunk(t, of: p.tasks, count: m), into: scratch + Parallel.chunk(t, of: p.tasks, count: m).lowerBound * d.kernelH * d.kernelW * d.inChannels)
            }
            Parallel.run(p.tasks) { t in
                if d.groups == 1 {
                    let c = Parallel.chunk(t, of: p.tasks, count: cout, align: 16)
                    guard !c.isEmpty else { return }
                    self.gemmGroups(scratch, rows: 0..<m, groups: 0..<1, columnsOfGroup1: c, output: output)
                    self.epilogue(output, rows: 0..<m, columns: c, residual: residual)
                } else {
                    let gr = Parallel.chunk(t, of: p.tasks, count: d.groups)
                    guard !gr.isEmpty else { return }
                    let coutG = cout / d.groups
                    self.gemmGroups(scratch, rows: 0..<m, groups: gr, columnsOfGroup1: 0..<coutG, output: output)
                    self.epilogue(output, rows: 0..<m, columns: (gr.lowerBound * coutG)..<(gr.upperBound * coutG), residual: residual)
                }
            }
        }
    }

    /// GEMM of an im2col tile (rows `rows` of the output, tile starting at `buf`) for the given groups.
    /// With one group, `columnsOfGroup1` selects a column range of the output.
    @inline(__always)
    func gemmGroups(_ buf: UnsafePointer<Float>, rows: Range<Int>, groups: Range<Int>, columnsOfGroup1 cols: Range<Int>,
                    output: UnsafeMutablePointer<Float>) {
        let d = descriptor
        let kt = d.kernelH * d.kernelW * d.inChannels
        let kg = kt / d.groups, coutG = d.outChannels / d.groups
        if d.groups == 1 {
            BLAS.gemm(m: rows.count, n: cols.count, k: kt, a: buf, lda: kt, b: packed + cols.lowerBound, ldb: coutG,
                      transB: false, c: output + rows.lowerBound * d.outChannels + cols.lowerBound, ldc: d.outChannels)
            return
        }
        for grp in groups {
            BLAS.gemm(m: rows.count, n: coutG, k: kg, a: buf + grp * kg, lda: kt, b: packed + grp * kg * coutG, ldb: coutG,
                      transB: false, c: output + rows.lowerBound * d.outChannels + grp * coutG, ldc: d.outChannels)
        }
    }

    /// Writes the patches of output rows `rows` (global over the batch) into `buf`, one row of
    /// `kh*kw*in` values each, laid out per group as [kh, kw, in/groups].
    @inline(__always)
    func im2col(input: UnsafePointer<Float>, _ g: WindowGeometry, rows: Range<Int>, into buf: UnsafeMutablePointer<Float>) {
        let d = descriptor
        let cin = d.inChannels, kh = d.kernelH, kw = d.kernelW
        let groups = d.groups, cinG = cin / groups
        let kt = kh * kw * cin, kg = kt / groups
        let plane = g.outH * g.outW
        let inPlane = g.inH * g.inW * cin
        for r in rows {
            let img = r / plane, rem = r - img * plane
            let oy = rem / g.outW, ox = rem - oy * g.outW
            let dst = buf + (r - rows.lowerBound) * kt
            let src = input + img * inPlane
            let x0 = ox * d.strideW - g.padLeft
            for i in 0..<kh {
                let iy = oy * d.strideH - g.padTop + i * d.dilationH
                if iy < 0 || iy >= g.inH {
                    if groups == 1 { (dst + i * kw * cin).update(repeating: 0, count: kw * cin) } else {
                        for grp in 0..<groups { (dst + grp * kg + i * kw * cinG).update(repeating: 0, count: kw * cinG) }
                    }
                    continue
                }
                let rowSrc = src + iy * g.inW * cin
                if groups == 1 && d.dilationW == 1 && x0 >= 0 && x0 + kw <= g.inW {
                    (dst + i * kw * cin).update(from: rowSrc + x0 * cin, count: kw * cin)
                    continue
                }
                for j in 0..<kw {
                    let ix = x0 + j * d.dilationW
                    let inside = ix >= 0 && ix < g.inW
                    if groups == 1 {
                        let o = dst + (i * kw + j) * cin
                        if inside { o.update(from: rowSrc + ix * cin, count: cin) } else { o.update(repeating: 0, count: cin) }
                    } else {
                        for grp in 0..<groups {
                            let o = dst + grp * kg + (i * kw + j) * cinG
                            if inside { o.update(from: rowSrc + ix * cin + grp * cinG, count: cinG) } else { o.update(repeating: 0, count: cinG) }
                        }
                    }
                }
            }
        }
    }

    /// out = act(out + bias (+ residual)) on a block of the output.
    @inline(__always)
    func epilogue(_ out: UnsafeMutablePointer<Float>, rows: Range<Int>, columns: Range<Int>, residual: UnsafePointer<Float>?) {
        let ld = descriptor.outChannels
        let act = activation
        let c0 = columns.lowerBound, c1 = columns.upperBound
        let bias = self.bias
        for r in rows {
            let o = out + r * ld
            var c = c0
            if let residual {
                let s = residual + r * ld
                while c + 8 <= c1 { store8(act.apply(load8(o + c) + load8(bias + c) + load8(s + c)), o + c); c += 8 }
                while c < c1 { o[c] = act.apply(o[c] + bias[c] + s[c]); c += 1 }
            } else {
                while c + 8 <= c1 { store8(act.apply(load8(o + c) + load8(bias + c)), o + c); c += 8 }
                while c < c1 { o[c] = act.apply(o[c] + bias[c]); c += 1 }
            }
        }
    }

    /// Direct convolution for few input channels and 16 or 32 output channels, rows `rows` (image * outH + oy).
    @inline(__always)
    func stemRows(_ rows: Range<Int>, input: UnsafePointer<Float>, _ g: WindowGeometry,
                  output: UnsafeMutablePointer<Float>, residual: UnsafePointer<Float>?) {
        let d = descriptor
        let cin = d.inChannels, cout = d.outChannels, kh = d.kernelH, kw = d.kernelW
        let four = cout == 32
        let act = activation
        let w = UnsafePointer(packed), bias = UnsafePointer(self.bias)
        let inPlane = g.inH * g.inW * cin
        for row in rows {
            let img = row / g.outH, oy = row - img * g.outH
            let src = input + img * inPlane
            let y0 = oy * d.strideH - g.padTop
            var i0 = 0
            while i0 < kh && y0 + i0 * d.dilationH < 0 { i0 += 1 }
            var i1 = kh
            while i1 > i0 && y0 + (i1 - 1) * d.dilationH >= g.inH { i1 -= 1 }
            for ox in 0..<g.outW {
                let x0 = ox * d.strideW - g.padLeft
                var j0 = 0
                while j0 < kw && x0 + j0 * d.dilationW < 0 { j0 += 1 }
                var j1 = kw
                while j1 > j0 && x0 + (j1 - 1) * d.dilationW >= g.inW { j1 -= 1 }
                var a0 = load8(bias), a1 = load8(bias + 8)
                var a2 = four ? load8(bias + 16) : SIMD8<Float>(), a3 = four ? load8(bias + 24) : SIMD8<Float>()
                for i in i0..<i1 {
                    let rp = src + (y0 + i * d.dilationH) * g.inW * cin
                    for j in j0..<j1 {
                        let xp = rp + (x0 + j * d.dilationW) * cin
                        var wp = w + (i * kw + j) * cin * cout
                        for ci in 0..<cin {
                            let xv = SIMD8<Float>(repeating: xp[ci])
                            a0 += xv * load8(wp); a1 += xv * load8(wp + 8)
                            if four { a2 += xv * load8(wp + 16); a3 += xv * load8(wp + 24) }
                            wp += cout
                        }
                    }
                }
                let o = output + (row * g.outW + ox) * cout
                if let residual {
                    let r = residual + (row * g.outW + ox) * cout
                    a0 += load8(r); a1 += load8(r + 8)
                    if four { a2 += load8(r + 16); a3 += load8(r + 24) }
                }
                store8(act.apply(a0), o); store8(act.apply(a1), o + 8)
                if four { store8(act.apply(a2), o + 16); store8(act.apply(a3), o + 24) }
            }
        }
    }

    /// Depthwise convolution of output rows `rows` (global: image * outH + oy).
    @inline(__always)
    func depthwiseRows(_ rows: Range<Int>, input: UnsafePointer<Float>, _ g: WindowGeometry,
                       output: UnsafeMutablePointer<Float>, residual: UnsafePointer<Float>?) {
        let d = descriptor
        let c = d.outChannels, kh = d.kernelH, kw = d.kernelW
        let sh = d.strideH, sw = d.strideW, dh = d.dilationH, dw = d.dilationW
        let act = activation
        let w = UnsafePointer(packed), bias = UnsafePointer(self.bias)
        let inPlane = g.inH * g.inW * c
        /// One output pixel, channels `from..<c`.
        @inline(__always)
        func pixel(_ row: Int, _ ox: Int, _ y0: Int, _ i0: Int, _ i1: Int, from: Int) {
            let img = row / g.outH
            let src = input + img * inPlane
            let x0 = ox * sw - g.padLeft
            var j0 = 0
            while j0 < kw && x0 + j0 * dw < 0 { j0 += 1 }
            var j1 = kw
            while j1 > j0 && x0 + (j1 - 1) * dw >= g.inW { j1 -= 1 }
            let o = output + (row * g.outW + ox) * c
            let res = residual.map { $0 + (row * g.outW + ox) * c }
            var ch = from
            while ch + 8 <= c {
                var acc = load8(bias + ch)
                for i in i0..<i1 {
                    let rp = src + ((y0 + i * dh) * g.inW) * c + ch
                    let wp = w + i * kw * c + ch
                    for j in j0..<j1 {
                        acc += load8(rp + (x0 + j * dw) * c) * load8(wp + j * c)
                    }
                }
                if let res { acc += load8(res + ch) }
                store8(act.apply(acc), o + ch)
                ch += 8
            }
            while ch < c {
                var acc = bias[ch]
                for i in i0..<i1 {
                    for j in j0..<j1 {
                        acc += src[((y0 + i * dh) * g.inW + x0 + j * dw) * c + ch] * w[(i * kw + j) * c + ch]
                    }
                }
                if let res { acc += res[ch] }
                o[ch] = act.apply(acc)
                ch += 1
            }
        }
        for row in rows {
            let img = row / g.outH, oy = row - img * g.outH
            let src = input + img * inPlane
            let y0 = oy * sh - g.padTop
            // valid kernel rows: 0 <= y0 + i*dh < inH
            var i0 = 0
            while i0 < kh && y0 + i0 * dh < 0 { i0 += 1 }
            var i1 = kh
            while i1 > i0 && y0 + (i1 - 1) * dh >= g.inH { i1 -= 1 }
            // Pixels whose window lies wholly inside the row run four at a time (weights loaded once per tap).
            let oxLo = min(g.outW, (g.padLeft + sw - 1) / sw)
            let lastStart = g.inW - 1 - (kw - 1) * dw + g.padLeft
            let oxHi = lastStart >= 0 ? min(g.outW, lastStart / sw + 1) : 0
            let full = c & ~7
            var ox = 0
            while ox < g.outW {
                if c >= 8 && ox >= oxLo && ox + 4 <= oxHi {
                    let x0 = ox * sw - g.padLeft
                    let base = (row * g.outW + ox) * c
                    var ch = 0
                    while ch < full {
                        let b = load8(bias + ch)
                        var a0 = b, a1 = b, a2 = b, a3 = b
                        for i in i0..<i1 {
                            let rp = src + ((y0 + i * dh) * g.inW + x0) * c + ch
                            let wp = w + i * kw * c + ch
                            for j in 0..<kw {
                                let wv = load8(wp + j * c)
                                let p = rp + j * dw * c
                                a0 += load8(p) * wv
                                a1 += load8(p + sw * c) * wv
                                a2 += load8(p + 2 * sw * c) * wv
                                a3 += load8(p + 3 * sw * c) * wv
                            }
                        }
                        if let residual {
                            let r = residual + base + ch
                            a0 += load8(r); a1 += load8(r + c); a2 += load8(r + 2 * c); a3 += load8(r + 3 * c)
                        }
                        let o = output + base + ch
                        store8(act.apply(a0), o); store8(act.apply(a1), o + c)
                        store8(act.apply(a2), o + 2 * c); store8(act.apply(a3), o + 3 * c)
                        ch += 8
                    }
                    if full < c { for q in 0..<4 { pixel(row, ox + q, y0, i0, i1, from: full) } }
                    ox += 4
                } else {
                    pixel(row, ox, y0, i0, i1, from: 0)
                    ox += 1
                }
            }
        }

    }
}
