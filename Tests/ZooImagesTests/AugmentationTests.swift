import Foundation
import Testing
import ZooErrors
import ZooFiles
import ZooImages
import ZooJSON
import ZooTensor
import ZooTestSupport

/// The training augmentation against torchvision (tools/fixtures/gen_augment.py): `resized_crop` and `hflip`
/// on a real JPEG for the same boxes, `RandomResizedCrop.get_params`' fallback, and the sampled boxes'
/// ranges.
@Suite struct AugmentationTests {
    static func fixture(_ name: String) throws -> String { try TestSupport.fixture("augment/\(name)") }

    static func npy(_ name: String) throws -> [UInt8] {
        let file = try MappedFile(path: try fixture(name))
        return try file.withBytes { try NPY.read($0) }.bytes
    }

    static func boxes() throws -> JSONValue {
        try JSONValue.parse(String(decoding: try Data(contentsOf: URL(fileURLWithPath: try fixture("boxes.json"))), as: UTF8.self))
    }

    static func box(_ v: JSONValue?) throws -> RandomResizedCrop.Box {
        let a = v?.arrayValue?.compactMap(\.intValue) ?? []
        guard a.count == 4 else { throw ZooError(.badInput, "a box needs 4 integers") }
        return RandomResizedCrop.Box(top: a[0], left: a[1], height: a[2], width: a[3])
    }

    @Test func resizedCropAndFlipEqualTorchvisions() throws {
        let image = try ImageDecoder.decode(path: TestSupport.root.appendingPathComponent("zoo/samples/sailboat.jpg").path)
        let crop = try RandomResizedCrop(height: 224, width: 224)
        let boxes = try #require(try Self.boxes()["boxes"]?.arrayValue)
        #expect(boxes.count == 7)
        for (k, b) in boxes.enumerated() {
            let ours = try crop.resizedCrop(image, try Self.box(b))
            let ref = try Self.npy("crop_\(k).npy")
            let worst = zip(ours.pixels, ref).map { abs(Int($0) - Int($1)) }.max() ?? 255
            #expect(ref.count == 224 * 224 * 3 && worst <= 1, "box \(k): max difference \(worst)/255")
            let flipped = try ours.flippedHorizontally()
            let refFlip = try Self.npy("crop_\(k)_flip.npy")
            #expect((zip(flipped.pixels, refFlip).map { abs(Int($0) - Int($1)) }.max() ?? 255) <= 1, "box \(k) flipped")
            // Negative control: the unflipped crop is not torchvision's flip.
            #expect((zip(ours.pixels, refFlip).map { abs(Int($0) - Int($1)) }.max() ?? 0) > 1)
        }
    }

    @Test func fallbackIsTorchvisionsCentreCrop() throws {
        for f in try #require(try Self.boxes()["fallback"]?.arrayValue) {
            let size = f["size"]?.arrayValue?.compactMap(\.intValue) ?? [1, 1]
            var rng = SplitMix64(state: 1)
            let ours = RandomResizedCrop.parameters(imageWidth: size[0], imageHeight: size[1], scale: 0.08...1, ratio: (3.0 / 4)...(4.0 / 3), using: &rng)
            #expect(ours == (try Self.box(f["box"])), "\(size)")
        }
    }

    @Test func sampledBoxesFollowTheRanges() throws {
        var rng = SplitMix64(state: 42)
        var areas: [Double] = [], ratios: [Double] = []
        for _ in 0..<2000 {
            let b = RandomResizedCrop.parameters(imageWidth: 640, imageHeight: 480, scale: 0.08...1, ratio: (3.0 / 4)...(4.0 / 3), using: &rng)
            #expect(b.top >= 0 && b.left >= 0 && b.top + b.height <= 480 && b.left + b.width <= 640)
            areas.append(Double(b.width * b.height) / Double(640 * 480))
            ratios.append(Double(b.width) / Double(b.height))
        }
        // Rounding to whole pixels moves the bounds by a pixel's worth at the smallest crops.
        #expect(areas.min()! >= 0.075 && areas.max()! <= 1)
        #expect(ratios.min()! >= 0.74 && ratios.max()! <= 1.35)
        // Uniform area: about a quarter of the crops below 0.31 of the image (the boxes that do not fit are redrawn).
        let small = Double(areas.filter { $0 < 0.31 }.count) / 2000
        #expect(small > 0.2 && small < 0.35, "\(small)")
        // Seeded: the same seed gives the same boxes; another seed other boxes.
        var a = SplitMix64(state: 7), b = SplitMix64(state: 7), c = SplitMix64(state: 8)
        let pa = RandomResizedCrop.parameters(imageWidth: 640, imageHeight: 480, scale: 0.08...1, ratio: 0.75...(4.0 / 3), using: &a)
        #expect(pa == RandomResizedCrop.parameters(imageWidth: 640, imageHeight: 480, scale: 0.08...1, ratio: 0.75...(4.0 / 3), using: &b))
        #expect(pa != RandomResizedCrop.parameters(imageWidth: 640, imageHeight: 480, scale: 0.08...1, ratio: 0.75...(4.0 / 3), using: &c))
    }
}
