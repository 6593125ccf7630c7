import ZooErrors
import ZooJSON
import ZooTensor

/// How a model wants its input images: resize, crop, scaling and normalization, channel order
/// and layout. Stored as JSON in a checkpoint's metadata (`NativeMetadata.preprocessing`).
///
/// The torchvision recipe (`weights.transforms()` of the classification weights) is
/// `Resize(resize, bilinear, antialias=True)` on the shorter side, `CenterCrop(crop)`, `ToTensor()`
/// and `Normalize(mean, std)`: `Preprocessing.torchvision(resize: 232)`. Keras's
/// `preprocess_input` modes are `.caffe` (BGR, ImageNet mean subtracted in 0...255 units), `.tf`
/// (scaled to [-1, 1]) and `.torch` (the torchvision normalization); Keras models take a
/// fixed-size resize without a crop: `Preprocessing.keras(.caffe)`.
///
/// JSON form: the catalogue's `preprocessing` objects (zoo/*.json), which the converter copies
/// into `zoo.preprocessing`. Keys other than `mode` are optional:
/// ```json
/// {"resize": [232], "crop": [224], "interpolation": "bilinear", "antialias": true, "mode": "torch",
///  "channel_order": "RGB", "scale": 0.00392156862745098, "mean": [0.485, 0.456, 0.406],
///  "std": [0.229, 0.224, 0.225], "layout": "nchw"}
/// ```
/// `resize` is `[n]` or `n` (the shorter side, as torchvision's `Resize([n])` / `Resize(n)`),
/// `[height, width]` (exact) or null; `crop` is `[n]`, `n` (square), `[height, width]` or null;
/// `mean`/`std` null mean the mode's defaults; `channel_order`, `scale` and `offset` must agree
/// with `mode` (they restate it); `note` is free text.
public struct Preprocessing: Sendable, Equatable {
    /// How the image is resized before cropping.
    public enum Resize: Sendable, Equatable {
        /// Keep the size.
        case none
        /// Scale so the shorter side has this length, the longer one `Int(size * long / short)`
        /// (torchvision `Resize(int)`).
        case shorterSide(Int)
        /// Scale to exactly this size (torchvision `Resize((h, w))`, Keras `target_size`).
        case exact(height: Int, width: Int)
    }

    /// How pixel values are scaled after the geometry is done.
    public enum Mode: String, Sendable, CaseIterable {
        /// RGB, `(x / 255 - mean) / std` (torchvision, Keras "torch").
        case torch
        /// BGR, `x - mean` in 0...255 units, then `/ std` when std is not all ones (Keras "caffe").
        case caffe
        /// RGB, `x / 127.5 - 1` (Keras "tf").
        case tf
        /// RGB, raw 0...255 values as floats (models that normalize inside, e.g. Keras MobileNetV3).
        case raw
    }

    /// The order of dimensions of the produced tensor.
    public enum AxisOrder: String, Sendable, CaseIterable {
        /// [N, 3, H, W] (PyTorch).
        case nchw
        /// [N, H, W, 3] (Keras).
        case nhwc
    }

    /// Resizing.
    public var resize: Resize
    /// Center crop size (height, width), or nil for no crop. Pads with zeros when larger than
    /// the image, as torchvision's CenterCrop.
    public var crop: (height: Int, width: Int)?
    /// Resampling filter of the resize.
    public var interpolation: Interpolation
    /// Value scaling.
    public var mode: Mode
    /// Per-channel mean (in the mode's units and channel order: 0...1 RGB for torch, 0...255 BGR for caffe).
    public var mean: [Float]
    /// Per-channel standard deviation (same units).
    public var std: [Float]
    /// The order of the tensor's axes (JSON key `layout`: `nchw` or `nhwc`).
    public var layout: AxisOrder

    /// ImageNet mean/std in [0, 1] RGB (torchvision and Keras "torch").
    public static let imagenetMean: [Float] = [0.485, 0.456, 0.406]
    /// ImageNet standard deviation in [0, 1] RGB.
    public static let imagenetStd: [Float] = [0.229, 0.224, 0.225]
    /// ImageNet mean in 0...255 BGR (Keras "caffe").
    public static let caffeMean: [Float] = [103.939, 116.779, 123.68]

