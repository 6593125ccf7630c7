import Foundation
import Testing
import ZooFormats
import ZooHDF5
import ZooErrors
import ZooJSON
import ZooTestSupport

/// Keras files written by tf-keras and Keras 3 (tools/fixtures/gen_keras.py); expectations from
/// h5py (datasets) and from Keras itself (layer order, weight names, shapes).
@Suite struct KerasTests {
    static let legacyFiles = [
        "tfk_resnet50.h5", "tfk_vgg16.h5", "tfk_mobilenet.h5", "tfk_mobilenetv2.h5", "tfk_mobilenetv3small.h5",
        "tfk_nested.h5", "tfk_full.h5", "tfk_longnames.h5", "k3_legacy_full.h5",
    ]
    static let keras3Files = [
        "k3_resnet50.weights.h5", "k3_vgg16.weights.h5", "k3_mobilenet.weights.h5", "k3_mobilenetv2.weights.h5",
        "k3_mobilenetv3small.weights.h5", "k3_nested.weights.h5", "k3_bf16.weights.h5",
    ]

    struct ExpectedLayer {
        var name: String
        var className: String
        var weights: [(name: String, shape: [Int], tensor: String)]
    }

    static func expectedLayers(_ entry: JSONValue) throws -> [ExpectedLayer] {
        let layers = try #require(entry["keras"]?["layers"]?.arrayValue)
        return layers.map { l in
            ExpectedLayer(name: l["name"]?.stringValue ?? "?", className: l["class"]?.stringValue ?? "?",
                          weights: (l["weights"]?.arrayValue ?? []).map { w in
                              (w["name"]?.stringValue ?? "?", w["shape"]?.arrayValue?.compactMap(\.intValue) ?? [], w["tensor"]?.stringValue ?? "?")
                          })
        }
    }

    @Test(arguments: legacyFiles)
    func legacyLayoutMatchesKeras(file: String) throws {
        let path = try TestSupport.fixture("keras/\(file)")
        let entry = try Manifest.entry("keras", file)
        let ckpt = try HDF5Importer.read(path: path)
        try Manifest.expectDatasetsMatch(ckpt, entry, file: file)
        let k = try #require(ckpt.structure, "\(file): no Keras layout")
        let info = try #require(entry["keras"])
        #expect(k.dialect == info["dialect"]?.stringValue)
        #expect(k.producerVersion == info["keras_version"]?.stringValue)
        #expect(k.backend == info["backend"]?.stringValue)
        let expected = try Self.expectedLayers(entry)
        #expect(!expected.isEmpty)
        // Exactly Keras's order: layers, then each layer's weights.
        #expect(k.layers.map(\.name) == expected.map(\.name), "\(file): layer order")
        let shapes = Dictionary(ckpt.tensors.map { ($0.name, $0.shape) }, uniquingKeysWith: { a, _ in a })
        for (got, want) in zip(k.layers, expected) {
            #expect(got.weights.map(\.name) == want.weights.map(\.name), "\(file): weights of \(want.name)")
            #expect(got.weights.map(\.tensor) == want.weights.map(\.tensor), "\(file): tensors of \(want.name)")
            #expect(got.weights.map { shapes[$0.tensor] ?? [] } == want.weights.map(\.shape), "\(file): shapes of \(want.name)")
        }
        let full = info["full"]?.boolValue ?? false
        if full {
            // Full-model saves: classes and configs from model_config.
            #expect(k.modelConfig != nil)
            for (got, want) in zip(k.layers, expected) {
                #expect(got.className == want.className, "\(file): class of \(want.name)")
                #expect(got.config?["name"]?.stringValue == want.name)
            }
            #expect(ckpt.metadata.contains { $0.0 == "model_config" && $0.1["class_name"] != nil })
            #expect(ckpt.metadata.contains { $0.0 == "training_config" })
            #expect((ckpt.metadata.first { $0.0 == "optimizer_weights" }?.1.intValue ?? 0) > 0)
        } else {
            #expect(k.modelConfig == nil)
            #expect(k.layers.allSatisfy { $0.className == nil })
        }
        // The inspect table lists every weight in Keras order.
        let table = try #require(ckpt.sections.first)
        #expect(table.columns == ["layer", "class", "weight", "shape", "dtype"])
        #expect(table.rows.map { $0[2] } == expected.flatMap { $0.weights.map(\.name) })
        #expect(ckpt.metadata.contains { $0.0 == "dialect" && $0.1 == .string(k.dialect) })
    }

