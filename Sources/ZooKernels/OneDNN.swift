// The oneDNN backend of inference: every call into oneDNN lives in this file and OneDNNTraining.swift
// (the training passes); oneDNN 3.x removed the 2.x operation descriptors used here, so a port touches
// those two files. Linux only (module CDNNL).
#if canImport(CDNNL)
import CDNNL
#if canImport(Glibc)
import Glibc
#endif

/// Process-wide oneDNN state: the CPU engine and the OpenMP thread-count door.
///
/// Debian's oneDNN runs on the OpenMP runtime (libgomp). Its thread count is an OpenMP setting of the
/// calling thread, so `threads(_:)` is called before every primitive is created or executed: a
/// ZooKernels call with `threads: N` uses N threads, whichever thread it is made from.
final class DNNLRuntime: @unchecked Sendable {
    /// nil when oneDNN cannot start.
    static let shared: DNNLRuntime? = DNNLRuntime()

    let engine: dnnl_engine_t
    private let setThreads: (@convention(c) (Int32) -> Void)?

    private init?() {
        // oneDNN 2.6's AVX-512 convolutions (brgconv, jit:avx512_core) miss the parity tolerance: on
        // vgg11_bn at 64 px, channel 178 of features.27 lands 2.1e-4 (relative to the channel) from the
        // float64 result, against 1e-5 for torch's float32 and for oneDNN's AVX2 kernels (still 1.13e-4 with
        // the reduction limit of `DNNLConvolution.maxReduction`, which moves that layer's 4608-term
        // convolutions to the own kernels: the AVX-512 kernels lose accuracy earlier). So oneDNN is
        // capped at AVX2 (measured on 2 AVX-512 cores: 5-10% slower on ResNet-50 and VGG-16) unless the
        // user sets DNNL_MAX_CPU_ISA. Must run before anything else asks oneDNN about the CPU.
        if getenv("DNNL_MAX_CPU_ISA") == nil {
            _ = dnnl_set_max_cpu_isa(dnnl_cpu_isa_avx2)
        }
        var e: dnnl_engine_t?
        guard dnnl_engine_create(&e, dnnl_cpu, 0) == dnnl_success, let e else { return nil }
        engine = e
        // omp_set_num_threads from the OpenMP runtime oneDNN already loaded (no link of our own to libgomp).
        let process = dlopen(nil, RTLD_NOW)
        if let sym = dlsym(process, "omp_set_num_threads") {
            setThreads = unsafeBitCast(sym, to: (@convention(c) (Int32) -> Void).self)
        } else {
            setThreads = nil
        }
    }

    /// `oneDNN 2.6.0 (avx2)`: the library's version and the instruction set its kernels use here.
    var description: String {
        let isa: String
        switch dnnl_get_effective_cpu_isa() {
        case dnnl_cpu_isa_sse41: isa = "sse4.1"
        case dnnl_cpu_isa_avx: isa = "avx"
        case dnnl_cpu_isa_avx2: isa = "avx2"
        case dnnl_cpu_isa_avx2_vnni: isa = "avx2-vnni"
        case dnnl_cpu_isa_avx512_core: isa = "avx512"
        case dnnl_cpu_isa_avx512_core_vnni: isa = "avx512-vnni"
        case dnnl_cpu_isa_avx512_core_bf16: isa = "avx512-bf16"
        case dnnl_cpu_isa_avx512_core_amx: isa = "avx512-amx"
        default: isa = "isa \(dnnl_get_effective_cpu_isa().rawValue)"
        }
        guard let v = dnnl_version() else { return "oneDNN (\(isa))" }
        return "oneDNN \(v.pointee.major).\(v.pointee.minor).\(v.pointee.patch) (\(isa))"
    }

    /// The channel-blocked layout oneDNN's kernels prefer on this CPU: 16 channels with AVX-512, else 8.
    var blockedLayout: ActivationLayout {
        dnnl_get_effective_cpu_isa().rawValue & dnnl_cpu_isa_avx512_core.rawValue == dnnl_cpu_isa_avx512_core.rawValue ? .blocked16 : .blocked8
    }

    /// The cores this process may use (for load-time work).
    static let cores = max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))

    /// Sets the OpenMP thread count of the calling thread (what oneDNN's next calls from it use).
    func threads(_ n: Int) { setThreads?(Int32(max(1, n))) }

    /// One stream per calling thread (a oneDNN stream is not for concurrent use), destroyed with the thread.
    private let streamKey: pthread_key_t? = {
        var key = pthread_key_t()
        guard pthread_key_create(&key, { p in if let p { dnnl_stream_destroy(OpaquePointer(p)) } }) == 0 else { return nil }
        return key
    }()

    /// The calling thread's stream, created on first use.
    func stream() -> dnnl_stream_t? {
        guard let key = streamKey else { return nil }
        if let p = pthread_getspecific(key) { return OpaquePointer(p) }
        var s: dnnl_stream_t?
        guard dnnl_stream_create(&s, engine, dnnl_stream_default_flags.rawValue) == dnnl_success, let s else { return nil }
        pthread_setspecific(key, UnsafeRawPointer(s))
        return s
    }
}

/// Weights in one oneDNN layout: the memory object and the buffer under it.
final class DNNLWeights: @unchecked Sendable {
    var md: dnnl_memory_desc_t
    let memory: dnnl_memory_t
    let buffer: UnsafeMutableRawPointer
    init(md: dnnl_memory_desc_t, memory: dnnl_memory_t, buffer: UnsafeMutableRawPointer) {
        self.md = md; self.memory = memory; self.buffer = buffer
    }
    deinit {
        dnnl_memory_destroy(memory)
        buffer.deallocate()
    }
}