    /// Creates a description; `mean`/`std` default to the mode's ImageNet values.
    public init(resize: Resize, crop: (height: Int, width: Int)?, interpolation: Interpolation = .bilinear,
                mode: Mode, mean: [Float]? = nil, std: [Float]? = nil, layout: AxisOrder = .nchw) {
        self.resize = resize
        self.crop = crop
        self.interpolation = interpolation
        self.mode = mode
        switch mode {
        case .torch:
            self.mean = mean ?? Preprocessing.imagenetMean
            self.std = std ?? Preprocessing.imagenetStd
        case .caffe:
            self.mean = mean ?? Preprocessing.caffeMean
            self.std = std ?? [1, 1, 1]
        case .tf, .raw:
            self.mean = mean ?? [0, 0, 0]
            self.std = std ?? [1, 1, 1]
        }
        self.layout = layout
    }

    /// torchvision's classification transforms: shorter side to `resize` (256 for V1 weights,
    /// 232 for most V2), center crop `crop`, ImageNet normalization, NCHW.
    public static func torchvision(resize: Int = 256, crop: Int = 224, interpolation: Interpolation = .bilinear) -> Preprocessing {
        Preprocessing(resize: .shorterSide(resize), crop: (crop, crop), interpolation: interpolation, mode: .torch)
    }

    /// Keras applications: resize to `size` x `size` (no crop), then `preprocess_input` in `mode`.
    public static func keras(_ mode: Mode, size: Int = 224, interpolation: Interpolation = .bilinear,
                             layout: AxisOrder = .nchw) -> Preprocessing {
        Preprocessing(resize: .exact(height: size, width: size), crop: nil, interpolation: interpolation, mode: mode, layout: layout)
    }

    /// Equality (tuples are not Equatable by themselves).
    public static func == (a: Preprocessing, b: Preprocessing) -> Bool {
        a.resize == b.resize && a.crop?.height == b.crop?.height && a.crop?.width == b.crop?.width
            && a.interpolation == b.interpolation && a.mode == b.mode && a.mean == b.mean && a.std == b.std
            && a.layout == b.layout
    }

    // MARK: Geometry

    /// The size after `resize` for an image of `width` x `height` (torchvision's
    /// `_compute_resized_output_size`: the longer side is `int(size * long / short)`).
    public func resizedSize(width: Int, height: Int) throws -> (width: Int, height: Int) {
        guard width > 0, height > 0 else { throw ZooError.bad("cannot resize an empty image (\(width) x \(height))") }
        switch resize {
        case .none: return (width, height)
        case .exact(let h, let w): return (w, h)
        case .shorterSide(let s):
            let (short, long) = width <= height ? (width, height) : (height, width)
            let value = Double(s) * Double(long) / Double(short)
            guard value < 1e15 else {
                throw ZooError.bad("a \(width) x \(height) image resized to \(s) on its shorter side is too large")
            }
            let other = Int(value)
            return width <= height ? (s, other) : (other, s)
        }
    }

    /// The output (height, width) when it does not depend on the image: the crop, else an exact
    /// resize; nil when it follows the image's size.
    public var fixedOutputSize: (height: Int, width: Int)? {
        if let crop { return crop }
        if case let .exact(height, width) = resize { return (height, width) }
        return nil
    }

    /// The output (height, width) for an image, after resize and crop.
    public func outputSize(width: Int, height: Int) throws -> (height: Int, width: Int) {
        if let crop { return crop }
        let r = try resizedSize(width: width, height: height)
        return (r.height, r.width)
    }

    /// Resize and center crop, as 8-bit RGB (what torchvision has before `ToTensor`). Intermediate
    /// and final sizes above `maxPixels` (an extreme aspect ratio, a hostile recipe) are refused.
    public func geometry(_ image: RGBImage, maxPixels: Int = ImageLimits.standard.maxPixels) throws -> RGBImage {
        let r = try resizedSize(width: image.width, height: image.height)
        guard r.width > 0, r.height > 0 else {
            throw ZooError.bad("image of \(image.width) x \(image.height) resizes to an empty image")
        }
        if let crop { try RGBImage.checkPixels(width: crop.width, height: crop.height, maxPixels: maxPixels, "crop") }
        let resized = try image.resized(width: r.width, height: r.height, interpolation: interpolation, maxPixels: maxPixels)
        guard let crop else { return resized }
        return try Preprocessing.centerCrop(resized, height: crop.height, width: crop.width, maxPixels: maxPixels)
    }

