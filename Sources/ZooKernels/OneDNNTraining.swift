// A convolution's training passes (forward, backward data, backward weights) through oneDNN's
// primitives, on NCHW buffers: the training engine's layout. Every oneDNN call of the training path
// lives in this file (the inference path's are in OneDNN.swift); `TrainingConvolution` is its door.
#if canImport(CDNNL)
import CDNNL
#if canImport(Glibc)
import Glibc
#endif

/// The three primitives of one convolution shape (batch, sizes, threads), created once and cached.
///
/// Each primitive works in the layouts oneDNN prefers for it (usually 8-channel blocks on AVX2);
/// the caller's NCHW activations and OIHW weights are reordered into them and the results back, in
/// scratch memory allocated per call.
final class DNNLTrainingPlan: @unchecked Sendable {
    let runtime: DNNLRuntime
    /// The caller's layouts: NCHW source and destination, [g,] O, I, H, W weights, [O] bias.
    var userSrc = dnnl_memory_desc_t(), userDst = dnnl_memory_desc_t(), userWeights = dnnl_memory_desc_t()
    var bias = dnnl_memory_desc_t()
    let hasBias: Bool
    let forward: Pass, backwardData: Pass, backwardWeights: Pass

    /// One primitive and the layouts it was created with.
    final class Pass: @unchecked Sendable {
        let pd: dnnl_primitive_desc_t
        let primitive: dnnl_primitive_t
        let implementation: String
        let scratchBytes: Int
        init?(_ pd: dnnl_primitive_desc_t, threads: Int, runtime: DNNLRuntime) {
            var name: UnsafePointer<CChar>?
            _ = dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &name)
            implementation = name.map { String(cString: $0) } ?? "?"
            scratchBytes = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0).map { dnnl_memory_desc_get_size($0) } ?? 0
            var prim: dnnl_primitive_t?
            // The reference implementations are far slower than the engine's own loops.
            runtime.threads(threads)
            guard !implementation.hasPrefix("ref"), dnnl_primitive_create(&prim, pd) == dnnl_success, let prim else {
                dnnl_primitive_desc_destroy(pd)
                return nil
            }
            // oneDNN's primitive cache keys on the calling thread's thread count: a primitive made for another
            // count (another scratchpad) must not be used with this descriptor's scratchpad size.
            var made: const_dnnl_primitive_desc_t?
            guard dnnl_primitive_get_primitive_desc(prim, &made) == dnnl_success, let made,
                  (dnnl_primitive_desc_query_md(made, dnnl_query_scratchpad_md, 0).map { dnnl_memory_desc_get_size($0) } ?? 0) == scratchBytes
            else {
                dnnl_primitive_destroy(prim)
                dnnl_primitive_desc_destroy(pd)
                return nil
            }
            self.pd = pd
            primitive = prim
        }
        deinit {
            dnnl_primitive_destroy(primitive)
            dnnl_primitive_desc_destroy(pd)
        }
        /// The layout of argument `what` (a `dnnl_query_*_md`).
        func md(_ what: dnnl_query_t) -> dnnl_memory_desc_t? {
            dnnl_primitive_desc_query_md(pd, what, 0)?.pointee
        }
    }

    init?(_ s: TrainingConvolution.Shape, threads: Int) {
        guard let rt = DNNLRuntime.shared else { return nil }
        runtime = rt
        hasBias = s.bias
        rt.threads(threads)
        var srcDims: [Int64] = [s.batch, s.inC, s.inH, s.inW].map(Int64.init)
        var dstDims: [Int64] = [s.batch, s.outC, s.outH, s.outW].map(Int64.init)
        var biasDims: [Int64] = [Int64(s.outC)]
        var wDims: [Int64] = s.groups == 1 ? [s.outC, s.inC, s.kh, s.kw].map(Int64.init)
            : [s.groups, s.outC / s.groups, s.inC / s.groups, s.kh, s.kw].map(Int64.init)
        var srcAny = dnnl_memory_desc_t(), dstAny = dnnl_memory_desc_t(), wAny = dnnl_memory_desc_t()
        guard dnnl_memory_desc_init_by_tag(&userSrc, 4, &srcDims, dnnl_f32, dnnl_nchw) == dnnl_success,
              dnnl_memory_desc_init_by_tag(&userDst, 4, &dstDims, dnnl_f32, dnnl_nchw) == dnnl_success,
              dnnl_memory_desc_init_by_tag(&userWeights, Int32(wDims.count), &wDims, dnnl_f32, s.groups == 1 ? dnnl_oihw : dnnl_goihw) == dnnl_success,
              dnnl_memory_desc_init_by_tag(&bias, 1, &biasDims, dnnl_f32, dnnl_a) == dnnl_success,
              dnnl_memory_desc_init_by_tag(&srcAny, 4, &srcDims, dnnl_f32, dnnl_format_tag_any) == dnnl_success,
              dnnl_memory_desc_init_by_tag(&dstAny, 4, &dstDims, dnnl_f32, dnnl_format_tag_any) == dnnl_success,
              dnnl_memory_desc_init_by_tag(&wAny, Int32(wDims.count), &wDims, dnnl_f32, dnnl_format_tag_any) == dnnl_success
        else { return nil }
        var strides: [Int64] = [Int64(s.sh), Int64(s.sw)]
        var dilates: [Int64] = [Int64(s.dh - 1), Int64(s.dw - 1)]
        var padL: [Int64] = [Int64(s.padTop), Int64(s.padLeft)]
        var padR: [Int64] = [Int64(s.padBottom), Int64(s.padRight)]
        var attr: dnnl_primitive_attr_t?
        guard dnnl_primitive_attr_create(&attr) == dnnl_success, let attr else { return nil }
        defer { dnnl_primitive_attr_destroy(attr) }
        guard dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user) == dnnl_success else { return nil }

        // The bias descriptor, or none (oneDNN takes a null pointer for a convolution without bias).
        let biasMD: UnsafeMutablePointer<dnnl_memory_desc_t>? = s.bias ? .allocate(capacity: 1) : nil
        biasMD?.initialize(to: bias)
        defer { biasMD?.deallocate() }
        var fd = dnnl_convolution_desc_t()
        var fpd: dnnl_primitive_desc_t?
        guard dnnl_dilated_convolution_forward_desc_init(&fd, dnnl_forward_training, dnnl_convolution_direct, &srcAny, &wAny,
                                                         biasMD, &dstAny, &strides, &dilates, &padL, &padR) == dnnl_success,
              dnnl_primitive_desc_create(&fpd, &fd, attr, rt.engine, nil) == dnnl_success, let fpd,
              let forward = Pass(fpd, threads: threads, runtime: rt) else { return nil }
        self.forward = forward

        var dd = dnnl_convolution_desc_t()
        var dpd: dnnl_primitive_desc_t?
        guard dnnl_dilated_convolution_backward_data_desc_init(&dd, dnnl_convolution_direct, &srcAny, &wAny, &dstAny,
                                                               &strides, &dilates, &padL, &padR) == dnnl_success,
              dnnl_primitive_desc_create(&dpd, &dd, attr, rt.engine, forward.pd) == dnnl_success, let dpd,
              let backwardData = Pass(dpd, threads: threads, runtime: rt) else { return nil }
        self.backwardData = backwardData

        var wd = dnnl_convolution_desc_t()
        var wpd: dnnl_primitive_desc_t?
        guard dnnl_dilated_convolution_backward_weights_desc_init(&wd, dnnl_convolution_direct, &srcAny, &wAny, biasMD,
                                                                  &dstAny, &strides, &dilates, &padL, &padR) == dnnl_success,
              dnnl_primitive_desc_create(&wpd, &wd, attr, rt.engine, forward.pd) == dnnl_success, let wpd,
              let backwardWeights = Pass(wpd, threads: threads, runtime: rt) else { return nil }
        self.backwardWeights = backwardWeights
    }

    /// The implementations oneDNN chose, forward / backward data / backward weights.
    var implementations: String {
        "\(forward.implementation) / \(backwardData.implementation) / \(backwardWeights.implementation)"
    }

    // MARK: running

    /// Memory objects and scratch of one call, released together.
    final class Call {
        let engine: dnnl_engine_t
        var memories: [dnnl_memory_t] = []
        var buffers: [UnsafeMutableRawPointer] = []
        init(engine: dnnl_engine_t) { self.engine = engine }
        deinit {
            for m in memories { dnnl_memory_destroy(m) }
            for b in buffers { b.deallocate() }
        }
        /// A memory object of layout `md` over `p`.
        func memory(_ md: dnnl_memory_desc_t, _ p: UnsafeMutableRawPointer) -> dnnl_memory_t? {
            var md = md
            var m: dnnl_memory_t?
            guard dnnl_memory_create(&m, &md, engine, p) == dnnl_success, let m else { return nil }
            memories.append(m)
            return m
        }
        /// A fresh buffer for a value of layout `md`.
        func buffer(_ md: dnnl_memory_desc_t) -> UnsafeMutableRawPointer {
            var md = md
            let b = UnsafeMutableRawPointer.allocate(byteCount: max(64, dnnl_memory_desc_get_size(&md)), alignment: 64)
            buffers.append(b)
            return b
        }
    }

    /// Runs a reorder from `fromMD` over `from` into `toMD` over `to`.
    private func reorder(_ call: Call, _ stream: dnnl_stream_t, _ fromMD: dnnl_memory_desc_t, _ from: UnsafeMutableRawPointer,
                         _ toMD: dnnl_memory_desc_t, _ to: UnsafeMutableRawPointer) -> Bool {
        var a = fromMD, b = toMD
        var rpd: dnnl_primitive_desc_t?, prim: dnnl_primitive_t?
        defer {
            if let prim { dnnl_primitive_destroy(prim) }
            if let rpd { dnnl_primitive_desc_destroy(rpd) }
        }
        // oneDNN's primitive cache makes the second creation of the same reorder cheap.
        guard dnnl_reorder_primitive_desc_create(&rpd, &a, runtime.engine, &b, runtime.engine, nil) == dnnl_success,
              dnnl_primitive_create(&prim, rpd) == dnnl_success, let prim,
              let ma = call.memory(fromMD, from), let mb = call.memory(toMD, to) else { return false }
        var args = [dnnl_exec_arg_t(arg: zoo_dnnl_arg_from, memory: ma), dnnl_exec_arg_t(arg: zoo_dnnl_arg_to, memory: mb)]
        return dnnl_primitive_execute(prim, stream, 2, &args) == dnnl_success
    }

    /// `p` (layout `user`) as layout `want`: `p` itself when they are equal, else a reordered copy.
    private func input(_ call: Call, _ stream: dnnl_stream_t, _ user: dnnl_memory_desc_t, _ p: UnsafeRawPointer,
                       as want: dnnl_memory_desc_t) -> UnsafeMutableRawPointer? {
        var u = user, w = want
        let raw = UnsafeMutableRawPointer(mutating: p)
        if dnnl_memory_desc_equal(&u, &w) != 0 { return raw }
        let b = call.buffer(want)
        return reorder(call, stream, user, raw, want, b) ? b : nil
    }

    /// Where a result of layout `have` goes before it lands in `p` (layout `user`): `p` itself when
    /// they are equal, else a buffer that `finish` reorders into `p`.
    private func output(_ call: Call, _ user: dnnl_memory_desc_t, _ p: UnsafeMutableRawPointer,
                        as have: dnnl_memory_desc_t) -> UnsafeMutableRawPointer {
        var u = user, h = have
        return dnnl_memory_desc_equal(&u, &h) != 0 ? p : call.buffer(have)
    }

    private func finish(_ call: Call, _ stream: dnnl_stream_t, _ have: dnnl_memory_desc_t, _ q: UnsafeMutableRawPointer,
                        _ user: dnnl_memory_desc_t, _ p: UnsafeMutableRawPointer) -> Bool {
        q == p || reorder(call, stream, have, q, user, p)
    }

    private func execute(_ call: Call, _ stream: dnnl_stream_t, _ pass: Pass, _ args: [(Int32, dnnl_memory_desc_t, UnsafeMutableRawPointer)]) -> Bool {
        var list: [dnnl_exec_arg_t] = []
        for (arg, md, p) in args {
            guard let m = call.memory(md, p) else { return false }
            list.append(dnnl_exec_arg_t(arg: arg, memory: m))
        }
        if pass.scratchBytes > 0 {
            guard let spMD = pass.md(dnnl_query_scratchpad_md), let m = call.memory(spMD, call.buffer(spMD)) else { return false }
            list.append(dnnl_exec_arg_t(arg: zoo_dnnl_arg_scratchpad, memory: m))
        }
        return dnnl_primitive_execute(pass.primitive, stream, Int32(list.count), &list) == dnnl_success
    }

    func forward(x: UnsafePointer<Float>, w: UnsafePointer<Float>, b: UnsafePointer<Float>?, y: UnsafeMutablePointer<Float>,
                 threads: Int) -> Bool {
        runtime.threads(threads)
        let call = Call(engine: runtime.engine)
        guard let stream = runtime.stream(), let srcMD = forward.md(dnnl_query_src_md), let wMD = forward.md(dnnl_query_weights_md),
              let dstMD = forward.md(dnnl_query_dst_md),
              let src = input(call, stream, userSrc, x, as: srcMD), let weights = input(call, stream, userWeights, w, as: wMD)
        else { return false }
        let dst = output(call, userDst, y, as: dstMD)
        var args: [(Int32, dnnl_memory_desc_t, UnsafeMutableRawPointer)] = [
            (zoo_dnnl_arg_src, srcMD, src), (zoo_dnnl_arg_weights, wMD, weights), (zoo_dnnl_arg_dst, dstMD, dst)]
        if hasBias {
            guard let b else { return false }
            args.append((zoo_dnnl_arg_bias, bias, UnsafeMutableRawPointer(mutating: b)))
        }
        return execute(call, stream, forward, args) && finish(call, stream, dstMD, dst, userDst, y)
            && dnnl_stream_wait(stream) == dnnl_success
    }

    func backward(x: UnsafePointer<Float>, w: UnsafePointer<Float>, dy: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>?,
                  dw: UnsafeMutablePointer<Float>?, db: UnsafeMutablePointer<Float>?, threads: Int) -> Bool {
        runtime.threads(threads)
        let call = Call(engine: runtime.engine)
        guard let stream = runtime.stream() else { return false }
        var reorderedDy: [(dnnl_memory_desc_t, UnsafeMutableRawPointer)] = []
        /// dy in layout `md`, reordered once per layout.
        func gradient(_ md: dnnl_memory_desc_t) -> UnsafeMutableRawPointer? {
            for (have, p) in reorderedDy {
                var a = have, b = md
                if dnnl_memory_desc_equal(&a, &b) != 0 { return p }
            }
            guard let p = input(call, stream, userDst, dy, as: md) else { return nil }
            reorderedDy.append((md, p))
            return p
        }
        if let dx {
            let pass = backwardData
            guard let dsMD = pass.md(dnnl_query_diff_src_md), let wMD = pass.md(dnnl_query_weights_md),
                  let ddMD = pass.md(dnnl_query_diff_dst_md),
                  let weights = input(call, stream, userWeights, w, as: wMD), let dd = gradient(ddMD) else { return false }
            let ds = output(call, userSrc, dx, as: dsMD)
            guard execute(call, stream, pass, [(zoo_dnnl_arg_diff_src, dsMD, ds), (zoo_dnnl_arg_weights, wMD, weights),
                                               (zoo_dnnl_arg_diff_dst, ddMD, dd)]),
                  finish(call, stream, dsMD, ds, userSrc, dx) else { return false }
        }
        if dw != nil || db != nil {
            let pass = backwardWeights
            guard let srcMD = pass.md(dnnl_query_src_md), let dwMD = pass.md(dnnl_query_diff_weights_md),
                  let ddMD = pass.md(dnnl_query_diff_dst_md),
                  let src = input(call, stream, userSrc, x, as: srcMD), let dd = gradient(ddMD) else { return false }
            let weights: UnsafeMutableRawPointer = dw.map { output(call, userWeights, $0, as: dwMD) } ?? call.buffer(dwMD)
            var args: [(Int32, dnnl_memory_desc_t, UnsafeMutableRawPointer)] = [
                (zoo_dnnl_arg_src, srcMD, src), (zoo_dnnl_arg_diff_weights, dwMD, weights), (zoo_dnnl_arg_diff_dst, ddMD, dd)]
            if hasBias {
                let biasOut: UnsafeMutableRawPointer = db.map { UnsafeMutableRawPointer($0) } ?? call.buffer(bias)
                args.append((zoo_dnnl_arg_diff_bias, bias, biasOut))
            }
            guard execute(call, stream, pass, args) else { return false }
            if let dw, !finish(call, stream, dwMD, weights, userWeights, dw) { return false }
        }
        return dnnl_stream_wait(stream) == dnnl_success
    }
}
#endif