extension DNNLRuntime {
    /// Copies `from` (layout `fromMD`) into `to` (layout `toMD`) with a oneDNN reorder; false on failure.
    func reorder(_ fromMD: UnsafePointer<dnnl_memory_desc_t>, _ from: UnsafeRawPointer,
                 _ toMD: UnsafePointer<dnnl_memory_desc_t>, _ to: UnsafeMutableRawPointer) -> Bool {
        var src: dnnl_memory_t?, dst: dnnl_memory_t?, rpd: dnnl_primitive_desc_t?, prim: dnnl_primitive_t?
        defer {
            for m in [src, dst] { if let m { dnnl_memory_destroy(m) } }
            if let prim { dnnl_primitive_destroy(prim) }
            if let rpd { dnnl_primitive_desc_destroy(rpd) }
        }
        // Load-time copies (weights) use every core: an exact copy, so the thread count changes nothing
        // but the time (ResNet-50's weights: 34 ms on one thread).
        threads(DNNLRuntime.cores)
        guard let stream = stream(),
              dnnl_memory_create(&src, fromMD, engine, UnsafeMutableRawPointer(mutating: from)) == dnnl_success,
              dnnl_memory_create(&dst, toMD, engine, to) == dnnl_success,
              dnnl_reorder_primitive_desc_create(&rpd, fromMD, engine, toMD, engine, nil) == dnnl_success,
              dnnl_primitive_create(&prim, rpd) == dnnl_success else { return false }
        var args = [dnnl_exec_arg_t(arg: zoo_dnnl_arg_from, memory: src), dnnl_exec_arg_t(arg: zoo_dnnl_arg_to, memory: dst)]
        return dnnl_primitive_execute(prim, stream, 2, &args) == dnnl_success && dnnl_stream_wait(stream) == dnnl_success
    }
}