    /// torchvision's `center_crop`: offsets `round((size - crop) / 2)` (half to even), zero padding
    /// (`(crop - size) // 2` before) when the crop is larger than the image.
    public static func centerCrop(_ image: RGBImage, height ch: Int, width cw: Int,
                                  maxPixels: Int = ImageLimits.standard.maxPixels) throws -> RGBImage {
        guard ch > 0, cw > 0 else { throw ZooError(.usage, "crop size \(ch) x \(cw) must be positive") }
        try RGBImage.checkPixels(width: cw, height: ch, maxPixels: maxPixels, "crop")
        func offset(_ size: Int, _ crop: Int) -> Int {
            if crop > size { return -((crop - size) / 2) }
            return Int((Double(size - crop) / 2).rounded(.toNearestOrEven))
        }
        let top = offset(image.height, ch), left = offset(image.width, cw)
        let w = image.width, h = image.height
        return try image.pixels.withUnsafeBufferPointer { src in
            try RGBImage(width: cw, height: ch) { dst in
                for y in 0..<ch {
                    let sy = y + top
                    if sy < 0 || sy >= h { continue }
                    for x in 0..<cw {
                        let sx = x + left
                        if sx < 0 || sx >= w { continue }
                        let s = (sy * w + sx) * 3, d = (y * cw + x) * 3
                        dst[d] = src[s]; dst[d + 1] = src[s + 1]; dst[d + 2] = src[s + 2]
                    }
                }
            }
        }
    }

    // MARK: Values

    /// Writes one image's float values (after geometry) into `dst` in the configured layout.
    func writeValues(_ image: RGBImage, into dst: UnsafeMutablePointer<Float>) throws {
        guard mean.count == 3, std.count == 3 else {
            throw ZooError(.badInput, "preprocessing needs 3 mean and 3 std values, got \(mean.count) and \(std.count)")
        }
        let hw = image.width * image.height
        let bgr = mode == .caffe
        let divide = std.contains { $0 != 1 }
        image.pixels.withUnsafeBufferPointer { src in
            for c in 0..<3 {
                let srcChannel = bgr ? 2 - c : c
                let m = mean[c], s = std[c]
                for i in 0..<hw {
                    let v = Float(src[i * 3 + srcChannel])
                    var x: Float
                    switch mode {
                    case .torch: x = (v / 255 - m) / s
                    case .caffe: x = v - m; if divide { x = x / s }
                    case .tf: x = v / 127.5 - 1
                    case .raw: x = v
                    }
                    if layout == .nchw { dst[c * hw + i] = x } else { dst[i * 3 + c] = x }
                }
            }
        }
    }

    /// Preprocesses a batch into one float32 tensor, [N, 3, H, W] (or [N, H, W, 3] for `.nhwc`).
    /// All images must come out the same size (always true with a crop or an exact resize).
    public func tensor(for images: [RGBImage]) throws -> Tensor {
        guard !images.isEmpty else { throw ZooError(.usage, "no images to preprocess") }
        return try batch(images.map { try geometry($0) }, names: nil)
    }

    /// Normalises images that already have their final size (through `geometry`, or an augmentation's
    /// output) into one batch; they must all have the same size.
    public func tensor(prepared: [RGBImage]) throws -> Tensor { try batch(prepared, names: nil) }

    /// The batch of images already through `geometry`; `names` (the files) name the image at fault.
    private func batch(_ prepared: [RGBImage], names: [String]?) throws -> Tensor {
        guard !prepared.isEmpty else { throw ZooError(.usage, "no images to preprocess") }
        let h = prepared[0].height, w = prepared[0].width
        for (i, p) in prepared.enumerated() where p.height != h || p.width != w {
            let first = names.map { "\($0[0])" } ?? "image 0"
            let e = ZooError(.mismatch, "preprocesses to \(p.height) x \(p.width), \(first) to \(h) x \(w); use a crop or an exact resize to batch them",
                             item: names == nil ? "image \(i)" : nil)
            throw names.map { e.inFile($0[i]) } ?? e
        }
        let per = try Checked.mul(try Checked.mul(h, w, "pixel count"), 3, "values per image")
        let shape = layout == .nchw ? [prepared.count, 3, h, w] : [prepared.count, h, w, 3]
        return try Tensor(dtype: .f32, shape: shape) { raw in
            let base = raw.bindMemory(to: Float.self)
            guard let p = base.baseAddress else { return }
            for (i, image) in prepared.enumerated() {
                try writeValues(image, into: p + i * per)
            }
        }
    }

