import ZooErrors

/// Resampling filters, reproducing Pillow's `Image.resize` bit for bit on 8-bit RGB images.
///
/// torchvision's `Resize` on a PIL image calls `Image.resize`, so these are also torchvision's
/// results. `bilinear` and `bicubic` are Pillow's antialiased convolutions (the filter support
/// widens with the downscale factor), computed in 22-bit fixed point with an 8-bit
/// intermediate image between the horizontal and the vertical pass, exactly as
/// Pillow's Resample.c; `nearest` is Pillow's nearest-neighbour affine scaling.
public enum Interpolation: String, Sendable, CaseIterable {
    /// Nearest neighbour (Keras `load_img`'s default).
    case nearest
    /// Triangle filter with antialias (torchvision's default).
    case bilinear
    /// Keys cubic (a = -0.5) with antialias.
    case bicubic
}

extension RGBImage {
    /// The image resized to `width` x `height` with Pillow's algorithm for `interpolation`.
    /// Refuses outputs above `maxPixels` (default: `ImageLimits.standard.maxPixels`) before allocating.
    public func resized(width outW: Int, height outH: Int, interpolation: Interpolation = .bilinear,
                        maxPixels: Int = ImageLimits.standard.maxPixels) throws -> RGBImage {
        guard outW > 0, outH > 0 else { throw ZooError(.usage, "cannot resize to \(outW) x \(outH)") }
        guard width > 0, height > 0 else { throw ZooError.bad("cannot resize an empty image") }
        try RGBImage.checkPixels(width: outW, height: outH, maxPixels: maxPixels, "resized image")
        if outW == width, outH == height { return self }
        switch interpolation {
        case .nearest: return try nearest(outW, outH)
        case .bilinear, .bicubic:
            // Pillow 13 (python-pillow/Pillow#9549) runs the vertical pass first when the height
            // shrinks by more than twice as many pixels as the width; earlier Pillow always ran
            // the horizontal pass first. The order changes the 8-bit intermediate, so it is
            // reproduced (verified against Pillow 13 on 161 random sizes, see docs/images.md).
            var image = self
            let verticalFirst = outH < height && (height - outH) > 2 * (width - outW)
            if verticalFirst {
                image = try image.resampleVertical(outH, interpolation)
                if outW != width { image = try image.resampleHorizontal(outW, interpolation) }
            } else {
                if outW != width { image = try image.resampleHorizontal(outW, interpolation) }
                if outH != height { image = try image.resampleVertical(outH, interpolation) }
            }
            return image
        }
    }

    /// Throws when `width * height` overflows or exceeds `maxPixels`.
    static func checkPixels(width: Int, height: Int, maxPixels: Int, _ what: String) throws {
        let n = try Checked.mul(width, height, "\(what) pixel count")
        if n > maxPixels {
            throw ZooError.bad("\(what) of \(width) x \(height) pixels exceeds the limit of \(maxPixels) pixels")
        }
    }

    // Pillow's ImagingScaleAffine for NEAREST: source coordinate = floor(a0 * (x + 0.5)),
    // accumulated in double the same way.
    private func nearest(_ outW: Int, _ outH: Int) throws -> RGBImage {
        let a0 = Double(width) / Double(outW), a4 = Double(height) / Double(outH)
        var xs = [Int](repeating: -1, count: outW)
        var xo = a0 * 0.5
        for x in 0..<outW {
            let xin = xo < 0 ? -1 : Int(xo)
            if xin >= 0, xin < width { xs[x] = xin }
            xo += a0
        }
        var ys = [Int](repeating: -1, count: outH)
        var yo = a4 * 0.5
        for y in 0..<outH {
            let yin = yo < 0 ? -1 : Int(yo)
            if yin >= 0, yin < height { ys[y] = yin }
            yo += a4
        }
        let w = width
        return try pixels.withUnsafeBufferPointer { src in
            try RGBImage(width: outW, height: outH) { dst in
                for y in 0..<outH where ys[y] >= 0 {
                    let row = ys[y] * w
                    for x in 0..<outW where xs[x] >= 0 {
                        let s = (row + xs[x]) * 3, d = (y * outW + x) * 3
                        dst[d] = src[s]; dst[d + 1] = src[s + 1]; dst[d + 2] = src[s + 2]
                    }
                }
            }
        }
    }

