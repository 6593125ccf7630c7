import Testing
import ZooKernels

// The kernels' numbers are checked against torch in KernelGridTests (kernels/grid.safetensors).
// These are the window rules on their own: TF "same" and torch's ceil mode, and refused descriptors.

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
