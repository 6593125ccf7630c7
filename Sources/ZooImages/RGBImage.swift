import ZooErrors
import ZooTensor

/// An 8-bit RGB image: `height` rows of `width` pixels, each pixel three bytes R, G, B.
///
/// This is what every decoder produces (gray is replicated, alpha dropped, CMYK converted,
/// EXIF orientation applied), the same pixels Pillow gives for `Image.open(p).convert("RGB")`
/// after `ImageOps.exif_transpose`.
///
/// ```swift
/// let image = try ImageDecoder.decode(path: "cat.jpg")
/// let batch = try Preprocessing.torchvision(resize: 232).tensor(for: [image])   // [1, 3, 224, 224]
/// ```
public struct RGBImage: Sendable, Equatable {
    /// Width in pixels.
    public let width: Int
    /// Height in pixels.
    public let height: Int
    /// `height * width * 3` bytes, row-major, interleaved R, G, B.
    public private(set) var pixels: [UInt8]

    /// Creates an image from interleaved RGB bytes; throws when the count does not match.
    public init(width: Int, height: Int, pixels: [UInt8]) throws {
        guard width >= 0, height >= 0 else { throw ZooError.bad("negative image size \(width) x \(height)") }
        let need = try Checked.mul(try Checked.mul(width, height, "pixel count"), 3, "byte count")
        guard pixels.count == need else {
            throw ZooError.bad("a \(width) x \(height) RGB image needs \(need) bytes, got \(pixels.count)")
        }
        self.width = width
        self.height = height
        self.pixels = pixels
    }

    /// Creates an image whose bytes are written by `fill` (exactly `width * height * 3`).
    public init(width: Int, height: Int, fill: (UnsafeMutableBufferPointer<UInt8>) throws -> Void) throws {
        let need = try Checked.mul(try Checked.mul(width, height, "pixel count"), 3, "byte count")
        var bytes = [UInt8](repeating: 0, count: need)
        try bytes.withUnsafeMutableBufferPointer { try fill($0) }
        try self.init(width: width, height: height, pixels: bytes)
    }

    /// The pixel at column `x`, row `y` (no bounds check beyond the array's own).
    public subscript(x: Int, y: Int) -> (r: UInt8, g: UInt8, b: UInt8) {
        let i = (y * width + x) * 3
        return (pixels[i], pixels[i + 1], pixels[i + 2])
    }

    /// The image as a uint8 tensor of shape [height, width, 3] (HWC).
    public func tensor() throws -> Tensor {
        try Tensor(dtype: .u8, shape: [height, width, 3], bytes: pixels)
    }
}
