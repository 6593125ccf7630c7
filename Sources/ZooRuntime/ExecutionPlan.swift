import Foundation
import ZooKernels
import ZooErrors
import ZooTensor

/// What an execution plan is compiled for: batch size, input height and width, the values wanted, threads.
struct PlanKey: Hashable {
    var n: Int, h: Int, w: Int
    var outputs: [Int]
    /// Threads of the layers' own splits: the scratch size depends on it.
    var threads: Int
}

/// Shapes, buffer offsets and scratch of one compiled graph for one input size and set of outputs.
struct ExecutionPlan {
    var shapes: [ValueShape]
    var geometry: [WindowGeometry?]
    var offsets: [Int]
    var run: [Int]
    var scratchOffset: Int
    var arenaFloats: Int
    /// Each convolution's input and output layouts (nil for other steps).
    var convLayouts: [ConvLayouts?]
    /// Each value's layout: blocked from convolutions (and poolings of blocked values) into readers that take
    /// it, planar for an input read only by first convolutions writing blocked, NHWC otherwise (`makePlan`).
    var layouts: [ActivationLayout]
}

extension Engine {
    /// The execution plan for an input of `key.n` x C x `key.h` x `key.w`, cached.
    func plan(_ key: PlanKey) throws -> ExecutionPlan {
        lock.lock()
        if let l = plans[key] { lock.unlock(); return l }
        lock.unlock()
        // Blocked layouts between convolutions when oneDNN takes them, on AVX2, in graphs without
        // depthwise convolutions; NHWC otherwise. Measured on 2 cores (benchmarks/RESULTS.md, docs/architecture.md):
        // on AVX2, blocked (8 channels) runs ResNet-18/50 about 8-10% faster than NHWC but MobileNets slower
        // (oneDNN's NHWC depthwise kernels are as fast, and the squeeze-and-excitation and pooling steps would
        // need reorders); on AVX-512 (only when DNNL_MAX_CPU_ISA lifts the AVX2 cap, OneDNN.swift), oneDNN's
        // NHWC kernels (brgconv) match or beat blocked (16 channels).
        guard let l = try (blockedLayoutsPay ? makePlan(key, threads: key.threads, blocked: true) : nil)
            ?? makePlan(key, threads: key.threads, blocked: false) else {
            throw ZooError(.badInput, "no kernel runs this graph at \(key.h)x\(key.w)")
        }
        lock.lock()
        plans[key] = l
        lock.unlock()
        return l
    }

    /// Whether plans of this graph try blocked layouts (`ConvolutionBackend`): with `automatic`, only
    /// 8-channel blocks (AVX2) and graphs without depthwise convolutions.
    var blockedLayoutsPay: Bool {
        switch backend {
        case .own, .oneDNNNHWC: return false
        case .oneDNNBlocked: return true
        case .automatic:
            return ConvolutionBackend.blockedLayout == .blocked8 && !steps.contains { step in
                if case let .conv(c) = step.kind { return c.descriptor.isDepthwise }
                return false
            }
        }
    }

