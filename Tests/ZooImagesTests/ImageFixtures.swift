import Foundation
import ZooImages
import ZooErrors
import ZooFiles
import ZooTensor
import ZooTestSupport

/// The cases written by tools/fixtures/gen_images.py.
struct ImageCase: Sendable, CustomStringConvertible {
    var name: String
    var file: String
    var format: String
    var refs: [String]
    var height: Int
    var width: Int
    var description: String { name + "." + (format == "png" ? "png" : "jpg") }

    static func all() throws -> [ImageCase] {
        let path = try TestSupport.fixture("images/manifest.json")
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        let json = try JSONSerialization.jsonObject(with: data) as? [String: Any]
        let cases = json?["cases"] as? [[String: Any]] ?? []
        return cases.compactMap { c in
            guard let name = c["name"] as? String, let file = c["file"] as? String, let format = c["format"] as? String,
                  let refs = c["refs"] as? [String], let size = c["size"] as? [Int], size.count == 2 else { return nil }
            return ImageCase(name: name, file: file, format: format, refs: refs, height: size[0], width: size[1])
        }
    }

    /// Cases listed at compile time for parameterized tests (the manifest must list each).
    static let pngNames = ["rgb_odd", "rgb_even", "gray", "gray16", "gray16_low", "gray16_interlaced", "rgb16", "rgba16", "rgba", "la", "la16", "palette",
                           "palette_trns", "gray1", "gray2", "gray4_trns", "interlaced", "gamma", "png_orient6"]
    static let jpegNames = ["rgb420", "rgb444_odd", "rgb422", "restart", "progressive", "grayj", "cmyk",
                            "orient1", "orient2", "orient3", "orient4", "orient5", "orient6", "orient7", "orient8"]

    static func named(_ name: String, format: String) throws -> ImageCase {
        guard let c = try all().first(where: { $0.name == name && $0.format == format }) else {
            throw ZooError(.io, "case \(name) (\(format)) missing from images/manifest.json; regenerate fixtures")
        }
        return c
    }

    var path: String { get throws { try TestSupport.fixture("images/\(file)") } }

    /// Pillow's decoded pixels.
    func pillowImage() throws -> RGBImage {
        let t = try Fixture.npy("images/\(name).rgb.npy")
        guard t.dtype == .u8, t.shape.count == 3, t.shape[2] == 3 else { throw ZooError.bad("bad reference \(t.shape)") }
        return try RGBImage(width: t.shape[1], height: t.shape[0], pixels: t.bytes)
    }
}

/// The camera-size JPEGs of tools/fixtures/gen_images.py for DCT-scaled decoding (`--fast-decode`),
/// with the size Pillow's `Image.draft` decoded them at.
struct DraftCase: Sendable, CustomStringConvertible {
    var name: String
    var file: String
    var fullSize: [Int]
    var draftSize: [Int]
    var description: String { name }
    var path: String { get throws { try TestSupport.fixture("images/\(file)") } }

    static func all() throws -> [DraftCase] {
        let path = try TestSupport.fixture("images/manifest.json")
        let json = try JSONSerialization.jsonObject(with: try Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any]
        return (json?["draft"] as? [[String: Any]] ?? []).compactMap { c in
            guard let name = c["name"] as? String, let file = c["file"] as? String, let full = c["full_size"] as? [Int],
                  let draft = c["draft_size"] as? [Int] else { return nil }
            return DraftCase(name: name, file: file, fullSize: full, draftSize: draft)
        }
    }
}

enum Fixture {
    static func npy(_ relative: String) throws -> Tensor {
        let path = try TestSupport.fixture(relative)
        let file = try MappedFile(path: path)
        return try withExtendedLifetime(file) { try NPY.read(file.bytes) }
    }

    /// Largest absolute difference, and the count of differing values.
    static func diff(_ a: [UInt8], _ b: [UInt8]) -> (max: Int, differing: Int) {
        var m = 0, n = 0
        for (x, y) in zip(a, b) where x != y { n += 1; m = max(m, abs(Int(x) - Int(y))) }
        return (m, n)
    }

    static func maxAbs(_ a: [Float], _ b: [Float]) -> Float {
        var m: Float = 0
        for (x, y) in zip(a, b) { m = max(m, abs(x - y)) }
        return m
    }
}