/// Weights copied into a blocked oneDNN layout by plain loops, without a oneDNN reorder primitive.
///
/// oneDNN 2.6's reorder from ZooKernels' packed layout ([kh, kw, in, out], `cdba`) into its blocked weight
/// layouts (`ABcd8b8a`, `Acdb8a`, depthwise `Abcde8a`) is a JIT kernel made per shape, and it ran at
/// 1-6 ms per ResNet-50 convolution: most of what oneDNN added to `zoo predict`'s start-up. Every layout
/// these convolutions ask for has its innermost block along one dimension (output channels, or groups for
/// depthwise), so the copy moves runs of up to one block, read contiguously from the packed copy or gathered
/// from PyTorch's layout. An exact copy: the same numbers as the reorder (and as packing then scaling).
enum DNNLBlockedCopy {
    /// Copies the weights at `source` (logical dims of `md`: [O, I, kh, kw], or [G, O/G, I/G, kh, kw];
    /// element strides `sourceStrides`) into `destination` (`dnnl_memory_desc_get_size(md)` bytes) in `md`'s
    /// blocked layout, padding with zeros, multiplying each weight by `scales[k][its output channel]` for
    /// each k in turn (as `PackedConvWeights.scaleOutputChannels` would have). False, with nothing promised
    /// about `destination`, when `md` is not a blocked layout this copy knows.
    static func copy(_ source: UnsafePointer<Float>, strides sourceStrides: [Int], scales: [[Float]] = [],
                     into destination: UnsafeMutablePointer<Float>, md: dnnl_memory_desc_t, threads: Int) -> Bool {
        let n = Int(md.ndims)
        guard n >= 1, n <= 6, sourceStrides.count == n, md.format_kind == dnnl_blocked, md.data_type == dnnl_f32,
              md.offset0 == 0, md.extra.flags == 0 else { return false }
        let b = md.format_desc.blocking
        let nblks = Int(b.inner_nblks)
        let dims = withUnsafeBytes(of: md.dims) { Array($0.bindMemory(to: Int64.self).prefix(n)).map(Int.init) }
        let padded = withUnsafeBytes(of: md.padded_dims) { Array($0.bindMemory(to: Int64.self).prefix(n)).map(Int.init) }
        let outer = withUnsafeBytes(of: b.strides) { Array($0.bindMemory(to: Int64.self).prefix(n)).map(Int.init) }
        let blks = withUnsafeBytes(of: b.inner_blks) { Array($0.bindMemory(to: Int64.self).prefix(nblks)).map(Int.init) }
        let idxs = withUnsafeBytes(of: b.inner_idxs) { Array($0.bindMemory(to: Int64.self).prefix(nblks)).map(Int.init) }
        guard nblks >= 1, blks.allSatisfy({ $0 > 0 }), idxs.allSatisfy({ (0..<n).contains($0) }),
              dims.allSatisfy({ $0 > 0 }), zip(dims, padded).allSatisfy({ $0 <= $1 }) else { return false }
        // The innermost block runs along `v` (stride 1 in the destination): runs of up to `vb` elements.
        let v = idxs[nblks - 1], vb = blks[nblks - 1]
        // The output channel of an element: x0 ([O, ...]) or x0 * O/G + x1 ([G, O/G, ...]); its step along v.
        guard n == 4 || n == 5 || scales.isEmpty else { return false }
        let channels = n == 5 ? dims[0] * dims[1] : dims[0]
        guard scales.allSatisfy({ $0.count == channels }) else { return false }
        let channelStep = v == 0 ? (n == 5 ? dims[1] : 1) : (v == 1 && n == 5 ? 1 : 0)
        // offset(x) = sum over d of table[d][x_d]: the outer-block term plus every inner block's term of dim d.
        var tables: [[Int]] = []
        for d in 0..<n {
            let blockProduct = zip(blks, idxs).filter { $0.1 == d }.reduce(1) { $0 * $1.0 }
            guard padded[d] % blockProduct == 0 else { return false }
            var t = [Int](repeating: 0, count: dims[d])
            for x in 0..<dims[d] {
                var off = (x / blockProduct) * outer[d]
                var innerStride = 1, below = 1
                for k in stride(from: nblks - 1, through: 0, by: -1) {
                    if idxs[k] == d {
                        off += ((x / below) % blks[k]) * innerStride
                        below *= blks[k]
                    }
                    innerStride *= blks[k]
                }
                t[x] = off
            }
            tables.append(t)
        }
        let total = dnnl_memory_desc_get_size([md]) / MemoryLayout<Float>.stride
        guard total >= padded.reduce(1, *) else { return false }
        if padded != dims || total != padded.reduce(1, *) { destination.initialize(repeating: 0, count: total) }
        // Rows: every index but v's, and v in runs of vb. When the source holds v contiguously (the packed
        // copy), v's runs change fastest: the rows read the source in order. Otherwise (PyTorch's layout, v
        // strided by a whole output channel) they change slowest: the vb rows of a run read vb source rows
        // each in order, not one element of each of thousands of pages.
        let runs = (dims[v] + vb - 1) / vb
        let others = (0..<n).filter { $0 != v }
        let rows = others.reduce(runs) { $0 * dims[$1] }
        let order = sourceStrides[v] == 1 ? others + [v] : [v] + others
        // One flat table: dims, source strides, table starts, the iteration order (slowest first), then the tables.
        var flat = dims + sourceStrides
        var acc = 4 * n
        for d in 0..<n { flat.append(acc); acc += dims[d] }
        flat += order
        for t in tables { flat += t }
        let scaleCount = scales.count
        let allScales = scales.flatMap { $0 }
        let tasks = Parallel.tasks(threads, work: rows * vb, minimumPerTask: 65_536)
        flat.withUnsafeBufferPointer { buffer in
            allScales.withUnsafeBufferPointer { scaleBuffer in
                guard let meta = buffer.baseAddress else { return }
                let scale = scaleBuffer.baseAddress
                Parallel.run(tasks) { t in
                    let range = Parallel.chunk(t, of: tasks, count: rows)
                    guard !range.isEmpty else { return }
                    withUnsafeTemporaryAllocation(of: Int.self, capacity: n) { xs in
                        guard let x = xs.baseAddress else { return }
                        let dim = meta, strides = meta + n, start = meta + 2 * n, order = meta + 3 * n
                        let sv = strides[v]
                        // The odometer at the first row (v counts in runs of vb).
                        x.initialize(repeating: 0, count: n)
                        var r = range.lowerBound
                        for k in stride(from: n - 1, through: 0, by: -1) {
                            let d = order[k]
                            let extent = d == v ? runs : dim[d]
                            x[d] = (r % extent) * (d == v ? vb : 1)
                            r /= extent
                        }
                        for _ in range {
                            var src = 0, dst = 0
                            for d in 0..<n { src += x[d] * strides[d]; dst += meta[start[d] + x[d]] }
                            let count = Swift.min(vb, dim[v] - x[v])
                            let from = source + src, to = destination + dst
                            if let scale, scaleCount > 0 {
                                let c0 = n == 5 ? x[0] * dim[1] + x[1] : x[0]
                                for j in 0..<count {
                                    var value = from[j * sv]
                                    for k in 0..<scaleCount { value *= scale[k * channels + c0 + j * channelStep] }
                                    to[j] = value
                                }
                            } else if sv == 1 {
                                to.update(from: from, count: count)
                            } else {
                                for j in 0..<count { to[j] = from[j * sv] }
                            }
                            for k in stride(from: n - 1, through: 0, by: -1) {
                                let d = order[k]
                                x[d] += d == v ? vb : 1
                                if x[d] < dim[d] { break }
                                x[d] = 0
                            }
                        }
                    }
                }
            }
        }
        return true
    }
}

/// One convolution through oneDNN: NHWC source and destination (the runtime's layout), weights
/// copied once, at load, into the layout oneDNN's implementation prefers, bias, residual (`sum`)
/// and activation fused as post-ops. Primitives are created once per (batch, input size, threads,
/// residual) and cached; the scratchpad is the caller's (user scratchpad mode), so concurrent calls
/// share nothing but the read-only weights.
final class DNNLConvolution: @unchecked Sendable {
    struct Key: Hashable {
        var batch: Int, h: Int, w: Int, threads: Int, residual: Bool
        var input: ActivationLayout = .nhwc, output: ActivationLayout = .nhwc
    }

