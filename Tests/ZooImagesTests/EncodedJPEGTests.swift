import CJPEG
import Foundation
import Testing
import ZooImages
import ZooErrors
import ZooFiles
import ZooTensor
import ZooTestSupport

/// JPEGs Pillow cannot write (YCCK), made with libjpeg through `zoo_jpeg_encode`, checked
/// against Pillow's decoding of the same file.
@Suite struct EncodedJPEGTests {
    func encode(_ pixels: [UInt8], width: Int, height: Int, components: Int, input: J_COLOR_SPACE,
                stored: J_COLOR_SPACE, progressive: Bool = false) throws -> [UInt8] {
        var result = zoo_jpeg_encoded()
        zoo_jpeg_encode(pixels, UInt32(width), UInt32(height), Int32(components), Int32(input.rawValue),
                        Int32(stored.rawValue), 90, progressive ? 1 : 0, &result)
        defer { zoo_jpeg_free(result.data) }
        try #require(result.status == 0, "libjpeg: \(withUnsafeBytes(of: result.message) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) })")
        let data = try #require(result.data)
        return Array(UnsafeBufferPointer(start: data, count: Int(result.size)))
    }

    /// Pillow's RGB for a file (Image.open(...).convert("RGB")), through an .npy.
    func pillowRGB(_ path: String) throws -> (mode: String, pixels: [UInt8], width: Int, height: Int) {
        let npy = path + ".npy"
        let r = try TestSupport.python("""
            import sys, numpy as np
            from PIL import Image
            im = Image.open(sys.argv[1]); print(im.mode)
            np.save(sys.argv[2], np.ascontiguousarray(np.asarray(im.convert("RGB"))))
            """, [path, npy])
        try #require(r.status == 0, "\(r.stderr)")
        let file = try MappedFile(path: npy)
        let t = try withExtendedLifetime(file) { try NPY.read(file.bytes) }
        return (r.stdout.trimmingCharacters(in: .whitespacesAndNewlines), t.bytes, t.shape[1], t.shape[0])
    }

    @Test func ycckMatchesPillow() throws {
        let w = 97, h = 61
        var cmyk = [UInt8](repeating: 0, count: w * h * 4)
        for y in 0..<h {
            for x in 0..<w {
                let i = (y * w + x) * 4
                // Adobe convention (inverted), as Photoshop writes and Pillow assumes.
                cmyk[i] = UInt8(255 - (x * 255) / (w - 1))
                cmyk[i + 1] = UInt8(255 - (y * 255) / (h - 1))
                cmyk[i + 2] = UInt8(255 - ((x + y) * 127) / (w + h))
                cmyk[i + 3] = UInt8(255 - ((x * y) % 97))
            }
        }
        let bytes = try encode(cmyk, width: w, height: h, components: 4, input: JCS_CMYK, stored: JCS_YCCK)
        // The Adobe APP14 segment says transform 2 (YCCK).
        let adobe = try #require((0..<(bytes.count - 12)).first { Array(bytes[$0..<($0 + 5)]) == Array("Adobe".utf8) })
        #expect(bytes[adobe + 11] == 2)

        let dir = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("ycck.jpg").path
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        let image = try ImageDecoder.decode(path: path)
        let pillow = try pillowRGB(path)
        #expect(pillow.mode == "CMYK")
        #expect(image.width == pillow.width && image.height == pillow.height)
        let d = Fixture.diff(image.pixels, pillow.pixels)
        #expect(d.max <= 1, "YCCK: \(d.differing) values differ from Pillow, max \(d.max)")
        print("ycck: \(d.differing) of \(image.pixels.count) values differ from Pillow, max \(d.max)")
        // Negative control: the pattern is not flat.
        #expect(Set(image.pixels).count > 50)
    }

    @Test func progressiveScanLimit() throws {
        let path = try ImageCase.named("progressive", format: "jpeg").path
        _ = try ImageDecoder.decode(path: path)
        let error = try #require(throws: ZooError.self) { try ImageDecoder.decode(path: path, limits: ImageLimits(maxJPEGScans: 3)) }
        #expect(error.description.contains("more than 3 scans"), "\(error)")
    }

    @Test func sampleImageDecodes() throws {
        let path = TestSupport.root.appendingPathComponent("zoo/samples/sailboat.jpg").path
        let image = try ImageDecoder.decode(path: path)
        #expect(image.width == 640 && image.height == 480)
        let batch = try Preprocessing.torchvision(resize: 232).tensor(forFiles: [path, path])
        #expect(batch.shape == [2, 3, 224, 224])
        #expect(Set(image.pixels).count > 100)
    }
}