/// A convolution's training passes through the package's convolution backend (oneDNN): forward,
/// backward data and backward weights on NCHW float32 buffers and [g,] O, I, H, W weights.
///
/// Each call answers false when the backend cannot run the convolution (no oneDNN, or only its
/// reference implementation for this shape); the caller then runs its own kernels. The batch is split
/// into `threads` contiguous chunks, each run by oneDNN on one thread of the package's own pool
/// (`Parallel`), so no OpenMP team spins beside the engine's other parallel loops, and results are
/// deterministic for a given thread count. Primitives are created once per chunk shape and cached for
/// the process.
public enum TrainingConvolution {
    /// One convolution on one input size and batch.
    public struct Shape: Hashable, Sendable {
        /// Batch, channels in and out, groups.
        public var batch: Int, inC: Int, outC: Int, groups: Int
        /// Input and output sizes.
        public var inH: Int, inW: Int, outH: Int, outW: Int
        /// Kernel, stride and dilation.
        public var kh: Int, kw: Int, sh: Int, sw: Int, dh: Int, dw: Int
        /// Padding applied on each side.
        public var padTop: Int, padLeft: Int, padBottom: Int, padRight: Int
        /// True when the convolution adds a bias.
        public var bias: Bool

        /// A shape from a convolution's parameters and its resolved window.
        public init(batch: Int, inC: Int, outC: Int, groups: Int, kernel: (Int, Int), stride: (Int, Int), dilation: (Int, Int),
                    geometry g: WindowGeometry, bias: Bool) {
            self.batch = batch; self.inC = inC; self.outC = outC; self.groups = groups
            inH = g.inH; inW = g.inW; outH = g.outH; outW = g.outW
            kh = kernel.0; kw = kernel.1; sh = stride.0; sw = stride.1; dh = dilation.0; dw = dilation.1
            padTop = g.padTop; padLeft = g.padLeft; padBottom = g.padBottom; padRight = g.padRight
            self.bias = bias
        }
    }