    private func resampleHorizontal(_ outW: Int, _ f: Interpolation) throws -> RGBImage {
        let c = Coefficients(inSize: width, outSize: outW, filter: f)
        let w = width, h = height
        return try pixels.withUnsafeBufferPointer { src in
            try RGBImage(width: outW, height: h) { dst in
                c.k.withUnsafeBufferPointer { k in
                    for y in 0..<h {
                        let inRow = y * w * 3, outRow = y * outW * 3
                        for x in 0..<outW {
                            let xmin = c.bounds[2 * x], xn = c.bounds[2 * x + 1]
                            let kb = x * c.ksize
                            var s0 = Coefficients.half, s1 = Coefficients.half, s2 = Coefficients.half
                            var p = inRow + xmin * 3
                            for i in 0..<xn {
                                let kv = Int(k[kb + i])
                                s0 += Int(src[p]) * kv; s1 += Int(src[p + 1]) * kv; s2 += Int(src[p + 2]) * kv
                                p += 3
                            }
                            let d = outRow + x * 3
                            dst[d] = Coefficients.clip8(s0); dst[d + 1] = Coefficients.clip8(s1); dst[d + 2] = Coefficients.clip8(s2)
                        }
                    }
                }
            }
        }
    }

    private func resampleVertical(_ outH: Int, _ f: Interpolation) throws -> RGBImage {
        let c = Coefficients(inSize: height, outSize: outH, filter: f)
        let w = width
        let rowBytes = w * 3
        return try pixels.withUnsafeBufferPointer { src in
            try RGBImage(width: w, height: outH) { dst in
                c.k.withUnsafeBufferPointer { k in
                    for y in 0..<outH {
                        let ymin = c.bounds[2 * y], yn = c.bounds[2 * y + 1]
                        let kb = y * c.ksize
                        for b in 0..<rowBytes {
                            var s = Coefficients.half
                            var p = ymin * rowBytes + b
                            for i in 0..<yn {
                                s += Int(src[p]) * Int(k[kb + i])
                                p += rowBytes
                            }
                            dst[y * rowBytes + b] = Coefficients.clip8(s)
                        }
                    }
                }
            }
        }
    }
}

/// Pillow's precompute_coeffs + normalize_coeffs_8bpc (Resample.c).
struct Coefficients {
    static let precisionBits = 32 - 8 - 2
    static let half = 1 << (precisionBits - 1)

    let ksize: Int
    /// Per output index: first input index, number of taps.
    var bounds: [Int]
    /// Fixed-point weights, `ksize` per output index.
    var k: [Int32]

    static func clip8(_ v: Int) -> UInt8 {
        let s = v >> precisionBits
        return s < 0 ? 0 : (s > 255 ? 255 : UInt8(s))
    }

    static func support(_ f: Interpolation) -> Double {
        switch f { case .nearest: return 0.5; case .bilinear: return 1; case .bicubic: return 2 }
    }

    static func weight(_ f: Interpolation, _ x0: Double) -> Double {
        let x = x0 < 0 ? -x0 : x0
        switch f {
        case .nearest:
            return (x0 >= -0.5 && x0 < 0.5) ? 1 : 0
        case .bilinear:
            return x < 1 ? 1 - x : 0
        case .bicubic:
            let a = -0.5
            if x < 1 { return ((a + 2) * x - (a + 3)) * x * x + 1 }
            if x < 2 { return (((x - 5) * x + 8) * x - 4) * a }
            return 0
        }
    }

    init(inSize: Int, outSize: Int, filter: Interpolation) {
        let scale = Double(inSize) / Double(outSize)
        let filterscale = scale < 1 ? 1 : scale
        let support = Coefficients.support(filter) * filterscale
        let ksize = Int(support.rounded(.up)) * 2 + 1
        self.ksize = ksize
        var bounds = [Int](repeating: 0, count: outSize * 2)
        var kk = [Int32](repeating: 0, count: outSize * ksize)
        var pre = [Double](repeating: 0, count: ksize)
        let ss = 1.0 / filterscale
        for xx in 0..<outSize {
            let center = (Double(xx) + 0.5) * scale
            var ww = 0.0
            var xmin = Int(center - support + 0.5)
            if xmin < 0 { xmin = 0 }
            var xmax = Int(center + support + 0.5)
            if xmax > inSize { xmax = inSize }
            xmax -= xmin
            for x in 0..<max(xmax, 0) {
                let w = Coefficients.weight(filter, (Double(x + xmin) - center + 0.5) * ss)
                pre[x] = w
                ww += w
            }
            for x in 0..<max(xmax, 0) {
                if ww != 0 { pre[x] /= ww }
                let v = pre[x] * Double(1 << Coefficients.precisionBits)
                kk[xx * ksize + x] = Int32(v < 0 ? (-0.5 + v) : (0.5 + v))   // C's (int) truncates toward zero
            }
            bounds[2 * xx] = xmin
            bounds[2 * xx + 1] = max(xmax, 0)
        }
        self.bounds = bounds
        self.k = kk
    }
}
