import CJPEG
import CPNG
import ZooErrors
import ZooFiles

/// Image file formats ZooImages decodes.
public enum ImageFormat: String, Sendable, CaseIterable {
    /// JPEG (baseline, progressive, arithmetic; gray, YCbCr, RGB, CMYK, YCCK), read with libjpeg-turbo.
    case jpeg
    /// PNG (every color type and bit depth, interlaced or not), read with libpng.
    case png
}

/// Resource limits checked before any pixel memory is allocated.
public struct ImageLimits: Sendable, Equatable {
    /// Largest accepted `width * height`. The default is Pillow's `Image.MAX_IMAGE_PIXELS`
    /// (89,478,485, about a 0.25 GB RGB image).
    public var maxPixels: Int
    /// Largest accepted file size in bytes (default 256 MiB).
    public var maxFileBytes: Int
    /// Largest number of scans in a progressive JPEG (default 1000; real files use about 10).
    public var maxJPEGScans: Int

    /// Creates limits; the defaults suit photographs.
    public init(maxPixels: Int = 89_478_485, maxFileBytes: Int = 256 << 20, maxJPEGScans: Int = 1000) {
        self.maxPixels = maxPixels
        self.maxFileBytes = maxFileBytes
        self.maxJPEGScans = maxJPEGScans
    }

    /// The default limits.
    public static let standard = ImageLimits()
}

/// Decodes JPEG and PNG files into `RGBImage`s the way Pillow's `Image.open(p).convert("RGB")`
/// does (after `ImageOps.exif_transpose` when `applyOrientation` is true).
///
/// Every failure is a `ZooError` with a one-line message naming the file: `.unsupported` for
/// other formats or features libjpeg/libpng lack, `.badInput` for corrupt, truncated or
/// oversized images, `.io` when the file cannot be read. The C libraries' error exits are
/// contained in C (see Sources/CJPEG/shim.h and Sources/CPNG/shim.h); nothing exits the process.
public enum ImageDecoder {
    /// The format of an image from its first bytes, or nil when it is neither JPEG nor PNG.
    public static func detect(_ bytes: UnsafeRawBufferPointer) -> ImageFormat? {
        if bytes.count >= 3, bytes[0] == 0xFF, bytes[1] == 0xD8, bytes[2] == 0xFF { return .jpeg }
        if bytes.count >= 8, Array(bytes[0..<8]) == [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] { return .png }
        return nil
    }

    /// Names formats ZooImages recognizes but does not decode, for the error message.
    static func otherFormatName(_ bytes: UnsafeRawBufferPointer) -> String? {
        func starts(_ prefix: [UInt8], at offset: Int = 0) -> Bool {
            bytes.count >= offset + prefix.count && zip(bytes[offset..<(offset + prefix.count)], prefix).allSatisfy { $0 == $1 }
        }
        if starts(Array("GIF8".utf8)) { return "GIF" }
        if starts(Array("BM".utf8)) { return "BMP" }
        if starts(Array("RIFF".utf8)), starts(Array("WEBP".utf8), at: 8) { return "WebP" }
        if starts([0x49, 0x49, 0x2A, 0x00]) || starts([0x4D, 0x4D, 0x00, 0x2A]) { return "TIFF" }
        if starts(Array("ftypheic".utf8), at: 4) || starts(Array("ftypheix".utf8), at: 4) || starts(Array("ftypmif1".utf8), at: 4) { return "HEIF" }
        if starts(Array("ftypavif".utf8), at: 4) { return "AVIF" }
        if starts([0x00, 0x00, 0x00, 0x0C, 0x6A, 0x50, 0x20, 0x20]) || starts([0xFF, 0x4F, 0xFF, 0x51]) { return "JPEG 2000" }
        if starts(Array("<svg".utf8)) || starts(Array("<?xml".utf8)) { return "SVG/XML" }
        if starts([0xFF, 0x0A]) || starts([0x00, 0x00, 0x00, 0x0C, 0x4A, 0x58, 0x4C, 0x20]) { return "JPEG XL" }
        return nil
    }

