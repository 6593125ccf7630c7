import Foundation
import Testing
import ZooArchitectures
import ZooFormats
import ZooMapping
import ZooErrors
import ZooJSON
import ZooTensor
import ZooTestSupport

func specs() throws -> JSONValue {
    let path = try TestSupport.fixture("arch/specs.json")
    return try JSONValue.parse(String(decoding: try Data(contentsOf: URL(fileURLWithPath: path)), as: UTF8.self))
}

/// Records that only describe shapes (their data is never read).
func shapeRecords(_ items: [(String, [Int])]) -> [TensorRecord] {
    items.map { name, shape in
        TensorRecord(name: name, dtype: .f32, shape: shape) { throw ZooError(.badInput, "shape-only record", item: name) }
    }
}

/// A Keras fixture: safetensors data + the JSON layout gen_arch.py wrote (layer and weight names as Keras reports them).
func kerasFixture(_ name: String) throws -> (records: [TensorRecord], layout: SourceStructure) {
    let file = try SafetensorsFile(path: try TestSupport.fixture("arch/keras_\(name).safetensors"))
    let json = try JSONValue.parse(String(decoding: try Data(contentsOf: URL(fileURLWithPath: try TestSupport.fixture("arch/keras_\(name).json"))), as: UTF8.self))
    let layers = try #require(json["layers"]?.arrayValue).map { l in
        SourceStructure.Layer(name: l["name"]?.stringValue ?? "", className: l["class"]?.stringValue,
                          weights: (l["weights"]?.arrayValue ?? []).map { .init(name: $0["name"]?.stringValue ?? "", tensor: $0["tensor"]?.stringValue ?? "") })
    }
    return (file.records, SourceStructure(dialect: json["dialect"]?.stringValue ?? "keras2", layers: layers))
}

/// A layout from specs.json (names and shapes only) with shape-only records.
func kerasSpecLayout(_ layers: [JSONValue], withClassNames: Bool) -> ([TensorRecord], SourceStructure) {
    var records: [(String, [Int], Bool)] = []
    var ls: [SourceStructure.Layer] = []
    for l in layers {
        let a = l.arrayValue ?? []
        let name = a[0].stringValue ?? ""
        var ws: [SourceStructure.Weight] = []
        for (j, w) in (a[2].arrayValue ?? []).enumerated() {
            let wa = w.arrayValue ?? []
            let t = "\(name)/\(j)"
            records.append((t, (wa[1].arrayValue ?? []).compactMap(\.intValue), a[1].stringValue == "Normalization"))
            ws.append(.init(name: wa[0].stringValue ?? "", tensor: t))
        }
        ls.append(.init(name: name, className: withClassNames ? a[1].stringValue : nil, weights: ws))
    }
    // Shape-only records, but an input Normalization's (EfficientNet), whose values the mapping reads: zeros.
    let tensors = records.map { name, shape, values in
        values ? TensorRecord(name: name, dtype: .f32, shape: shape) { try Tensor(zeros: .f32, shape: shape) }
            : shapeRecords([(name, shape)])[0]
    }
    return (tensors, SourceStructure(dialect: "keras2", layers: ls))
}

func floats(_ t: Tensor) -> [Float] {
    t.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
}

@Suite("Mappings to canonical names")
struct MappingTests {
    @Test("Layout transforms on small hand-checked tensors")
    func layouts() throws {
        // HWIO (1, 2, 2, 3): value = 1000h + 100w + 10i + o -> OIHW.
        var v: [Float] = []
        for h in 0..<1 { for w in 0..<2 { for i in 0..<2 { for o in 0..<3 { v.append(Float(1000 * h + 100 * w + 10 * i + o)) } } } }
        let k = try Tensor(shape: [1, 2, 2, 3], floats: v)
        let c = try LayoutTransform.hwioToOIHW.apply(k, item: "k")
        #expect(c.shape == [3, 2, 1, 2])
        #expect(floats(c) == [0, 100, 10, 110, 1, 101, 11, 111, 2, 102, 12, 112])
        // Depthwise (2, 2, 3, 1) -> (3, 1, 2, 2).
        let dw = try Tensor(shape: [2, 2, 3, 1], floats: (0..<12).map(Float.init))
        let d = try LayoutTransform.depthwiseToOIHW.apply(dw, item: "dw")
        #expect(d.shape == [3, 1, 2, 2])
        #expect(floats(d) == [0, 3, 6, 9, 1, 4, 7, 10, 2, 5, 8, 11])
        // Dense (2, 3) -> (3, 2).
        let dense = try LayoutTransform.denseToLinear.apply(try Tensor(shape: [2, 3], floats: [1, 2, 3, 4, 5, 6]), item: "d")
        #expect(dense.shape == [3, 2] && floats(dense) == [1, 4, 2, 5, 3, 6])
        // 1x1 conv head (1, 1, 2, 3) -> (3, 2).
        let head = try LayoutTransform.conv1x1ToLinear.apply(try Tensor(shape: [1, 1, 2, 3], floats: [1, 2, 3, 4, 5, 6]), item: "h")
        #expect(head.shape == [3, 2] && floats(head) == [1, 4, 2, 5, 3, 6])
        // VGG fc1: rows (h, w, c) with h = w = 1... use h=1, w=2, c=2, out=1: rows [h0w0c0, h0w0c1, h0w1c0, h0w1c1] -> columns (c, h, w).
        let fc1 = try LayoutTransform.flattenHWCToLinear(h: 1, w: 2, c: 2).apply(try Tensor(shape: [4, 1], floats: [1, 2, 3, 4]), item: "fc1")
        #expect(fc1.shape == [1, 4] && floats(fc1) == [1, 3, 2, 4])
        // F16 data moves as 2-byte elements.
        let h16 = try Tensor(dtype: .f16, shape: [2, 3], bytes: (0..<12).map { UInt8($0) })
        let t16 = try WeightTransforms.permute(h16, [1, 0])
        #expect(t16.bytes == [0, 1, 6, 7, 2, 3, 8, 9, 4, 5, 10, 11])
        // Negative control: a transform that does not fit the shape is an error.
        #expect(throws: ZooError.self) { try LayoutTransform.conv1x1ToLinear.apply(k, item: "k") }
    }

