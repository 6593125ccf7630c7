import Foundation
import Testing
import ZooArchitectures
import ZooTensor
import ZooTestSupport

/// Runs the built `zoo` from a folder outside the repository (the catalogue is compiled in).
func zooElsewhere(_ args: [String]) throws -> TestSupport.ProcessResult {
    try TestSupport.run(TestSupport.zooBinary, args, currentDirectory: FileManager.default.temporaryDirectory.path)
}

@Suite("zoo list and zoo info")
struct ListInfoCommandTests {
    @Test("zoo list --json: every architecture with exact parameters, GFLOPs and weights, from any folder")
    func listJSON() throws {
        let r = try zooElsewhere(["list", "--json"])
        #expect(r.status == 0, "\(r.stderr)")
        let doc = try #require(try JSONValue.parse(r.stdout).arrayValue)
        #expect(doc.map { $0["name"]?.stringValue ?? "" } == Architectures.names)
        let specs = try loadSpecs()
        for e in doc {
            let name = try #require(e["name"]?.stringValue)
            #expect(e["family"]?.stringValue != nil && e["gflops"]?.doubleValue != nil && e["weights"]?.arrayValue != nil)
            if let ref = specs["torchvision"]?[name]?["num_params"]?.intValue {
                #expect(e["parameters"]?.intValue == ref, "\(name)")
            }
            for w in e["weights"]?.arrayValue ?? [] {
                #expect(w["tag"]?.stringValue != nil && w["url"]?.stringValue != nil && w["source"]?.stringValue != nil)
                #expect(w["sha256_prefix"]?.stringValue != nil || w["md5"]?.stringValue != nil || w["note"] != nil, "\(name) \(w)")
            }
        }
        let r50 = try #require(doc.first { $0["name"]?.stringValue == "resnet50" })
        #expect(r50["keras_parameters"]?.intValue == specs["keras"]?["ResNet50"]?["count_params"]?.intValue)
        #expect(r50["weights"]?.arrayValue?.contains { $0["md5"]?.stringValue == "2cb95161c43110f7111970584f804107" } == true)
    }

    @Test("zoo list --family filters; an unknown family is a usage error")
    func listFamily() throws {
        let r = try zooElsewhere(["list", "--family", "vgg"])
        #expect(r.status == 0)
        #expect(r.stdout.contains("vgg16_bn") && !r.stdout.contains("resnet50"))
        #expect(r.stdout.contains("IMAGENET1K_V1 (71.59)"))
        let m = try zooElsewhere(["list", "--family", "mobilenet", "--json"])
        #expect(try JSONValue.parse(m.stdout).arrayValue?.count == 14)
        let bad = try zooElsewhere(["list", "--family", "inception"])
        #expect(bad.status == 1)
        #expect(bad.stderr.hasPrefix("zoo: ") && bad.stderr.contains("unknown family"))
    }

    @Test("zoo info --json: parameters exact, GFLOPs within 1% of torchvision's, a layer table summing to the totals")
    func infoJSON() throws {
        let cat = try Catalogue.shared()
        for name in ["resnet50", "mobilenet_v3_large", "vgg11_bn"] {
            let r = try zooElsewhere(["info", name, "--json"])
            #expect(r.status == 0, "\(r.stderr)")
            let doc = try JSONValue.parse(r.stdout)
            let pub = try #require(cat.entry(name).weights.first?.json["published"])
            #expect(doc["parameters"]?.intValue == pub["num_params"]?.intValue)
            let gf = try #require(doc["gflops"]?.doubleValue), ref = try #require(pub["gflops"]?.doubleValue)
            #expect(abs(gf - ref) / ref < 0.01)
            let layers = try #require(doc["layers"]?.arrayValue)
            #expect(layers.reduce(0) { $0 + ($1["params"]?.intValue ?? 0) } == doc["parameters"]?.intValue)
            #expect(layers.last?["output_shape"]?.arrayValue?.compactMap(\.intValue) == [1000])
            #expect(doc["stages"]?.arrayValue?.count == 5)
        }
        let k = try zooElsewhere(["info", "mobilenet_v2_035", "--json", "--classes", "19", "--input-size", "96"])
        let kd = try JSONValue.parse(k.stdout)
        #expect(kd["flavour"]?.stringValue == "keras")
        #expect(kd["layers"]?.arrayValue?.last?["output_shape"]?.arrayValue?.compactMap(\.intValue) == [19])
        #expect(kd["input_size"]?.arrayValue?.compactMap(\.intValue) == [96, 96])
    }

    @Test("zoo info text, and its errors")
    func infoText() throws {
        let r = try zooElsewhere(["info", "resnet50"])
        #expect(r.status == 0)
        #expect(r.stdout.contains("parameters:    25557032"))
        #expect(r.stdout.contains("layer4.2.conv3") && r.stdout.contains("IMAGENET1K_V2"))
        let unknown = try zooElsewhere(["info", "resnet5"])
        #expect(unknown.status == 1 && unknown.stderr.contains("unknown architecture"))
        let flavour = try zooElsewhere(["info", "mobilenet_v1", "--flavour", "torchvision"])
        // Option values the architecture cannot take are usage errors (exit 1, docs/cli.md).
        #expect(flavour.status == 1 && flavour.stderr.contains("no torchvision flavour"))
        let small = try zooElsewhere(["info", "mobilenet_v1", "--input-size", "2"])
        #expect(small.status == 1 && small.stderr.contains("too small"), "\(small.stderr)")
    }
}