    /// A reorder primitive between two layouts of one value, created once.
    final class Reorder: @unchecked Sendable {
        let pd: dnnl_primitive_desc_t
        let primitive: dnnl_primitive_t
        var from: dnnl_memory_desc_t, to: dnnl_memory_desc_t
        init?(_ engine: dnnl_engine_t, from: dnnl_memory_desc_t, to: dnnl_memory_desc_t) {
            self.from = from; self.to = to
            var rpd: dnnl_primitive_desc_t?, prim: dnnl_primitive_t?
            guard dnnl_reorder_primitive_desc_create(&rpd, &self.from, engine, &self.to, engine, nil) == dnnl_success, let rpd else { return nil }
            guard dnnl_primitive_create(&prim, rpd) == dnnl_success, let prim else { dnnl_primitive_desc_destroy(rpd); return nil }
            pd = rpd; primitive = prim
        }
        deinit {
            dnnl_primitive_destroy(primitive)
            dnnl_primitive_desc_destroy(pd)
        }
        /// Runs the reorder `from` -> `to` on `stream`.
        func run(_ engine: dnnl_engine_t, _ stream: dnnl_stream_t, from x: UnsafeRawPointer, to y: UnsafeMutableRawPointer) -> Bool {
            var a: dnnl_memory_t?, b: dnnl_memory_t?
            defer { for m in [a, b] { if let m { dnnl_memory_destroy(m) } } }
            guard dnnl_memory_create(&a, &from, engine, UnsafeMutableRawPointer(mutating: x)) == dnnl_success,
                  dnnl_memory_create(&b, &to, engine, y) == dnnl_success else { return false }
            var args = [dnnl_exec_arg_t(arg: zoo_dnnl_arg_from, memory: a), dnnl_exec_arg_t(arg: zoo_dnnl_arg_to, memory: b)]
            return dnnl_primitive_execute(primitive, stream, 2, &args) == dnnl_success
        }
    }

    /// A created primitive for one key. The convolution runs in one layout (blocked when its input or
    /// output is); an input or output in the other layout goes through a reorder in the scratch.
    final class Entry: @unchecked Sendable {
        let pd: dnnl_primitive_desc_t
        let primitive: dnnl_primitive_t
        var src = dnnl_memory_desc_t(), dst = dnnl_memory_desc_t(), bias = dnnl_memory_desc_t()
        let scratchBytes: Int
        let weights: DNNLWeights
        /// The implementation oneDNN chose (e.g. `jit_1x1:avx2`).
        let implementation: String
        /// Input -> the convolution's layout (when they differ), into the scratch at `inputOffset`.
        var inputReorder: Reorder?
        /// The convolution's layout -> output (when they differ), from the scratch at `outputOffset`,
        /// and the residual the other way before the convolution.
        var outputReorder: Reorder?, residualReorder: Reorder?
        var inputOffset = 0, outputOffset = 0
        /// Bytes of scratch in all: oneDNN's scratchpad, then the reordered input and output.
        var totalScratchBytes: Int
        init(pd: dnnl_primitive_desc_t, primitive: dnnl_primitive_t, scratchBytes: Int, weights: DNNLWeights, implementation: String) {
            self.pd = pd; self.primitive = primitive; self.scratchBytes = scratchBytes
            self.weights = weights; self.implementation = implementation
            totalScratchBytes = scratchBytes
        }
        deinit {
            dnnl_primitive_destroy(primitive)
            dnnl_primitive_desc_destroy(pd)
        }
    }

    /// The longest reduction (input channels per group x kernel taps) given to oneDNN.
    static let maxReduction = 2304

    let runtime: DNNLRuntime
    /// The convolution this object runs: the whole one, or one part of a split one (`DNNLSplitConvolution`),
    /// whose input channels are `channels` of the whole.
    let descriptor: ConvDescriptor
    /// The whole convolution's input channels this one reads (all of them unless it is a part).
    let channels: Range<Int>
    let activation: Activation
    /// The packed weights (ZooKernels' layout, of the whole convolution): the source of the first reorder,
    /// then released.
    private let source: PackedConvWeights
    private let lock = KernelLock()
    private var entries: [Key: Entry?] = [:]
    /// Weights already reordered, one per layout asked for (usually one, made at load).
    private var reordered: [DNNLWeights] = []

    /// Prepares the convolution: asks oneDNN for its preferred weight layout (on a probe input),
    /// copies the weights into it (from PyTorch's layout while they are deferred, else from the packed copy) and
    /// releases the pages of ZooKernels' packed copy. nil when
    /// oneDNN is off or cannot take this convolution.
    convenience init?(_ w: PackedConvWeights, activation: Activation) {
        self.init(w, activation: activation, part: nil)
        guard let restore = sourceRestorer() else { return nil }
        w.releasePages(restore: restore)
    }