    /// Decodes an image file held in memory and applies `geometry` (resize and crop): one image ready for
    /// `tensor(prepared:)`. With `fastDecode`, a JPEG is decoded at 1/2, 1/4 or 1/8 of its size when
    /// that still leaves at least the resize's output size on each side (libjpeg-turbo's DCT scaling,
    /// `ImageDecoder.decode(bytes:limits:applyOrientation:reducingTo:)`), and resized from there: several
    /// times faster on camera-size photos, but not the pixels Pillow gives, so off unless asked for.
    public func prepare(bytes: UnsafeRawBufferPointer, fastDecode: Bool = false, limits: ImageLimits = .standard) throws -> RGBImage {
        let image = fastDecode
            ? try ImageDecoder.decode(bytes: bytes, limits: limits, reducingTo: { w, h in try resizedSize(width: w, height: h) })
            : try ImageDecoder.decode(bytes: bytes, limits: limits)
        return try geometry(image, maxPixels: limits.maxPixels)
    }

    /// `prepare(bytes:fastDecode:limits:)` for the image file at `path` (mapped, not copied); errors name it.
    public func prepare(path: String, fastDecode: Bool = false, limits: ImageLimits = .standard) throws -> RGBImage {
        try ImageDecoder.withImageFile(path, limits: limits) { try prepare(bytes: $0, fastDecode: fastDecode, limits: limits) }
    }

    /// Decodes and preprocesses image files into one batch tensor (errors name the file).
    public func tensor(forFiles paths: [String], limits: ImageLimits = .standard) throws -> Tensor {
        let prepared = try paths.map { path in
            do {
                return try geometry(try ImageDecoder.decode(path: path, limits: limits))
            } catch let e as ZooError { throw e.inFile(path) }
        }
        return try batch(prepared, names: paths)
    }
}

// MARK: JSON

extension Preprocessing {
    /// The multiplier and offset each mode applies to 0...255 values (as the catalogue states them).
    static func scaleAndOffset(_ mode: Mode) -> (Double, Double) {
        switch mode {
        case .torch: return (1.0 / 255.0, 0)
        case .caffe, .raw: return (1, 0)
        case .tf: return (1.0 / 127.5, -1)
        }
    }

