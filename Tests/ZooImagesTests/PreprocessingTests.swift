import Foundation
import Testing
import ZooImages
import ZooErrors
import ZooJSON
import ZooTestSupport

@Suite struct PreprocessingTests {
    static func recipe(_ ref: String) -> Preprocessing? {
        switch ref {
        case "tv232": return .torchvision(resize: 232)
        case "tv256": return .torchvision(resize: 256)
        case "tvbicubic": return .torchvision(resize: 232, interpolation: .bicubic)
        case "caffe": return .keras(.caffe, layout: .nhwc)
        case "tf": return .keras(.tf, layout: .nhwc)
        case "ktorch": return .keras(.torch, layout: .nhwc)
        case "caffe_nearest": return .keras(.caffe, interpolation: .nearest, layout: .nhwc)
        default: return nil
        }
    }

    /// Per-value tolerance in tensor units corresponding to 1/255 of the pixel range.
    static func onePixelLevel(_ p: Preprocessing) -> Float {
        switch p.mode {
        case .torch: return 1 / 255 / (p.std.min() ?? 1)
        case .caffe, .raw: return 1
        case .tf: return 1 / 127.5
        }
    }

    /// On Pillow's decoded pixels the whole pipeline reproduces torchvision / Keras (float
    /// rounding only: the resize is Pillow's fixed-point algorithm, bit for bit).
    @Test func matchesReferencesOnPillowPixels() throws {
        var checked = 0
        for c in try ImageCase.all() {
            let image = try c.pillowImage()
            for ref in c.refs {
                let p = try #require(Self.recipe(ref))
                let expected = try Fixture.npy("images/\(c.name).\(ref).npy")
                let got = try p.tensor(for: [image])
                #expect(got.shape == [1] + expected.shape, "\(c) \(ref): shape \(got.shape) vs \(expected.shape)")
                let d = Fixture.maxAbs(got.floats(), expected.floats())
                #expect(d <= 1e-5, "\(c) \(ref): max difference \(d)")
                checked += 1
            }
        }
        #expect(checked >= 40)
    }

    /// From the file, decoded by ZooImages: within 1/255 of the reference per value.
    @Test func matchesReferencesEndToEnd() throws {
        var worst: Float = 0
        for c in try ImageCase.all() {
            let image = try ImageDecoder.decode(path: try c.path)
            for ref in c.refs {
                let p = try #require(Self.recipe(ref))
                let expected = try Fixture.npy("images/\(c.name).\(ref).npy")
                let got = try p.tensor(for: [image])
                let d = Fixture.maxAbs(got.floats(), expected.floats())
                let level = Self.onePixelLevel(p)
                #expect(d <= level * 1.0001, "\(c) \(ref): max difference \(d), one level is \(level)")
                worst = max(worst, d / level)
            }
        }
        print("end to end: worst difference \(worst) pixel levels")
    }

    /// `--fast-decode`: a camera-size JPEG decoded at 1/2, 1/4 or 1/8 in the DCT domain is what Pillow's
    /// `Image.draft("RGB", size)` decodes (the same scale, pixels within one level: the libjpeg-turbo
    /// builds differ), and the whole recipe then matches torchvision's transforms on the drafted image.
    /// Negative control: the full decode matches the full-decode reference, and misses the drafted one.
    @Test func fastDecodeIsPillowsDraft() throws {
        let cases = try DraftCase.all()
        #expect(cases.count == 5)
        let p = Preprocessing.torchvision(resize: 256)
        let level = Self.onePixelLevel(p)
        for c in cases {
            let bytes = try Array(Data(contentsOf: URL(fileURLWithPath: try c.path)))
            let drafted = try bytes.withUnsafeBytes { b in
                try ImageDecoder.decode(bytes: b, reducingTo: { w, h in try p.resizedSize(width: w, height: h) })
            }
            #expect([drafted.height, drafted.width] == c.draftSize, "\(c): decoded at \(drafted.height) x \(drafted.width)")
            #expect(c.draftSize[0] < c.fullSize[0], "\(c): not reduced")
            let pillow = try Fixture.npy("images/\(c.name).draftrgb.npy")
            #expect(pillow.shape == [drafted.height, drafted.width, 3])
            let d = Fixture.diff(drafted.pixels, pillow.bytes)
            #expect(d.max <= 1, "\(c): \(d.differing) values differ from Pillow's draft, max \(d.max)")
            print("draft \(c): \(d.differing) of \(drafted.pixels.count) values differ from Pillow, max \(d.max)")
            let fast = try p.tensor(prepared: [try bytes.withUnsafeBytes { try p.prepare(bytes: $0, fastDecode: true) }]).floats()
            let full = try p.tensor(prepared: [try p.prepare(path: try c.path)]).floats()
            let draftRef = try Fixture.npy("images/\(c.name).draft256.npy").floats()
            let fullRef = try Fixture.npy("images/\(c.name).full256.npy").floats()
            #expect(Fixture.maxAbs(fast, draftRef) <= level * 1.0001, "\(c): fast decode vs Pillow's draft + transforms")
            #expect(Fixture.maxAbs(full, fullRef) <= level * 1.0001, "\(c): full decode vs Pillow + transforms")
            #expect(Fixture.maxAbs(full, draftRef) > 2 * level, "\(c): the drafted reference must tell the decodes apart")
        }
    }

