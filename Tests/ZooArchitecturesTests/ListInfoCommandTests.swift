import Foundation
import Testing
import ZooArchitectures
import ZooJSON
import ZooTestSupport

/// Runs the built `zoo` from a folder outside the repository (the catalogue is compiled in).
func zooElsewhere(_ args: [String]) throws -> TestSupport.ProcessResult {
    try TestSupport.run(TestSupport.zooBinary, args, currentDirectory: FileManager.default.temporaryDirectory.path)
}

@Suite("zoo list and zoo info")
struct ListInfoCommandTests {
    /// Counts from the real Keras applications (tools/fixtures/gen_arch.py, keras_counting.py): count_params(),
    /// trainable parameters and multiply-accumulates counted layer by layer in Python.
    static func kerasCounts() throws -> JSONValue {
        let path = try TestSupport.fixture("arch/keras_counts.json")
        return try JSONValue.parse(String(decoding: try Data(contentsOf: URL(fileURLWithPath: path)), as: UTF8.self))
    }

    @Test("zoo list --json: every architecture with exact parameters, GFLOPs and weights, from any folder")
    func listJSON() throws {
        let r = try zooElsewhere(["list", "--json"])
        #expect(r.status == 0, "\(r.stderr)")
        let doc = try #require(try JSONValue.parse(r.stdout).arrayValue)
        #expect(doc.map { $0["name"]?.stringValue ?? "" } == Architectures.names)
        let specs = try loadSpecs()
        let keras = try Self.kerasCounts()
        let cat = try Catalogue.shared()
        var kerasOnly = 0
        for e in doc {
            let name = try #require(e["name"]?.stringValue)
            #expect(e["family"]?.stringValue != nil && e["weights"]?.arrayValue != nil)
            let gflops = try #require(e["gflops"]?.doubleValue)
            let flavours = e["flavours"]?.arrayValue?.compactMap(\.stringValue) ?? []
            let size = e["input_size"]?.arrayValue?.compactMap(\.intValue) ?? []
            // 224 px, but EfficientNet B1-B7 and V2 (their weights' crop, where torchvision's GFLOPs are stated; Keras's
            // own input size for the Keras-only V2 B series).
            #expect(size == (name.hasPrefix("efficientnet") && name != "efficientnet_b0" ? [size.first ?? 0, size.first ?? 0] : [224, 224]), "\(name): \(size)")
            if name.hasPrefix("efficientnet") {
                let pre = try cat.entry(name).preprocessing
                let crop = (pre?["crop"]?.arrayValue ?? pre?["resize"]?.arrayValue)?.compactMap(\.intValue)
                #expect(size == crop.map { [$0.first ?? 0, $0.first ?? 0] }, "\(name): \(size) is its weights' crop")
            }
            // Every entry's parameters and GFLOPs against an independent reference: torchvision's
            // num_params and published GFLOPs, or (Keras-only) the Keras model's own figures.
            if flavours.contains("torchvision") {
                let ref = try #require(specs["torchvision"]?[name]?["num_params"]?.intValue, "\(name): no torchvision reference")
                #expect(e["parameters"]?.intValue == ref, "\(name)")
                let pub = try #require(cat.entry(name).weights.first { $0.source == "torchvision" }?.json["published"]?["gflops"]?.doubleValue)
                #expect(abs(gflops - pub) / pub < 0.01, "\(name): \(gflops) GFLOPs vs torchvision's \(pub)")
            } else {
                kerasOnly += 1
                #expect(flavours == ["keras"], "\(name): \(flavours)")
                let ref = try #require(keras[name]?["sizes"]?["224"]?["tf_keras"], "\(name): no Keras reference")
                #expect(e["parameters"]?.intValue == ref["trainable_params"]?.intValue, "\(name): parameters")
                // GFLOPs at the listed input size; the Keras counts are at 224 (infoKerasCounts checks the others there).
                let macs = try #require(ref["macs"]?.intValue)
                if size == [224, 224] {
                    #expect(abs(gflops - Double(macs) / 1e9) <= 0.5e-4 + 1e-12, "\(name): \(gflops) GFLOPs vs Keras \(Double(macs) / 1e9)")
                }
            }
            if flavours.contains("keras") {
                for api in ["tf_keras", "keras"] {
                    let ref = try #require(keras[name]?["sizes"]?["224"]?[api]?["count_params"]?.intValue, "\(name): no \(api) count")
                    #expect(e["keras_parameters"]?.intValue == ref, "\(name): keras_parameters vs \(api) count_params()")
                }
            } else {
                #expect(e["keras_parameters"] == nil, "\(name)")
            }
            for w in e["weights"]?.arrayValue ?? [] {
                #expect(w["tag"]?.stringValue != nil && w["url"]?.stringValue != nil && w["source"]?.stringValue != nil)
                #expect(w["sha256_prefix"]?.stringValue != nil || w["sha256"]?.stringValue?.count == 64 || w["md5"]?.stringValue != nil || w["note"] != nil,
                        "\(name) \(w)")
            }
        }
        #expect(kerasOnly == 16, "Keras-only architectures: \(kerasOnly)")
        let r50 = try #require(doc.first { $0["name"]?.stringValue == "resnet50" })
        #expect(r50["keras_parameters"]?.intValue == specs["keras"]?["ResNet50"]?["count_params"]?.intValue)
        #expect(r50["weights"]?.arrayValue?.contains { $0["md5"]?.stringValue == "2cb95161c43110f7111970584f804107" } == true)
    }

    @Test("zoo info --flavour keras --json: parameters, Keras count_params and MACs exactly the Keras model's, at 224 and 160")
    func infoKerasCounts() throws {
        let keras = try Self.kerasCounts()
        let names = Architectures.names.filter { Architectures.flavours(of: $0).contains(.keras) }
        #expect(names.count == 39 && Set(names) == Set(keras.objectValue?.map(\.0) ?? []))
        var checked = 0
        for name in names {
            for (size, ref) in try #require(keras[name]?["sizes"]?.objectValue) {
                let r = try zooElsewhere(["info", name, "--flavour", "keras", "--input-size", size, "--json"])
                #expect(r.status == 0, "\(name) \(size): \(r.stderr)")
                let doc = try JSONValue.parse(r.stdout)
                let apis = ref.objectValue?.map(\.0) ?? []
                #expect(apis.contains("tf_keras") && (size != "224" || apis.contains("keras")), "\(name) \(size): \(apis)")
                for api in apis {
                    #expect(doc["macs"]?.intValue == ref[api]?["macs"]?.intValue,
                            "\(name) at \(size): MACs \(doc["macs"]?.intValue ?? -1) vs \(api) \(ref[api]?["macs"]?.intValue ?? -1)")
                    #expect(doc["parameters"]?.intValue == ref[api]?["trainable_params"]?.intValue, "\(name) \(api) trainable")
                    #expect(doc["keras_parameters"]?.intValue == ref[api]?["count_params"]?.intValue, "\(name) \(api) count_params")
                }
                let macs = Double(doc["macs"]?.intValue ?? 0)
                #expect(abs((doc["gflops"]?.doubleValue ?? -1) - macs / 1e9) <= 0.5e-4 + 1e-12, "\(name) \(size) gflops")
                checked += 1
            }
        }
        #expect(checked == 47, "\(checked) (architecture, size) pairs: 39 at 224, 8 also at 160")
        // Negative control: torchvision's ResNet-50 (stride on the 3x3 conv) costs more than Keras's (stride on the first 1x1).
        let tv = try JSONValue.parse(try zooElsewhere(["info", "resnet50", "--flavour", "torchvision", "--json"]).stdout)
        let k = try #require(keras["resnet50"]?["sizes"]?["224"]?["tf_keras"]?["macs"]?.intValue)
        #expect(tv["macs"]?.intValue != nil && tv["macs"]?.intValue != k)
    }

    @Test("A copy of the zoo binary in another folder lists the catalogue: the data is compiled in, no file or bundle is looked up")
    func copiedBinary() throws {
        let dir = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let copy = dir.appendingPathComponent("zoo").path
        try FileManager.default.copyItem(atPath: TestSupport.zooBinary, toPath: copy)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["zoo"], "nothing but the binary beside the copy")
        for args in [["list"], ["list", "--json"], ["info", "resnet50", "--json"]] {
            let r = try TestSupport.run(copy, args, currentDirectory: dir.path)
            #expect(r.status == 0, "\(args): \(r.stderr)")
            #expect(r.stdout == (try zooElsewhere(args)).stdout, "\(args): the copy prints what the built binary prints")
            #expect(r.stdout.contains("resnet50") && r.stdout.contains("IMAGENET1K_V2"), "\(args)")
        }
        let list = try JSONValue.parse(try TestSupport.run(copy, ["list", "--json"], currentDirectory: dir.path).stdout)
        #expect(list.arrayValue?.map { $0["name"]?.stringValue ?? "" } == Architectures.names)
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