    @Test("Layout steps chain like adapters: the Keras chains equal the fused permutations on random data, in one copy")
    func layoutChains() throws {
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        func random(_ dtype: DType, _ shape: [Int]) throws -> Tensor {
            let n = shape.reduce(1, *) * dtype.byteSize
            return try Tensor(dtype: dtype, shape: shape, bytes: (0..<n).map { _ in
                state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                return UInt8(truncatingIfNeeded: state >> 56)
            })
        }
        func address(_ t: Tensor) -> UnsafeRawPointer? { t.withUnsafeBytes { $0.baseAddress } }
        for (dtype, (h, w, c, out)) in zip([DType.f32, .f16, .f64, .u8], [(3, 5, 4, 7), (2, 2, 6, 3), (7, 7, 2, 5), (1, 4, 3, 2)]) {
            // VGG fc1: the Dense transpose then the hwc -> chw column step, against the old fused permutation.
            let fc1 = try random(dtype, [h * w * c, out])
            let fused = try WeightTransforms.permute(fc1.reshaped([h, w, c, out]), [3, 2, 0, 1]).reshaped([out, c * h * w])
            let chain = LayoutTransform.flattenHWCToLinear(h: h, w: w, c: c)
            #expect(chain.steps.count == 2 && chain.outputShape(fc1.shape) == [out, h * w * c])
            #expect(try chain.apply(fc1, item: "fc1").bitwiseEqual(fused))
            // Its steps fold into one view: the walk of the fused (h, w, c, out) -> (out, c, h, w) permutation, one copy.
            var view = StridedGather(fc1.shape)
            for step in chain.steps { #expect(step.rearrange(&view)) }
            let walk = zip(view.dims, view.strides).filter { $0.0 != 1 }.map { [$0.0, $0.1] }
            let fusedWalk = zip([out, c, h, w], [1, out, w * c * out, c * out]).filter { $0.0 != 1 }.map { [$0.0, $0.1] }
            #expect(walk == fusedWalk && view.shape == [out, h * w * c])
            // The same chain spelt step by step with `then`.
            let spelt = LayoutTransform([PermuteAxes([1, 0])]).then(SplitAxis(1, into: [h, w, c])).then(PermuteAxes([0, 3, 1, 2])).then(MergeAxes(1..<4))
            #expect(try spelt.apply(fc1, item: "fc1").bitwiseEqual(fused))
            // Depthwise (kh, kw, c, m) and 1x1 heads against the old permute-then-reshape.
            let dw = try random(dtype, [h, w, c, 2])
            let dwFused = try WeightTransforms.permute(dw, [2, 3, 0, 1]).reshaped([c * 2, 1, h, w])
            #expect(LayoutTransform.depthwiseToOIHW.outputShape(dw.shape) == [c * 2, 1, h, w])
            #expect(try LayoutTransform.depthwiseToOIHW.apply(dw, item: "dw").bitwiseEqual(dwFused))
            let head = try random(dtype, [1, 1, c, out])
            let headFused = try WeightTransforms.permute(head.reshaped([c, out]), [1, 0])
            #expect(try LayoutTransform.conv1x1ToLinear.apply(head, item: "head").bitwiseEqual(headFused))
            // Steps that keep the bytes in order copy nothing: identity, and a split undone by a merge.
            #expect(address(try LayoutTransform.identity.apply(fc1, item: "id")) == address(fc1))
            let inPlace = try LayoutTransform([SplitAxis(0, into: [h, w, c]), MergeAxes(0..<3)]).apply(fc1, item: "split")
            #expect(inPlace.shape == fc1.shape && address(inPlace) == address(fc1))
            // Negative controls: the column step before the transpose does not fit a non-square kernel, and
            // on a square one it permutes the wrong axis; without the column step, or with (c, w, h) columns, the bytes differ.
            let wrongOrder = LayoutTransform([PermuteLinearInputsHWCToCHW(h: h, w: w, c: c), PermuteAxes([1, 0])])
            #expect(wrongOrder.outputShape(fc1.shape) == nil)
            #expect(throws: ZooError.self) { try wrongOrder.apply(fc1, item: "fc1") }
            let square = try random(dtype, [h * w * c, h * w * c])
            let squareFused = try WeightTransforms.permute(square.reshaped([h, w, c, h * w * c]), [3, 2, 0, 1]).reshaped(square.shape)
            #expect(try chain.apply(square, item: "sq").bitwiseEqual(squareFused))
            #expect(try !wrongOrder.apply(square, item: "sq").bitwiseEqual(squareFused))
            #expect(try !LayoutTransform.denseToLinear.apply(fc1, item: "fc1").bitwiseEqual(fused))
            let wrongColumns = LayoutTransform([PermuteAxes([1, 0]), SplitAxis(1, into: [h, w, c]), PermuteAxes([0, 3, 2, 1]), MergeAxes(1..<4)])
            #expect(try wrongColumns.apply(fc1, item: "fc1").bitwiseEqual(fused) == (h == 1 || w == 1))
        }
        // A step that is no view (here: reversing the rows) gets the data moved so far, and the chain goes on after it.
        struct ReverseRows: LayoutStep {
            func outputShape(_ shape: [Int]) -> [Int]? { shape.count == 2 ? shape : nil }
            func rearrange(_ view: inout StridedGather) -> Bool { false }
            func apply(_ t: Tensor, item: String) throws -> Tensor {
                let row = t.shape[1] * t.dtype.byteSize
                let b = t.bytes
                return try Tensor(dtype: t.dtype, shape: t.shape, bytes: stride(from: b.count - row, through: 0, by: -row).flatMap { b[$0..<($0 + row)] })
            }
            var description: String { "reverse rows" }
        }
        let t = try Tensor(shape: [2, 3], floats: [1, 2, 3, 4, 5, 6])
        let mixed = try LayoutTransform([PermuteAxes([1, 0]), ReverseRows(), PermuteAxes([1, 0])]).apply(t, item: "t")
        #expect(mixed.shape == [2, 3] && floats(mixed) == [3, 2, 1, 6, 5, 4])
    }

    @Test("Keras: every application's layers (tf_keras and Keras 3) map completely onto our Keras graphs, by layer order")
    func kerasSpecs() throws {
        let s = try specs()
        var checked = 0
        for api in ["tf_keras", "keras"] {
            for (key, ref) in try #require(s[api]?.objectValue) {
                let name = TestSupport.kerasArchitectureName(key)
                for (withClass, grouped) in [(true, false), (false, false), (false, true)] {
                    var (records, layout) = kerasSpecLayout(ref["layers"]?.arrayValue ?? [], withClassNames: withClass)
                    if grouped {
                        // Keras 3 .weights.h5 keeps Keras's order only within each class: BatchNorms first, then Conv2D, ...
                        let classes = (ref["layers"]?.arrayValue ?? []).map { $0.arrayValue?[1].stringValue ?? "" }
                        layout.layers = zip(classes, layout.layers).enumerated().sorted { ($0.element.0, $0.offset) < ($1.element.0, $1.offset) }.map(\.element.1)
                    }
                    let r = try Mapping.kerasMapping(records: records, layout: layout, name: name)
                    #expect(r.report.isComplete, "\(api) \(key) -> \(name) grouped \(grouped): \(r.report.lines.prefix(3))")
                    #expect(r.config.classes == 1000 && r.config.includeTop)
                    let spec = try r.config.parameterSpec()
                    #expect(r.records.map(\.name) == spec.map(\.name))
                    #expect(r.records.map(\.shape) == spec.map(\.shape))
                }
                // --arch auto picks the same architecture.
                let (records, layout) = kerasSpecLayout(ref["layers"]?.arrayValue ?? [], withClassNames: true)
                let auto = try Mapping.canonicalize(records: records, structure: layout, arch: "auto")
                #expect(auto.config.name == name, "\(api) \(key): auto chose \(auto.config.name)")
                checked += 1
            }
        }
        #expect(checked == 78)
    }

