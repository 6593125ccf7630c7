import Foundation
import Testing
import ZooArchitectures
import ZooFormats
import ZooRuntime
import ZooErrors
import ZooJSON
import ZooTensor
import ZooTestSupport

/// #12 item 2: a native file's `zoo.config` describes its graph; loading does not start from the preset
/// of its name, so widths, class counts and depths no preset has load and run.
@Suite struct SelfDescribingConfigTests {
    /// Writes `config` with random weights as a native file named `architecture`; returns its path and the weights.
    static func write(_ config: ArchitectureConfig, architecture: String, in dir: URL) throws -> (String, [String: Tensor]) {
        let weights = try RandomWeights.make(for: try config.graph())
        var meta = NativeMetadata()
        meta.architecture = architecture
        meta.config = try config.json
        let path = dir.appendingPathComponent("\(architecture)-\(UUID().uuidString).safetensors").path
        let records = weights.sorted { $0.key < $1.key }.map { TensorRecord(name: $0.key, tensor: $0.value) }
        try SafetensorsWriter.write(records, metadata: meta.encoded(), to: path, overwrite: true)
        return (path, weights)
    }

    static func input() throws -> Tensor {
        try Tensor(shape: [1, 3, 32, 32], floats: (0..<(3 * 32 * 32)).map { Float(($0 * 37) % 101) / 50 - 1 })
    }

    /// Each case: a configuration no preset has. The file loads with exactly that graph (not the preset's),
    /// and its logits equal those of the same graph and weights built directly.
    @Test(arguments: ["mobilenet_v2 width 0.6", "mobilenet_v2_035 torchvision", "resnet18 7 classes, depths 1"])
    func nonPresetConfigurationLoadsAndRuns(_ label: String) throws {
        var config: ArchitectureConfig
        var architecture: String
        switch label {
        case "mobilenet_v2 width 0.6":
            config = try Architectures.preset("mobilenet_v2", flavour: .torchvision, classes: 5)
            config.width = 0.6
            architecture = "mobilenet_v2"
        case "mobilenet_v2_035 torchvision":
            // No torchvision preset exists for this name (Keras only): the file alone says how to build it.
            config = try Architectures.preset("mobilenet_v2", flavour: .torchvision, classes: 3)
            config.width = 0.35
            config.name = "mobilenet_v2_035"
            architecture = "mobilenet_v2_035"
            #expect(!Architectures.flavours(of: architecture).contains(.torchvision))
        default:
            config = try Architectures.preset("resnet18", flavour: .torchvision, classes: 7)
            try config.update(ResNetOptions.self) { $0.depths = [1, 1, 1, 1] }
            architecture = "resnet18"
        }
        let dir = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let (path, weights) = try Self.write(config, architecture: architecture, in: dir)
        let loaded = try LoadedCheckpoint(path: path)
        #expect(loaded.config == config)
        #expect(loaded.graph == (try config.graph()))
        // Negative control: the preset of the name is another graph, so a loader starting from it would differ.
        if let preset = try? Architectures.preset(architecture, flavour: Architectures.flavours(of: architecture)[0]) {
            #expect((try preset.graph()) != loaded.graph)
        }
        let y = try Classifier(contentsOf: URL(fileURLWithPath: path), threads: 1)(try Self.input())
        #expect(y.shape == [1, config.classes])
        let direct = try Classifier(graph: try config.graph(), weights: weights, threads: 1)(try Self.input())
        #expect(y.floats() == direct.floats())
    }

    /// Unknown names, families and flavours in a file are still refused (exit code 2: `.unsupported`), with today's messages.
    @Test func unknownNameFamilyAndFlavourAreRefused() throws {
        let json = try Architectures.preset("resnet18").json
        func edited(_ key: String, _ value: JSONValue) -> JSONValue {
            guard case .object(var m) = json else { return json }
            if let i = m.firstIndex(where: { $0.0 == key }) { m[i].1 = value }
            return .object(m)
        }
        let cases: [(String, JSONValue, String)] = [
            ("vit_b_16", json, "unknown architecture \"vit_b_16\""),
            ("resnet18", edited("family", .string("transformer")), "unknown family \"transformer\" (this zoo knows resnet, vgg, mobilenet_v1, mobilenet_v2, mobilenet_v3"),
            ("resnet18", edited("flavour", .string("jax")), "unknown flavour \"jax\""),
        ]
        for (name, config, words) in cases {
            do {
                _ = try ArchitectureConfig(name: name, json: config)
                Issue.record("\(name) \(words): accepted")
            } catch let e as ZooError {
                #expect(e.kind == .unsupported && e.message.contains(words), "\(e.message)")
            }
        }
        // Negative control: the unedited config is read back as the preset.
        #expect(try ArchitectureConfig(name: "resnet18", json: json) == (try Architectures.preset("resnet18")))
    }
}