    @Test func negativeControlWrongRecipeIsCaught() throws {
        let c = try ImageCase.named("rgb_odd", format: "png")
        let image = try c.pillowImage()
        let expected = try Fixture.npy("images/rgb_odd.tv232.npy").floats()
        let wrongResize = try Preprocessing.torchvision(resize: 256).tensor(for: [image]).floats()
        let nearest = try Preprocessing.torchvision(resize: 232, interpolation: .nearest).tensor(for: [image]).floats()
        var slightlyWrongStd = Preprocessing.torchvision(resize: 232)
        slightlyWrongStd.std = [0.23, 0.224, 0.225]
        #expect(Fixture.maxAbs(wrongResize, expected) > 0.1)
        #expect(Fixture.maxAbs(nearest, expected) > 0.1)
        #expect(Fixture.maxAbs(try slightlyWrongStd.tensor(for: [image]).floats(), expected) > 1e-3)
    }

    @Test func batchesStackImagesInOrder() throws {
        let a = try ImageCase.named("rgb_odd", format: "png").pillowImage()
        let b = try ImageCase.named("rgb_even", format: "png").pillowImage()
        let p = Preprocessing.torchvision(resize: 232)
        let batch = try p.tensor(for: [a, b])
        #expect(batch.shape == [2, 3, 224, 224])
        let values = batch.floats()
        let one = 3 * 224 * 224
        #expect(Array(values[one...]) == (try p.tensor(for: [b]).floats()))
        #expect(Array(values[..<one]) == (try p.tensor(for: [a]).floats()))
        // Without a crop the sizes differ and batching is refused.
        let uncropped = Preprocessing(resize: .shorterSide(100), crop: nil, mode: .torch)
        #expect(throws: ZooError.self) { try uncropped.tensor(for: [a, b]) }
        #expect(try uncropped.tensor(for: [a]).shape == [1, 3, 100, 132])
    }

