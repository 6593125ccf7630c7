import Foundation
import Testing
import ZooFiles
import ZooJSON
import ZooTensor
import ZooTestSupport

/// EfficientNet B0-B7 and V2 S/M/L (torchvision and Keras) and V2 B0-B3 (Keras) through the command line:
/// `--arch auto` tells them apart from the tensors alone (the B series differs only in width and depth), the
/// wrong explicit name is refused, `zoo info` states each variant's facts, and a Keras file's in-model
/// preprocessing becomes the converted file's. Logits and feature maps against torchvision and Keras:
/// Tests/ParityTests (`parity_torch_arch`, `parity_keras_arch_efficientnet`); gradients: ZooTrainingTests.
@Suite struct EfficientNetTests {
    static let names = (0...7).map { "efficientnet_b\($0)" } + ["efficientnet_v2_s", "efficientnet_v2_m", "efficientnet_v2_l"]
    /// Keras's: the same and the V2 B series.
    static let kerasNames = names + (0...3).map { "efficientnet_v2_b\($0)" }

    @Test func autoRecognisesEveryVariant() throws {
        let dir = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        for name in Self.names {
            let source = try TestSupport.fixture("parity_torch_arch/\(name)-64x64.f32.pth")
            let out = dir.appendingPathComponent("\(name).safetensors").path
            let r = try TestSupport.zoo(["convert", source, "--arch", "auto", "-o", out, "--json", "--force"])
            #expect(r.status == 0, "\(name): \(r.stderr)")
            let doc = try JSONValue.parse(r.stdout)
            #expect(doc["architecture"]?.stringValue == name && doc["complete"]?.boolValue == true, "\(name): \(r.stdout)")
            try? FileManager.default.removeItem(atPath: out)
        }
        // Negative control: B1 has B0's widths but more blocks; named as B0 it must be refused, naming the file.
        let b1 = try TestSupport.fixture("parity_torch_arch/efficientnet_b1-64x64.f32.pth")
        let wrong = try TestSupport.zoo(["convert", b1, "--arch", "efficientnet_b0", "-o", dir.appendingPathComponent("x.safetensors").path])
        #expect(wrong.status != 0 && wrong.stderr.contains("efficientnet_b1-64x64.f32.pth"), "\(wrong.stderr)")
        #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent("x.safetensors").path))
    }

    @Test func infoStatesEachVariant() throws {
        let r = try TestSupport.zoo(["list", "--json"])
        #expect(r.status == 0)
        let entries = try #require(try JSONValue.parse(r.stdout).arrayValue).filter { $0["family"]?.stringValue == "efficientnet" }
        #expect(entries.compactMap { $0["name"]?.stringValue } == Self.kerasNames)
        for e in entries {
            let name = e["name"]?.stringValue ?? ""
            #expect(e["flavours"]?.arrayValue?.compactMap(\.stringValue) == (name.hasPrefix("efficientnet_v2_b") ? ["keras"] : ["torchvision", "keras"]), "\(e)")
        }
        let b7 = try TestSupport.zoo(["info", "efficientnet_b7", "--json"])
        let doc = try JSONValue.parse(b7.stdout)
        #expect(doc["parameters"]?.intValue == 66_347_960, "\(b7.stdout.prefix(400))")
        #expect(doc["config"]?["width_mult"]?.doubleValue == 2.0 && doc["config"]?["depth_mult"]?.doubleValue == 3.1)
        #expect(doc["config"]?["bn_eps"]?.doubleValue == 0.001)
    }

