import Foundation
import Testing
import ZooJSON
import ZooTestSupport

/// ConvNeXt Tiny/Small/Base/Large (torchvision) through the command line: `--arch auto` tells the four
/// apart from the tensors alone (Tiny and Small differ only in the third stage's depth), the wrong
/// explicit name is refused, and `zoo info` states each size's facts and its four taps. Logits, feature
/// maps and the strict round trip into torchvision: Tests/ParityTests (`parity_torch_arch`); gradients:
/// ZooTrainingTests (convnext_tiny).
@Suite struct ConvNeXtTests {
    static let names = ["convnext_tiny", "convnext_small", "convnext_base", "convnext_large"]

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
        #expect(entries.compactMap { $0["name"]?.stringValue } == Self.names)
        let base = try TestSupport.zoo(["info", "convnext_base", "--json"])
        let doc = try JSONValue.parse(base.stdout)
        #expect(doc["parameters"]?.intValue == 88_591_464, "\(base.stdout.prefix(400))")
        #expect(doc["config"]?["dims"]?.arrayValue?.compactMap(\.intValue) == [128, 256, 512, 1024])
        #expect(doc["config"]?["depths"]?.arrayValue?.compactMap(\.intValue) == [3, 3, 27, 3])
        #expect(doc["config"]?["bn_eps"]?.doubleValue == 1e-6)
        let text = try TestSupport.zoo(["info", "convnext_tiny"])
        #expect(text.status == 0 && text.stdout.contains("layernorm") && text.stdout.contains("layer_scale"), "\(text.stdout.prefix(2000))")
    }
}