    /// Reads the JSON form (see the type's documentation). Unknown keys are an error, so typos
    /// do not silently change a model's input; so are `channel_order`/`scale`/`offset` values
    /// that contradict `mode`.
    public init(json: JSONValue) throws {
        let item = "zoo.preprocessing"
        guard let members = json.objectValue else { throw ZooError.bad("preprocessing must be a JSON object", item: item) }
        let known: Set<String> = ["resize", "crop", "interpolation", "mode", "mean", "std", "layout",
                                  "channel_order", "scale", "offset", "antialias", "note"]
        for (key, _) in members where !known.contains(key) {
            throw ZooError.bad("unknown preprocessing key \"\(key)\"", item: item)
        }
        func isNull(_ key: String) -> Bool {
            guard let v = json[key] else { return true }
            if case .null = v { return true }
            return false
        }
        // nil: absent/null; (n, nil): one number (shorter side / square); (h, w): two numbers.
        func size(_ key: String) throws -> (Int, Int?)? {
            guard let v = json[key], !isNull(key) else { return nil }
            if let n = v.intValue, n > 0 { return (n, nil) }
            if let a = v.arrayValue {
                let n = a.compactMap { $0.intValue }.filter { $0 > 0 }
                if a.count == 1, n.count == 1 { return (n[0], nil) }
                if a.count == 2, n.count == 2 { return (n[0], n[1]) }
            }
            throw ZooError.bad("\"\(key)\" must be a positive integer, [n] or [height, width], got \(v)", item: item)
        }
        func floats(_ key: String) throws -> [Float]? {
            guard let v = json[key], !isNull(key) else { return nil }
            guard let a = v.arrayValue, a.count == 3 else {
                throw ZooError.bad("\"\(key)\" must be an array of 3 numbers, got \(v)", item: item)
            }
            return try a.map {
                guard let d = $0.doubleValue, d.isFinite else { throw ZooError.bad("\"\(key)\" must hold numbers, got \(v)", item: item) }
                return Float(d)
            }
        }
        func number(_ key: String) throws -> Double? {
            guard let v = json[key], !isNull(key) else { return nil }
            guard let d = v.doubleValue, d.isFinite else { throw ZooError.bad("\"\(key)\" must be a number, got \(v)", item: item) }
            return d
        }
        func enumValue<T: RawRepresentable>(_ key: String, _ type: T.Type) throws -> T? where T.RawValue == String {
            guard let v = json[key], !isNull(key) else { return nil }
            guard let s = v.stringValue, let e = T(rawValue: s.lowercased()) else {
                throw ZooError.bad("unknown \(key) \(v)", item: item)
            }
            return e
        }
        guard let mode = try enumValue("mode", Mode.self) else {
            throw ZooError.bad("preprocessing needs a \"mode\" (torch, caffe, tf or raw)", item: item)
        }
        let resize: Resize
        switch try size("resize") {
        case nil: resize = .none
        case let (n, nil)?: resize = .shorterSide(n)
        case let (h, w?)?: resize = .exact(height: h, width: w)
        }
        let crop: (height: Int, width: Int)? = try size("crop").map { ($0.0, $0.1 ?? $0.0) }
        let std = try floats("std")
        if let std, std.contains(where: { $0 == 0 }) {
            throw ZooError.bad("\"std\" must not contain 0", item: item)
        }
        if let order = json["channel_order"], !isNull("channel_order") {
            let expected = mode == .caffe ? "BGR" : "RGB"
            guard order.stringValue?.uppercased() == expected else {
                throw ZooError(.unsupported, "channel_order \(order) does not match mode \(mode.rawValue) (\(expected))", item: item)
            }
        }
        let (modeScale, modeOffset) = Preprocessing.scaleAndOffset(mode)
        if let scale = try number("scale"), abs(scale - modeScale) > 1e-9 * modeScale {
            throw ZooError(.unsupported, "scale \(scale) does not match mode \(mode.rawValue) (\(modeScale))", item: item)
        }
        if let offset = try number("offset"), abs(offset - modeOffset) > 1e-9 {
            throw ZooError(.unsupported, "offset \(offset) does not match mode \(mode.rawValue) (\(modeOffset))", item: item)
        }
        if let antialias = json["antialias"], !isNull("antialias") {
            guard let b = antialias.boolValue else { throw ZooError.bad("\"antialias\" must be true or false", item: item) }
            // Pillow's resize (torchvision's path for PIL images) always antialiases.
            if !b { throw ZooError(.unsupported, "antialias false is not supported (resizing follows Pillow, which always antialiases)", item: item) }
        }
        if let note = json["note"], !isNull("note"), note.stringValue == nil {
            throw ZooError.bad("\"note\" must be a string", item: item)
        }
        self.init(resize: resize, crop: crop,
                  interpolation: try enumValue("interpolation", Interpolation.self) ?? .bilinear,
                  mode: mode, mean: try floats("mean"), std: std,
                  layout: try enumValue("layout", AxisOrder.self) ?? .nchw)
    }

    /// The JSON form, in the catalogue's shape, every key written out.
    public var json: JSONValue {
        // Float -> Double through the shortest decimal text, so 0.485 stays 0.485 in JSON.
        func number(_ f: Float) -> JSONValue { .double(Double("\(f)") ?? Double(f)) }
        func ints(_ values: [Int]) -> JSONValue { .array(values.map { .int(Int64($0)) }) }
        var members: [(String, JSONValue)] = []
        switch resize {
        case .none: members.append(("resize", .null))
        case .shorterSide(let n): members.append(("resize", ints([n])))
        case .exact(let h, let w): members.append(("resize", ints([h, w])))
        }
        if let crop {
            members.append(("crop", crop.height == crop.width ? ints([crop.height]) : ints([crop.height, crop.width])))
        } else {
            members.append(("crop", .null))
        }
        members.append(("interpolation", .string(interpolation.rawValue)))
        members.append(("antialias", .bool(true)))
        members.append(("mode", .string(mode.rawValue)))
        members.append(("channel_order", .string(mode == .caffe ? "BGR" : "RGB")))
        let (scale, offset) = Preprocessing.scaleAndOffset(mode)
        members.append(("scale", .double(scale)))
        members.append(("offset", .double(offset)))
        members.append(("mean", .array(mean.map(number))))
        members.append(("std", .array(std.map(number))))
        members.append(("layout", .string(layout.rawValue)))
        return .object(members)
    }
}