    /// Keras's EfficientNet B0-B7 normalise in the model: `Rescaling(1/255)`, `Normalization` (weights) and, built with
    /// `weights="imagenet"`, `Rescaling(1/sqrt(ImageNet std))`. The converter turns that into the file's mean and std
    /// on 0-1 pixels: from a full model's config as it stands, from a weights-only file by its values.
    @Test("Keras EfficientNet: the input Normalization (and the Rescaling around it) becomes the file's preprocessing")
    func kerasEfficientNetPreprocessing() throws {
        let layers = try #require(try specs()["tf_keras"]?["EfficientNetB0"]?["layers"]?.arrayValue)
        let (shapeOnly, layout) = kerasSpecLayout(layers, withClassNames: true)
        let norm = try #require(layout.layers.first { $0.className == "Normalization" })
        let imagenetMean: [Float] = [0.485, 0.456, 0.406], imagenetStd: [Float] = [0.229, 0.224, 0.225]
        func mapped(mean: [Float], variance: [Float], config: JSONValue?) throws -> (mean: [Double], std: [Double], notes: [String]) {
            let values = [norm.weights[0].tensor: mean, norm.weights[1].tensor: variance]
            let records = shapeOnly.map { r in
                guard let v = values[r.name] else { return r }
                return TensorRecord(name: r.name, dtype: .f32, shape: [3]) { try Tensor(shape: [3], floats: v) }
            }
            var l = layout
            l.modelConfig = config
            let c = try Mapping.kerasMapping(records: records, layout: l, name: "efficientnet_b0")
            #expect(c.report.isComplete, "\(c.report.lines.prefix(3))")
            let pre = try #require(c.metadata.preprocessing)
            return (pre["mean"]?.arrayValue?.compactMap(\.doubleValue) ?? [], pre["std"]?.arrayValue?.compactMap(\.doubleValue) ?? [], c.report.notes)
        }
        func close(_ a: [Double], _ b: [Double]) -> Bool { a.count == b.count && zip(a, b).allSatisfy { abs($0 - $1) < 1e-6 } }
        let torchStd = imagenetStd.map(Double.init)
        // Weights only, ImageNet's values (std stored as variance): a weights="imagenet" model, torchvision's arithmetic.
        let a = try mapped(mean: imagenetMean, variance: imagenetStd, config: nil)
        #expect(close(a.std, torchStd) && close(a.mean, imagenetMean.map(Double.init)), "\(a)")
        // Weights only, other values (a Normalization adapted to the user's data): as stored, sqrt(variance).
        let b = try mapped(mean: [0.5, 0.4, 0.3], variance: [0.04, 0.09, 0.16], config: nil)
        #expect(close(b.std, [0.2, 0.3, 0.4]) && close(b.mean, [0.5, 0.4, 0.3]), "\(b)")
        // A full model's config decides: without the Rescaling after the Normalization, ImageNet's values are divided
        // by sqrt(std) only (what such a Keras model computes); with it, by std; an offset moves the mean.
        func config(after: JSONValue?, offset: Double = 0) -> JSONValue {
            var ls: [JSONValue] = [.object([("class_name", .string("InputLayer")), ("config", .object([]))]),
                                   .object([("class_name", .string("Rescaling")), ("config", .object([("scale", .double(1.0 / 255)), ("offset", .double(offset))]))]),
                                   .object([("class_name", .string("Normalization")), ("config", .object([("axis", .int(-1))]))])]
            if let after { ls.append(.object([("class_name", .string("Rescaling")), ("config", .object([("scale", after), ("offset", .double(0))]))])) }
            ls.append(.object([("class_name", .string("ZeroPadding2D")), ("config", .object([]))]))
            ls.append(.object([("class_name", .string("Rescaling")), ("config", .object([("scale", .double(7))]))]))  // after the stem: not preprocessing
            return .object([("class_name", .string("Functional")), ("config", .object([("layers", .array(ls))]))])
        }
        let bare = try mapped(mean: imagenetMean, variance: imagenetStd, config: config(after: nil))
        #expect(close(bare.std, torchStd.map { $0.squareRoot() }), "\(bare)")
        let fixed = try mapped(mean: imagenetMean, variance: imagenetStd, config: config(after: .array(torchStd.map { .double(1 / $0.squareRoot()) })))
        #expect(close(fixed.std, torchStd), "\(fixed)")
        let shifted = try mapped(mean: [0.5, 0.5, 0.5], variance: [1, 1, 1], config: config(after: .double(2), offset: 0.1))
        #expect(close(shifted.mean, [0.4, 0.4, 0.4]) && close(shifted.std, [0.5, 0.5, 0.5]), "\(shifted)")
        // A variance that is not a variance is a one-line error naming the layer.
        #expect(throws: ZooError.self) { try mapped(mean: imagenetMean, variance: [-1, 0.2, 0.2], config: nil) }
    }