    /// One success flag per task, written by that task only.
    private final class Flags: @unchecked Sendable {
        private let flags: UnsafeMutablePointer<Bool>
        private let count: Int
        init(_ n: Int) {
            count = n
            flags = .allocate(capacity: n)
            flags.initialize(repeating: false, count: n)
        }
        deinit { flags.deallocate() }
        subscript(t: Int) -> Bool {
            get { flags[t] }
            set { flags[t] = newValue }
        }
        var all: Bool { !(0..<count).contains { !flags[$0] } }
    }

    #if canImport(CDNNL)
    private struct Key: Hashable { var shape: Shape, threads: Int }
    private static let lock = KernelLock()
    nonisolated(unsafe) private static var plans: [Key: DNNLTrainingPlan?] = [:]

    private static func plan(_ s: Shape, threads: Int) -> DNNLTrainingPlan? {
        lock.locked {
            let key = Key(shape: s, threads: threads)
            if let p = plans[key] { return p }
            let p = DNNLTrainingPlan(s, threads: threads)
            plans[key] = p
            return p
        }
    }
    #endif

    /// The batch split over `threads` tasks: chunk `t` and its shape.
    private static func chunks(_ s: Shape, threads: Int) -> [(images: Range<Int>, shape: Shape)] {
        let tasks = max(1, min(threads, s.batch))
        return (0..<tasks).map { t in
            let images = Parallel.chunk(t, of: tasks, count: s.batch)
            var sub = s
            sub.batch = images.count
            return (images, sub)
        }
    }