    /// Reads and decodes the image at `path`.
    public static func decode(path: String, limits: ImageLimits = .standard, applyOrientation: Bool = true) throws -> RGBImage {
        try withImageFile(path, limits: limits) { try decode(bytes: $0, limits: limits, applyOrientation: applyOrientation) }
    }

    /// Maps the image file at `path` (refusing one over `limits.maxFileBytes`) and runs `body` on its
    /// bytes; errors name the file.
    static func withImageFile<R>(_ path: String, limits: ImageLimits, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        do {
            let file = try MappedFile(path: path)
            guard file.count <= limits.maxFileBytes else {
                throw ZooError.bad("file of \(file.count) bytes exceeds the image size limit of \(limits.maxFileBytes) bytes")
            }
            return try withExtendedLifetime(file) { try body(file.bytes) }
        } catch let error as ZooError {
            throw error.inFile(path)
        }
    }

    /// Decodes an image held in memory.
    public static func decode(bytes: [UInt8], limits: ImageLimits = .standard, applyOrientation: Bool = true) throws -> RGBImage {
        try bytes.withUnsafeBytes { try decode(bytes: $0, limits: limits, applyOrientation: applyOrientation) }
    }

    /// Decodes an image held in memory (the bytes are only read during the call).
    public static func decode(bytes: UnsafeRawBufferPointer, limits: ImageLimits = .standard, applyOrientation: Bool = true) throws -> RGBImage {
        if bytes.isEmpty { throw ZooError.bad("empty file, not an image") }
        guard bytes.count <= limits.maxFileBytes else {
            throw ZooError.bad("\(bytes.count) bytes exceed the image size limit of \(limits.maxFileBytes) bytes")
        }
        switch detect(bytes) {
        case .jpeg:
            var image = try decodeJPEG(bytes, limits: limits)
            if applyOrientation, let o = EXIF.jpegOrientation(bytes) { image = image.oriented(o) }
            return image
        case .png:
            var (image, exif) = try decodePNG(bytes, limits: limits)
            if applyOrientation, let exif, let o = exif.withUnsafeBytes({ EXIF.orientation(tiff: $0) }) {
                image = image.oriented(o)
            }
            return image
        case nil:
            if let name = otherFormatName(bytes) {
                throw ZooError(.unsupported, "\(name) images are not supported; ZooImages reads JPEG and PNG")
            }
            throw ZooError(.unsupported, "not a JPEG or PNG image (unrecognized first bytes)")
        }
    }

    /// Decodes like `decode(bytes:limits:applyOrientation:)`, except that a JPEG is decoded at 1/2, 1/4 or 1/8
    /// of its size when that is still at least `minimumSize(width, height)` on each side (libjpeg-turbo's
    /// scaled IDCT, in the DCT domain: much less work than a full decode). `minimumSize` gets the
    /// full (oriented) size and returns the smallest (oriented) size the caller can use; the largest
    /// reduction that keeps it wins (Pillow's `Image.draft` rule, so the pixels are those of
    /// `Image.open(f).draft("RGB", size)`), none when none does. PNGs decode at full size. The pixels
    /// are not those of a full decode: this is `zoo features --fast-decode`.
    public static func decode(bytes: UnsafeRawBufferPointer, limits: ImageLimits = .standard, applyOrientation: Bool = true,
                              reducingTo minimumSize: (_ width: Int, _ height: Int) throws -> (width: Int, height: Int)) throws -> RGBImage {
        guard detect(bytes) == .jpeg else { return try decode(bytes: bytes, limits: limits, applyOrientation: applyOrientation) }
        let stored = try size(bytes: bytes, limits: limits, applyOrientation: false)
        let orientation = applyOrientation ? EXIF.jpegOrientation(bytes) : nil
        let transposed = (orientation?.rawValue ?? 1) >= 5
        let full = transposed ? (width: stored.height, height: stored.width) : stored
        let want = try minimumSize(full.width, full.height)
        let (needW, needH) = transposed ? (want.height, want.width) : (want.width, want.height)
        // Pillow's rule (`JpegImageFile.draft`): the largest of 8, 4, 2 that divides both sides'
        // ratios (stored size / wanted size, rounded down), so this decode is Pillow's drafted one.
        let ratio = min(stored.width / max(needW, 1), stored.height / max(needH, 1))
        let denominator = [8, 4, 2].first { ratio >= $0 } ?? 1
        var image = try decodeJPEG(bytes, limits: limits, scaleDenominator: denominator)
        if let orientation { image = image.oriented(orientation) }
        return image
    }