    /// The plan; with `blocked`, nil when a convolution cannot take the blocked layouts chosen.
    private func makePlan(_ key: PlanKey, threads: Int, blocked: Bool) throws -> ExecutionPlan? {
        // Steps needed for the outputs.
        var needed = [Bool](repeating: false, count: steps.count)
        var stack = key.outputs
        while let s = stack.popLast() {
            if needed[s] { continue }
            needed[s] = true
            stack.append(contentsOf: steps[s].inputs)
        }
        let run = order.filter { needed[$0] }
        var shapes = [ValueShape](repeating: ValueShape(n: 0, h: 0, w: 0, c: 0), count: steps.count)
        var geometry = [WindowGeometry?](repeating: nil, count: steps.count)
        var scratch = 0
        let n = key.n
        func tooSmall(_ s: Int, _ x: ValueShape) -> ZooError {
            ZooError(.badInput, "input \(key.h)x\(key.w) is too small: the map reaching this layer is \(x.h)x\(x.w)", item: steps[s].name)
        }
        func channels(_ s: Int, _ x: ValueShape, _ expected: Int) throws {
            guard x.c == expected else {
                throw ZooError(.badInput, "layer expects \(expected) input channels, gets \(x.c)", item: steps[s].name)
            }
        }
        for s in run {
            let step = steps[s]
            let x = step.inputs.first.map { shapes[$0] } ?? ValueShape(n: n, h: key.h, w: key.w, c: inputChannels)
            switch step.kind {
            case .input:
                shapes[s] = x
            case let .conv(conv):
                let d = conv.descriptor
                try channels(s, x, d.inChannels)
                guard let g = conv.geometry(inH: x.h, inW: x.w) else { throw tooSmall(s, x) }
                geometry[s] = g
                shapes[s] = ValueShape(n: n, h: g.outH, w: g.outW, c: d.outChannels)
                if step.inputs.count == 2, shapes[step.inputs[1]] != shapes[s] {
                    throw ZooError(.badInput, "residual shape \(shapes[step.inputs[1]]) differs from \(shapes[s])", item: step.name)
                }
            case let .linear(lin):
                guard x.h * x.w * x.c == lin.inFeatures else {
                    throw ZooError(.badInput, "linear layer expects \(lin.inFeatures) features, gets \(x.h * x.w * x.c) (\(x.c)x\(x.h)x\(x.w))", item: step.name)
                }
                guard x.h == 1 && x.w == 1 else {
                    throw ZooError(.unsupported, "linear layer on a \(x.h)x\(x.w) map (flatten first)", item: step.name)
                }
                shapes[s] = ValueShape(n: n, h: 1, w: 1, c: lin.outFeatures)
            case let .maxPool(k, st, p, ceil):
                guard let g = WindowGeometry(inH: x.h, inW: x.w, kernel: k, stride: st, padding: p, ceilMode: ceil) else { throw tooSmall(s, x) }
                geometry[s] = g
                shapes[s] = ValueShape(n: n, h: g.outH, w: g.outW, c: x.c)
            case let .avgPool(k, st, p, ceil, _):
                guard let g = WindowGeometry(inH: x.h, inW: x.w, kernel: k, stride: st, padding: p, ceilMode: ceil) else { throw tooSmall(s, x) }
                geometry[s] = g
                shapes[s] = ValueShape(n: n, h: g.outH, w: g.outW, c: x.c)
            case let .adaptiveAvgPool(h, w):
                guard x.h > 0, x.w > 0 else { throw tooSmall(s, x) }
                shapes[s] = ValueShape(n: n, h: h, w: w, c: x.c)
            case .add:
                let y = shapes[step.inputs[1]]
                guard x == y else { throw ZooError(.badInput, "cannot add \(x.c)x\(x.h)x\(x.w) and \(y.c)x\(y.h)x\(y.w)", item: step.name) }
                shapes[s] = x
            case .scale:
                let y = shapes[step.inputs[1]]
                guard y.c == x.c, y.h == 1, y.w == 1 else {
                    throw ZooError(.badInput, "cannot scale \(x.c)x\(x.h)x\(x.w) by \(y.c)x\(y.h)x\(y.w)", item: step.name)
                }
                shapes[s] = x
            case let .affine(scale, _, _):
                try channels(s, x, scale.count)
                shapes[s] = x
            case let .layerNorm(gamma, _, _):
                try channels(s, x, gamma.count)
                shapes[s] = x
            case .activation:
                shapes[s] = x
            case .flatten:
                shapes[s] = ValueShape(n: n, h: 1, w: 1, c: x.h * x.w * x.c)
            }
            guard shapes[s].h > 0, shapes[s].w > 0 else { throw tooSmall(s, x) }
        }
        // Layouts: a value is blocked when it comes from a convolution that takes blocked layouts, or from a
        // pooling of a blocked value (pooling is per channel: it runs on the blocks as they are), every reader
        // takes it blocked (convolutions, poolings whose output is blocked, and flatten, which writes NCHW order
        // from either layout) and it is not an output; a residual and the output it is added into share one layout.
        var layout = [ActivationLayout](repeating: .nhwc, count: steps.count)
        var convLayouts = [ConvLayouts?](repeating: nil, count: steps.count)
        func blockedConv(_ s: Int) -> Bool {
            if case let .conv(c) = steps[s].kind { return c.acceptsBlockedLayouts }
            return false
        }
        func pooling(_ s: Int) -> Bool {
            switch steps[s].kind {
            case .maxPool, .avgPool, .adaptiveAvgPool: return true
            default: return false
            }
        }
        func flatten(_ s: Int) -> Bool {
            if case .flatten = steps[s].kind { return true }
            return false
        }
        // A convolution oneDNN cannot run on blocked layouts keeps NHWC; the layouts are then chosen again.
        var nhwcOnly = Set<Int>()
        layouts: while true {
            layout = [ActivationLayout](repeating: .nhwc, count: steps.count)
            convLayouts = [ConvLayouts?](repeating: nil, count: steps.count)
            scratch = 0
            if blocked {
                func candidate(_ s: Int) -> Bool { blockedConv(s) && !nhwcOnly.contains(s) }
                var readers = [[Int]](repeating: [], count: steps.count)
                for s in run { for v in steps[s].inputs { readers[v].append(s) } }
                let outputs = Set(key.outputs)
                // Every possible blocked value, then removed until the rules hold.
                var isBlocked = [Bool](repeating: false, count: steps.count)
                for s in run where (candidate(s) || pooling(s)) && !outputs.contains(s) && !readers[s].isEmpty {
                    isBlocked[s] = true
                }
                var changed = true
                while changed {
                    changed = false
                    for s in run where isBlocked[s] {
                        let readersTake = readers[s].allSatisfy { r in candidate(r) || (pooling(r) && isBlocked[r]) || flatten(r) }
                        let sourceFits = !pooling(s) || isBlocked[steps[s].inputs[0]]
                        if !readersTake || !sourceFits {
                            isBlocked[s] = false
                            changed = true
                        }
                    }
                    for s in run where blockedConv(s) && steps[s].inputs.count == 2 {
                        let r = steps[s].inputs[1]
                        if isBlocked[s] != isBlocked[r] {
                            isBlocked[s] = false
                            isBlocked[r] = false
                            changed = true
                        }
                    }
                }
                for s in run where isBlocked[s] { layout[s] = ConvolutionBackend.blockedLayout }
                // The input stays planar (NCHW, as given) when its readers are first convolutions writing
                // blocked: oneDNN's fast kernels for a few input channels read planar, not NHWC.
                for s in run where steps[s].inputs.isEmpty && !outputs.contains(s) && !readers[s].isEmpty {
                    if readers[s].allSatisfy({ r in
                        guard case let .conv(c) = steps[r].kind, isBlocked[r], steps[r].inputs[0] == s else { return false }
                        return c.descriptor.inChannels < 8
                    }) {
                        layout[s] = .nchw
                    }
                }
            }
            for s in run {
                guard case let .conv(conv) = steps[s].kind, let g = geometry[s] else { continue }
                let layouts = ConvLayouts(input: layout[steps[s].inputs[0]], output: layout[s])
                guard let c = conv.scratchCount(batch: n, geometry: g, threads: threads, residual: steps[s].inputs.count == 2, layouts: layouts) else {
                    if layouts == .nhwc { throw ZooError(.badInput, "no kernel runs this convolution", item: steps[s].name) }
                    nhwcOnly.insert(s)
                    continue layouts
                }
                scratch = max(scratch, c)
                convLayouts[s] = layouts
            }
            break
        }
        // Last use of each value; outputs live to the end.
        var lastUse = [Int](repeating: -1, count: steps.count)
        for (pos, s) in run.enumerated() { for v in steps[s].inputs { lastUse[v] = pos } }
        for v in key.outputs { lastUse[v] = Int.max }
        // Greedy slot assignment.
        var slotCapacity: [Int] = []
        var free: [Int] = []
        var slotOf = [Int](repeating: -1, count: steps.count)
        for (pos, s) in run.enumerated() {
            let sh = shapes[s]
            let size = (layout[s].count(n: sh.n, h: sh.h, w: sh.w, c: sh.c) + 15) & ~15
            var pick = -1
            for (fi, slot) in free.enumerated() where slotCapacity[slot] >= size {
                if pick < 0 || slotCapacity[slot] < slotCapacity[free[pick]] { pick = fi }
            }
            if pick < 0, !free.isEmpty {
                pick = free.indices.max { slotCapacity[free[$0]] < slotCapacity[free[$1]] } ?? -1
            }
            let slot: Int
            if pick >= 0 {
                slot = free.remove(at: pick)
                slotCapacity[slot] = max(slotCapacity[slot], size)
            } else {
                slot = slotCapacity.count
                slotCapacity.append(size)
            }
            slotOf[s] = slot
            for v in Set(steps[s].inputs) where lastUse[v] == pos { free.append(slotOf[v]) }
        }
        var slotOffset: [Int] = []
        var total = 0
        for c in slotCapacity { slotOffset.append(total); total += c }
        let offsets = slotOf.map { $0 < 0 ? -1 : slotOffset[$0] }
        let scratchOffset = total
        total += (scratch + 15) & ~15
        return ExecutionPlan(shapes: shapes, geometry: geometry, offsets: offsets, run: run, scratchOffset: scratchOffset,
                      arenaFloats: max(total, 16), convLayouts: convLayouts, layouts: layout)
    }

