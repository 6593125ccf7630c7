import Testing
import ZooImages
import ZooTestSupport

/// 16-bit gray PNGs: Pillow opens them as `I;16` and `convert("RGB")` clips each value to 255.
/// `DecodeTests` compares every case with Pillow bit for bit; these checks show that the
/// references can tell clipping from the other plausible readings (so a decoder taking the high
/// byte, or the low byte, cannot pass them).
@Suite struct Gray16Tests {
    @Test(arguments: ["gray16_low", "gray16_interlaced"])
    func referenceSeparatesClippingFromByteReadings(_ name: String) throws {
        let c = try ImageCase.named(name, format: "png")
        let reference = try c.pillowImage()
        // A high-byte reading of 0...765 gives only 0, 1 and 2; Pillow keeps mid values.
        #expect(reference.pixels.contains { $0 > 2 && $0 < 255 }, "\(name): no mid values")
        // A low-byte reading would wrap values above 255; Pillow clips them to 255.
        #expect(reference.pixels.filter { $0 == 255 }.count > reference.pixels.count / 20, "\(name): few clipped values")
        let image = try ImageDecoder.decode(path: try c.path)
        let d = Fixture.diff(image.pixels, reference.pixels)
        #expect(image.pixels.count == reference.pixels.count && d.differing == 0, "\(name): \(d.differing) values differ from Pillow, max \(d.max)")
    }
}