    /// The convolution over input channels `part` of `w`'s (all when nil), without releasing `w`'s pages.
    init?(_ w: PackedConvWeights, activation: Activation, part: Range<Int>?) {
        guard let rt = DNNLRuntime.shared else { return nil }
        var d = w.descriptor
        if let part {
            guard d.groups == 1, !w.depthwise, part.lowerBound >= 0, part.upperBound <= d.inChannels, !part.isEmpty else { return nil }
            d.inChannels = part.count
        }
        // Long reductions stay on ZooKernels' own kernels, whose GEMM sums in blocks, or are split into parts
        // (`DNNLSplitConvolution`): oneDNN's direct kernels accumulate all (in/groups) x kh x kw products of
        // an output in one register, and beyond 2304 terms (VGG's and ResNet's 512-channel 3x3 layers, 4608)
        // that float32 round-off broke the per-channel parity check (vgg16 at 64 px: 1.31e-4 against 1e-4;
        // 6.4e-5 with this limit).
        guard d.inChannels / max(d.groups, 1) * d.kernelH * d.kernelW <= DNNLConvolution.maxReduction else { return nil }
        runtime = rt
        descriptor = d
        channels = part ?? 0..<w.descriptor.inChannels
        self.activation = activation
        source = w
        let probe = max(16, (d.kernelH - 1) * d.dilationH + 1, (d.kernelW - 1) * d.dilationW + 1)
        guard let g = d.geometry(inH: probe, inW: probe),
              let pd = primitiveDescriptor(Key(batch: 1, h: probe, w: probe, threads: 1, residual: false), g) else { return nil }
        defer { dnnl_primitive_desc_destroy(pd) }
        guard let wmd = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0), weights(wmd) != nil else { return nil }
    }

    /// What writes this convolution's weights back into ZooKernels' packed copy of the whole convolution (the
    /// refill of released pages; false on failure). It holds the reordered weights, not this object: the packed
    /// copy keeps it, and this object keeps the packed copy.
    func sourceRestorer() -> ((UnsafeMutablePointer<Float>) -> Bool)? {
        guard let first = reordered.first, var packedMD = sourceWeightsMD() else { return nil }
        let runtime = runtime, offset = sourceOffset
        return { packed in runtime.reorder(&first.md, first.buffer, &packedMD, UnsafeMutableRawPointer(packed + offset)) }
    }

    /// Where this convolution's weights start in the packed copy of the whole ([kh, kw, in, out]: a part's
    /// input channels are rows of it).
    private var sourceOffset: Int { channels.lowerBound * descriptor.outChannels }

    /// The primitive for `key`, created on first use; nil when oneDNN offers only its reference
    /// implementation (or none) for this case: then the caller runs its own kernel.
    func entry(_ key: Key, geometry g: WindowGeometry) -> Entry? {
        lock.locked {
            if let e = entries[key] { return e }
            let e = makeEntry(key, g)
            entries[key] = e
            return e
        }
    }

    private func weightDims() -> [Int64] {
        let d = descriptor
        let g = d.groups
        if g == 1 { return [d.outChannels, d.inChannels, d.kernelH, d.kernelW].map(Int64.init) }
        return [g, d.outChannels / g, d.inChannels / g, d.kernelH, d.kernelW].map(Int64.init)
    }

    /// The memory descriptor of ZooKernels' packed weights: depthwise [kh, kw, C], else per group
    /// [kh, kw, in/g, out/g].
    private func sourceWeightsMD() -> dnnl_memory_desc_t? {
        var md = dnnl_memory_desc_t()
        var dims = weightDims()
        var strides = sourceStrides().map(Int64.init)
        guard dnnl_memory_desc_init_by_strides(&md, Int32(dims.count), &dims, dnnl_f32, &strides) == dnnl_success else { return nil }
        return md
    }

    /// The element strides of PyTorch's weight layout ([O, I/G, kh, kw] of the whole convolution) for the dims
    /// of `weightDims()`.
    private func torchStrides() -> [Int] {
        let d = descriptor, whole = source.descriptor
        let taps = d.kernelH * d.kernelW, g = d.groups, cinG = whole.inChannels / g, coutG = d.outChannels / g
        return g == 1 ? [cinG * taps, taps, d.kernelW, 1] : [coutG * cinG * taps, cinG * taps, taps, d.kernelW, 1]
    }

    /// The element strides of ZooKernels' packed weights for the dims of `weightDims()`.
    private func sourceStrides() -> [Int] {
        let d = descriptor
        let taps = d.kernelH * d.kernelW
        let strides: [Int]
        if source.depthwise {
            let c = d.outChannels
            strides = [1, c * taps, c * taps, d.kernelW * c, c]
        } else {
            // A part's rows are strided by the whole convolution's input channels.
            let g = d.groups, cinG = source.descriptor.inChannels / g, coutG = d.outChannels / g
            let kw = cinG * coutG, kh = d.kernelW * cinG * coutG
            strides = g == 1 ? [1, coutG, kh, kw] : [taps * cinG * coutG, 1, coutG, kh, kw]
        }
        return strides
    }

    /// Weights in the layout `want`: reordered the first time a layout is asked for, from the first
    /// reordered copy when there is one (the packed copy is released by then), else from the packed copy.
    private func weights(_ want: UnsafePointer<dnnl_memory_desc_t>) -> DNNLWeights? {
        for r in reordered where dnnl_memory_desc_equal(&r.md, want) != 0 { return r }
        let bytes = dnnl_memory_desc_get_size(want)
        let buffer = WeightMemory.allocate(byteCount: max(bytes, 64))
        var ok = false
        if let first = reordered.first {
            ok = runtime.reorder(&first.md, first.buffer, want, buffer)
        } else if let copied = source.withDeferredWeights({ w, scales in
            // Straight from PyTorch's layout (the packed copy was never filled).
            DNNLBlockedCopy.copy(w + channels.lowerBound * descriptor.kernelH * descriptor.kernelW, strides: torchStrides(),
                                 scales: scales, into: buffer.bindMemory(to: Float.self, capacity: max(bytes, 64) / 4),
                                 md: want.pointee, threads: DNNLRuntime.cores)
        }), copied {
            ok = true
        } else if source.ensureResident() {
            let from = UnsafePointer(source.packed + sourceOffset)
            ok = DNNLBlockedCopy.copy(from, strides: sourceStrides(), into: buffer.bindMemory(to: Float.self, capacity: max(bytes, 64) / 4),
                                      md: want.pointee, threads: DNNLRuntime.cores)
            if !ok, var packedMD = sourceWeightsMD() { ok = runtime.reorder(&packedMD, from, want, buffer) }
        }
        var memory: dnnl_memory_t?
        guard ok, dnnl_memory_create(&memory, want, runtime.engine, buffer) == dnnl_success, let memory else {
            buffer.deallocate()
            return nil
        }
        let w = DNNLWeights(md: want.pointee, memory: memory, buffer: buffer)
        reordered.append(w)
        return w
    }

    /// The primitive descriptor of the convolution for `key` (caller destroys it); nil when oneDNN refuses.
    private func primitiveDescriptor(_ key: Key, _ g: WindowGeometry) -> dnnl_primitive_desc_t? {
        let d = descriptor
        runtime.threads(key.threads)
        var src = dnnl_memory_desc_t(), dst = dnnl_memory_desc_t(), bias = dnnl_memory_desc_t(), wAny = dnnl_memory_desc_t()
        var srcDims: [Int64] = [key.batch, d.inChannels, key.h, key.w].map(Int64.init)
        var dstDims: [Int64] = [key.batch, d.outChannels, g.outH, g.outW].map(Int64.init)
        var biasDims: [Int64] = [Int64(d.outChannels)]
        var wDims = weightDims()
        let inner = DNNLConvolution.computeLayout(key)
        guard dnnl_memory_desc_init_by_tag(&src, 4, &srcDims, dnnl_f32, DNNLConvolution.tag(inputLayout(key))) == dnnl_success,
              dnnl_memory_desc_init_by_tag(&dst, 4, &dstDims, dnnl_f32, DNNLConvolution.tag(inner)) == dnnl_success,
              dnnl_memory_desc_init_by_tag(&bias, 1, &biasDims, dnnl_f32, dnnl_a) == dnnl_success,
              dnnl_memory_desc_init_by_tag(&wAny, Int32(wDims.count), &wDims, dnnl_f32, dnnl_format_tag_any) == dnnl_success
        else { return nil }
        var strides: [Int64] = [Int64(d.strideH), Int64(d.strideW)]
        var dilates: [Int64] = [Int64(d.dilationH - 1), Int64(d.dilationW - 1)]
        var padL: [Int64] = [Int64(g.padTop), Int64(g.padLeft)]
        var padR: [Int64] = [Int64(g.padBottom), Int64(g.padRight)]
        var cd = dnnl_convolution_desc_t()
        guard dnnl_dilated_convolution_forward_desc_init(&cd, dnnl_forward_inference, dnnl_convolution_direct, &src, &wAny, &bias, &dst,
                                                         &strides, &dilates, &padL, &padR) == dnnl_success else { return nil }
        var attr: dnnl_primitive_attr_t?
        var postOps: dnnl_post_ops_t?
        defer {
            if let attr { dnnl_primitive_attr_destroy(attr) }
            if let postOps { dnnl_post_ops_destroy(postOps) }
        }
        guard dnnl_primitive_attr_create(&attr) == dnnl_success, dnnl_post_ops_create(&postOps) == dnnl_success,
              dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user) == dnnl_success else { return nil }
        if key.residual, dnnl_post_ops_append_sum(postOps, 1) != dnnl_success { return nil }
        guard DNNLConvolution.appendActivation(activation, to: postOps),
              dnnl_primitive_attr_set_post_ops(attr, postOps) == dnnl_success else { return nil }
        var pd: dnnl_primitive_desc_t?
        guard dnnl_primitive_desc_create(&pd, &cd, attr, runtime.engine, nil) == dnnl_success else { return nil }
        return pd
    }

    private func makeEntry(_ key: Key, _ g: WindowGeometry) -> Entry? {
        guard let pd = primitiveDescriptor(key, g) else { return nil }
        var name: UnsafePointer<CChar>?
        _ = dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &name)
        let implementation = name.map { String(cString: $0) } ?? "?"
        var primitive: dnnl_primitive_t?
        // The reference implementations are slower than ZooKernels' own kernels.
        guard !implementation.hasPrefix("ref"), let wmd = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0),
              let weights = weights(wmd) else {
            dnnl_primitive_desc_destroy(pd)
            return nil
        }
        // oneDNN's primitive cache keys on the calling thread's thread count: set it again (the weight
        // reorder above runs on one thread), else a primitive made for another count, with another
        // weight layout and scratchpad, comes back. Checked below all the same.
        runtime.threads(key.threads)
        guard dnnl_primitive_create(&primitive, pd) == dnnl_success, let primitive else {
            dnnl_primitive_desc_destroy(pd)
            return nil
        }
        var made: const_dnnl_primitive_desc_t?
        guard dnnl_primitive_get_primitive_desc(primitive, &made) == dnnl_success, let made,
              let madeWeights = dnnl_primitive_desc_query_md(made, dnnl_query_weights_md, 0),
              dnnl_memory_desc_equal(madeWeights, wmd) != 0, scratchBytes(made) == scratchBytes(pd) else {
            dnnl_primitive_destroy(primitive)
            dnnl_primitive_desc_destroy(pd)
            return nil
        }
        let e = Entry(pd: pd, primitive: primitive, scratchBytes: scratchBytes(pd), weights: weights, implementation: implementation)
        // The layouts the primitive was created with (plain NHWC and [out] for the bias, as asked).
        if let q = dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0) { e.src = q.pointee }
        if let q = dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0) { e.dst = q.pointee }
        if let q = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 1) { e.bias = q.pointee }
        let d = descriptor, inner = DNNLConvolution.computeLayout(key)
        func aligned(_ b: Int) -> Int { (b + 63) & ~63 }
        var offset = aligned(e.scratchBytes)
        if key.input != inputLayout(key) {
            guard let from = DNNLConvolution.md(key.batch, d.inChannels, key.h, key.w, key.input),
                  let r = Reorder(runtime.engine, from: from, to: e.src) else { return nil }
            e.inputReorder = r
            e.inputOffset = offset
            offset += aligned(dnnl_memory_desc_get_size(&e.src))
        }
        if key.output != inner {
            guard let to = DNNLConvolution.md(key.batch, d.outChannels, g.outH, g.outW, key.output),
                  let r = Reorder(runtime.engine, from: e.dst, to: to) else { return nil }
            e.outputReorder = r
            if key.residual {
                guard let back = Reorder(runtime.engine, from: to, to: e.dst) else { return nil }
                e.residualReorder = back
            }
            e.outputOffset = offset
            offset += aligned(dnnl_memory_desc_get_size(&e.dst))
        }
        e.totalScratchBytes = offset
        return e
    }

    private func scratchBytes(_ pd: const_dnnl_primitive_desc_t) -> Int {
        dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0).map { dnnl_memory_desc_get_size($0) } ?? 0
    }

    /// The layout the convolution itself runs in: blocked when its input or output is (oneDNN's fast
    /// implementations take one layout for both).
    static func computeLayout(_ key: Key) -> ActivationLayout {
        key.input.isBlocked ? key.input : key.output
    }

    /// The layout the convolution reads its input in: the compute layout, but for a few input channels
    /// (the RGB stem), where oneDNN's fast kernels read NHWC and write blocked.
    func inputLayout(_ key: Key) -> ActivationLayout {
        descriptor.inChannels < 8 ? key.input : DNNLConvolution.computeLayout(key)
    }

    /// A [n, c, h, w] memory descriptor in a layout.
    static func md(_ n: Int, _ c: Int, _ h: Int, _ w: Int, _ l: ActivationLayout) -> dnnl_memory_desc_t? {
        var md = dnnl_memory_desc_t()
        var dims: [Int64] = [n, c, h, w].map(Int64.init)
        return dnnl_memory_desc_init_by_tag(&md, 4, &dims, dnnl_f32, tag(l)) == dnnl_success ? md : nil
    }

    /// oneDNN's format tag of a layout.
    static func tag(_ l: ActivationLayout) -> dnnl_format_tag_t {
        switch l {
        case .nhwc: return dnnl_nhwc
        case .nchw: return dnnl_nchw
        case .blocked8: return dnnl_nChw8c
        case .blocked16: return dnnl_nChw16c
        }
    }

    /// Appends `act` as eltwise post-ops; false when oneDNN refuses.
    static func appendActivation(_ act: Activation, to po: dnnl_post_ops_t?) -> Bool {
        func eltwise(_ alg: dnnl_alg_kind_t, _ alpha: Float, _ beta: Float) -> Bool {
            dnnl_post_ops_append_eltwise(po, 1, alg, alpha, beta) == dnnl_success
        }
        switch act {
        case .none: return true
        case .relu: return eltwise(dnnl_eltwise_relu, 0, 0)
        case .relu6: return eltwise(dnnl_eltwise_clip, 0, 6)
        case .hardSwish: return eltwise(dnnl_eltwise_hardswish, 0, 0)
        case .hardSigmoid: return eltwise(dnnl_eltwise_linear, 1.0 / 6.0, 0.5) && eltwise(dnnl_eltwise_clip, 0, 1)
        case .sigmoid: return eltwise(dnnl_eltwise_logistic, 0, 0)
        case .silu: return eltwise(dnnl_eltwise_swish, 1, 0)
        case .gelu: return eltwise(dnnl_eltwise_gelu_erf, 0, 0)
        }
    }

    /// Runs the convolution (`residual`, in the output's layout, is added before the activation; nil with an
    /// entry made for a residual and without an output reorder: what `output` holds is added); false when a
    /// oneDNN call fails. `scratch` holds `totalScratchBytes` (allocated here when nil).
    func run(_ e: Entry, input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>, residual: UnsafePointer<Float>?,
             bias: UnsafeMutablePointer<Float>, scratch: UnsafeMutableRawPointer?, threads: Int) -> Bool {
        let engine = runtime.engine
        runtime.threads(threads)
        var src: dnnl_memory_t?, dst: dnnl_memory_t?, b: dnnl_memory_t?, pad: dnnl_memory_t?
        var ownScratch: UnsafeMutableRawPointer?
        defer {
            for m in [src, dst, b, pad] { if let m { dnnl_memory_destroy(m) } }
            ownScratch?.deallocate()
        }
        var base = scratch
        if base == nil, e.totalScratchBytes > 0 {
            ownScratch = .allocate(byteCount: e.totalScratchBytes, alignment: 64)
            base = ownScratch
        }
        guard let stream = runtime.stream() else { return false }
        var x = UnsafeRawPointer(input)
        if let r = e.inputReorder, let base {
            guard r.run(engine, stream, from: x, to: base + e.inputOffset) else { return false }
            x = UnsafeRawPointer(base + e.inputOffset)
        }
        var y = UnsafeMutableRawPointer(output)
        if e.outputReorder != nil, let base { y = base + e.outputOffset }
        if let residual {
            // oneDNN's `sum` post-op adds what the destination holds.
            if let r = e.residualReorder {
                guard r.run(engine, stream, from: residual, to: y) else { return false }
            } else {
                y.copyMemory(from: residual, byteCount: dnnl_memory_desc_get_size(&e.dst))
            }
        }
        guard dnnl_memory_create(&src, &e.src, engine, UnsafeMutableRawPointer(mutating: x)) == dnnl_success,
              dnnl_memory_create(&dst, &e.dst, engine, y) == dnnl_success,
              dnnl_memory_create(&b, &e.bias, engine, bias) == dnnl_success else { return false }
        var args = [dnnl_exec_arg_t(arg: zoo_dnnl_arg_src, memory: src), dnnl_exec_arg_t(arg: zoo_dnnl_arg_weights, memory: e.weights.memory),
                    dnnl_exec_arg_t(arg: zoo_dnnl_arg_bias, memory: b), dnnl_exec_arg_t(arg: zoo_dnnl_arg_dst, memory: dst)]
        if e.scratchBytes > 0 {
            guard let spMD = dnnl_primitive_desc_query_md(e.pd, dnnl_query_scratchpad_md, 0),
                  dnnl_memory_create(&pad, spMD, engine, base) == dnnl_success else { return false }
            args.append(dnnl_exec_arg_t(arg: zoo_dnnl_arg_scratchpad, memory: pad))
        }
        guard dnnl_primitive_execute(e.primitive, stream, Int32(args.count), &args) == dnnl_success else { return false }
        if let r = e.outputReorder {
            guard r.run(engine, stream, from: y, to: output) else { return false }
        }
        return dnnl_stream_wait(stream) == dnnl_success
    }
}

