import Foundation
import Testing
import ZooImages
import ZooErrors
import ZooTestSupport

/// `ImageDecoder.size` (header only, what `zoo features --stages` lays its output out with) gives
/// the size Pillow gives after `exif_transpose` (the fixture manifest's `size`), for every PNG and
/// JPEG fixture, orientations included, and it reads no pixel data.
@Suite struct ImageSizeTests {
    @Test(arguments: ImageCase.pngNames + ImageCase.jpegNames)
    func headerSizeIsPillowsSize(_ name: String) throws {
        let c = try #require(try ImageCase.all().first { $0.name == name })
        let size = try ImageDecoder.size(path: try c.path)
        #expect(size.width == c.width && size.height == c.height, "\(name): header says \(size), Pillow \(c.width) x \(c.height)")
        let raw = try ImageDecoder.size(path: try c.path, applyOrientation: false)
        let decoded = try ImageDecoder.decode(path: try c.path, applyOrientation: false)
        #expect(raw.width == decoded.width && raw.height == decoded.height, "\(name): stored size")
    }

    @Test func sizeReadsNoPixelData() throws {
        // The headers of a JPEG with EXIF orientation 6 and of a PNG, with the pixel data cut off:
        // decoding fails, the size (turned for orientation 6) is still read. Negative control: the
        // orientation-6 JPEG's stored size differs from its upright one.
        for name in ["orient6", "rgb_odd"] {
            let c = try #require(try ImageCase.all().first { $0.name == name })
            let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: try c.path)))
            let cut = c.format == "png" ? 33 + 12 : min(bytes.count / 3, 2000)
            let head = Array(bytes.prefix(cut))
            #expect(throws: ZooError.self) { _ = try ImageDecoder.decode(bytes: head) }
            let size = try head.withUnsafeBytes { try ImageDecoder.size(bytes: $0) }
            #expect(size.width == c.width && size.height == c.height, "\(name): \(size)")
        }
        let c6 = try #require(try ImageCase.all().first { $0.name == "orient6" })
        let stored = try ImageDecoder.size(path: try c6.path, applyOrientation: false)
        #expect(stored.width == c6.height && stored.height == c6.width && c6.width != c6.height)
    }

    @Test func nonImagesAreRefused() throws {
        for bytes: [UInt8] in [[], [0xFF, 0xD8, 0xFF], Array("GIF89a....".utf8), [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0, 0]] {
            #expect(throws: ZooError.self) { _ = try bytes.withUnsafeBytes { try ImageDecoder.size(bytes: $0) } }
        }
    }
}