    @Test(arguments: keras3Files)
    func keras3LayoutMatchesKeras(file: String) throws {
        let path = try TestSupport.fixture("keras/\(file)")
        let entry = try Manifest.entry("keras", file)
        let ckpt = try HDF5Importer.read(path: path)
        try Manifest.expectDatasetsMatch(ckpt, entry, file: file)
        let k = try #require(ckpt.structure, "\(file): no Keras layout")
        #expect(k.dialect == "keras3")
        let expected = try Self.expectedLayers(entry)
        #expect(!expected.isEmpty)
        // Every layer with weights, under its real name (the vars group's `name` attribute).
        #expect(Set(k.layers.map(\.name)) == Set(expected.map(\.name)), "\(file): layer names")
        #expect(k.layers.count == expected.count)
        let byName = Dictionary(k.layers.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        let shapes = Dictionary(ckpt.tensors.map { ($0.name, $0.shape) }, uniquingKeysWith: { a, _ in a })
        for want in expected {
            guard let got = byName[want.name] else { continue }
            #expect(got.weights.map(\.tensor) == want.weights.map(\.tensor), "\(file): tensors of \(want.name)")
            #expect(got.weights.map { shapes[$0.tensor] ?? [] } == want.weights.map(\.shape), "\(file): shapes of \(want.name)")
            #expect(got.weights.map(\.name) == want.weights.indices.map { "vars/\($0)" })
        }
        // Within one class of one container, Keras's relative order survives (keys conv2d, conv2d_1, ..., conv2d_10).
        let position = Dictionary(k.layers.enumerated().map { ($1.name, $0) }, uniquingKeysWith: { a, _ in a })
        func container(_ l: ExpectedLayer) -> String {
            let t = l.weights.first?.tensor ?? ""
            return t.range(of: "/layers/", options: .backwards).map { String(t[..<$0.lowerBound]) } ?? ""
        }
        var groups = 0
        for cls in Set(expected.map(\.className)) {
            for c in Set(expected.map(container)) {
                let order = expected.filter { $0.className == cls && container($0) == c }.compactMap { position[$0.name] }
                if order.count > 1 { groups += 1 }
                #expect(order == order.sorted(), "\(file): order of the \(cls) layers in '\(c)'")
            }
        }
        #expect(groups > 0 || expected.count < 3, "\(file): no class with several layers to check the order of")
    }

    @Test(arguments: keras3Files)
    func keras3OrderFromTheModelsClasses(file: String) throws {
        // Keras 3 files keep the order only per class; given the model's classes (what Keras
        // itself has when loading), keras3Ordered restores Keras's order exactly.
        let ckpt = try HDF5Importer.read(path: try TestSupport.fixture("keras/\(file)"))
        let k = try #require(ckpt.structure)
        let expected = try Self.expectedLayers(try Manifest.entry("keras", file))
        let ordered = k.keras3Ordered(classes: expected.map(\.className))
        if file == "k3_nested.weights.h5" {
            #expect(ordered == nil, "nested containers are not a flat model")
            return
        }
        #expect(ordered?.map(\.name) == expected.map(\.name), "\(file): Keras order")
        #expect(ordered?.map { $0.weights.map(\.tensor) } == expected.map { $0.weights.map(\.tensor) })
        // Negative controls: a wrong class sequence does not fit.
        #expect(k.keras3Ordered(classes: expected.dropLast().map(\.className)) == nil)
        #expect(k.keras3Ordered(classes: expected.map { _ in "Dense" }) == nil || expected.allSatisfy { $0.className == "Dense" })
    }

    @Test func snakeCaseLikeKeras() {
        #expect(SourceStructure.snakeCase("Conv2D") == "conv2d")
        #expect(SourceStructure.snakeCase("DepthwiseConv2D") == "depthwise_conv2d")
        #expect(SourceStructure.snakeCase("BatchNormalization") == "batch_normalization")
        #expect(SourceStructure.snakeCase("Dense") == "dense")
        #expect(SourceStructure.snakeCase("SeparableConv2D") == "separable_conv2d")
        #expect(SourceStructure.snakeCase("ReLU") == "re_lu")
        #expect(SourceStructure.snakeCase("GlobalAveragePooling2D") == "global_average_pooling2d")
    }

    @Test func bfloat16VariablesReadAsBF16() throws {
        let ckpt = try HDF5Importer.read(path: try TestSupport.fixture("keras/k3_bf16.weights.h5"))
        let bf = ckpt.tensors.filter { $0.dtype == .bf16 }
        #expect(bf.count == 2)
        #expect(Set(bf.map(\.name)) == ["layers/dense/vars/0", "layers/dense/vars/1"])
        let values = try bf[0].load().floats()
        #expect(values.contains { $0 != 0 } && values.allSatisfy { $0.isFinite && abs($0) < 2 })
        #expect(ckpt.tensors.filter { $0.dtype == .f32 }.count == 2)
    }

    @Test func chunkedLayerNames() throws {
        let path = try TestSupport.fixture("keras/tfk_longnames.h5")
        let file = try HDF5File(path: path)
        let root = try #require(file.object(""))
        #expect(root.attribute("layer_names") == nil)
        #expect(root.attribute("layer_names0") != nil && root.attribute("layer_names1") != nil)
        let ckpt = try HDF5Importer.imported(file)
        #expect(ckpt.structure?.layers.count == 300)
        #expect(ckpt.structure?.layers.last?.name.hasPrefix("layer_0299_") == true)
    }

    @Test func nestedModelsAreFlattened() throws {
        let legacy = try HDF5Importer.read(path: try TestSupport.fixture("keras/tfk_nested.h5"))
        #expect(legacy.structure?.layers.map(\.name) == ["stem", "inner_dense", "inner_bn", "head"])
        #expect(legacy.structure?.layers[2].weights.map(\.tensor).first == "backbone/inner_bn/gamma:0")
        let full = try HDF5Importer.read(path: try TestSupport.fixture("keras/tfk_full.h5"))
        let layers = try #require(full.structure?.layers)
        #expect(layers.first?.name == "Conv" && layers.first?.className == "Conv2D")
        #expect(layers.last?.name == "custom_head" && layers.last?.className == "Dense")
        #expect(layers.last?.weights.map { $0.tensor } == ["model_weights/custom_head/custom_head/kernel:0",
                                                           "model_weights/custom_head/custom_head/bias:0"])
        // Optimizer slots are tensors, not layers.
        #expect(full.tensors.contains { $0.name.hasPrefix("optimizer_weights/") })
        #expect(!layers.contains { $0.weights.contains { $0.tensor.hasPrefix("optimizer_weights/") } })
    }

    @Test(arguments: ["truncated_50.h5", "truncated_90.h5", "truncated_header.h5", "corrupt_superblock.h5", "corrupt_scattered.h5"])
    func damagedFilesRefusedCleanly(file: String) throws {
        let path = try TestSupport.fixture("keras/\(file)")
        let e = expectZooError(file) {
            let ckpt = try HDF5Importer.read(path: path)
            for r in ckpt.tensors { _ = try r.load() }
        }
        #expect(e?.kind == .badInput)
        #expect(e?.file == path)
        #expect(e?.description.contains("\n") == false)
        if file.hasPrefix("truncated") { #expect(e?.message.contains("truncated") == true, "\(e?.description ?? "")") }
    }

    @Test(arguments: ["libhdf5_segv_1.h5", "libhdf5_segv_2.h5", "libhdf5_segv_3.h5"])
    func filesThatCrashLibhdf5AreRefusedInProcess(file: String) throws {
        // libhdf5 1.10 dereferences a bad pointer on these (tools/make_hdf5_hostile.py): the probe
        // in a child process takes the crash; this test process must survive and get one error.
        let path = TestSupport.committed("hdf5/\(file)")
        let e = expectZooError(file) {
            let ckpt = try HDF5Importer.read(path: path)
            for r in ckpt.tensors { _ = try r.load() }
        }
        #expect(e?.kind == .badInput)
        #expect(e?.message.contains("libhdf5 crashed (signal") == true, "\(e?.description ?? "")")
        #expect(e?.file == path)
    }

    @Test func theProbeIsTheExecutableNotAForkOfThisProcess() throws {
        // A fork of this multi-threaded test runner could inherit locks other threads hold and
        // spin until its CPU budget runs out (a good file refused once in CI): the probe must be
        // the separate executable built beside the tests.
        let exe = try #require(HDF5File.probeExecutable)
        #expect(exe.hasSuffix("/zoo-hdf5-probe"))
        #expect(FileManager.default.isExecutableFile(atPath: exe))
    }

    /// libhdf5_slow.h5 makes libhdf5 fault in memory without end for one attribute. Through the
    /// importer the probe's memory ceiling stops it (or, on a machine where allocating is slower
    /// than the CPU budget, the budget does): refused either way, quickly. The CPU budget on its own
    /// is checked on the probe executable without a memory ceiling: killed by SIGXCPU, not read.
    @Test func filesThatKeepLibhdf5BusyAreRefusedAfterTheTimeout() throws {
        let path = TestSupport.committed("hdf5/libhdf5_slow.h5")
        let start = Date()
        let e = expectZooError("libhdf5_slow.h5") { _ = try HDF5Importer.read(path: path) }
        #expect(e?.kind == .badInput)
        let message = e?.message ?? ""
        #expect(message.contains("did not finish") || message.contains("memory allocation failed"), "\(e?.description ?? "")")
        #expect(Date().timeIntervalSince(start) < 60)

        let exe = try #require(HDF5File.probeExecutable)
        let budgetOnly = try TestSupport.run("/usr/bin/timeout", ["60", exe, HDF5ProbeTool.cpuFlag, "2", "--", path])
        // SIGXCPU at the soft limit, or SIGKILL at the hard one (a second later) when SIGXCPU is
        // ignored in the inherited dispositions; `timeout` passes the signal on (124 would mean it
        // had to step in: the budget did not work).
        #expect([SIGXCPU, SIGKILL, 128 + SIGXCPU, 128 + SIGKILL].contains(budgetOnly.status),
                "probe without a memory ceiling ended with \(budgetOnly.status)")
    }

    /// The isolated read (libhdf5 in the probe process, results handed back through a file) gives
    /// exactly what libhdf5 gives in-process: objects, attributes (NaN and infinities included),
    /// records with their details and bytes, skipped datasets, and the same error for a dataset
    /// that fails to load (the deflate bomb) while the rest of the file stays readable.
    @Test(arguments: ["keras/tfk_nested.h5", "keras/k3_bf16.weights.h5", "keras/tfk_full.h5", "hdf5/generic.h5",
                      "hdf5/keras1.h5", "hdf5/keras_nan_config.h5", "hdf5/userblock.h5", "hdf5/bomb_deflate.h5"])
    func isolatedReadEqualsTheInProcessRead(file: String) throws {
        let path = try TestSupport.fixture(file)
        let direct = try HDF5File(path: path, isolated: false)
        let probed = try HDF5File(path: path)
        #expect(probed.fileSize == direct.fileSize)
        #expect(probed.skipped == direct.skipped)
        #expect(probed.objects.keys.sorted() == direct.objects.keys.sorted())
        for (key, d) in direct.objects {
            let p = try #require(probed.objects[key])
            #expect(p.isGroup == d.isGroup && p.children == d.children, "\(file) \(key)")
            #expect(p.attributes.map(\.0) == d.attributes.map(\.0), "\(file) \(key)")
            for ((name, a), (_, b)) in zip(p.attributes, d.attributes) {
                #expect(sameValue(a, b), "\(file) \(key) attribute \(name): \(a) vs \(b)")
            }
        }
        #expect(probed.records.map(\.name) == direct.records.map(\.name))
        var failed = 0
        for (p, d) in zip(probed.records, direct.records) {
            #expect(p.dtype == d.dtype && p.shape == d.shape, "\(file) \(d.name)")
            #expect(JSONValue.object(p.details) == JSONValue.object(d.details), "\(file) \(d.name)")
            switch (Result { try p.load() }, Result { try d.load() }) {
            case let (.success(a), .success(b)):
                #expect(a.bitwiseEqual(b), "\(file) \(d.name)")
            case let (.failure(a), .failure(b)):
                failed += 1
                #expect("\(a)" == "\(b)", "\(file) \(d.name)")
            default:
                Issue.record("\(file) \(d.name): one read failed, the other did not")
            }
        }
        #expect(failed == (file.contains("bomb") ? 1 : 0), "\(file): \(failed) records failed to load")
        if file == "hdf5/generic.h5" {
            // Negative control: the values JSON cannot carry made it through, and differ from finite ones.
            let v = try #require(probed.objects[""]?.attribute("nonfinite")?.arrayValue)
            #expect(v.count == 4 && v[0].doubleValue?.isNaN == true && v[1] == .double(.infinity) && v[2] == .double(-.infinity))
            #expect(!sameValue(v[0], .double(1.5)) && !sameValue(.null, v[0]))
        }
    }

    /// JSON values equal, NaN equal to NaN.
    private func sameValue(_ a: JSONValue, _ b: JSONValue) -> Bool {
        switch (a, b) {
        case let (.double(x), .double(y)): return x.bitPattern == y.bitPattern || x == y
        case let (.array(x), .array(y)): return x.count == y.count && zip(x, y).allSatisfy { sameValue($0, $1) }
        default: return a == b
        }
    }

    @Test func truncatedAtManyLengthsNeverCrashes() throws {
        let source = try TestSupport.fixture("keras/tfk_nested.h5")
        let data = try Data(contentsOf: URL(fileURLWithPath: source))
        let dir = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        var refused = 0
        let lengths = Array(stride(from: 0, to: data.count, by: max(1, data.count / 40)))
        for n in lengths {
            let path = dir.appendingPathComponent("t\(n).h5").path
            try data.prefix(n).write(to: URL(fileURLWithPath: path))
            do {
                let ckpt = try HDF5Importer.read(path: path)
                for r in ckpt.tensors { _ = try r.load() }
            } catch let e as ZooError {
                refused += 1
                #expect(!e.description.contains("\n"))
            }
        }
        #expect(refused == lengths.count, "every truncated copy is refused")
        // Negative control: the whole file reads.
        #expect(try HDF5Importer.read(path: source).tensors.count == 10)
    }
}