    // MARK: JPEG

    static func decodeJPEG(_ bytes: UnsafeRawBufferPointer, limits: ImageLimits, scaleDenominator: Int = 1) throws -> RGBImage {
        guard let base = bytes.baseAddress else { throw ZooError.bad("empty file, not an image") }
        var result = zoo_jpeg_result()
        zoo_jpeg_decode(base.assumingMemoryBound(to: UInt8.self), UInt(bytes.count),
                        UInt64(clamping: limits.maxPixels), Int32(clamping: limits.maxJPEGScans), Int32(scaleDenominator), &result)
        defer { zoo_jpeg_free(result.pixels) }
        let message = withUnsafeBytes(of: &result.message) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
        switch result.status {
        case 0: break
        case 2: throw ZooError.bad("image too large: \(message)")
        case 3: throw ZooError(.io, "JPEG: \(message)")
        case 4: throw ZooError.bad("corrupt or truncated JPEG: \(message)")
        default:
            let code = Int(result.message_code)
            let unsupported = [Int(JERR_BAD_PRECISION.rawValue), Int(JERR_CONVERSION_NOTIMPL.rawValue),
                               Int(JERR_NOT_COMPILED.rawValue)]
            if message.isEmpty { throw ZooError.bad("corrupt JPEG") }
            if unsupported.contains(code) { throw ZooError(.unsupported, "unsupported JPEG: \(message)") }
            throw ZooError.bad("corrupt JPEG: \(message)")
        }
        let width = Int(result.width), height = Int(result.height), components = Int(result.components)
        guard let src = result.pixels, width > 0, height > 0 else { throw ZooError.bad("JPEG without pixels") }
        let pixelCount = try Checked.mul(width, height, "pixel count")
        return try RGBImage(width: width, height: height) { dst in
            switch components {
            case 3:
                guard let d = dst.baseAddress else { return }
                d.update(from: src, count: pixelCount * 3)
            case 1:
                for i in 0..<pixelCount {
                    let v = src[i]
                    dst[3 * i] = v; dst[3 * i + 1] = v; dst[3 * i + 2] = v
                }
            case 4:
                // Pillow reads 4-component JPEGs as Adobe-inverted CMYK ("CMYK;I") and converts
                // with r = (255-k) - round(c*(255-k)/255) (its cmyk2rgb).
                for i in 0..<pixelCount {
                    let nk = Int(src[4 * i + 3])          // stored inverted: 255 - k
                    for ch in 0..<3 {
                        let c = 255 - Int(src[4 * i + ch])
                        let t = c * nk + 128
                        let prod = ((t >> 8) + t) >> 8
                        dst[3 * i + ch] = UInt8(clamping: nk - prod)
                    }
                }
            default:
                throw ZooError(.unsupported, "JPEG with \(components) color components")
            }
        }
    }

    // MARK: PNG

