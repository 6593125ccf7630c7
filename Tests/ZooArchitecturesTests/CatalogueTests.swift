import Foundation
import Testing
import ZooArchitectures
import ZooTensor
import ZooTestSupport

@Suite("The catalogue")
struct CatalogueTests {
    @Test("The embedded catalogue equals zoo/ (run tools/catalogue/embed.py after editing zoo/)")
    func embeddedIsCurrent() throws {
        let dir = TestSupport.root.appendingPathComponent("zoo")
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".json") || $0.hasSuffix(".txt") }.sorted()
        let embedded = Catalogue.embeddedFiles
        #expect(embedded.map(\.0) == files, "files in zoo/ differ from the embedded ones: run tools/catalogue/embed.py")
        for (name, text) in embedded {
            let disk = String(decoding: try Data(contentsOf: dir.appendingPathComponent(name)), as: UTF8.self)
            #expect(disk.trimmingCharacters(in: .newlines) == text, "zoo/\(name) changed: run tools/catalogue/embed.py")
        }
    }

    @Test("Every architecture is in the catalogue with its stages as the graph computes them")
    func entries() throws {
        let cat = try Catalogue.shared()
        #expect(cat.entries.map(\.name) == Architectures.names)
        for e in cat.entries {
            let stages = try e.graphStages()
            #expect(e.stages == stages, "\(e.name): catalogue stages \(e.stages) vs graph \(stages)")
            #expect(e.inputSize == [224, 224])
            #expect(e.preprocessing != nil, "\(e.name) has default preprocessing")
        }
        #expect(throws: ZooError.self) { try cat.entry("resnet5") }
    }

    @Test("Weights: 31 torchvision sets with hash prefixes; Keras URLs with the MD5s Keras checks")
    func weights() throws {
        let cat = try Catalogue.shared()
        let all = cat.entries.flatMap { e in e.weights.map { (e.name, $0) } }
        let tv = all.filter { $0.1.source == "torchvision" }
        #expect(tv.count == 31)
        for (name, w) in tv {
            let prefix = try #require(w.sha256Prefix, "\(name) \(w.tag)")
            #expect(w.file.contains("-\(prefix)"), "\(w.file) carries its hash prefix")
            #expect(w.url.hasPrefix("https://download.pytorch.org/models/"))
            #expect(w.preprocessing["mean"]?.arrayValue?.count == 3)
            #expect(w.fileSize != nil)
        }
        let keras = all.filter { $0.1.source == "keras" }
        for (name, w) in keras {
            #expect(w.url.hasPrefix("https://storage.googleapis.com/tensorflow/keras-applications/"), "\(name)")
            #expect(w.flavour == .keras)
            if name.hasPrefix("resnet") || name.hasPrefix("vgg") || name.hasPrefix("mobilenet_v3") {
                #expect(w.md5?.count == 32, "\(name) \(w.tag) has Keras's MD5")
            }
            #expect(w.preprocessing["mode"]?.stringValue == (name.hasPrefix("resnet") || name.hasPrefix("vgg") ? "caffe" : "tf"))
        }
        // Keras's published hash of ResNet50's top file (keras/src/applications/resnet.py).
        let r50 = try #require(cat.entry("resnet50").weights.first { $0.tag == "KERAS_IMAGENET" })
        #expect(r50.md5 == "2cb95161c43110f7111970584f804107")
        #expect(cat.imagenetLabels.count == 1000)
        #expect(cat.imagenetLabels.first == "tench")
    }

    @Test("A malformed catalogue file is a clear error")
    func malformed() {
        #expect(throws: ZooError.self) { try Catalogue(files: [("bad.json", "{\"family\": \"resnet\"")]) }
        #expect(throws: ZooError.self) { try Catalogue(files: [("bad.json", "{\"family\": \"resnet\", \"architectures\": [{\"name\": \"vgg16\"}]}")]) }
    }
}
