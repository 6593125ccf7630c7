import Foundation
import ZooErrors
import ZooTensor

/// torchvision's training augmentation (`RandomResizedCrop` + `RandomHorizontalFlip`, the recipe its
/// reference scripts and fine-tuning tutorial use), seeded with the zoo's SplitMix64: the sampled parameters
/// follow torchvision's algorithm; the values are the zoo's generator's, not torch's.
public struct RandomResizedCrop: Sendable, Equatable {
    /// A crop box in pixels.
    public struct Box: Sendable, Equatable {
        /// Top row, left column, height and width (torchvision's `i, j, h, w`).
        public var top, left, height, width: Int

        /// A box.
        public init(top: Int, left: Int, height: Int, width: Int) {
            self.top = top
            self.left = left
            self.height = height
            self.width = width
        }
    }

    /// Output height and width.
    public var height, width: Int
    /// The range of the crop's area as a fraction of the image's.
    public var scale: ClosedRange<Double>
    /// The range of the crop's aspect ratio (width / height), sampled log-uniformly.
    public var ratio: ClosedRange<Double>
    /// Resampling of the crop to the output size.
    public var interpolation: Interpolation
    /// Whether a horizontal flip is applied with probability 1/2.
    public var flip: Bool

    /// torchvision's defaults: scale 0.08...1, ratio 3/4...4/3, with a horizontal flip.
    public init(height: Int, width: Int, scale: ClosedRange<Double> = 0.08...1, ratio: ClosedRange<Double> = (3.0 / 4)...(4.0 / 3),
                interpolation: Interpolation = .bilinear, flip: Bool = true) throws {
        guard height > 0, width > 0 else { throw ZooError(.usage, "crop size \(height) x \(width) must be positive") }
        guard scale.lowerBound > 0, scale.upperBound <= 1, ratio.lowerBound > 0 else {
            throw ZooError(.usage, "scale must be within (0, 1] and ratio positive")
        }
        self.height = height
        self.width = width
        self.scale = scale
        self.ratio = ratio
        self.interpolation = interpolation
        self.flip = flip
    }

    /// torchvision's `RandomResizedCrop.get_params`: up to ten tries of a uniform area fraction and a
    /// log-uniform aspect ratio, rounded half to even as Python's `round`, kept when the box fits; else the
    /// centre crop with the ratio clamped to the range.
    public static func parameters(imageWidth w: Int, imageHeight h: Int, scale: ClosedRange<Double>, ratio: ClosedRange<Double>,
                                  using rng: inout SplitMix64) -> Box {
        let area = Double(w * h)
        let logLow = Foundation.log(ratio.lowerBound), logHigh = Foundation.log(ratio.upperBound)
        for _ in 0..<10 {
            let target = area * (scale.lowerBound + rng.nextUnit() * (scale.upperBound - scale.lowerBound))
            let aspect = Foundation.exp(logLow + rng.nextUnit() * (logHigh - logLow))
            let cw = Int((target * aspect).squareRoot().rounded(.toNearestOrEven))
            let ch = Int((target / aspect).squareRoot().rounded(.toNearestOrEven))
            if cw > 0, cw <= w, ch > 0, ch <= h {
                let top = Int(rng.next() % UInt64(h - ch + 1)), left = Int(rng.next() % UInt64(w - cw + 1))
                return Box(top: top, left: left, height: ch, width: cw)
            }
        }
        let inRatio = Double(w) / Double(h)
        var cw = w, ch = h
        if inRatio < ratio.lowerBound {
            ch = Int((Double(cw) / ratio.lowerBound).rounded(.toNearestOrEven))
        } else if inRatio > ratio.upperBound {
            cw = Int((Double(ch) * ratio.upperBound).rounded(.toNearestOrEven))
        }
        return Box(top: (h - ch) / 2, left: (w - cw) / 2, height: ch, width: cw)
    }

    /// torchvision's `resized_crop` on a PIL image: the box cropped, then resized to the output size with
    /// Pillow's resampling.
    public func resizedCrop(_ image: RGBImage, _ box: Box) throws -> RGBImage {
        try image.cropped(box).resized(width: width, height: height, interpolation: interpolation)
    }

    /// One augmented image: a sampled box resized, flipped with probability 1/2 (the flip's coin drawn after
    /// the box, as torchvision's transforms run in that order).
    public func apply(_ image: RGBImage, using rng: inout SplitMix64) throws -> RGBImage {
        let box = RandomResizedCrop.parameters(imageWidth: image.width, imageHeight: image.height, scale: scale, ratio: ratio, using: &rng)
        let out = try resizedCrop(image, box)
        return flip && rng.nextUnit() < 0.5 ? try out.flippedHorizontally() : out
    }
}

extension RGBImage {
    /// The pixels inside `box` (which must lie within the image).
    public func cropped(_ box: RandomResizedCrop.Box) throws -> RGBImage {
        guard box.top >= 0, box.left >= 0, box.height > 0, box.width > 0, box.top + box.height <= height, box.left + box.width <= width else {
            throw ZooError(.usage, "crop box \(box) outside the \(width) x \(height) image")
        }
        return try pixels.withUnsafeBufferPointer { src in
            try RGBImage(width: box.width, height: box.height) { dst in
                guard let s = src.baseAddress, let d = dst.baseAddress else { return }
                for y in 0..<box.height {
                    (d + y * box.width * 3).update(from: s + ((box.top + y) * width + box.left) * 3, count: box.width * 3)
                }
            }
        }
    }

    /// The image mirrored left to right (torchvision's `hflip`).
    public func flippedHorizontally() throws -> RGBImage {
        try pixels.withUnsafeBufferPointer { src in
            try RGBImage(width: width, height: height) { dst in
                for y in 0..<height {
                    let row = y * width * 3
                    for x in 0..<width {
                        let a = row + x * 3, b = row + (width - 1 - x) * 3
                        dst[a] = src[b]; dst[a + 1] = src[b + 1]; dst[a + 2] = src[b + 2]
                    }
                }
            }
        }
    }
}

extension Preprocessing {
    /// A training batch: each file decoded, augmented by `augmentation` with a generator seeded by `seed` and
    /// the image's position in the batch, then normalised as this recipe normalises (its own resize and crop
    /// are replaced by the augmentation's). Errors name the file.
    public func augmentedTensor(forFiles paths: [String], augmentation: RandomResizedCrop, seed: UInt64,
                                limits: ImageLimits = .standard) throws -> Tensor {
        let prepared = try paths.enumerated().map { i, path in
            do {
                var rng = SplitMix64(state: seed ^ (UInt64(i) &* 0xA24B_AED4_963E_E407))
                return try augmentation.apply(try ImageDecoder.decode(path: path, limits: limits), using: &rng)
            } catch let e as ZooError { throw e.inFile(path) }
        }
        return try tensor(prepared: prepared)
    }
}