    static func decodePNG(_ bytes: UnsafeRawBufferPointer, limits: ImageLimits) throws -> (RGBImage, [UInt8]?) {
        guard let base = bytes.baseAddress else { throw ZooError.bad("empty file, not an image") }
        try checkPNGChunkLengths(bytes)
        var result = zoo_png_result()
        zoo_png_decode(base.assumingMemoryBound(to: UInt8.self), bytes.count, UInt64(clamping: limits.maxPixels), &result)
        defer {
            zoo_png_free(result.pixels)
            zoo_png_free(result.exif)
        }
        let message = withUnsafeBytes(of: &result.message) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
        switch result.status {
        case 0: break
        case 2: throw ZooError.bad("image too large: \(message)")
        case 3: throw ZooError(.io, "PNG: \(message)")
        case 4: throw ZooError.bad("truncated PNG: \(message)")
        default: throw ZooError.bad("corrupt PNG: \(message.isEmpty ? "libpng error" : message)")
        }
        let width = Int(result.width), height = Int(result.height), channels = Int(result.channels)
        guard let src = result.pixels, width > 0, height > 0 else { throw ZooError.bad("PNG without pixels") }
        let pixelCount = try Checked.mul(width, height, "pixel count")
        let image = try RGBImage(width: width, height: height) { dst in
            switch channels {
            case 1, 2:
                for i in 0..<pixelCount {
                    let v = src[i * channels]
                    dst[3 * i] = v; dst[3 * i + 1] = v; dst[3 * i + 2] = v
                }
            case 3:
                guard let d = dst.baseAddress else { return }
                d.update(from: src, count: pixelCount * 3)
            case 4:
                for i in 0..<pixelCount {
                    dst[3 * i] = src[4 * i]; dst[3 * i + 1] = src[4 * i + 1]; dst[3 * i + 2] = src[4 * i + 2]
                }
            default:
                throw ZooError(.unsupported, "PNG with \(channels) channels")
            }
        }
        var exif: [UInt8]?
        if let p = result.exif, result.exif_length > 0 {
            exif = Array(UnsafeBufferPointer(start: p, count: Int(result.exif_length)))
        }
        return (image, exif)
    }
}

// MARK: PNG chunk lengths

extension ImageDecoder {
    /// Every chunk's declared length must fit in the bytes present, up to IEND. libpng 1.6 allocates
    /// some chunks' declared length before reading them (an eXIf chunk claiming 2 GB in a 97-byte
    /// file made it ask malloc for 2 GB: found by the image fuzzer, 2026-12-03); a truncated file is
    /// refused here instead, as libpng would refuse it after the allocation.
    static func checkPNGChunkLengths(_ b: UnsafeRawBufferPointer) throws {
        try forEachPNGChunk(b) { chunk in
            guard chunk.fits else {
                throw ZooError.bad("truncated PNG: chunk \(chunk.type) at offset \(chunk.offset) declares \(chunk.length) bytes, \(max(b.count - chunk.offset - 12, 0)) remain")
            }
            return true
        }
    }

    /// One chunk of a PNG as `forEachPNGChunk` finds it.
    struct PNGChunk {
        /// Offset of the chunk's length field.
        var offset: Int
        /// The 4-byte type, with bytes outside printable ASCII shown as `?`.
        var type: String
        /// The declared data length.
        var length: Int
        /// True when the data and CRC lie inside the bytes present.
        var fits: Bool
        /// The chunk's data (only when `fits`).
        var data: Range<Int> { (offset + 8)..<(offset + 8 + length) }
    }

    /// Walks a PNG's chunks after the signature, handing each to `visit` (return false to stop),
    /// up to IEND or to a chunk that does not fit, which is the last one visited.
    static func forEachPNGChunk(_ b: UnsafeRawBufferPointer, _ visit: (PNGChunk) throws -> Bool) rethrows {
        var i = 8
        while i + 8 <= b.count {
            let length = Int(b[i]) << 24 | Int(b[i + 1]) << 16 | Int(b[i + 2]) << 8 | Int(b[i + 3])
            let type = String(decoding: b[(i + 4)..<(i + 8)].map { (0x21...0x7E).contains($0) ? $0 : UInt8(ascii: "?") }, as: UTF8.self)
            let chunk = PNGChunk(offset: i, type: type, length: length, fits: length <= b.count - i - 12)
            guard try visit(chunk), chunk.fits, type != "IEND" else { return }
            i += 12 + length
        }
    }
}