/// A convolution whose reduction is too long for one oneDNN primitive (`DNNLConvolution.maxReduction`: 512-channel
/// 3x3 layers of VGG and ResNet), run as parts over consecutive input channels, each a oneDNN convolution adding
/// into the output (`sum` post-op): the first with the bias and the residual, the last with the activation. The
/// output sums the parts in a fixed order, so results stay reproducible. Blocked layouts only (a part's input is
/// then whole channel blocks of the input, found by an offset), one image at a time.
final class DNNLSplitConvolution: @unchecked Sendable {
    let descriptor: ConvDescriptor
    /// The parts, in the order they add into the output.
    let parts: [DNNLConvolution]
    /// The bias of every part but the first.
    private let zeros: UnsafeMutablePointer<Float>

    /// Splits `w` into parts of whole 16-channel blocks (a block of either blocked layout starts at each part),
    /// as even as possible; nil when it needs no split, cannot be split (groups) or a part is refused.
    /// Releases the pages of `w` (the parts refill them if the own kernels are ever needed).
    init?(_ w: PackedConvWeights, activation: Activation) {
        let d = w.descriptor
        let taps = d.kernelH * d.kernelW
        guard d.groups == 1, !w.depthwise, d.inChannels * taps > DNNLConvolution.maxReduction else { return nil }
        let blocks = (d.inChannels + 15) / 16, perPart = DNNLConvolution.maxReduction / (taps * 16)
        guard perPart >= 1 else { return nil }
        let count = (blocks + perPart - 1) / perPart
        var parts: [DNNLConvolution] = []
        var restorers: [(UnsafeMutablePointer<Float>) -> Bool] = []
        for i in 0..<count {
            let lo = i * blocks / count * 16, hi = min((i + 1) * blocks / count * 16, d.inChannels)
            guard let p = DNNLConvolution(w, activation: i == count - 1 ? activation : .none, part: lo..<hi),
                  let r = p.sourceRestorer() else { return nil }
            parts.append(p)
            restorers.append(r)
        }
        descriptor = d
        self.parts = parts
        zeros = .allocate(capacity: d.outChannels)
        zeros.initialize(repeating: 0, count: d.outChannels)
        w.releasePages { dst in restorers.allSatisfy { $0(dst) } }
    }

