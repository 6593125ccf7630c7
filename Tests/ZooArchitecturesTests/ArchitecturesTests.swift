import Foundation
import Testing
import ZooArchitectures
import ZooErrors
import ZooJSON
import ZooTestSupport

/// The reference specs written by tools/fixtures/gen_arch.py from torchvision, tf_keras and keras.
func loadSpecs() throws -> JSONValue {
    let path = try TestSupport.fixture("arch/specs.json")
    return try JSONValue.parse(String(decoding: try Data(contentsOf: URL(fileURLWithPath: path)), as: UTF8.self))
}

/// torchvision spec key -> (catalogue name, classes, width).
let torchvisionCases: [(key: String, name: String, classes: Int, width: Double?)] =
    ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "resnext50_32x4d", "resnext101_32x8d", "resnext101_64x4d",
     "wide_resnet50_2", "wide_resnet101_2", "vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19", "vgg19_bn",
     "mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small",
     "efficientnet_b0", "efficientnet_b1", "efficientnet_b2", "efficientnet_b3", "efficientnet_b4", "efficientnet_b5", "efficientnet_b6",
     "efficientnet_b7", "efficientnet_v2_s", "efficientnet_v2_m", "efficientnet_v2_l",
     "convnext_tiny", "convnext_small", "convnext_base", "convnext_large"].map { ($0, $0, 1000, nil) }
    + [("resnet18_c10", "resnet18", 10, nil), ("mobilenet_v2_w050", "mobilenet_v2", 1000, 0.5), ("mobilenet_v3_small_c19", "mobilenet_v3_small", 19, nil)]