    // MARK: arenas

    func takeArena(_ floats: Int) -> UnsafeMutablePointer<Float> {
        lock.lock()
        if var list = arenas[floats], let p = list.popLast() {
            arenas[floats] = list
            lock.unlock()
            return p.assumingMemoryBound(to: Float.self)
        }
        lock.unlock()
        let raw = UnsafeMutableRawPointer.allocate(byteCount: floats * 4, alignment: 64)
        return raw.bindMemory(to: Float.self, capacity: floats)
    }

    func returnArena(_ p: UnsafeMutablePointer<Float>, _ floats: Int) {
        lock.lock()
        defer { lock.unlock() }
        if arenas.values.reduce(0, { $0 + $1.count }) >= 8 {
            p.deallocate()
            return
        }
        arenas[floats, default: []].append(UnsafeMutableRawPointer(p))
    }

    // MARK: running

    /// Runs the graph on an NCHW input; returns the requested values as tensors
    /// ([N, C, H, W] maps, or [N, F] for flat values) and, when asked, the global average of the last.
    func run(_ input: Tensor, outputs: [Int], threads: Int, poolLast: Bool = false) throws -> [Tensor] {
        guard input.rank == 4 else {
            throw ZooError(.badInput, "input must be [N, \(inputChannels), H, W], got shape \(input.shape)", item: "input")
        }
        guard input.shape[1] == inputChannels else {
            throw ZooError(.badInput, "input has \(input.shape[1]) channels, the model takes \(inputChannels)", item: "input")
        }
        guard input.dtype.isFloatingPoint else {
            throw ZooError(.badInput, "input dtype \(input.dtype.name) is not a float type", item: "input")
        }
        let n = input.shape[0], h = input.shape[2], w = input.shape[3]
        guard n > 0, h > 0, w > 0 else { throw ZooError(.badInput, "input shape \(input.shape) is empty", item: "input") }
        let threads = max(1, threads)
        let runStart = Engine.profiling ? DispatchTime.now().uptimeNanoseconds : 0
        defer {
            if Engine.profiling {
                let dt = Double(DispatchTime.now().uptimeNanoseconds - runStart) / 1e6
                FileHandle.standardError.write(Data("profile-run \(String(format: "%.3f", dt)) ms\n".utf8))
            }
        }
        let converted: Tensor? = input.dtype == .f32 ? nil : try Tensor(shape: input.shape, floats: input.floats())
        // Batch split: the largest multiple of `threads` images is cut into one contiguous slice per
        // thread, each running the whole graph single-threaded in its own arena (no synchronisation
        // per layer); the remaining images (all of them when the batch is smaller than the thread
        // count) run after, every layer splitting its own work across the threads. The slices depend
        // only on `n` and `threads`, so results are deterministic for a given thread count.
        // Whole-graph slices per thread pay off while each thread can afford to stream all the
        // weights itself: measured on 2 cores, mobilenet_v3_small batch 8 went 463 -> 598 img/s, but
        // vgg16 (528 MB of weights) went 5.4 -> 5.0. Larger models keep per-layer parallelism.
        let (concurrent, rest) = weightBytes <= Engine.batchSplitWeightLimit
            ? Engine.batchSlices(batch: n, threads: threads) : ([], 0..<n)
        let slices = concurrent + (rest.map { [$0] } ?? [])
        var plans: [ExecutionPlan] = []
        for (i, r) in slices.enumerated() {
            let layerThreads = i < concurrent.count ? 1 : threads
            if i > 0, i < concurrent.count, slices[i - 1].count == r.count { plans.append(plans[i - 1]); continue }
            plans.append(try self.plan(PlanKey(n: r.count, h: h, w: w, outputs: outputs, threads: layerThreads)))
        }
        var arenas: [UnsafeMutablePointer<Float>] = []
        for l in plans { arenas.append(takeArena(l.arenaFloats)) }
        defer { for (a, l) in zip(arenas, plans) { returnArena(a, l.arenaFloats) } }
        try (converted ?? input).withUnsafeBytes { raw in
            guard let base = raw.baseAddress else { throw ZooError(.badInput, "input has no data", item: "input") }
            let x = base.bindMemory(to: Float.self, capacity: n * inputChannels * h * w)
            let image = inputChannels * h * w
            if !concurrent.isEmpty {
                Parallel.run(concurrent.count) { p in
                    self.execute(plans[p], input: x + slices[p].lowerBound * image, arena: arenas[p], threads: 1)
                }
            }
            if let rest {
                let i = slices.count - 1
                execute(plans[i], input: x + rest.lowerBound * image, arena: arenas[i], threads: threads)
            }
        }
        // Outputs: each slice's rows land at its images' offsets (batch is the outer dimension of
        // NHWC and NCHW alike).
        var result: [Tensor] = []
        for v in outputs {
            let s0 = plans[0].shapes[v]
            let perImage = s0.h * s0.w * s0.c
            if steps[v].flat {
                result.append(try Tensor(dtype: .f32, shape: [n, s0.c]) { dst in
                    guard let o = dst.baseAddress?.bindMemory(to: Float.self, capacity: n * perImage) else { return }
                    for p in slices.indices {
                        (o + slices[p].lowerBound * perImage).update(from: arenas[p] + plans[p].offsets[v], count: slices[p].count * perImage)
                    }
                })
            } else {
                result.append(try Tensor(dtype: .f32, shape: [n, s0.c, s0.h, s0.w]) { dst in
                    guard let o = dst.baseAddress?.bindMemory(to: Float.self, capacity: n * perImage) else { return }
                    for p in slices.indices {
                        Elementwise.nhwcToNCHW(arenas[p] + plans[p].offsets[v], into: o + slices[p].lowerBound * perImage,
                                               batch: slices[p].count, channels: s0.c, height: s0.h, width: s0.w)
                    }
                })
            }
        }
        if poolLast, let v = outputs.last {
            let s0 = plans[0].shapes[v]
            result.append(try Tensor(dtype: .f32, shape: [n, s0.c]) { dst in
                guard let o = dst.baseAddress?.bindMemory(to: Float.self, capacity: n * s0.c) else { return }
                for p in slices.indices {
                    Pooling.adaptiveAverage(arenas[p] + plans[p].offsets[v], into: o + slices[p].lowerBound * s0.c,
                                            batch: slices[p].count, channels: s0.c, inH: s0.h, inW: s0.w, outH: 1, outW: 1, threads: 1)
                }
            })
        }
        return result
    }