    @Test func hostileSizesAreRefusedBeforeAllocating() throws {
        let thin = try RGBImage(width: 1, height: 1_000_000, pixels: [UInt8](repeating: 7, count: 3_000_000))
        // 232 on the shorter side would make a 232 x 232,000,000 intermediate.
        let e1 = try #require(throws: ZooError.self) { try Preprocessing.torchvision(resize: 232).tensor(for: [thin]) }
        #expect(e1.kind == .badInput && e1.description.contains("exceeds the limit"), "\(e1)")
        let huge = Preprocessing(resize: .shorterSide(1 << 40), crop: (224, 224), mode: .torch)
        #expect(throws: ZooError.self) { try huge.tensor(for: [thin]) }
        let bigCrop = try Preprocessing(json: try JSONValue.parse(#"{"mode": "torch", "crop": [1000000000, 1000000000]}"#))
        #expect(throws: ZooError.self) { try bigCrop.tensor(for: [thin]) }
        #expect(throws: ZooError.self) { try thin.resized(width: 1 << 31, height: 1 << 31) }
    }

    @Test func centerCropPadsLikeTorchvision() throws {
        let image = try RGBImage(width: 3, height: 2, pixels: Array(1...18))
        let c = try Preprocessing.centerCrop(image, height: 4, width: 2)
        // Rows: pad (4-2)//2 = 1 above; columns: round((3-2)/2) = round(0.5) = 0 (half to even).
        #expect(c.pixels == [0, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 10, 11, 12, 13, 14, 15, 0, 0, 0, 0, 0, 0])
    }

    @Test func jsonRoundTrips() throws {
        let recipes: [Preprocessing] = [
            .torchvision(resize: 232), .torchvision(resize: 256, crop: 224, interpolation: .bicubic),
            .keras(.caffe), .keras(.tf, size: 299, layout: .nhwc), .keras(.torch),
            Preprocessing(resize: .exact(height: 300, width: 200), crop: (224, 180), mode: .raw),
            Preprocessing(resize: .none, crop: nil, mode: .torch, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5]),
        ]
        for r in recipes {
            let text = r.json.serialized()
            let parsed = try Preprocessing(json: try JSONValue.parse(text))
            #expect(parsed == r, "\(text)")
        }
        let tv = Preprocessing.torchvision(resize: 232).json.serialized()
        #expect(tv == #"{"resize":[232],"crop":[224],"interpolation":"bilinear","antialias":true,"mode":"torch","channel_order":"RGB","scale":0.00392156862745098,"offset":0.0,"mean":[0.485,0.456,0.406],"std":[0.229,0.224,0.225],"layout":"nchw"}"#)
        // Minimal forms: mode only, defaults filled in; integers for sizes.
        let minimal = try Preprocessing(json: try JSONValue.parse(#"{"mode": "caffe", "resize": [224, 224]}"#))
        #expect(minimal == .keras(.caffe))
        #expect(try Preprocessing(json: try JSONValue.parse(#"{"mode": "torch", "resize": 256, "crop": 224}"#)) == .torchvision(resize: 256))
    }

    /// Every preprocessing recipe of the catalogue (zoo/preprocessing.json, named by the architectures and
    /// weight sets of zoo/*.json) is understood, and the main ones mean what torchvision / Keras do.
    @Test func catalogueObjectsParse() throws {
        let zoo = TestSupport.root.appendingPathComponent("zoo")
        func load(_ file: String) throws -> JSONValue { try JSONValue.parse(try String(contentsOf: zoo.appendingPathComponent(file), encoding: .utf8)) }
        var recipes: [String: Preprocessing] = [:]
        for (name, p) in try #require(try load("preprocessing.json")["recipes"]?.objectValue) {
            let recipe = try Preprocessing(json: p)
            recipes[name] = recipe
            #expect(try Preprocessing(json: recipe.json) == recipe, "\(name)")
        }
        var parsed: [String: Preprocessing] = [:]
        for file in try FileManager.default.contentsOfDirectory(atPath: zoo.path) where file.hasSuffix(".json") {
            let doc = try load(file)
            for arch in doc["architectures"]?.arrayValue ?? [] {
                let name = arch["name"]?.stringValue ?? "?"
                if let p = arch["preprocessing"]?.stringValue {
                    let recipe = try #require(recipes[p], "\(name): recipe \(p)")
                    parsed[name] = recipe
                }
                for w in arch["weights"]?.arrayValue ?? [] {
                    guard let p = w["preprocessing"]?.stringValue else { continue }
                    let key = name + ":" + (w["tag"]?.stringValue ?? "?")
                    let recipe = try #require(recipes[p], "\(key): recipe \(p)")
                    parsed[key] = recipe
                }
            }
        }
        #expect(parsed.count >= 50, "only \(parsed.count) preprocessing objects")
        #expect(parsed["resnet50:IMAGENET1K_V2"] == .torchvision(resize: 232))
        #expect(parsed["resnet50:IMAGENET1K_V1"] == .torchvision(resize: 256))
        #expect(parsed["vgg16:KERAS_IMAGENET"] == .keras(.caffe))
        #expect(parsed["mobilenet_v2:KERAS_IMAGENET"]?.mode == .tf)
        #expect(parsed["vgg16:IMAGENET1K_FEATURES"]?.std == [Float](repeating: Float(1.0 / 255.0), count: 3))
    }

    @Test(arguments: [
        #"{"resize": 232}"#, #"{"mode": "torch", "resize": -3}"#, #"{"mode": "torch", "crop": [0]}"#,
        #"{"mode": "pytorch"}"#, #"{"mode": "torch", "mean": [1, 2]}"#, #"{"mode": "torch", "std": [0, 1, 1]}"#,
        #"{"mode": "torch", "croop": 224}"#, #"[1, 2]"#, #"{"mode": "torch", "interpolation": "lanczos"}"#,
        #"{"mode": "caffe", "channel_order": "RGB"}"#, #"{"mode": "tf", "scale": 0.0039}"#, #"{"mode": "torch", "offset": -1}"#,
        #"{"mode": "torch", "antialias": false}"#, #"{"mode": "torch", "resize": [1, 2, 3]}"#,
    ])
    func badJSONIsRefused(_ text: String) throws {
        let error = try #require(throws: ZooError.self) { try Preprocessing(json: try JSONValue.parse(text)) }
        #expect(error.kind == .badInput || error.kind == .unsupported)
        #expect(error.item == "zoo.preprocessing")
    }
}