    /// y = conv(x, w) + b, every element of `y` written; false (then `y` may be partly written) when the
    /// backend cannot run this convolution.
    public static func forward(_ s: Shape, x: UnsafePointer<Float>, w: UnsafePointer<Float>, b: UnsafePointer<Float>?,
                               y: UnsafeMutablePointer<Float>, threads: Int) -> Bool {
        #if canImport(CDNNL)
        let parts = chunks(s, threads: threads)
        guard parts.allSatisfy({ plan($0.shape, threads: 1) != nil }) else { return false }
        let inImage = s.inC * s.inH * s.inW, outImage = s.outC * s.outH * s.outW
        let ok = Flags(parts.count)
        Parallel.run(parts.count) { t in
            let (images, sub) = parts[t]
            guard !images.isEmpty, let p = plan(sub, threads: 1) else { return }
            ok[t] = p.forward(x: x + images.lowerBound * inImage, w: w, b: b, y: y + images.lowerBound * outImage, threads: 1)
        }
        return ok.all
        #else
        return false
        #endif
    }

    /// The gradients of a convolution, each overwritten when given: `dx` (input), `dw` (weights),
    /// `db` (bias; only for a shape with a bias). False when the backend cannot run this convolution
    /// (then the caller computes all three itself: some may have been written). The weight and bias
    /// gradients of the batch's chunks are added in chunk order.
    public static func backward(_ s: Shape, x: UnsafePointer<Float>, w: UnsafePointer<Float>, dy: UnsafePointer<Float>,
                                dx: UnsafeMutablePointer<Float>?, dw: UnsafeMutablePointer<Float>?, db: UnsafeMutablePointer<Float>?,
                                threads: Int) -> Bool {
        #if canImport(CDNNL)
        guard db == nil || s.bias else { return false }
        let parts = chunks(s, threads: threads)
        guard parts.allSatisfy({ plan($0.shape, threads: 1) != nil }) else { return false }
        let inImage = s.inC * s.inH * s.inW, outImage = s.outC * s.outH * s.outW
        let wCount = s.outC * (s.inC / s.groups) * s.kh * s.kw
        // Chunk t > 0 writes its weight and bias gradients into partial[t - 1], added to chunk 0's in order.
        let stride = (dw != nil ? wCount : 0) + (db != nil ? s.outC : 0)
        let extra = parts.count > 1 && stride > 0 ? UnsafeMutablePointer<Float>.allocate(capacity: (parts.count - 1) * stride) : nil
        defer { extra?.deallocate() }
        let ok = Flags(parts.count)
        Parallel.run(parts.count) { t in
            let (images, sub) = parts[t]
            guard !images.isEmpty, let p = plan(sub, threads: 1) else { return }
            let partial = t == 0 ? nil : extra.map { $0 + (t - 1) * stride }
            let dwT = dw.map { d in partial ?? d }
            let dbT = db.map { d in partial.map { $0 + (dw != nil ? wCount : 0) } ?? d }
            ok[t] = p.backward(x: x + images.lowerBound * inImage, w: w, dy: dy + images.lowerBound * outImage,
                               dx: dx.map { $0 + images.lowerBound * inImage }, dw: dwT, db: dbT, threads: 1)
        }
        guard ok.all else { return false }
        if let extra {
            /// Adds the chunks' partial sums at `offset` of each partial block into `into`, in chunk order.
            func add(into: UnsafeMutablePointer<Float>, count: Int, offset: Int) {
                let tasks = Parallel.tasks(threads, work: count * (parts.count - 1), minimumPerTask: 1 << 16)
                Parallel.run(tasks) { a in
                    for t in 1..<parts.count {
                        let p = extra + (t - 1) * stride + offset
                        for j in Parallel.chunk(a, of: tasks, count: count) { into[j] += p[j] }
                    }
                }
            }
            if let dw { add(into: dw, count: wCount, offset: 0) }
            if let db { add(into: db, count: s.outC, offset: dw != nil ? wCount : 0) }
        }
        return true
        #else
        return false
        #endif
    }

    /// The oneDNN implementations chosen for a shape (forward / backward data / backward weights) on the
    /// first chunk of its batch split over `threads`, nil when the backend cannot run it.
    public static func implementations(_ s: Shape, threads: Int) -> String? {
        #if canImport(CDNNL)
        return chunks(s, threads: threads).first.flatMap { plan($0.shape, threads: 1)?.implementations }
        #else
        return nil
        #endif
    }
}