    /// Models with more weight bytes than this run every batch with per-layer parallelism.
    static let batchSplitWeightLimit = 128 << 20

    /// How a batch of `batch` images runs on `threads` threads: `concurrent` slices, one per thread,
    /// each single-threaded, covering the largest multiple of `threads` images (none when the batch
    /// is smaller than the thread count or there is one thread), then `rest`, if any, with
    /// per-layer parallelism.
    static func batchSlices(batch: Int, threads: Int) -> (concurrent: [Range<Int>], rest: Range<Int>?) {
        guard threads > 1, batch >= threads else { return ([], 0..<batch) }
        let full = batch / threads * threads
        let concurrent = (0..<threads).map { Parallel.chunk($0, of: threads, count: full) }
        return (concurrent, full < batch ? full..<batch : nil)
    }

    /// Per-step timings on stderr when ZOO_PROFILE is set.
    static let profiling = ProcessInfo.processInfo.environment["ZOO_PROFILE"] != nil

    /// CPU time of the calling thread in nanoseconds (profiling).
    static func threadCPUTime() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    private func execute(_ l: ExecutionPlan, input: UnsafePointer<Float>, arena: UnsafeMutablePointer<Float>, threads: Int) {
        let scratch = arena + l.scratchOffset
        let profile = Engine.profiling
        for s in l.run {
            let t0 = profile ? DispatchTime.now().uptimeNanoseconds : 0
            let c0 = profile ? Engine.threadCPUTime() : 0
            defer {
                if profile {
                    let dt = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6
                    let dc = Double(Engine.threadCPUTime() - c0) / 1e6
                    let sh = l.shapes[s]
                    FileHandle.standardError.write(Data("profile \(steps[s].name) \(steps[s].kindName) cpu \(String(format: "%.3f", dc)) out \(sh.n)x\(sh.h)x\(sh.w)x\(sh.c) \(String(format: "%.3f", dt)) ms\n".utf8))
                }
            }
            let step = steps[s]
            let out = arena + l.offsets[s]
            let shape = l.shapes[s]
            let x: UnsafePointer<Float> = step.inputs.isEmpty ? input : UnsafePointer(arena + l.offsets[step.inputs[0]])
            let xs = step.inputs.isEmpty ? shape : l.shapes[step.inputs[0]]
            switch step.kind {
            case .input:
                if l.layouts[s] == .nchw {
                    out.update(from: x, count: shape.count)
                } else {
                    Elementwise.nchwToNHWC(x, into: out, batch: shape.n, channels: shape.c, height: shape.h, width: shape.w)
                }
            case let .conv(conv):
                let residual: UnsafePointer<Float>? = step.inputs.count == 2 ? UnsafePointer(arena + l.offsets[step.inputs[1]]) : nil
                if let g = l.geometry[s] {
                    conv.run(input: x, batch: shape.n, geometry: g, output: out, residual: residual, scratch: scratch, threads: threads,
                             layouts: l.convLayouts[s] ?? .nhwc)
                }
            case let .linear(lin):
                lin.run(input: x, batch: shape.n, output: out, threads: threads)
            case let .maxPool(k, st, _, _):
                // A blocked [N, C/b, H, W, b] value is an NHWC one of N x C/b images with b channels.
                let (images, channels) = l.layouts[s].pooledAsNHWC(n: shape.n, c: shape.c)
                if let g = l.geometry[s] {
                    Pooling.max(x, into: out, batch: images, channels: channels, geometry: g, kernel: k, stride: st, threads: threads)
                }
            case let .avgPool(k, st, _, _, include):
                let (images, channels) = l.layouts[s].pooledAsNHWC(n: shape.n, c: shape.c)
                if let g = l.geometry[s] {
                    Pooling.average(x, into: out, batch: images, channels: channels, geometry: g, kernel: k, stride: st,
                                    countIncludePad: include, threads: threads)
                }
            case let .adaptiveAvgPool(oh, ow):
                let (images, channels) = l.layouts[s].pooledAsNHWC(n: shape.n, c: shape.c)
                Pooling.adaptiveAverage(x, into: out, batch: images, channels: channels, inH: xs.h, inW: xs.w, outH: oh, outW: ow,
                                        threads: threads)
            case let .add(act):
                Elementwise.add(x, UnsafePointer(arena + l.offsets[step.inputs[1]]), into: out, count: shape.count, act, threads: threads)
            case .scale:
                Elementwise.scaleChannels(x, by: UnsafePointer(arena + l.offsets[step.inputs[1]]), into: out, batch: shape.n,
                                          pixels: shape.h * shape.w, channels: shape.c, threads: threads)
            case let .affine(scale, shift, act):
                scale.withUnsafeBufferPointer { sc in
                    shift.withUnsafeBufferPointer { sh in
                        guard let scp = sc.baseAddress, let shp = sh.baseAddress else { return }
                        Elementwise.affine(x, scale: scp, shift: shp, into: out, pixels: shape.n * shape.h * shape.w,
                                           channels: shape.c, act, threads: threads)
                    }
                }
            case let .layerNorm(gamma, beta, eps):
                gamma.withUnsafeBufferPointer { g in
                    beta.withUnsafeBufferPointer { b in
                        guard let gp = g.baseAddress, let bp = b.baseAddress else { return }
                        Elementwise.layerNorm(x, gamma: gp, beta: bp, eps: eps, into: out, pixels: shape.n * shape.h * shape.w,
                                              channels: shape.c, threads: threads)
                    }
                }
            case let .activation(act):
                out.update(from: x, count: shape.count)
                Elementwise.activate(out, count: shape.count, act, threads: threads)
            case .flatten:
                let from = l.layouts[step.inputs[0]]
                if from.isBlocked {
                    Elementwise.blockedToNCHW(x, into: out, batch: shape.n, channels: xs.c, height: xs.h, width: xs.w, block: from.block)
                } else {
                    Elementwise.nhwcToNCHW(x, into: out, batch: shape.n, channels: xs.c, height: xs.h, width: xs.w)
                }
            }
        }
    }
}
