import Foundation
import ModelZoo
import Testing
import ZooFormats
import ZooErrors
import ZooJSON
import ZooFiles
import ZooTensor
import ZooTestSupport

/// #12 "Proof": a family defined outside the library, through the public `ArchitectureFamily`
/// protocol only, registered at run time, converted from a torch-written `state_dict`
/// (tools/fixtures/gen_toy.py), run by the zoo runtime and checked against torch's logits.
/// Nothing else in the repository knows this family.
///
/// The toy CNN: `block1` = conv 3x3 (3 -> c1) + BatchNorm + ReLU, `block2` = conv 3x3 stride 2
/// (c1 -> c2) + BatchNorm + ReLU, global average pooling, `fc` linear (c2 -> classes).
/// The toy family's options: `zoo.config` member `channels` [c1, c2].
struct ToyOptions: FamilyOptions {
    var channels: [Int] = [8, 16]
}

struct ToyFamily: ArchitectureFamily {
    var id: Family { Family("toy") }
    var title: String { "Toy CNN" }
    var names: [String] { ["toy_cnn"] }

    func flavours(of name: String) -> [Flavour] { name == "toy_cnn" ? [.torchvision] : [] }

    func preset(_ name: String, flavour: Flavour) throws -> ArchitectureConfig {
        ArchitectureConfig(name: name, family: id, flavour: flavour, classes: 5, options: ToyOptions())
    }

    func validate(_ c: ArchitectureConfig, _ o: ToyOptions) throws {
        guard o.channels.count == 2 else { throw ZooError(.badInput, "config field channels needs 2 values", item: c.name) }
    }

    func graph(_ c: ArchitectureConfig, _ o: ToyOptions) throws -> LayerGraph {
        let ch = o.channels
        var nodes: [LayerGraph.Node] = []
        var taps: [LayerGraph.FeatureTap] = []
        func add(_ name: String, _ op: LayerGraph.Op) {
            nodes.append(LayerGraph.Node(name: name, op: op, inputs: [nodes.count - 1]))
        }
        var cin = 3
        for (i, (cout, stride)) in zip(ch, [1, 2]).enumerated() {
            let p = "block\(i + 1)"
            add("\(p).0", .conv2d(inChannels: cin, outChannels: cout, kernel: (3, 3), stride: (stride, stride), padding: .symmetric(1),
                                  dilation: (1, 1), groups: 1, bias: false))
            add("\(p).1", .batchNorm(channels: cout, eps: c.bnEps))
            add("\(p).2", .activation(.relu))
            taps.append(LayerGraph.FeatureTap(name: p, node: nodes.count - 1, channels: cout, reduction: stride))
            cin = cout
        }
        let headStart = nodes.count
        add("pool", .adaptiveAvgPool(height: 1, width: 1))
        add("flatten", .flatten)
        add("fc", .linear(inFeatures: cin, outFeatures: c.classes, bias: true))
        return LayerGraph(nodes: nodes, taps: taps, headStart: headStart)
    }

    var quirks: SourceQuirks { SourceQuirks() }
}

@Suite struct ToyFamilyTests {
    static func npy(_ path: String) throws -> Tensor { try MappedFile(path: path).withBytes { try NPY.read($0) } }

    /// max |a - b| / max |b|.
    static func relativeError(_ a: Tensor, _ b: Tensor) -> Float {
        let x = a.floats(), y = b.floats()
        guard x.count == y.count, !y.isEmpty else { return .infinity }
        let peak = y.map(abs).max() ?? 0
        return zip(x, y).map { abs($0 - $1) }.max().map { $0 / max(peak, 1e-12) } ?? .infinity
    }

    /// Converts the torch file as `arch` with the toy family registered (`edit` changes the mapped plan
    /// before it is written), runs the native file and returns torch's logits and the zoo's.
    static func convertAndRun(arch: String, edit: (inout Converter.Plan) -> Void = { _ in }) throws -> (zoo: Tensor, torch: Tensor, report: MappingReport) {
        let registry = ArchitectureRegistry.shared.copy()
        try registry.register(ToyFamily())
        let dir = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let output = dir.appendingPathComponent("toy.safetensors").path
        return try ArchitectureRegistry.$current.withValue(registry) {
            var plan = try Converter.plan(input: try TestSupport.fixture("toy/toy.pth"))
            let report = try Converter.mapArchitecture(&plan, arch: arch, allowPartial: false)
            edit(&plan)
            _ = try Converter.write(plan, to: output, overwrite: true)
            let model = try Classifier(contentsOf: URL(fileURLWithPath: output), threads: 1)
            let y = try model(try npy(try TestSupport.fixture("toy/toy_x.npy")))
            return (y, try npy(try TestSupport.fixture("toy/toy_y.npy")), report)
        }
    }

    /// The toy family converts by name and by `--arch auto`, and its logits match torch's within 1e-4.
    @Test(arguments: ["toy_cnn", "auto"])
    func convertedToyMatchesTorch(_ arch: String) throws {
        let r = try Self.convertAndRun(arch: arch)
        #expect(r.report.architecture == "toy_cnn" && r.report.isComplete)
        #expect(r.zoo.shape == [2, 5] && r.torch.shape == [2, 5])
        #expect(Self.relativeError(r.zoo, r.torch) <= 1e-4, "\(Self.relativeError(r.zoo, r.torch))")
        // Outside the registry the test bound, the toy family does not exist.
        #expect(Architectures.family(of: "toy_cnn") == nil)
    }

    /// Negative control: two same-shaped tensors swapped (BatchNorm scale and shift of block2) still
    /// convert and run, and must miss the tolerance.
    @Test func swappedTensorsFailTheCheck() throws {
        let r = try Self.convertAndRun(arch: "toy_cnn") { plan in
            guard let w = plan.records.firstIndex(where: { $0.name == "block2.1.weight" }),
                  let b = plan.records.firstIndex(where: { $0.name == "block2.1.bias" }) else { return }
            plan.records[w].name = "block2.1.bias"
            plan.records[b].name = "block2.1.weight"
        }
        #expect(Self.relativeError(r.zoo, r.torch) > 1e-2, "\(Self.relativeError(r.zoo, r.torch))")
    }

    /// Negative control: without the toy family registered, the file converts as nothing.
    @Test func unregisteredFamilyIsUnknown() throws {
        var plan = try Converter.plan(input: try TestSupport.fixture("toy/toy.pth"))
        #expect(throws: ZooError.self) { try Converter.mapArchitecture(&plan, arch: "toy_cnn", allowPartial: false) }
    }
}