    deinit { zeros.deallocate() }

    /// The parts' primitives for one image of `key`; nil unless input and output are in one blocked layout
    /// and oneDNN runs every part there without reorders.
    func entries(_ key: DNNLConvolution.Key, geometry g: WindowGeometry) -> [DNNLConvolution.Entry]? {
        guard key.input.isBlocked, key.output == key.input else { return nil }
        var result: [DNNLConvolution.Entry] = []
        for (i, p) in parts.enumerated() {
            var k = key
            k.batch = 1
            k.residual = i > 0 || key.residual
            guard let e = p.entry(k, geometry: g), e.inputReorder == nil, e.outputReorder == nil else { return nil }
            result.append(e)
        }
        return result
    }

    /// Bytes of scratch `run` needs (the parts run one after another).
    static func scratchBytes(_ entries: [DNNLConvolution.Entry]) -> Int {
        entries.map(\.totalScratchBytes).max() ?? 0
    }

    /// Runs the parts image by image; false when a oneDNN call fails.
    func run(_ entries: [DNNLConvolution.Entry], batch: Int, geometry g: WindowGeometry, layout: ActivationLayout,
             input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>, residual: UnsafePointer<Float>?,
             bias: UnsafeMutablePointer<Float>, scratch: UnsafeMutableRawPointer?, threads: Int) -> Bool {
        guard entries.count == parts.count else { return false }
        let inImage = layout.count(n: 1, h: g.inH, w: g.inW, c: descriptor.inChannels)
        let outImage = layout.count(n: 1, h: g.outH, w: g.outW, c: descriptor.outChannels)
        for b in 0..<batch {
            let x = input + b * inImage, y = output + b * outImage
            for (i, (p, e)) in zip(parts, entries).enumerated() {
                // Whole channel blocks: channel c0 (a multiple of the block) starts c0 x H x W floats in.
                let part = x + p.channels.lowerBound * g.inH * g.inW
                // Later parts add into what the output holds (their entries are made for a residual).
                let r = i == 0 ? residual.map { $0 + b * outImage } : nil
                guard p.run(e, input: part, output: y, residual: r, bias: i == 0 ? bias : zeros, scratch: scratch,
                            threads: threads) else { return false }
            }
        }
        return true
    }
}
#endif