    /// Every Keras EfficientNet from its weight file alone (tf-keras .h5 and Keras 3 .weights.h5), and its
    /// preprocessing: the converted file's, applied to the pixels Keras was given, gives the tensor Keras's own
    /// in-model preprocessing handed to the stem (`parity_keras_arch_efficientnet`). B0-B7 hold a Normalization with a data set's statistics (the
    /// fixture's are random): ImageNet's mean and std instead must miss, so the file's values are what is used.
    @Test func kerasFilesAndTheirPreprocessing() throws {
        let manifest = try TestSupport.fixture("parity_keras_arch_efficientnet/cases.json")
        let doc = try JSONValue.parse(String(decoding: try Data(contentsOf: URL(fileURLWithPath: manifest)), as: UTF8.self))
        let rows = (doc["cases"]?.arrayValue ?? []).filter { $0["arch"]?.stringValue?.hasPrefix("efficientnet") == true }
        #expect(Set(rows.compactMap { $0["arch"]?.stringValue }) == Set(Self.kerasNames) && rows.count == Self.kerasNames.count)
        let dir = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        for row in rows {
            let name = try #require(row["arch"]?.stringValue)
            let source = try TestSupport.fixture("parity_keras_arch_efficientnet/\(try #require(row["checkpoint"]?.stringValue))")
            let out = dir.appendingPathComponent("\(name).safetensors").path
            let r = try TestSupport.zoo(["convert", source, "--arch", "auto", "-o", out, "--json", "--force"])
            #expect(r.status == 0, "\(name): \(r.stderr)")
            let converted = try JSONValue.parse(r.stdout)
            #expect(converted["architecture"]?.stringValue == name && converted["complete"]?.boolValue == true
                    && converted["flavour"]?.stringValue == "keras", "\(name): \(r.stdout.prefix(600))")
            let pre = try Self.preprocessing(of: out)
            let raw = try Self.npy("parity_keras_arch_efficientnet/\(try #require(row["raw_input"]?.stringValue))")
            let given = try Self.npy("parity_keras_arch_efficientnet/\(try #require(row["input"]?.stringValue))")
            let error = { (mean: [Double], std: [Double]) in Self.preprocessingError(raw: raw, given: given, scale: pre.scale, mean: mean, std: std) }
            #expect(error(pre.mean, pre.std) < 1e-5, "\(name): the file's preprocessing misses Keras's by \(error(pre.mean, pre.std))")
            if name.hasPrefix("efficientnet_b") {
                let imagenet = error([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
                #expect(imagenet > 1e-2, "\(name): ImageNet's mean and std fit the fixture's random Normalization (\(imagenet))")
            }
            try? FileManager.default.removeItem(atPath: out)
        }
    }

    /// A Keras EfficientNetB0 fine-tuned the usual way (`weights="imagenet"`, no top, then GAP -> Dense(7); a
    /// tf-keras full-model .h5): Keras rescales again after its Normalization (by 1/sqrt(ImageNet std), tf-keras's
    /// `tf.math.multiply`), which the converter reads from the model's config. The converted file's preprocessing
    /// reproduces Keras's, its logits Keras's; without that second rescaling (the Normalization alone) it must miss.
    @Test func kerasImageNetStyleFineTune() throws {
        let name = "efficientnet_b0-imagenet-gap-dense7"
        let source = try TestSupport.fixture("keras_imagenet_style/\(name).h5")
        let dir = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("ft.safetensors").path
        let r = try TestSupport.zoo(["convert", source, "--arch", "auto", "-o", out, "--json"])
        #expect(r.status == 0, "\(r.stderr)")
        let doc = try JSONValue.parse(r.stdout)
        #expect(doc["architecture"]?.stringValue == "efficientnet_b0" && doc["complete"]?.boolValue == true, "\(r.stdout.prefix(600))")
        #expect(r.stdout.contains("then rescaled by"), "\(r.stdout.prefix(1200))")
        let pre = try Self.preprocessing(of: out)
        let raw = try Self.npy("keras_imagenet_style/\(name).raw.npy"), given = try Self.npy("keras_imagenet_style/\(name).input.npy")
        let error = { (std: [Double]) in Self.preprocessingError(raw: raw, given: given, scale: pre.scale, mean: pre.mean, std: std) }
        #expect(error(pre.std) < 1e-5, "preprocessing misses Keras's by \(error(pre.std))")
        #expect(error(pre.std.map { $0.squareRoot() }) > 1e-2, "the Normalization alone fits too")
        let logits = dir.appendingPathComponent("logits.npy").path
        let run = try TestSupport.zoo(["run", out, "--input", try TestSupport.fixture("keras_imagenet_style/\(name).input.npy"), "-o", logits])
        #expect(run.status == 0, "\(run.stderr)")
        let got = try MappedFile(path: logits).withBytes { try NPY.read($0) }.floats()
        let want = try Self.npy("keras_imagenet_style/\(name).logits.npy").floats()
        let peak = want.map { abs(Double($0)) }.max() ?? 0
        let worst = zip(got, want).map { abs(Double($0) - Double($1)) }.max() ?? .infinity
        #expect(got.count == want.count && worst <= 1e-4 * peak, "logits: \(worst) of \(peak)")
    }
    /// A fixture's .npy file.
    static func npy(_ fixture: String) throws -> Tensor {
        try MappedFile(path: try TestSupport.fixture(fixture)).withBytes { try NPY.read($0) }
    }

    /// The `zoo.preprocessing` a converted file states (`zoo inspect --json`): scale, and mean and std per channel.
    static func preprocessing(of file: String) throws -> (scale: Double, mean: [Double], std: [Double]) {
        let info = try TestSupport.zoo(["inspect", file, "--json"])
        let pre = try #require(try JSONValue.parse(info.stdout)["metadata"]?["zoo.preprocessing"], "\(file): \(info.stdout.prefix(400))")
        let mean = pre["mean"]?.arrayValue?.compactMap(\.doubleValue) ?? []
        let std = pre["std"]?.arrayValue?.compactMap(\.doubleValue) ?? []
        #expect(pre["mode"]?.stringValue == "torch", "\(file): \(pre)")
        try #require(mean.count == 3 && std.count == 3, "\(file): \(pre)")
        return (try #require(pre["scale"]?.doubleValue), mean, std)
    }

    /// How far `(raw * scale - mean) / std` per channel (NCHW pixels) is from `given`, the tensor Keras handed its
    /// stem: max abs difference over max |given|.
    static func preprocessingError(raw: Tensor, given: Tensor, scale: Double, mean: [Double], std: [Double]) -> Double {
        guard raw.shape == given.shape, raw.shape.count == 4, raw.shape[1] == 3 else { return .infinity }
        let plane = raw.shape[2] * raw.shape[3]
        var worst = 0.0, peak = 0.0
        for (i, (x, y)) in zip(raw.floats(), given.floats()).enumerated() {
            let c = (i / plane) % 3
            worst = max(worst, abs((Double(x) * scale - mean[c]) / std[c] - Double(y)))
            peak = max(peak, abs(Double(y)))
        }
        return worst / peak
    }
}