// MARK: Size without decoding

extension ImageDecoder {
    /// The size `decode(path:applyOrientation:)` would return, read from the file's header (JPEG SOF,
    /// PNG IHDR) and EXIF orientation (JPEG APP1, PNG eXIf) without decoding any pixel. The file may
    /// still fail to decode later (corrupt pixel data); the size is checked against the pixel limit.
    /// `zoo features --stages` uses it to lay out its output before it decodes each image once.
    public static func size(path: String, limits: ImageLimits = .standard, applyOrientation: Bool = true) throws -> (width: Int, height: Int) {
        try withImageFile(path, limits: limits) { try size(bytes: $0, limits: limits, applyOrientation: applyOrientation) }
    }

    /// The size of an image held in memory; see `size(path:limits:applyOrientation:)`.
    public static func size(bytes b: UnsafeRawBufferPointer, limits: ImageLimits = .standard,
                            applyOrientation: Bool = true) throws -> (width: Int, height: Int) {
        func be16(_ o: Int) -> Int { Int(b[o]) << 8 | Int(b[o + 1]) }
        func be32(_ o: Int) -> Int { be16(o) << 16 | be16(o + 2) }
        var width = 0, height = 0
        var orientation: Orientation?
        switch detect(b) {
        case .jpeg:
            // Markers after SOI: standalone ones (RSTn, TEM) have no length; a frame header
            // (SOF0-15 but DHT C4, JPG C8, DAC CC) gives the size; none before SOS is an error.
            var i = 2
            scan: while true {
                // Extraneous bytes before a marker are skipped (libjpeg warns and goes on), as are fill bytes.
                while i < b.count, b[i] != 0xFF { i += 1 }
                while i + 1 < b.count, b[i + 1] == 0xFF { i += 1 }
                guard i + 4 <= b.count else { throw ZooError.bad("corrupt or truncated JPEG: no frame header") }
                let marker = b[i + 1]
                if marker == 0x01 || (0xD0...0xD7).contains(marker) { i += 2; continue }
                let length = be16(i + 2)
                guard length >= 2, i + 2 + length <= b.count else { throw ZooError.bad("corrupt or truncated JPEG: no frame header") }
                switch marker {
                case 0xC0...0xCF where marker != 0xC4 && marker != 0xC8 && marker != 0xCC:
                    guard length >= 8 else { throw ZooError.bad("corrupt JPEG: short frame header") }
                    height = be16(i + 5); width = be16(i + 7)
                    break scan
                case 0xDA, 0xD9: throw ZooError.bad("corrupt JPEG: no frame header before the scan")
                default: i += 2 + length
                }
            }
            if applyOrientation { orientation = EXIF.jpegOrientation(b) }
        case .png:
            guard b.count >= 33, Array(b[12..<16]) == Array("IHDR".utf8) else { throw ZooError.bad("corrupt PNG: no IHDR chunk first") }
            width = be32(16); height = be32(20)
            if applyOrientation {
                // The first eXIf chunk, wherever it is (libpng reads it before or after the image data).
                forEachPNGChunk(b) { chunk in
                    guard chunk.fits, chunk.type == "eXIf" else { return true }
                    orientation = EXIF.orientation(tiff: UnsafeRawBufferPointer(rebasing: b[chunk.data]))
                    return false
                }
            }
        case nil:
            if let name = otherFormatName(b) {
                throw ZooError(.unsupported, "\(name) images are not supported; ZooImages reads JPEG and PNG")
            }
            throw ZooError(.unsupported, "not a JPEG or PNG image (unrecognized first bytes)")
        }
        guard width > 0, height > 0 else { throw ZooError.bad("image of \(width) x \(height) pixels") }
        try RGBImage.checkPixels(width: width, height: height, maxPixels: limits.maxPixels, "image")
        if let o = orientation, o.rawValue >= 5 { return (height, width) }
        return (width, height)
    }
}
