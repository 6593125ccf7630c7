import Foundation
import Testing
import ZooArchitectures
import ZooErrors
import ZooJSON
import ZooTestSupport

@Suite("The catalogue")
struct CatalogueTests {
    @Test("Every catalogue file of zoo/ is compiled in, and no architecture copies its stages into the JSON")
    func embeddedFiles() throws {
        let dir = TestSupport.root.appendingPathComponent("zoo")
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".json") || $0.hasSuffix(".txt") }.sorted()
        #expect(Catalogue.embeddedFiles.map(\.0) == files, "a file of zoo/ is missing from Catalogue.embeddedFiles")
        #expect(files.contains("preprocessing.json") && files.count >= 7)
        for file in files where file.hasSuffix(".json") {
            let doc = try JSONValue.parse(String(decoding: try Data(contentsOf: dir.appendingPathComponent(file)), as: UTF8.self))
            for a in doc["architectures"]?.arrayValue ?? [] {
                #expect(a["stages"] == nil, "zoo/\(file): \(a["name"]?.stringValue ?? "?") states stages; they come from the graph's taps")
            }
        }
    }

    @Test("Every architecture is in the catalogue, with five feature taps from its graph")
    func entries() throws {
        let cat = try Catalogue.shared()
        #expect(cat.entries.map(\.name) == Architectures.names)
        for e in cat.entries {
            // The taps' names, channels and strides are checked against torchvision's and Keras's own
            // models by Tests/ParityTests (`features`: `zoo.feature_info` and the maps at each tap).
            // ConvNeXt's stride-4 stem leaves four (timm's feature_info for it).
            #expect(try e.config().graph().taps.count == (e.name.hasPrefix("convnext") ? 4 : 5), "\(e.name)")
            // 224 px, but EfficientNet B1-B7 and V2: the crop of the architecture's default weights (Keras's input
            // size, its resize, for the Keras-only V2 B series).
            let crop = (e.preprocessing?["crop"]?.arrayValue ?? e.preprocessing?["resize"]?.arrayValue)?.compactMap(\.intValue).first
            #expect(e.inputSize == (e.name.hasPrefix("efficientnet") ? [crop ?? 0, crop ?? 0] : [224, 224]), "\(e.name)")
            #expect(e.preprocessing != nil, "\(e.name) has default preprocessing")
        }
        #expect(throws: ZooError.self) { try cat.entry("resnet5") }
    }

    @Test("Preprocessing recipes: named by the weight sets and architectures, resolved to zoo/preprocessing.json's objects")
    func recipes() throws {
        let dir = TestSupport.root.appendingPathComponent("zoo")
        func load(_ file: String) throws -> JSONValue {
            try JSONValue.parse(String(decoding: try Data(contentsOf: dir.appendingPathComponent(file)), as: UTF8.self))
        }
        let recipes = try #require(try load("preprocessing.json")["recipes"]?.objectValue)
        #expect(recipes.count == 39)
        let cat = try Catalogue.shared()
        var used: Set<String> = [], weightSets = 0
        for file in try FileManager.default.contentsOfDirectory(atPath: dir.path) where file.hasSuffix(".json") && file != "preprocessing.json" {
            for a in try load(file)["architectures"]?.arrayValue ?? [] {
                let entry = try cat.entry(try #require(a["name"]?.stringValue))
                let name = try #require(a["preprocessing"]?.stringValue, "\(entry.name): preprocessing names a recipe")
                used.insert(name)
                #expect(entry.preprocessing == recipes.first { $0.0 == name }?.1, "\(entry.name)")
                let stored = a["weights"]?.arrayValue ?? []
                #expect(stored.count == entry.weights.count)
                for (w, resolved) in zip(stored, entry.weights) {
                    let ref = try #require(w["preprocessing"]?.stringValue, "\(entry.name) \(resolved.tag): preprocessing names a recipe")
                    used.insert(ref)
                    let recipe = try #require(recipes.first { $0.0 == ref }?.1)
                    #expect(resolved.preprocessing == recipe, "\(entry.name) \(resolved.tag)")
                    #expect(resolved.json["preprocessing"] == recipe, "\(entry.name) \(resolved.tag): the stored entry carries the recipe")
                    weightSets += 1
                }
            }
        }
        #expect(weightSets == 181)
        #expect(used == Set(recipes.map(\.0)), "recipes nothing names: \(Set(recipes.map(\.0)).subtracting(used))")
        // Resolved values keep the recipe's keys in their order (what a converted file's zoo.preprocessing stores).
        let v2 = try #require(cat.entry("resnet50").weights.first { $0.tag == "IMAGENET1K_V2" })
        #expect(v2.preprocessing.objectValue?.map(\.0) == ["mode", "channel_order", "scale", "resize", "crop", "mean", "std", "interpolation", "antialias"])
        #expect(v2.preprocessing["resize"] == .array([.int(232)]))
    }

    @Test("An unknown preprocessing recipe is an error naming the file and the weight set")
    func unknownRecipe() throws {
        let recipes = ("preprocessing.json", #"{"recipes": {"keras_caffe": {"mode": "caffe", "resize": [224, 224]}}}"#)
        func family(_ archRecipe: String, _ weightsRecipe: String) -> (String, String) {
            ("resnet.json", #"{"family": "resnet", "architectures": [{"name": "resnet50", "preprocessing": "\#(archRecipe)", "weights": "#
                + #"[{"tag": "KERAS_IMAGENET", "source": "keras", "url": "https://x/r.h5", "preprocessing": "\#(weightsRecipe)"}]}]}"#)
        }
        // Control: known names resolve.
        let good = try Catalogue(files: [family("keras_caffe", "keras_caffe"), recipes])
        #expect(good.entries.first?.weights.first?.preprocessing["mode"]?.stringValue == "caffe")
        #expect(good.entries.first?.preprocessing?["resize"] == .array([.int(224), .int(224)]))
        let error = try #require(throws: ZooError.self) { try Catalogue(files: [recipes, family("keras_caffe", "keras_cafe")]) }
        #expect(error.kind == .badInput && error.file == "zoo/resnet.json" && error.item == "resnet50 KERAS_IMAGENET")
        #expect(error.message.contains("unknown preprocessing recipe \"keras_cafe\"") && error.message.contains("keras_caffe"), "\(error)")
        let arch = try #require(throws: ZooError.self) { try Catalogue(files: [recipes, family("torch", "keras_caffe")]) }
        #expect(arch.file == "zoo/resnet.json" && arch.item == "resnet50" && arch.message.contains("\"torch\""), "\(arch)")
        // Without the recipes file, every name is unknown; an inline object is not a recipe name.
        #expect(throws: ZooError.self) { try Catalogue(files: [family("keras_caffe", "keras_caffe")]) }
        let inline = ("resnet.json", #"{"family": "resnet", "architectures": [{"name": "resnet50", "preprocessing": {"mode": "caffe"}}]}"#)
        let object = try #require(throws: ZooError.self) { try Catalogue(files: [recipes, inline]) }
        #expect(object.message.contains("must name a recipe"), "\(object)")
    }

    @Test("Weights: 47 torchvision sets with hash prefixes; Keras URLs with the MD5s Keras checks")
    func weights() throws {
        let cat = try Catalogue.shared()
        let all = cat.entries.flatMap { e in e.weights.map { (e.name, $0) } }
        let tv = all.filter { $0.1.source == "torchvision" }
        #expect(tv.count == 47)
        for (name, w) in tv {
            let prefix = try #require(w.sha256Prefix, "\(name) \(w.tag)")
            #expect(w.file.contains("-\(prefix)"), "\(w.file) carries its hash prefix")
            #expect(w.url.hasPrefix("https://download.pytorch.org/models/"))
            #expect(w.preprocessing["mean"]?.arrayValue?.count == 3)
            #expect(w.fileSize != nil)
        }
        let keras = all.filter { $0.1.source == "keras" }
        for (name, w) in keras {
            // Keras's EfficientNet B0-B7 files sit in the older bucket path.
            let bucket = name.hasPrefix("efficientnet_b") ? "https://storage.googleapis.com/keras-applications/efficientnetb"
                : "https://storage.googleapis.com/tensorflow/keras-applications/"
            #expect(w.url.hasPrefix(bucket), "\(name): \(w.url)")
            #expect(w.flavour == .keras)
            if name.hasPrefix("resnet") || name.hasPrefix("vgg") || name.hasPrefix("mobilenet_v3") {
                #expect(w.md5?.count == 32, "\(name) \(w.tag) has Keras's MD5")
            }
            if name.hasPrefix("efficientnet") {
                // Keras's EfficientNet files: the MD5s Keras checks; the in-model preprocessing is torch-style mean/std
                // (V2 S/M/L's x / 128 - 1 as mean = std = 128/255).
                #expect(w.md5?.count == 32 && w.sha256 == nil, "\(name) \(w.tag): Keras's MD5")
                #expect(w.preprocessing["mode"]?.stringValue == "torch" && w.preprocessing["crop"] == .null)
                continue
            }
            if name.hasPrefix("convnext") {
                // Keras's ConvNeXt files: the SHA-256 Keras checks; its in-model Normalization is torch's mean/std.
                #expect(w.sha256?.count == 64 && w.md5 == nil, "\(name) \(w.tag) has Keras's SHA-256")
                #expect(w.preprocessing["mode"]?.stringValue == "torch" && w.preprocessing["crop"] == .null)
                continue
            }
            #expect(w.preprocessing["mode"]?.stringValue == (name.hasPrefix("resnet") || name.hasPrefix("vgg") ? "caffe" : "tf"))
        }
        // Keras's published hash of ResNet50's top file (keras/src/applications/resnet.py).
        let r50 = try #require(cat.entry("resnet50").weights.first { $0.tag == "KERAS_IMAGENET" })
        #expect(r50.md5 == "2cb95161c43110f7111970584f804107")
        // ... and of ConvNeXtTiny's (keras/src/applications/convnext.py).
        let tiny = try #require(cat.entry("convnext_tiny").weights.first { $0.tag == "KERAS_IMAGENET" })
        #expect(tiny.sha256 == "8ae6e78ce2933352b1ef4008e6dd2f17bc40771563877d156bc6426c7cf503ff")
        #expect(keras.filter { $0.0.hasPrefix("convnext") }.count == 10)
        #expect(cat.imagenetLabels.count == 1000)
        #expect(cat.imagenetLabels.first == "tench")
    }

    @Test("A malformed catalogue file is a clear error")
    func malformed() {
        #expect(throws: ZooError.self) { try Catalogue(files: [("bad.json", "{\"family\": \"resnet\"")]) }
        #expect(throws: ZooError.self) { try Catalogue(files: [("bad.json", "{\"family\": \"resnet\", \"architectures\": [{\"name\": \"vgg16\"}]}")]) }
    }
}
