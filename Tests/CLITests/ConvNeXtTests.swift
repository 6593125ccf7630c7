import Foundation
import Testing
import ZooJSON
import ZooTestSupport

/// ConvNeXt Tiny/Small/Base/Large (torchvision and Keras) and XLarge (Keras) through the command line:
/// `--arch auto` tells the sizes apart from the tensors alone (Tiny and Small differ only in the third
/// stage's depth), in torchvision's names and in Keras's layer order, a Keras base without top is
/// recognised as one, the wrong explicit name is refused, and `zoo info` states each size's facts and
/// its four taps. Logits, feature maps and the strict round trip into torchvision: Tests/ParityTests
/// (`parity_torch_arch`, `parity_keras_arch_convnext`, and `parity_keras`'s two custom heads); gradients:
/// ZooTrainingTests (convnext_tiny).
@Suite struct ConvNeXtTests {
    static let names = ["convnext_tiny", "convnext_small", "convnext_base", "convnext_large"]
    static let kerasNames = names + ["convnext_xlarge"]

    @Test func autoRecognisesEverySize() throws {
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
        // Negative control: Small has Tiny's widths but 27 blocks in stage 3; named as Tiny it must be refused.
        let small = try TestSupport.fixture("parity_torch_arch/convnext_small-64x64.f32.pth")
        let target = dir.appendingPathComponent("x.safetensors").path
        let wrong = try TestSupport.zoo(["convert", small, "--arch", "convnext_tiny", "-o", target])
        #expect(wrong.status != 0 && wrong.stderr.contains("convnext_small-64x64.f32.pth"), "\(wrong.stderr)")
        #expect(!FileManager.default.fileExists(atPath: target))
    }

    @Test func infoStatesEachSize() throws {
        let r = try TestSupport.zoo(["list", "--json"])
        #expect(r.status == 0)
        let entries = try #require(try JSONValue.parse(r.stdout).arrayValue).filter { $0["family"]?.stringValue == "convnext" }
        #expect(entries.compactMap { $0["name"]?.stringValue } == Self.kerasNames)
        let xlarge = try #require(entries.last)
        #expect(xlarge["flavours"]?.arrayValue?.compactMap(\.stringValue) == ["keras"], "\(xlarge)")
        let base = try TestSupport.zoo(["info", "convnext_base", "--json"])
        let doc = try JSONValue.parse(base.stdout)
        #expect(doc["parameters"]?.intValue == 88_591_464, "\(base.stdout.prefix(400))")
        #expect(doc["config"]?["dims"]?.arrayValue?.compactMap(\.intValue) == [128, 256, 512, 1024])
        #expect(doc["config"]?["depths"]?.arrayValue?.compactMap(\.intValue) == [3, 3, 27, 3])
        #expect(doc["config"]?["bn_eps"]?.doubleValue == 1e-6)
        let text = try TestSupport.zoo(["info", "convnext_tiny"])
        #expect(text.status == 0 && text.stdout.contains("layernorm") && text.stdout.contains("layer_scale"), "\(text.stdout.prefix(2000))")
    }

    /// Every Keras size from its weight file alone (tf-keras legacy .h5 and Keras 3 .weights.h5 alternate).
    @Test func autoRecognisesEveryKerasSize() throws {
        let manifest = try TestSupport.fixture("parity_keras_arch_convnext/cases.json")
        let doc = try JSONValue.parse(String(decoding: try Data(contentsOf: URL(fileURLWithPath: manifest)), as: UTF8.self))
        let rows = (doc["cases"]?.arrayValue ?? []).filter { $0["arch"]?.stringValue?.hasPrefix("convnext") == true }
        #expect(rows.compactMap { $0["arch"]?.stringValue } == Self.kerasNames)
        let dir = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        for row in rows {
            let name = try #require(row["arch"]?.stringValue)
            let source = try TestSupport.fixture("parity_keras_arch_convnext/\(try #require(row["checkpoint"]?.stringValue))")
            let out = dir.appendingPathComponent("\(name).safetensors").path
            let r = try TestSupport.zoo(["convert", source, "--arch", "auto", "-o", out, "--json", "--force"])
            #expect(r.status == 0, "\(name): \(r.stderr)")
            let doc = try JSONValue.parse(r.stdout)
            #expect(doc["architecture"]?.stringValue == name && doc["complete"]?.boolValue == true, "\(name): \(r.stdout.prefix(600))")
            #expect(doc["flavour"]?.stringValue == "keras", "\(name): \(r.stdout.prefix(600))")
            try? FileManager.default.removeItem(atPath: out)
        }
    }

    /// A Keras ConvNeXt base without top (its last LayerNorm at every position) converts as the backbone,
    /// that LayerNorm kept; named as the wrong size it is refused.
    @Test func kerasBaseWithoutTop() throws {
        let source = try TestSupport.fixture("parity_keras/ConvNeXtTiny-64-gap-dense7-tf-keras.base.h5")
        let dir = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("base.safetensors").path
        let r = try TestSupport.zoo(["convert", source, "--arch", "auto", "-o", out, "--json"])
        #expect(r.status == 0, "\(r.stderr)")
        let doc = try JSONValue.parse(r.stdout)
        #expect(doc["architecture"]?.stringValue == "convnext_tiny" && doc["complete"]?.boolValue == true, "\(r.stdout.prefix(600))")
        #expect(r.stdout.contains("no top"), "\(r.stdout.prefix(600))")
        let info = try TestSupport.zoo(["inspect", out, "--json"])
        #expect(info.status == 0 && info.stdout.contains("classifier.0.weight") && !info.stdout.contains("classifier.2"), "\(info.stdout.prefix(800))")
        let wrong = dir.appendingPathComponent("wrong.safetensors").path
        let refused = try TestSupport.zoo(["convert", source, "--arch", "convnext_small", "-o", wrong])
        #expect(refused.status != 0 && refused.stderr.contains("base.h5"), "\(refused.stderr)")
        #expect(!FileManager.default.fileExists(atPath: wrong))
    }
}
