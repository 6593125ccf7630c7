import Foundation
import Testing
import ZooJSON
import ZooTestSupport

/// EfficientNet B0-B7 and V2 S/M/L (torchvision) through the command line: `--arch auto` tells the
/// eleven apart from the tensors alone (the B series differs only in width and depth), the wrong
/// explicit name is refused, and `zoo info` states each variant's facts. Logits and feature maps
/// against torchvision: Tests/ParityTests (`parity_torch_arch`); gradients: ZooTrainingTests.
@Suite struct EfficientNetTests {
    static let names = (0...7).map { "efficientnet_b\($0)" } + ["efficientnet_v2_s", "efficientnet_v2_m", "efficientnet_v2_l"]

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
        #expect(entries.compactMap { $0["name"]?.stringValue } == Self.names)
        let b7 = try TestSupport.zoo(["info", "efficientnet_b7", "--json"])
        let doc = try JSONValue.parse(b7.stdout)
        #expect(doc["parameters"]?.intValue == 66_347_960, "\(b7.stdout.prefix(400))")
        #expect(doc["config"]?["width_mult"]?.doubleValue == 2.0 && doc["config"]?["depth_mult"]?.doubleValue == 3.1)
        #expect(doc["config"]?["bn_eps"]?.doubleValue == 0.001)
    }
}