    @Test("Keras full models with a custom GAP -> Dense(n) head on VGG16 and MobileNetV3 map to head.weight / head.bias")
    func kerasCustomHeads() throws {
        let s = try specs()
        for (api, key, name, drop, channels) in [("tf_keras", "VGG16", "vgg16", 3, 512), ("keras", "MobileNetV3Small_1", "mobilenet_v3_small", 2, 576),
                                                  ("tf_keras", "MobileNetV3Large_0.75", "mobilenet_v3_large_075", 2, 720)] {
            var layers = try #require(s[api]?[key]?["layers"]?.arrayValue)
            layers.removeLast(drop)
            layers.append(.array([.string("dense"), .string("Dense"), .array([
                .array([.string("dense/kernel:0"), .array([.int(Int64(channels)), .int(19)])]),
                .array([.string("dense/bias:0"), .array([.int(19)])]),
            ])]))
            for withClass in [true, false] {
                let (records, layout) = kerasSpecLayout(layers, withClassNames: withClass)
                for arch in ["auto", name] {
                    let r = try Mapping.canonicalize(records: records, structure: layout, arch: arch)
                    #expect(r.config.name == name && r.config.head == .linear && r.config.classes == 19, "\(key) \(arch): \(r.config.name) \(r.config.head)")
                    #expect(r.records.suffix(2).map(\.name) == ["head.weight", "head.bias"])
                    #expect(r.records.suffix(2).map(\.shape) == [[19, channels], [19]])
                    #expect(try r.config.graph().shapes(height: 224, width: 224).last == [19])
                    let back = try ArchitectureConfig(name: name, json: try #require(r.metadata.config))
                    #expect(back == r.config)
                }
            }
        }
        // Negative control: the standard head is not mistaken for a custom one, and ResNet refuses head "linear".
        let (records, layout) = kerasSpecLayout(try #require(s["keras"]?["MobileNetV3Small_1"]?["layers"]?.arrayValue), withClassNames: false)
        #expect(try Mapping.canonicalize(records: records, structure: layout, arch: "auto").config.head == .standard)
        var bad = try Architectures.preset("resnet50")
        bad.head = .linear
        #expect(throws: ZooError.self) { try bad.graph() }
    }

    @Test("Keras MobileNetV3 built for a fixed input size pads like TF same; built without one, with correct_pad's fixed rule")
    func kerasV3StaticInput() throws {
        let s = try specs()
        let (records, layout) = kerasSpecLayout(try #require(s["tf_keras"]?["MobileNetV3Small_1"]?["layers"]?.arrayValue), withClassNames: false)
        #expect(try Mapping.canonicalize(records: records, structure: layout, arch: "mobilenet_v3_small").config.stridedPadding == .correctPad)
        var full = layout
        let input: JSONValue = .object([("class_name", .string("InputLayer")), ("config", .object([("batch_input_shape", .array([.null, .int(225), .int(225), .int(3)]))]))])
        full.modelConfig = .object([("class_name", .string("Functional")), ("config", .object([("layers", .array([input]))]))])
        let r = try Mapping.canonicalize(records: records, structure: full, arch: "mobilenet_v3_small")
        #expect(r.config.stridedPadding == .tfSame)
        #expect(r.report.notes.contains { $0.contains("fixed 225x225 input") })
        var dynamic = layout
        dynamic.modelConfig = .object([("config", .object([("layers", .array([.object([("config", .object([("batch_shape", .array([.null, .null, .null, .int(3)]))]))])]))]))])
        #expect(try Mapping.canonicalize(records: records, structure: dynamic, arch: "mobilenet_v3_small").config.stridedPadding == .correctPad)
    }

    @Test("torchvision: every architecture's state_dict maps by identity; --arch auto recognises each")
    func torchvisionSpecs() throws {
        let s = try specs()
        let expected: [String: (String, Int, Double)] = ["resnet18_c10": ("resnet18", 10, 1), "mobilenet_v2_w050": ("mobilenet_v2", 1000, 0.5),
                                                         "mobilenet_v3_small_c19": ("mobilenet_v3_small", 19, 1)]
        for (key, ref) in try #require(s["torchvision"]?.objectValue) {
            let tensors = (ref["tensors"]?.arrayValue ?? []).map { t -> (String, [Int]) in
                let a = t.arrayValue ?? []
                return (a[0].stringValue ?? "", (a[1].arrayValue ?? []).compactMap(\.intValue))
            }
            let (name, classes, width) = expected[key] ?? (key, 1000, 1)
            let r = try Mapping.canonicalize(records: shapeRecords(tensors), structure: nil, arch: "auto")
            #expect(r.config.name == name && r.config.classes == classes && r.config.width == width && r.config.flavour == .torchvision,
                    "\(key): auto chose \(r.config.name) \(r.config.flavour) classes \(r.config.classes) width \(r.config.width)")
            #expect(r.records.map(\.name) == tensors.map(\.0))
            #expect(r.metadata.architecture == name)
            #expect((r.metadata.labels?.count ?? 0) == (classes == 1000 ? 1000 : 0))
        }
    }

    @Test("torchvision round trip: native file loads into torchvision with strict=True, identical tensors; wrappers and module. prefixes")
    func torchvisionRoundTrip() throws {
        let dir = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        var pythonArgs: [String] = []
        for name in ["resnet18", "mobilenet_v2", "mobilenet_v3_small", "resnext50_32x4d"] {
            let src = try TestSupport.fixture("arch/tv_\(name).safetensors")
            let records = try SafetensorsFile(path: src).records
            // 1. Plain state_dict.
            let plain = try Mapping.canonicalize(records: records, structure: nil, arch: name)
            #expect(plain.report.isComplete && plain.report.synthesized.isEmpty && plain.report.prefix == nil)
            let out1 = dir.appendingPathComponent("\(name).safetensors").path
            try NativeCheckpoint.write(plain.records, metadata: plain.metadata, to: out1, overwrite: true)
            // 2. Wrapped: {"state_dict": DataParallel state_dict without num_batches_tracked, "optimizer": ...}.
            var wrapped = records.filter { !$0.name.hasSuffix("num_batches_tracked") }.map { r -> TensorRecord in
                var c = r; c.name = "state_dict.module." + r.name; return c
            }
            wrapped.append(TensorRecord(name: "optimizer.state.0.momentum_buffer", tensor: try Tensor(shape: [2], floats: [1, 2])))
            let w = try Mapping.canonicalize(records: wrapped, structure: nil, arch: "auto")
            #expect(w.config.name == name)
            #expect(w.report.prefix == "state_dict.module.")
            #expect(w.report.ignored == ["optimizer.state.0.momentum_buffer"])
            #expect(w.report.synthesized.count == records.filter { $0.name.hasSuffix("num_batches_tracked") }.count && !w.report.synthesized.isEmpty)
            #expect(w.report.notes.first?.hasPrefix("recognised as \(name)") == true)
            let out2 = dir.appendingPathComponent("\(name)_wrapped.safetensors").path
            try NativeCheckpoint.write(w.records, metadata: w.metadata, to: out2, overwrite: true)
            // Native metadata: architecture, config, preprocessing, labels.
            let native = try NativeCheckpoint(path: out1)
            #expect(native.metadata.architecture == name)
            #expect(native.metadata.labels?.count == 1000)
            #expect(native.metadata.preprocessing?["mean"] != nil)
            let cfg = try ArchitectureConfig(name: name, json: try #require(native.metadata.config))
            #expect(cfg == plain.config)
            pythonArgs += [name, src, out1, out2]
        }
        // torchvision loads every file strictly; tensors equal the source (num_batches_tracked 0 where synthesised).
        let code = """
        import sys, torch, torchvision
        from safetensors.torch import load_file
        args = sys.argv[1:]
        for i in range(0, len(args), 4):
            name, src, a, b = args[i:i + 4]
            ref = load_file(src)
            for path, nbt_zero in [(a, False), (b, True)]:
                sd = load_file(path)
                m = torchvision.models.get_model(name, weights=None)
                m.load_state_dict(sd, strict=True)
                for k, v in ref.items():
                    w = sd[k]
                    if k.endswith("num_batches_tracked") and nbt_zero:
                        assert int(w) == 0 and w.dtype == torch.int64, k
                    else:
                        assert w.dtype == v.dtype and torch.equal(w, v), k
            print("OK", name)
        """
        let res = try TestSupport.python(code, pythonArgs)
        #expect(res.stdout.split(separator: "\n").filter { $0.hasPrefix("OK ") }.count == 4, "\(res.stdout) \(res.stderr.suffix(600))")
    }

    @Test("Keras VGG16 (tf_keras) converted: torchvision's VGG16 on the canonical weights reproduces Keras's logits; unpermuted fc1 does not")
    func kerasVGGNumerics() throws {
        let (records, layout) = try kerasFixture("vgg16_64px")
        let r = try Mapping.canonicalize(records: records, structure: layout, arch: "vgg16")
        let dir = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("vgg16_keras.safetensors").path
        try NativeCheckpoint.write(r.records, metadata: r.metadata, to: out, overwrite: true)
        let code = """
        import sys, numpy as np, torch, torchvision
        from safetensors.torch import load_file
        path, xp, yp = sys.argv[1:4]
        sd = load_file(path)
        x = torch.from_numpy(np.load(xp)).permute(0, 3, 1, 2).contiguous()
        ref = np.load(yp)
        def run(sd):
            m = torchvision.models.vgg16(weights=None)
            m.avgpool = torch.nn.Identity()          # Keras flattens the 2x2 map directly
            m.classifier[0] = torch.nn.Linear(2048, 4096)
            m.load_state_dict(sd, strict=True)
            m.eval()
            with torch.no_grad():
                y = m(x).numpy()
            return float(np.abs(y - ref).max() / np.abs(ref).max())
        good = run(sd)
        bad = dict(sd)
        bad["classifier.0.weight"] = sd["classifier.0.weight"].reshape(4096, 512, 2, 2).permute(0, 2, 3, 1).reshape(4096, 2048)
        print("ERR", good, run(bad))
        """
        let res = try TestSupport.python(code, [out, try TestSupport.fixture("arch/keras_vgg16_64px_x.npy"), try TestSupport.fixture("arch/keras_vgg16_64px_y.npy")])
        let parts = res.stdout.split(separator: " ").map { String($0).trimmingCharacters(in: .whitespacesAndNewlines) }
        let good = try #require(parts.count == 3 ? Double(parts[1]) : nil, "\(res.stdout) \(res.stderr.suffix(500))")
        let bad = try #require(Double(parts[2]))
        #expect(good < 1e-4, "max relative error \(good)")
        #expect(bad > 1e-2, "negative control: fc1 in Keras's (h, w, c) order must not match (\(bad))")
    }

    @Test("zoo convert --arch: real .pth, tf_keras .h5 (weights and full model) and Keras 3 .weights.h5 give the canonical tensors")
    func convertCommand() throws {
        let dir = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        // (file, expected architecture, the reference: canonical records from the same weights in safetensors + JSON layout)
        let cases: [(String, String, () throws -> CanonicalCheckpoint)] = [
            ("tv_mobilenet_v3_small_wrapped.pth", "mobilenet_v3_small", {
                try Mapping.canonicalize(records: try SafetensorsFile(path: try TestSupport.fixture("arch/tv_mobilenet_v3_small.safetensors")).records,
                                         structure: nil, arch: "mobilenet_v3_small") }),
            ("keras_mobilenet_v1_025.h5", "mobilenet_v1_025", { let f = try kerasFixture("mobilenet_v1_025"); return try Mapping.canonicalize(records: f.records, structure: f.layout, arch: "mobilenet_v1_025") }),
            ("keras_mobilenet_v1_050_notop.h5", "mobilenet_v1_050", { let f = try kerasFixture("mobilenet_v1_050_notop"); return try Mapping.canonicalize(records: f.records, structure: f.layout, arch: "mobilenet_v1_050") }),
            ("keras_mobilenet_v2_035.weights.h5", "mobilenet_v2_035", { let f = try kerasFixture("mobilenet_v2_035"); return try Mapping.canonicalize(records: f.records, structure: f.layout, arch: "mobilenet_v2_035") }),
            ("keras_mobilenet_v3_small.h5", "mobilenet_v3_small", { let f = try kerasFixture("mobilenet_v3_small"); return try Mapping.canonicalize(records: f.records, structure: f.layout, arch: "mobilenet_v3_small") }),
            ("keras_mobilenet_v3_large_k3.weights.h5", "mobilenet_v3_large", { let f = try kerasFixture("mobilenet_v3_large_k3"); return try Mapping.canonicalize(records: f.records, structure: f.layout, arch: "mobilenet_v3_large") }),
            ("keras_mobilenet_v2_050_head19_full.h5", "mobilenet_v2_050", { let f = try kerasFixture("mobilenet_v2_050_head19"); return try Mapping.canonicalize(records: f.records, structure: f.layout, arch: "mobilenet_v2_050") }),
        ]
        for (file, name, reference) in cases {
            let src = try TestSupport.fixture("arch/\(file)")
            for arch in ["auto", name] {
                let out = dir.appendingPathComponent("\(file)_\(arch).safetensors").path
                let r = try TestSupport.zoo(["convert", src, "--arch", arch, "-o", out])
                #expect(r.status == 0, "\(file) --arch \(arch): \(r.stderr)")
                if arch == "auto" { #expect(r.stderr.contains("recognised as \(name)"), "\(file): \(r.stderr)") }
                let native = try NativeCheckpoint(path: out)
                let ref = try reference()
                #expect(native.metadata.architecture == name)
                #expect(native.metadata.config.map { try? ArchitectureConfig(name: name, json: $0) } == ref.config, "\(file): config")
                #expect(native.metadata.source?.sha256.count == 64)
                #expect(native.file.entries.count == ref.records.count, "\(file): \(native.file.entries.count) tensors vs \(ref.records.count)")
                for rec in ref.records {
                    let t = try native.file.tensor(named: rec.name)
                    #expect(t.bitwiseEqual(try rec.load()), "\(file): \(rec.name)")
                }
            }
        }
        // Errors: the wrong architecture (exit 2, names tensors); --allow-partial writes and keeps the report.
        let src = try TestSupport.fixture("arch/keras_mobilenet_v2_035.weights.h5")
        let out = dir.appendingPathComponent("partial.safetensors").path
        let wrong = try TestSupport.zoo(["convert", src, "--arch", "mobilenet_v3_small", "-o", out])
        #expect(wrong.status == 2 && wrong.stderr.contains("does not fit mobilenet_v3_small") && wrong.stderr.contains("missing: features."), "\(wrong.stderr)")
        #expect(!FileManager.default.fileExists(atPath: out))
        let width = try TestSupport.zoo(["convert", src, "--arch", "mobilenet_v2", "-o", out + "w"])
        #expect(width.status == 0 && width.stderr.contains("width 0.35 read from the tensors"), "\(width.stderr)")
        let partial = try TestSupport.zoo(["convert", src, "--arch", "mobilenet_v3_small", "--allow-partial", "-o", out])
        #expect(partial.status == 0 && partial.stderr.contains("partial:"))
        #expect(try NativeCheckpoint(path: out).metadata.report?["mismatched"]?.arrayValue?.isEmpty == false)
        let noArch = try TestSupport.zoo(["convert", src, "--allow-partial", "-o", out + "2"])
        #expect(noArch.status == 1)
        let torchOnly = try TestSupport.zoo(["convert", src, "--arch", "resnet18", "-o", out + "3"])
        #expect(torchOnly.status == 2 && torchOnly.stderr.contains("no Keras flavour"))
    }

    @Test("Validation lists missing, unexpected and mismatched tensors by name with both shapes; --allow-partial keeps the report")
    func validation() throws {
        let records = try SafetensorsFile(path: try TestSupport.fixture("arch/tv_resnet18.safetensors")).records
        var broken = records.filter { $0.name != "layer1.0.conv1.weight" }
        broken.append(TensorRecord(name: "extra.weight", tensor: try Tensor(shape: [1], floats: [0])))
        let badBias = TensorRecord(name: "fc.bias", tensor: try Tensor(zeros: .f32, shape: [999]))
        broken = broken.map { $0.name == "fc.bias" ? badBias : $0 }
        do {
            _ = try Mapping.canonicalize(records: broken, structure: nil, arch: "resnet18")
            Issue.record("a broken checkpoint must not convert strictly")
        } catch let e as ZooError {
            #expect(e.kind == .mismatch)
            #expect(e.message.contains("missing: layer1.0.conv1.weight [64, 64, 3, 3]"))
            #expect(e.message.contains("unexpected: extra.weight [1]"))
            // fc.weight says 1000 classes, fc.bias has 999.
            #expect(e.message.contains("fc.bias expects [1000], fc.bias has [999]"), "\(e.message)")
        }
        let partial = try Mapping.canonicalize(records: broken, structure: nil, arch: "resnet18", allowPartial: true)
        #expect(!partial.report.isComplete)
        #expect(partial.metadata.report?["missing"]?.arrayValue?.count == 1)
        #expect(partial.records.count == records.count - 2)
        // The wrong architecture is a mismatch too.
        #expect(throws: ZooError.self) { try Mapping.canonicalize(records: records, structure: nil, arch: "resnet34") }
        #expect(throws: ZooError.self) { try Mapping.canonicalize(records: records, structure: nil, arch: "nosuchnet") }
    }

    @Test("Keras files: real tf_keras / Keras 3 weights map with the right layouts (checked element by element)")
    func kerasFiles() throws {
        let cases: [(String, String, Int, Bool)] = [
            ("resnet50", "resnet50", 1000, true), ("vgg16_64px", "vgg16", 1000, true), ("mobilenet_v1_025", "mobilenet_v1_025", 1000, true),
            ("mobilenet_v1_050_notop", "mobilenet_v1_050", 1000, false), ("mobilenet_v2_035", "mobilenet_v2_035", 1000, true),
            ("mobilenet_v3_small", "mobilenet_v3_small", 1000, true), ("mobilenet_v3_large_k3", "mobilenet_v3_large", 1000, true),
            ("mobilenet_v2_050_head19", "mobilenet_v2_050", 19, true),
        ]
        for (fixture, name, classes, top) in cases {
            let (records, layout) = try kerasFixture(fixture)
            let r = try Mapping.canonicalize(records: records, structure: layout, arch: name)
            #expect(r.report.isComplete, "\(fixture): \(r.report.lines.prefix(4))")
            #expect(r.config.classes == classes && r.config.includeTop == top, "\(fixture): \(r.config.classes) classes, top \(r.config.includeTop)")
            let auto = try Mapping.canonicalize(records: records, structure: layout, arch: "auto")
            #expect(auto.config.name == name, "\(fixture): auto chose \(auto.config.name)")
            #expect(r.metadata.config?["flavour"]?.stringValue == "keras")
            let src = Dictionary(uniqueKeysWithValues: records.map { ($0.name, $0) })
            for c in r.records {
                guard let sname = c.details.first(where: { $0.0 == "source" })?.1.stringValue, let s = src[sname] else {
                    #expect(c.name.hasSuffix("num_batches_tracked"), "\(c.name) has a source"); continue
                }
                let a = floats(try s.load()), b = floats(try c.load())
                #expect(a.count == b.count)
                let ss = s.shape, cs = c.shape
                // Independent index formulas for each layout.
                var ok = true
                if cs.count == 4 && ss.count == 4 {
                    if cs[1] == 1 && ss[3] == 1 && ss[2] == cs[0] && cs[0] > 1 {     // depthwise (h, w, c, 1) -> (c, 1, h, w)
                        for ch in stride(from: 0, to: cs[0], by: max(1, cs[0] / 7)) { for y in 0..<cs[2] { for x in 0..<cs[3] {
                            ok = ok && b[(ch * cs[2] + y) * cs[3] + x] == a[(y * ss[1] + x) * ss[2] + ch]
                        } } }
                    } else {                                                         // (h, w, i, o) -> (o, i, h, w)
                        for o in stride(from: 0, to: cs[0], by: max(1, cs[0] / 5)) { for i in stride(from: 0, to: cs[1], by: max(1, cs[1] / 5)) {
                            for y in 0..<cs[2] { for x in 0..<cs[3] {
                                ok = ok && b[((o * cs[1] + i) * cs[2] + y) * cs[3] + x] == a[((y * ss[1] + x) * ss[2] + i) * ss[3] + o]
                            } }
                        } }
                    }
                } else if cs.count == 2 {
                    let fin = cs[1], fout = cs[0]
                    let vggFC1 = c.name == "classifier.0.weight" && name.hasPrefix("vgg")
                    let hw = fin / 512
                    for o in stride(from: 0, to: fout, by: max(1, fout / 5)) { for i in stride(from: 0, to: fin, by: max(1, fin / 37)) {
                        var row = i
                        if vggFC1 { let ch = i / hw, p = i % hw; row = p * 512 + ch }     // canonical column (c, h, w) <- Keras row (h, w, c)
                        ok = ok && b[o * fin + i] == a[row * fout + o]
                    } }
                } else {
                    ok = a == b
                }
                #expect(ok, "\(fixture): \(c.name) from \(sname) \(ss) -> \(cs)")
            }
        }
        // The VGG at 64 px flattens a 2x2 map: fc1 has 2048 inputs and the config records it.
        let (vr, vl) = try kerasFixture("vgg16_64px")
        let v = try Mapping.canonicalize(records: vr, structure: vl, arch: "vgg16")
        #expect(v.config.flattenSize == [2, 2])
        // Negative control: a Keras file under an architecture it is not.
        let (mr, ml) = try kerasFixture("mobilenet_v2_035")
        #expect(throws: ZooError.self) { try Mapping.canonicalize(records: mr, structure: ml, arch: "mobilenet_v3_small") }
        // The width is read off the tensors: `mobilenet_v2` (or another width) accepts alpha-0.35 weights and says so.
        let sibling = try Mapping.canonicalize(records: mr, structure: ml, arch: "mobilenet_v2")
        #expect(sibling.config.name == "mobilenet_v2_035" && sibling.config.width == 0.35)
        #expect(sibling.report.notes.first == "width 0.35 read from the tensors: mobilenet_v2_035")
        #expect(throws: ZooError.self) { try Mapping.canonicalize(records: mr, structure: ml, arch: "resnet18") }
    }
}

