import Foundation
import Testing
import ZooArchitectures
import ZooFormats
import ZooKernels
import ZooRuntime
import ZooErrors
import ZooTensor
import ZooTestSupport

typealias Node = LayerGraph.Node

/// A fixture written by tools/fixtures/gen_kernels.py (torch's outputs).
struct Fixture {
    let file: SafetensorsFile
    init(_ name: String) throws { file = try SafetensorsFile(path: try TestSupport.fixture("kernels/\(name).safetensors")) }
    var input: Tensor { get throws { try file.tensor(named: "input") } }
    var output: Tensor { get throws { try file.tensor(named: "output") } }
    func tensor(_ name: String) throws -> Tensor { try file.tensor(named: name) }
}

func maxRel(_ a: Tensor, _ b: Tensor) -> Float {
    guard a.shape == b.shape else { return .infinity }
    let x = a.floats(), y = b.floats()
    var m: Float = 0, r: Float = 0
    for i in x.indices {
        if x[i].isNaN { return .infinity }
        m = max(m, abs(x[i] - y[i])); r = max(r, abs(y[i]))
    }
    return m / max(r, 1e-30)
}

func graph(_ nodes: [Node], taps: [LayerGraph.FeatureTap] = [], headStart: Int? = nil, inputChannels: Int = 3) -> LayerGraph {
    LayerGraph(nodes: nodes, inputChannels: inputChannels, taps: taps, headStart: headStart ?? nodes.count)
}

func conv(_ name: String, _ cin: Int, _ cout: Int, k: Int, s: Int = 1, p: LayerGraph.Padding = .symmetric(0), d: Int = 1,
          g: Int = 1, bias: Bool = false, _ input: Int) -> Node {
    Node(name: name, op: .conv2d(inChannels: cin, outChannels: cout, kernel: (k, k), stride: (s, s), padding: p,
                                 dilation: (d, d), groups: g, bias: bias), inputs: [input])
}

func run(_ g: LayerGraph, _ f: Fixture, threads: Int = 2, backend: ConvolutionBackend = .processDefault) throws -> Tensor {
    try Classifier(graph: g, weights: f.file.weightLookup, threads: threads, backend: backend)(try f.input)
}