@Suite("Architectures against the real frameworks")
struct ArchitecturesTests {
    @Test("torchvision: state_dict names, shapes, order and num_params match exactly")
    func torchvisionSpecs() throws {
        let specs = try loadSpecs()
        for c in torchvisionCases {
            let ref = try #require(specs["torchvision"]?[c.key], "no reference for \(c.key)")
            var config = try Architectures.preset(c.name, flavour: .torchvision, classes: c.classes)
            if let w = c.width { config.width = w }
            let graph = try config.graph()
            let ours = graph.parameterSpec.map { "\($0.name) \($0.shape)" }
            let theirs = try #require(ref["tensors"]?.arrayValue).map { t -> String in
                let a = t.arrayValue ?? []
                return "\(a[0].stringValue ?? "") \((a[1].arrayValue ?? []).compactMap(\.intValue))"
            }
            let diff = zip(ours, theirs).enumerated().first { $0.element.0 != $0.element.1 }
            #expect(ours == theirs, "\(c.key): ours \(ours.count) tensors, torchvision \(theirs.count); first difference: \(diff.map { "\($0.offset): \($0.element.0) vs \($0.element.1)" } ?? "length")")
            #expect(graph.parameterCount == ref["num_params"]?.intValue, "\(c.key): parameters \(graph.parameterCount) vs torchvision \(ref["num_params"]?.intValue ?? -1)")
            // num_batches_tracked is the only I64 tensor.
            for t in try #require(ref["tensors"]?.arrayValue) where t.arrayValue?[2].stringValue == "int64" {
                #expect(t.arrayValue?[0].stringValue?.hasSuffix("num_batches_tracked") == true)
            }
        }
    }

    /// BatchNorm's eps (inference) and momentum (training's running statistics) are the ones torchvision builds
    /// each architecture with (EfficientNet B5-B7 differ from B0-B4: eps 1e-3, momentum 0.01).
    @Test("torchvision: BatchNorm eps and momentum of every architecture as torchvision builds it")
    func torchvisionBatchNorm() throws {
        let specs = try loadSpecs()
        var checked = 0
        for c in torchvisionCases where c.key == c.name {
            let ref = try #require(specs["torchvision"]?[c.key], "no reference for \(c.key)")
            let config = try Architectures.preset(c.name, flavour: .torchvision)
            guard let bn = ref["batch_norm"], bn != .null else {
                #expect(c.name.hasPrefix("convnext") || (c.name.hasPrefix("vgg") && !c.name.hasSuffix("_bn")), "\(c.key): no BatchNorm in torchvision's model")
                continue
            }
            let eps = try #require(bn["eps"]?.doubleValue), momentum = try #require(bn["momentum"]?.doubleValue)
            #expect(abs(config.bnEps - eps) <= 1e-12 * eps, "\(c.key): bn_eps \(config.bnEps) vs torchvision \(eps)")
            #expect(abs(config.batchNormMomentum - momentum) <= 1e-12, "\(c.key): momentum \(config.batchNormMomentum) vs torchvision \(momentum)")
            checked += 1
        }
        #expect(checked == 28)
    }

    /// Stochastic depth as torchvision builds it: the p of every block's `StochasticDepth` module (its residual sum
    /// `features.S.B.add` in the zoo's graph), for every EfficientNet and ConvNeXt; none elsewhere.
    @Test func torchvisionStochasticDepth() throws {
        let specs = try loadSpecs()
        var checked = 0
        for c in torchvisionCases where c.key == c.name {
            let ref = try #require(specs["torchvision"]?[c.key])
            let g = try Architectures.preset(c.name, flavour: .torchvision).graph()
            let ours = Dictionary(uniqueKeysWithValues: g.stochasticDepth.map { (g.nodes[$0.key].name, $0.value) })
            guard let tv = ref["stochastic_depth"]?.objectValue else {
                #expect(ours.isEmpty, "\(c.key): stochastic depth \(ours), torchvision has none")
                continue
            }
            let adds = Set(g.nodes.filter { if case .add = $0.op { return true }; return false }.map(\.name))
            var residual = 0
            for (module, p) in tv {
                let add = String(module.dropLast("stochastic_depth".count)) + "add"
                // torchvision builds the module in every block; only blocks with a residual sum use it.
                guard adds.contains(add) else { continue }
                residual += 1
                let want = try #require(p.doubleValue)
                #expect(abs((ours[add] ?? 0) - want) <= 1e-12, "\(c.key) \(add): \(ours[add] ?? 0) vs torchvision \(want)")
            }
            #expect(residual > 0 && Set(ours.keys).isSubset(of: adds), "\(c.key)")
            let modules = Set(tv.map(\.0))
            #expect(ours.keys.allSatisfy { modules.contains(String($0.dropLast("add".count)) + "stochastic_depth") }, "\(c.key): \(ours.keys.sorted())")
            checked += 1
        }
        #expect(checked == 15)
    }

    @Test("GFLOPs within 1% (at the weight set's crop size) and parameters equal to torchvision's published figures, for every torchvision weight set")
    func publishedFigures() throws {
        let cat = try Catalogue.shared()
        var checked = 0
        for e in cat.entries {
            for w in e.weights where w.source == "torchvision" {
                let pub = try #require(w.json["published"])
                let g = try e.config(flavour: .torchvision).graph()
                // torchvision states GFLOPs at the weights' crop size (224 but for EfficientNet B1-B7 and V2).
                let crop = w.preprocessing["crop"]?.arrayValue?.compactMap(\.intValue).first ?? 224
                let gf = try g.gflops(height: crop, width: crop)
                let ref = try #require(pub["gflops"]?.doubleValue)
                #expect(abs(gf - ref) / ref < 0.01, "\(e.name) \(w.tag): \(gf) GFLOPs vs published \(ref)")
                #expect(g.parameterCount == pub["num_params"]?.intValue, "\(e.name): \(g.parameterCount) vs \(pub["num_params"]?.intValue ?? -1)")
                checked += 1
            }
        }
        #expect(checked == 47, "all 47 torchvision weight sets are in the catalogue (found \(checked))")
    }

    @Test("Keras: count_params() of every Keras application equals ours (tf_keras and Keras 3)")
    func kerasCounts() throws {
        let specs = try loadSpecs()
        for api in ["tf_keras", "keras"] {
            let models = try #require(specs[api]?.objectValue)
            #expect(models.count == 39)
            for (key, ref) in models {
                let name = TestSupport.kerasArchitectureName(key)
                let g = try Architectures.preset(name, flavour: .keras).graph()
                #expect(g.kerasParameterCount == ref["count_params"]?.intValue, "\(api) \(key) -> \(name): \(g.kerasParameterCount) vs \(ref["count_params"]?.intValue ?? -1)")
            }
        }
    }

    @Test("Negative control: the torchvision flavour of a Keras-only difference does not match Keras's counts")
    func negativeControl() throws {
        let specs = try loadSpecs()
        let ref = try #require(specs["keras"]?["ResNet50"]?["count_params"]?.intValue)
        let tv = try Architectures.preset("resnet50", flavour: .torchvision).graph()
        #expect(tv.kerasParameterCount != ref)
        var wrong = try Architectures.preset("mobilenet_v3_large_075", flavour: .keras)
        try wrong.update(MobileNetV3Options.self) { $0.channelRounding = .torchvision }
        let k = try #require(specs["keras"]?["MobileNetV3Large_0.75"]?["count_params"]?.intValue)
        #expect(try wrong.graph().kerasParameterCount != k)
    }

    @Test("Graph invariants: topological order, unique parameter names, taps at strides 2..32 (4..32 for ConvNeXt), shapes at 224 and odd sizes")
    func invariants() throws {
        for name in Architectures.names {
            for flavour in Architectures.flavours(of: name) {
                let g = try Architectures.preset(name, flavour: flavour).graph()
                for (i, n) in g.nodes.enumerated() { #expect(n.inputs.allSatisfy { $0 < i && $0 >= -1 }, "\(name) node \(i)") }
                let names = g.parameterSpec.map(\.name)
                #expect(Set(names).count == names.count, "\(name) \(flavour): duplicate parameter names")
                let strides = name.hasPrefix("convnext") ? [4, 8, 16, 32] : [2, 4, 8, 16, 32]
                #expect(g.taps.map(\.reduction) == strides, "\(name) \(flavour): \(g.taps.map(\.reduction))")
                #expect(g.headStart > (g.taps.last?.node ?? .max))
                let s = try g.shapes(height: 224, width: 224)
                #expect(s.last == [1000])
                for t in g.taps { #expect(s[t.node] == [t.channels, 224 / t.reduction, 224 / t.reduction], "\(name) tap \(t.name)") }
                if !(g.nodes.contains { $0.name == "flatten" } && !g.nodes.contains { if case .adaptiveAvgPool = $0.op { return true }; return false }) {
                    #expect(try g.shapes(height: 225, width: 199).last == [1000], "\(name) \(flavour) at 225x199")
                }
            }
        }
        // Too small an input is a clear error naming the node.
        let vgg = try Architectures.preset("vgg16", flavour: .keras).graph()
        #expect(throws: ZooError.self) { try vgg.shapes(height: 16, width: 16) }
        #expect(throws: ZooError.self) { try vgg.shapes(height: 128, width: 128) }
    }

    @Test("Config JSON round-trips and rejects bad values")
    func configJSON() throws {
        for name in Architectures.names {
            for f in Architectures.flavours(of: name) {
                var c = try Architectures.preset(name, flavour: f, classes: 19)
                if c.family == .vgg && f == .keras { c.flattenSize = [2, 2] }
                let back = try ArchitectureConfig(name: name, json: try JSONValue.parse(c.json.serialized()))
                #expect(back == c, "\(name) \(f)")
            }
        }
        #expect(throws: ZooError.self) { try ArchitectureConfig(name: "resnet50", json: .object([("classes", .int(-3))])) }
        #expect(throws: ZooError.self) { try ArchitectureConfig(name: "resnet50", json: .object([("flavour", .string("caffe"))])) }
        #expect(throws: ZooError.self) { try Architectures.preset("resnet18", flavour: .keras) }
        #expect(throws: ZooError.self) { try Architectures.preset("resnet51") }
    }

    @Test("Padding rules: TF same, correct_pad and MobileNet v1's fixed pad")
    func padding() {
        // TF same, stride 2, k 3: even input -> (0, 1); odd -> (1, 1).
        let even = LayerGraph.resolvedPadding(.tfSame, h: 224, w: 223, kernel: (3, 3), stride: (2, 2))
        #expect(even.0 == 0 && even.1 == 1 && even.2 == 1 && even.3 == 1)
        let five = LayerGraph.resolvedPadding(.tfSame, h: 28, w: 28, kernel: (5, 5), stride: (2, 2))
        #expect(five.0 == 1 && five.1 == 2)
        #expect(PaddingConvention.correctPad.padding(kernel: 5, stride: 2) == .explicit(top: 1, bottom: 2, left: 1, right: 2))
        #expect(PaddingConvention.bottomRight.padding(kernel: 3, stride: 2) == .explicit(top: 0, bottom: 1, left: 0, right: 1))
        #expect(PaddingConvention.symmetric.padding(kernel: 5, stride: 2) == .symmetric(2))
    }
}

