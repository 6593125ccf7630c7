/// The EXIF orientation tag (0x0112): how the stored pixels must be turned to be shown upright.
///
/// Values follow the EXIF specification and Pillow's `ImageOps.exif_transpose`.
public enum Orientation: Int, Sendable, CaseIterable {
    /// 1: stored upright.
    case up = 1
    /// 2: mirrored left-right.
    case upMirrored = 2
    /// 3: rotated 180 degrees.
    case down = 3
    /// 4: mirrored top-bottom.
    case downMirrored = 4
    /// 5: transposed (mirrored along the main diagonal).
    case leftMirrored = 5
    /// 6: must be rotated 90 degrees clockwise to be upright.
    case right = 6
    /// 7: transversed (mirrored along the anti-diagonal).
    case rightMirrored = 7
    /// 8: must be rotated 90 degrees counter-clockwise to be upright.
    case left = 8
}

extension RGBImage {
    /// The image turned upright according to `orientation` (Pillow's `exif_transpose`).
    public func oriented(_ orientation: Orientation) -> RGBImage {
        if orientation == .up { return self }
        let w = width, h = height
        let swaps = orientation.rawValue >= 5
        let ow = swaps ? h : w, oh = swaps ? w : h
        var out = [UInt8](repeating: 0, count: pixels.count)
        pixels.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for oy in 0..<oh {
                    for ox in 0..<ow {
                        let x: Int, y: Int
                        switch orientation {
                        case .up: x = ox; y = oy
                        case .upMirrored: x = w - 1 - ox; y = oy
                        case .down: x = w - 1 - ox; y = h - 1 - oy
                        case .downMirrored: x = ox; y = h - 1 - oy
                        case .leftMirrored: x = oy; y = ox                  // TRANSPOSE
                        case .right: x = oy; y = h - 1 - ox                 // ROTATE_270 (clockwise)
                        case .rightMirrored: x = w - 1 - oy; y = h - 1 - ox // TRANSVERSE
                        case .left: x = w - 1 - oy; y = ox                  // ROTATE_90 (counter-clockwise)
                        }
                        let s = (y * w + x) * 3, d = (oy * ow + ox) * 3
                        dst[d] = src[s]; dst[d + 1] = src[s + 1]; dst[d + 2] = src[s + 2]
                    }
                }
            }
        }
        // The byte count is unchanged, so this cannot fail.
        return (try? RGBImage(width: ow, height: oh, pixels: out)) ?? self
    }
}

/// Minimal, bounds-checked EXIF reader: only the orientation tag of IFD0.
enum EXIF {
    /// The orientation in the first APP1 "Exif" segment of a JPEG, if any (scans markers up to SOS).
    static func jpegOrientation(_ b: UnsafeRawBufferPointer) -> Orientation? {
        var i = 2
        while i + 4 <= b.count {
            guard b[i] == 0xFF else { return nil }
            let marker = b[i + 1]
            if marker == 0xFF { i += 1; continue }
            if marker == 0xD8 || marker == 0x01 || (0xD0...0xD7).contains(marker) { i += 2; continue }
            if marker == 0xDA || marker == 0xD9 { return nil }
            let length = Int(b[i + 2]) << 8 | Int(b[i + 3])
            guard length >= 2, i + 2 + length <= b.count else { return nil }
            let start = i + 4, end = i + 2 + length
            if marker == 0xE1, end - start >= 6,
               b[start] == 0x45, b[start + 1] == 0x78, b[start + 2] == 0x69, b[start + 3] == 0x66,
               b[start + 4] == 0, b[start + 5] == 0 {
                // Pillow uses the first Exif segment only.
                return orientation(tiff: UnsafeRawBufferPointer(rebasing: b[(start + 6)..<end]))
            }
            i = end
        }
        return nil
    }

    /// The orientation tag in TIFF-structured EXIF data (optionally prefixed by "Exif\0\0").
    static func orientation(tiff input: UnsafeRawBufferPointer) -> Orientation? {
        var t = input
        if t.count >= 6, Array(t[0..<6]) == [0x45, 0x78, 0x69, 0x66, 0, 0] {
            t = UnsafeRawBufferPointer(rebasing: t[6...])
        }
        guard t.count >= 8 else { return nil }
        let little: Bool
        if t[0] == 0x49, t[1] == 0x49 { little = true } else if t[0] == 0x4D, t[1] == 0x4D { little = false } else { return nil }
        func u16(_ o: Int) -> Int? {
            guard o >= 0, o + 2 <= t.count else { return nil }
            return little ? Int(t[o]) | Int(t[o + 1]) << 8 : Int(t[o]) << 8 | Int(t[o + 1])
        }
        func u32(_ o: Int) -> Int? {
            guard let a = u16(o), let b = u16(o + 2) else { return nil }
            return little ? a | b << 16 : a << 16 | b
        }
        guard u16(2) == 42, let ifd = u32(4), let count = u16(ifd) else { return nil }
        for k in 0..<count {
            let e = ifd + 2 + 12 * k
            guard let tag = u16(e), let type = u16(e + 2) else { return nil }
            if tag == 0x0112 {
                let value: Int?
                switch type {
                case 3: value = u16(e + 8)      // SHORT
                case 4: value = u32(e + 8)      // LONG
                default: value = nil
                }
                return value.flatMap { Orientation(rawValue: $0) }
            }
        }
        return nil
    }
}