/// The graph's shape inference (`LayerGraph.shapes`) gives torch's output shape: it resolves windows
/// with the runtime's `WindowGeometry` (one implementation), so the two cannot disagree.
func inferredShape(_ g: LayerGraph, _ f: Fixture) throws -> [Int] {
    let x = try f.input
    return [x.shape[0]] + (try #require(try g.shapes(height: x.shape[2], width: x.shape[3]).last))
}

struct SingleConv: Sendable, CustomStringConvertible {
    var name: String, k: Int, s: Int, p: LayerGraph.Padding, d: Int, g: Int, bias: Bool
    var description: String { name }
}

let singleConvs: [SingleConv] = [
    SingleConv(name: "conv3x3", k: 3, s: 1, p: .symmetric(1), d: 1, g: 1, bias: true),
    SingleConv(name: "stem7x7", k: 7, s: 2, p: .symmetric(3), d: 1, g: 1, bias: false),
    SingleConv(name: "conv1x1", k: 1, s: 1, p: .symmetric(0), d: 1, g: 1, bias: true),
    SingleConv(name: "conv1x1s2", k: 1, s: 2, p: .symmetric(0), d: 1, g: 1, bias: false),
    SingleConv(name: "grouped", k: 3, s: 2, p: .symmetric(1), d: 1, g: 4, bias: true),
    SingleConv(name: "dilated", k: 3, s: 1, p: .symmetric(2), d: 2, g: 1, bias: true),
    SingleConv(name: "dw3x3", k: 3, s: 1, p: .symmetric(1), d: 1, g: 20, bias: true),
    SingleConv(name: "dw5x5s2", k: 5, s: 2, p: .symmetric(2), d: 1, g: 16, bias: false),
    SingleConv(name: "dwsame_odd", k: 3, s: 2, p: .tfSame, d: 1, g: 24, bias: false),
    SingleConv(name: "dwsame_even", k: 3, s: 2, p: .tfSame, d: 1, g: 24, bias: false),
    SingleConv(name: "convsame_even", k: 3, s: 2, p: .tfSame, d: 1, g: 1, bias: true),
    SingleConv(name: "bigconv", k: 3, s: 1, p: .symmetric(1), d: 1, g: 1, bias: true),
    SingleConv(name: "asympad", k: 3, s: 2, p: .explicit(top: 0, bottom: 1, left: 0, right: 1), d: 1, g: 1, bias: false),
]

@Test("convolutions match torch.nn.functional.conv2d", arguments: singleConvs)
func convMatchesTorch(_ c: SingleConv) throws {
    let f = try Fixture(c.name)
    let w = try f.tensor("conv.weight")
    let cout = w.shape[0], cin = w.shape[1] * c.g
    let g = graph([conv("conv", cin, cout, k: c.k, s: c.s, p: c.p, d: c.d, g: c.g, bias: c.bias, -1)], inputChannels: cin)
    #expect(try inferredShape(g, f) == (try f.output).shape, "\(c.name)")
    for threads in [1, 2, 4] {
        let y = try run(g, f, threads: threads)
        #expect(y.shape == (try f.output).shape)
        #expect(maxRel(y, try f.output) < 1e-5, "\(c.name) threads \(threads)")
    }
}

@Test func symmetricPaddingIsNotTFSame() throws {
    // Negative control: the even-size TF-same case computed with symmetric padding must differ.
    let f = try Fixture("dwsame_even")
    let g = graph([conv("conv", 24, 24, k: 3, s: 2, p: .symmetric(1), g: 24, -1)], inputChannels: 24)
    let y = try run(g, f)
    #expect(y.shape == (try f.output).shape)
    #expect(maxRel(y, try f.output) > 1e-3)
}

@Test("pooling and activations match torch", arguments: [
    ("maxpool3s2p1", LayerGraph.Op.maxPool(kernel: (3, 3), stride: (2, 2), padding: .symmetric(1), ceilMode: false)),
    ("maxpool3s2ceil", .maxPool(kernel: (3, 3), stride: (2, 2), padding: .symmetric(0), ceilMode: true)),
    ("maxpool2s2", .maxPool(kernel: (2, 2), stride: (2, 2), padding: .symmetric(0), ceilMode: false)),
    ("avgpool3s2p1", .avgPool(kernel: (3, 3), stride: (2, 2), padding: .symmetric(1), countIncludePad: true)),
    ("avgpool3s2p1ex", .avgPool(kernel: (3, 3), stride: (2, 2), padding: .symmetric(1), countIncludePad: false)),
    ("adaptive7", .adaptiveAvgPool(height: 7, width: 7)),
    ("adaptive1", .adaptiveAvgPool(height: 1, width: 1)),
    ("adaptive3x2", .adaptiveAvgPool(height: 3, width: 2)),
    ("hardswish", .activation(.hardSwish)),
    ("hardsigmoid", .activation(.hardSigmoid)),
    ("relu6", .activation(.relu6)),
    ("sigmoid", .activation(.sigmoid)),
])
func elementOpsMatchTorch(_ name: String, _ op: LayerGraph.Op) throws {
    let f = try Fixture(name)
    let x = try f.input
    let g = graph([Node(name: "op", op: op, inputs: [-1])], inputChannels: x.shape[1])
    let y = try run(g, f)
    #expect(y.shape == (try f.output).shape)
    // avgpool3s2p1 (count_include_pad) on an even size: shape inference once took countIncludePad for ceil mode.
    #expect(try inferredShape(g, f) == (try f.output).shape, "\(name)")
    #expect(maxRel(y, try f.output) < 1e-6, "\(name)")
}

/// ResNet stem + basic block with downsample + head (conv/bn/relu, max pool, residual add, linear).
func resblockGraph() -> LayerGraph {
    let nodes: [Node] = [
        conv("conv1", 3, 8, k: 3, s: 2, p: .symmetric(1), -1),                                        // 0
        Node(name: "bn1", op: .batchNorm(channels: 8, eps: 1e-5), inputs: [0]),                          // 1
        Node(name: "relu", op: .activation(.relu), inputs: [1]),                                        // 2
        Node(name: "maxpool", op: .maxPool(kernel: (3, 3), stride: (2, 2), padding: .symmetric(1), ceilMode: false), inputs: [2]), // 3
        conv("layer1.conv1", 8, 16, k: 3, s: 2, p: .symmetric(1), 3),                                  // 4
        Node(name: "layer1.bn1", op: .batchNorm(channels: 16, eps: 1e-5), inputs: [4]),                 // 5
        Node(name: "layer1.relu1", op: .activation(.relu), inputs: [5]),                                // 6
        conv("layer1.conv2", 16, 16, k: 3, p: .symmetric(1), 6),                                       // 7
        Node(name: "layer1.bn2", op: .batchNorm(channels: 16, eps: 1e-5), inputs: [7]),                 // 8
        conv("layer1.downsample.0", 8, 16, k: 1, s: 2, 3),                                             // 9
        Node(name: "layer1.downsample.1", op: .batchNorm(channels: 16, eps: 1e-5), inputs: [9]),        // 10
        Node(name: "layer1.add", op: .add, inputs: [8, 10]),                                            // 11
        Node(name: "layer1.relu", op: .activation(.relu), inputs: [11]),                                // 12
        Node(name: "avgpool", op: .adaptiveAvgPool(height: 1, width: 1), inputs: [12]),                 // 13
        Node(name: "flatten", op: .flatten, inputs: [13]),                                              // 14
        Node(name: "fc", op: .linear(inFeatures: 16, outFeatures: 10, bias: true), inputs: [14]),       // 15
    ]
    return graph(nodes, taps: [LayerGraph.FeatureTap(name: "stem", node: 3, channels: 8, reduction: 4),
                               LayerGraph.FeatureTap(name: "layer1", node: 12, channels: 16, reduction: 8)], headStart: 13)
}

/// MobileNetV3-style: TF-same stem, inverted residual with SE and hard-swish, a residual block, two-linear head.
func invresGraph() -> LayerGraph {
    func bn(_ name: String, _ c: Int, _ i: Int, eps: Double = 1e-5) -> Node { Node(name: name, op: .batchNorm(channels: c, eps: eps), inputs: [i]) }
    func act(_ a: LayerGraph.Activation, _ i: Int) -> Node { Node(name: "act\(i)", op: .activation(a), inputs: [i]) }
    let nodes: [Node] = [
        conv("stem.0", 3, 16, k: 3, s: 2, p: .tfSame, -1),                  // 0
        bn("stem.1", 16, 0, eps: 1e-3),                                     // 1
        act(.hardSwish, 1),                                                 // 2
        conv("b1.expand.0", 16, 48, k: 1, 2),                               // 3
        bn("b1.expand.1", 48, 3),                                           // 4
        act(.relu, 4),                                                      // 5
        conv("b1.dw.0", 48, 48, k: 3, s: 2, p: .tfSame, g: 48, 5),          // 6
        bn("b1.dw.1", 48, 6),                                               // 7
        act(.hardSwish, 7),                                                 // 8
        Node(name: "b1.se.avgpool", op: .adaptiveAvgPool(height: 1, width: 1), inputs: [8]), // 9
        conv("b1.se.fc1", 48, 12, k: 1, bias: true, 9),                     // 10
        act(.relu, 10),                                                     // 11
        conv("b1.se.fc2", 12, 48, k: 1, bias: true, 11),                    // 12
        act(.hardSigmoid, 12),                                              // 13
        Node(name: "b1.se", op: .scale, inputs: [8, 13]),                   // 14
        conv("b1.project.0", 48, 24, k: 1, 14),                             // 15
        bn("b1.project.1", 24, 15),                                         // 16
        conv("b2.expand.0", 24, 72, k: 1, 16),                              // 17
        bn("b2.expand.1", 72, 17),                                          // 18
        act(.relu6, 18),                                                    // 19
        conv("b2.dw.0", 72, 72, k: 5, p: .symmetric(2), g: 72, 19),         // 20
        bn("b2.dw.1", 72, 20),                                              // 21
        act(.relu6, 21),                                                    // 22
        conv("b2.project.0", 72, 24, k: 1, 22),                             // 23
        bn("b2.project.1", 24, 23),                                         // 24
        Node(name: "b2.add", op: .add, inputs: [16, 24]),                   // 25
        conv("head.0", 24, 64, k: 1, 25),                                   // 26
        bn("head.1", 64, 26),                                               // 27
        act(.hardSwish, 27),                                                // 28
        Node(name: "avgpool", op: .adaptiveAvgPool(height: 1, width: 1), inputs: [28]), // 29
        Node(name: "flatten", op: .flatten, inputs: [29]),                  // 30
        Node(name: "classifier.0", op: .linear(inFeatures: 64, outFeatures: 32, bias: true), inputs: [30]), // 31
        act(.hardSwish, 31),                                                // 32
        Node(name: "classifier.2", op: .dropout(0.2), inputs: [32]),        // 33
        Node(name: "classifier.3", op: .linear(inFeatures: 32, outFeatures: 10, bias: true), inputs: [33]), // 34
    ]
    return graph(nodes, taps: [LayerGraph.FeatureTap(name: "b1", node: 16, channels: 24, reduction: 4),
                               LayerGraph.FeatureTap(name: "head", node: 28, channels: 64, reduction: 4)], headStart: 29)
}

func vggishGraph() -> LayerGraph {
    graph([
        conv("features.0", 3, 4, k: 3, p: .symmetric(1), bias: true, -1),
        Node(name: "features.1", op: .activation(.relu), inputs: [0]),
        Node(name: "features.2", op: .maxPool(kernel: (2, 2), stride: (2, 2), padding: .symmetric(0), ceilMode: false), inputs: [1]),
        Node(name: "avgpool", op: .adaptiveAvgPool(height: 3, width: 3), inputs: [2]),
        Node(name: "flatten", op: .flatten, inputs: [3]),
        Node(name: "classifier.0", op: .linear(inFeatures: 36, outFeatures: 5, bias: true), inputs: [4]),
    ], headStart: 3)
}

/// Every convolution backend (own kernels; oneDNN with NHWC, blocked and automatic layouts) on networks
/// with residuals, depthwise convolutions and squeeze-and-excitation, against torch.
@Test("small networks match torch at 1, 2 and 4 threads on every backend", arguments: ["resblock", "invres", "vggish"])
func networksMatchTorch(_ name: String) throws {
    let f = try Fixture(name)
    let g = name == "resblock" ? resblockGraph() : name == "invres" ? invresGraph() : vggishGraph()
    let backends = ConvolutionBackend.oneDNNAvailable ? ConvolutionBackend.allCases : [.own]
    let expected = try f.output
    for backend in backends {
        var results: [Tensor] = []
        for threads in [1, 2, 4] {
            let y = try run(g, f, threads: threads, backend: backend)
            #expect(y.shape == expected.shape)
            #expect(maxRel(y, expected) < 1e-4, "\(name) \(backend) threads \(threads): \(maxRel(y, expected))")
            results.append(y)
        }
        // Same thread count twice: bitwise identical.
        let again = try run(g, f, threads: 2, backend: backend)
        #expect(again.bitwiseEqual(results[1]), "\(name) \(backend): two runs at 2 threads differ")
        #expect(maxRel(results[0], results[2]) < 1e-5)
    }
}

@Test func backboneFeatureMapsMatchTorch() throws {
    for (name, g, taps) in [("resblock", resblockGraph(), ["stem", "layer1"]), ("invres", invresGraph(), ["b1", "head"])] {
        let f = try Fixture(name)
        let b = try Backbone(graph: g, weights: f.file.weightLookup, pool: true, threads: 2)
        #expect(b.featureInfo.map(\.name) == taps)
        let out = try b.forward(try f.input)
        #expect(out.maps.count == 2)
        for (map, tap) in zip(out.maps, taps) {
            let ref = try f.tensor("feature.\(tap)")
            #expect(map.shape == ref.shape)
            #expect(maxRel(map, ref) < 1e-4, "\(name) \(tap)")
        }
        let pooled = try #require(out.pooled)
        #expect(pooled.shape == [2, taps.count == 2 ? g.taps[1].channels : 0])
        #expect(out.logits == nil)
    }
    // With the head: logits equal the classifier's.
    let f = try Fixture("resblock")
    let b = try Backbone(graph: resblockGraph(), weights: f.file.weightLookup, outIndices: [1], head: true)
    let out = try b.forward(try f.input)
    #expect(maxRel(try #require(out.logits), try f.output) < 1e-4)
    #expect(out.maps.count == 1 && out.maps[0].shape[1] == 16)
}

@Test func headlessBackboneNeedsNoHeadWeights() throws {
    let f = try Fixture("resblock")
    let lookup = f.file.weightLookup
    let noHead: WeightLookup = { $0.hasPrefix("fc.") ? nil : try lookup($0) }
    _ = try Backbone(graph: resblockGraph(), weights: noHead)
    #expect(throws: ZooError.self) { _ = try Classifier(graph: resblockGraph(), weights: noHead) }
}

@Test func errorsNameTheProblem() throws {
    let f = try Fixture("resblock")
    let lookup = f.file.weightLookup
    // Missing tensor.
    do {
        _ = try Classifier(graph: resblockGraph(), weights: { $0 == "layer1.bn2.running_var" ? nil : try lookup($0) })
        Issue.record("missing tensor accepted")
    } catch let e as ZooError {
        #expect(e.kind == .mismatch && e.item == "layer1.bn2.running_var")
    }
    // Mis-shaped tensor: both shapes in the message.
    do {
        let wrong = try Tensor(zeros: .f32, shape: [16, 8, 3, 3])
        _ = try Classifier(graph: resblockGraph(), weights: { $0 == "layer1.conv2.weight" ? wrong : try lookup($0) })
        Issue.record("mis-shaped tensor accepted")
    } catch let e as ZooError {
        #expect(e.kind == .mismatch && e.item == "layer1.conv2.weight")
        #expect(e.message.contains("[16, 8, 3, 3]") && e.message.contains("[16, 16, 3, 3]"))
    }
    let model = try Classifier(graph: resblockGraph(), weights: lookup)
    // Wrong rank, wrong channels, too small.
    #expect(throws: ZooError.self) { _ = try model(try Tensor(zeros: .f32, shape: [3, 20, 20])) }
    do {
        _ = try model(try Tensor(zeros: .f32, shape: [1, 4, 20, 20]))
        Issue.record("wrong channel count accepted")
    } catch let e as ZooError { #expect(e.kind == .badInput && e.message.contains("4 channels")) }
    // torch accepts a 1x1 image for this net (every window is padded), so do we.
    #expect(try model(try Tensor(zeros: .f32, shape: [1, 3, 1, 1])).shape == [1, 10])
    // A 2x2 max pool without padding needs at least 2x2.
    let vgg = try Fixture("vggish")
    let small = try Classifier(graph: vggishGraph(), weights: vgg.file.weightLookup)
    do {
        _ = try small(try Tensor(zeros: .f32, shape: [1, 3, 1, 1]))
        Issue.record("tiny input accepted")
    } catch let e as ZooError { #expect(e.kind == .badInput && e.message.contains("too small") && e.item == "features.2") }
}

@Test func anyBatchAndSizeAndDtype() throws {
    let f = try Fixture("resblock")
    let model = try Classifier(graph: resblockGraph(), weights: f.file.weightLookup, threads: 2)
    let x = try f.input
    let full = try model(x)
    // Batch 1 slices give the same rows as batch 2.
    let values = x.floats()
    let per = values.count / 2
    for i in 0..<2 {
        let xi = try Tensor(shape: [1, 3, 20, 18], floats: Array(values[(i * per)..<((i + 1) * per)]))
        let yi = try model(xi)
        #expect(yi.shape == [1, 10])
        let row = Array(full.floats()[(i * 10)..<((i + 1) * 10)])
        #expect(zip(yi.floats(), row).allSatisfy { abs($0 - $1) <= 1e-5 * max(1, abs($1)) })
    }
    // Other sizes work.
    #expect(try model(try Tensor(zeros: .f32, shape: [3, 3, 37, 41])).shape == [3, 10])
    // F16 weights are widened; F16 input too.
    var half: [String: Tensor] = [:]
    for e in f.file.entries where e.dtype == .f32 { half[e.name] = try f.file.tensor(e).converted(to: .f16) }
    let m16 = try Classifier(graph: resblockGraph(), weights: half)
    let y16 = try m16(try x.converted(to: .f16))
    #expect(maxRel(y16, try f.output) < 3e-2)
    #expect(maxRel(y16, try f.output) > 0)
}

@Test func concurrentCallsAgree() async throws {
    let f = try Fixture("invres")
    let model = try Classifier(graph: invresGraph(), weights: f.file.weightLookup, threads: 2)
    let x = try f.input
    let expected = try model(x)
    try await withThrowingTaskGroup(of: Bool.self) { group in
        for _ in 0..<8 { group.addTask { try model(x).bitwiseEqual(expected) } }
        for try await same in group { #expect(same) }
    }
}
