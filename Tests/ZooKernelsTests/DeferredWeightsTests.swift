import Testing
import ZooKernels

// Deferred weights (`PackedConvWeights(_:deferring:owner:)`, what the runtime builds models with) reach oneDNN by a copy
// straight from PyTorch's layout, with the queued BatchNorm scales applied on the way; eager weights are packed, scaled
// in place, then copied from the packed layout. The weights are the same floats either way, so every backend must give
// bit-identical outputs for the two. Which path each took is checked through the backend string.

/// A convolution shape and the backend and layouts it runs on.
struct DeferredCase: Sendable, CustomTestStringConvertible {
    let name: String
    let d: ConvDescriptor
    let backend: ConvolutionBackend
    let blocked: Bool
    /// What `Conv2D.backend` must report: a prefix, and a fragment it must contain.
    let expectPrefix: String
    let expectContains: String
    var testDescription: String { "\(name) on \(backend.rawValue)" }
}

private let deferredCases: [DeferredCase] = {
    var cases: [DeferredCase] = []
    let shapes: [(String, ConvDescriptor, Bool)] = [
        ("3->10 3x3 (padded blocks)", ConvDescriptor(inChannels: 3, outChannels: 10, kernel: (3, 3), padding: .symmetric(1)), false),
        ("20->24 1x1", ConvDescriptor(inChannels: 20, outChannels: 24, kernel: (1, 1), padding: .symmetric(0)), false),
        ("12->18 3x3 groups 3", ConvDescriptor(inChannels: 12, outChannels: 18, kernel: (3, 3), groups: 3, padding: .symmetric(1)), false),
        ("13 depthwise 3x3", ConvDescriptor(inChannels: 13, outChannels: 13, kernel: (3, 3), groups: 13, padding: .symmetric(1)), false),
        ("300->16 3x3 (split in parts)", ConvDescriptor(inChannels: 300, outChannels: 16, kernel: (3, 3), padding: .symmetric(1)), true),
    ]
    for (name, d, blocked) in shapes {
        cases.append(DeferredCase(name: name, d: d, backend: .own, blocked: false, expectPrefix: "own", expectContains: ""))
        if ConvolutionBackend.oneDNNAvailable {
            cases.append(DeferredCase(name: name, d: d, backend: blocked ? .oneDNNBlocked : .oneDNNNHWC, blocked: blocked,
                                      expectPrefix: "oneDNN:", expectContains: blocked ? " in 2 parts" : ""))
        }
    }
    return cases
}()

/// Deterministic values in [-1, 1).
private func values(_ count: Int, seed: UInt64) -> [Float] {
    var s = seed
    return (0..<count).map { _ in
        s = s &* 6364136223846793005 &+ 1442695040888963407
        return Float(Int64(bitPattern: s >> 11) % 2_000_000) / 1_000_000 - 1
    }
}

/// Runs `conv` on `input` (already in the input layout) and returns the output.
private func run(_ conv: Conv2D, _ input: [Float], batch: Int, size: Int, layouts: ConvLayouts) throws -> [Float] {
    let g = try #require(conv.geometry(inH: size, inW: size))
    let scratch = try #require(conv.scratchCount(batch: batch, geometry: g, threads: 2, residual: false, layouts: layouts))
    var out = [Float](repeating: 0, count: layouts.output.count(n: batch, h: g.outH, w: g.outW, c: conv.descriptor.outChannels))
    var buffer = [Float](repeating: 0, count: max(scratch, 1))
    input.withUnsafeBufferPointer { x in
        out.withUnsafeMutableBufferPointer { o in
            buffer.withUnsafeMutableBufferPointer { s in
                guard let xp = x.baseAddress, let op = o.baseAddress else { return }
                conv.run(input: xp, batch: batch, geometry: g, output: op, scratch: s.baseAddress, threads: 2, layouts: layouts)
            }
        }
    }
    return out
}

@Test("deferred weights give bit-identical outputs to packed ones (scales folded in order)", arguments: deferredCases)
func deferredWeightsMatchPacked(_ c: DeferredCase) throws {
    let d = c.d
    let weight = values(d.weightCount, seed: 1)
    let s1 = values(d.outChannels, seed: 2).map { 1 + $0 / 2 }, s2 = values(d.outChannels, seed: 3).map { 1 + $0 / 3 }
    let bias = values(d.outChannels, seed: 4)
    let batch = 2, size = 9
    let layout = c.blocked ? ConvolutionBackend.blockedLayout : .nhwc
    let layouts = ConvLayouts(input: layout, output: layout)
    let input = values(layout.count(n: batch, h: size, w: size, c: d.inChannels), seed: 5)

    // `deferring` does not copy: the storage outlives every convolution built here.
    let storage = UnsafeMutableBufferPointer<Float>.allocate(capacity: weight.count)
    _ = storage.initialize(from: weight)
    defer { storage.deallocate() }
    func build(deferred: Bool, scales: [[Float]]) throws -> Conv2D {
        let source = UnsafeBufferPointer(storage)
        let w = try #require(deferred ? PackedConvWeights(d, deferring: source, owner: nil) : PackedConvWeights(d, weight: source))
        for s in scales { w.scaleOutputChannels(s) }
        return try #require(bias.withUnsafeBufferPointer { Conv2D(w, bias: $0, activation: .none, backend: c.backend) })
    }
    let eager = try build(deferred: false, scales: [s1, s2])
    let lazy = try build(deferred: true, scales: [s1, s2])
    let g = try #require(eager.geometry(inH: size, inW: size))
    for conv in [eager, lazy] {
        let backend = conv.backend(batch: batch, geometry: g, threads: 2, layouts: layouts)
        #expect(backend.hasPrefix(c.expectPrefix), "\(backend)")
        if !c.expectContains.isEmpty { #expect(backend.contains(c.expectContains), "\(backend)") }
    }
    let a = try run(eager, input, batch: batch, size: size, layouts: layouts)
    let b = try run(lazy, input, batch: batch, size: size, layouts: layouts)
    #expect(a.allSatisfy { $0.isFinite })
    #expect(a == b, "deferred and packed weights differ")
    // Negative control: a scale left out must show.
    let missing = try run(try build(deferred: true, scales: [s1]), input, batch: batch, size: size, layouts: layouts)
    #expect(missing != a)
}
