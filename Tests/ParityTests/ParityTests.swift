import Foundation
import Testing
import ZooFormats
import ZooTensor
import ZooTestSupport

extension ParityCase: CustomTestStringConvertible {
    var testDescription: String { id }
}

/// End-to-end parity with the real frameworks: `zoo convert SRC --arch NAME` then `zoo run`, compared
/// with torchvision's / Keras's own outputs on the same weights and input (fixtures written by
/// tools/fixtures/gen_parity_*.py). Tolerance: max |ours - ref| / max |ref| <= 1e-4.
///
/// `make test` runs the subset (one architecture per family per source); `ZOO_PARITY=all` (`make parity`)
/// adds the full set. Each case converts into its own temporary folder; cases run one at a time.
@Suite(.serialized) struct ParityTests {
    let tolerance = ParityCatalog.tolerance

    /// Classifier logits, every selected case (torchvision fp32/fp16/bf16, Keras legacy .h5, Keras 3
    /// .weights.h5, full-model .h5 with a custom head).
    @Test(arguments: ParityCatalog.logitCases)
    func logits(_ c: ParityCase) throws {
        if let e = c.loadError {
            Parity.record(c, kind: "logits", error: nil, passed: false, note: e)
            Issue.record("parity fixtures not loadable: \(e)")
            return
        }
        let dir = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        do {
            let native = try Parity.convert(c, into: dir)
            let (err, _) = try Parity.runLogits(c, native: native, dir: dir)
            Parity.record(c, kind: "logits", error: err, passed: err <= tolerance)
            #expect(err <= tolerance, "\(c.id): max relative error \(err) exceeds \(tolerance)")
            if c.source == "torchvision", c.dtype == "f32" {
                // The architectures issue's round trip, for every torchvision architecture in `make parity`.
                let r = try Parity.torchvisionRoundTrip(c, native: native)
                #expect(r == "OK", "\(c.id): torchvision -> native -> torchvision: \(r)")
            }
        } catch {
            Parity.record(c, kind: "logits", error: nil, passed: false, note: "\(error)")
            throw error
        }
    }

    /// Backbone feature maps (`zoo run --features 0,1,2,3,4`) against torchvision's `create_feature_extractor`
    /// at torchvision's tap nodes (the last trunk module at each stride 2...32, derived from the torchvision
    /// model by the generator; docs/models.md, "Feature stages"): the zoo must name the same nodes with the
    /// same channels and strides (`zoo.feature_info`) and produce the same maps. Negative control in the
    /// same test: the map of the module just before each tap (e.g. MobileNetV2's 320-channel `features.17`,
    /// timm's tap 4) must NOT match the zoo's tap.
    @Test(arguments: ParityCatalog.featureCases)
    func features(_ c: ParityCase) throws {
        if let e = c.loadError {
            Parity.record(c, kind: "features 0-4", error: nil, passed: false, note: e)
            Issue.record("parity fixtures not loadable: \(e)")
            return
        }
        let dir = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        do {
            let native = try Parity.convert(c, into: dir)
            let out = dir.appendingPathComponent("features.safetensors").path
            let indices = c.taps.map(\.index)
            #expect(indices == [0, 1, 2, 3, 4], "\(c.id): the manifest lists taps \(indices)")
            try Parity.zoo(["run", native, "--input", try c.path(c.input), "--features",
                            indices.map(String.init).joined(separator: ","), "--output", out])
            let ours = try SafetensorsFile(path: out)
            let refs = try SafetensorsFile(path: try c.path(try #require(c.features)))
            var notes: [String] = []
            // The zoo's description of its taps names torchvision's nodes, channels and strides.
            let expected = c.taps.map { "\($0.index):\($0.node)/\($0.channels)ch/x\($0.reduction)" }
            let described = try Parity.featureInfo(ours).map { "\($0.index):\($0.name)/\($0.channels)ch/x\($0.reduction)" }
            if described != expected { notes.append("zoo taps \(described), torchvision's \(expected)") }
            #expect(described == expected, "\(c.id): the zoo's taps \(described) are not torchvision's \(expected)")
            var worst = described == expected ? 0.0 : Double.infinity
            var maps: [Int: Tensor] = [:]
            for tap in c.taps {
                let ref = try refs.tensor(named: String(tap.index))
                guard let entry = ours.entries.first(where: { $0.name == String(tap.index) }), entry.shape == ref.shape else {
                    notes.append("tap \(tap.index) (\(tap.node), \(ref.shape)) not produced; got \(ours.entries.map { "\($0.name) \($0.shape)" })")
                    Issue.record("\(c.id): tap \(tap.index) (\(tap.node), shape \(ref.shape)) not found among \(ours.entries.map { "\($0.name) \($0.shape)" })")
                    worst = .infinity
                    continue
                }
                let mine = try ours.tensor(entry)
                maps[tap.index] = mine
                let err = try Parity.relativeError(mine, ref)
                worst = max(worst, err)
                #expect(err <= tolerance, "\(c.id): tap \(tap.index) (\(tap.node)): max relative error \(err)")
            }
            Parity.record(c, kind: "features 0-4", error: worst, passed: worst <= tolerance, note: notes.joined(separator: "; "))
            try negativeTaps(c, maps: maps, refs: refs)
        } catch {
            Parity.record(c, kind: "features 0-4", error: nil, passed: false, note: "\(error)")
            throw error
        }
    }

    /// Issue #7: parity at 1, 2 and 4 threads, and bit-identical results for a given thread count.
    @Test(arguments: ["torchvision/resnet18-224x224/f32", "tf-keras-h5/MobileNetV2-a0.35-160/f32"])
    func threads(_ id: String) throws {
        let c = try ParityCatalog.subsetCase(id)
        let dir = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let native = try Parity.convert(c, into: dir)
        for t in [1, 2, 4] {
            let (err, first) = try Parity.runLogits(c, native: native, dir: dir, threads: t, tag: "t\(t)a")
            let (_, second) = try Parity.runLogits(c, native: native, dir: dir, threads: t, tag: "t\(t)b")
            let deterministic = first.bitwiseEqual(second)
            Parity.record(c, kind: "threads=\(t)", error: err, passed: err <= tolerance && deterministic,
                          note: deterministic ? "two runs bit-identical" : "two runs differ")
            #expect(err <= tolerance, "\(id) at \(t) threads: max relative error \(err)")
            #expect(deterministic, "\(id) at \(t) threads: two runs differ")
        }
    }

    /// Negative control: a Keras (v1) ResNet50 run with torchvision's v1.5 stride placement must miss
    /// the tolerance — while the file as converted meets it, in the same test.
    @Test func kerasResNetWithTorchvisionStrideFails() throws {
        try negativeControl("tf-keras-h5/ResNet50-224/f32", kind: "negative: v1.5 stride") { fields in
            try Self.set(&fields, "stride_in_first_1x1", expecting: .bool(true), to: .bool(false))
        }
    }

    /// Negative control: a Keras MobileNetV2 (TF "same" padding, asymmetric at stride 2 on even inputs)
    /// run with PyTorch's symmetric padding must miss the tolerance.
    @Test func kerasMobileNetV2WithSymmetricPaddingFails() throws {
        try negativeControl("tf-keras-h5/MobileNetV2-a0.35-160/f32", kind: "negative: symmetric padding") { fields in
            try Self.set(&fields, "strided_padding", expecting: nil, to: .string("symmetric"))
            try Self.set(&fields, "stem_padding", expecting: nil, to: .string("symmetric"))
        }
    }

    /// A negative control must be able to fail: the relative-error measure itself separates a
    /// perturbed tensor from its reference, and NaN never passes.
    @Test func metricSeparatesWrongFromRight() throws {
        let ref = try Tensor(shape: [2, 3], floats: [1, -2, 3, 4, 5, -6])
        #expect(try Parity.relativeError(ref, ref) == 0)
        let close = try Tensor(shape: [2, 3], floats: [1, -2, 3, 4, 5, -6.0003])
        #expect(try Parity.relativeError(close, ref) <= tolerance)
        let off = try Tensor(shape: [2, 3], floats: [1, -2, 3, 4, 5.001, -6])
        #expect(try Parity.relativeError(off, ref) > tolerance)
        let nan = try Tensor(shape: [2, 3], floats: [1, -2, 3, 4, .nan, -6])
        #expect(try Parity.relativeError(nan, ref) > tolerance)
        let wrongShape = try Tensor(shape: [3, 2], floats: [1, -2, 3, 4, 5, -6])
        #expect(throws: ZooError.self) { try Parity.relativeError(wrongShape, ref) }
    }

    // MARK: - helpers

    /// The negative control of a feature case: each tap's map must differ from the module just before it
    /// (beyond the tolerance where the shapes agree), so a tap one module off cannot pass.
    private func negativeTaps(_ c: ParityCase, maps: [Int: Tensor], refs: SafetensorsFile) throws {
        let kind = "negative: module before each tap"
        #expect(!c.negatives.isEmpty, "\(c.id): the manifest has no negative controls")
        var passed = !c.negatives.isEmpty
        var closest: Double?
        var notes: [String] = []
        for n in c.negatives {
            let wrong = try refs.tensor(named: n.key)
            guard let mine = maps[n.index] else {
                passed = false
                notes.append("tap \(n.index) missing")
                continue
            }
            guard mine.shape == wrong.shape else {
                notes.append("\(n.node) \(wrong.shape) vs tap \(n.index) \(mine.shape): shapes differ")
                continue
            }
            let err = try Parity.relativeError(mine, wrong)
            closest = min(closest ?? err, err)
            notes.append("\(n.node) vs tap \(n.index): \(String(format: "%.2e", err))")
            if !(err > tolerance) { passed = false }
            #expect(err > tolerance, "\(c.id): tap \(n.index) also matches \(n.node) (max relative error \(err)); the test cannot tell the taps apart")
        }
        Parity.record(c, kind: kind, error: closest, passed: passed, note: notes.joined(separator: "; "))
    }

    private func negativeControl(_ id: String, kind: String, edit: (inout [(String, JSONValue)]) throws -> Void) throws {
        let c = try ParityCatalog.subsetCase(id)
        let dir = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let native = try Parity.convert(c, into: dir)
        let (good, _) = try Parity.runLogits(c, native: native, dir: dir, tag: "good")
        #expect(good <= tolerance, "\(id): the correctly converted file misses parity (\(good)), so the control proves nothing")
        let wrong = dir.appendingPathComponent("wrong.safetensors").path
        try Parity.rewriteConfig(native, to: wrong, edit)
        let (bad, _) = try Parity.runLogits(c, native: wrong, dir: dir, tag: "bad")
        Parity.record(c, kind: kind, error: bad, passed: bad > tolerance, note: "must exceed the tolerance")
        #expect(bad > tolerance, "\(id): the wrong flavour still matches (max relative error \(bad)); the parity test cannot fail")
    }

    /// Replaces a `zoo.config` field, checking it exists (and has the expected value) so a renamed key
    /// cannot turn the control into a no-op.
    private static func set(_ fields: inout [(String, JSONValue)], _ key: String, expecting: JSONValue?, to value: JSONValue) throws {
        guard let i = fields.firstIndex(where: { $0.0 == key }) else {
            throw ZooError(.mismatch, "zoo.config has no \(key); keys: \(fields.map(\.0))")
        }
        if let expecting, fields[i].1 != expecting {
            throw ZooError(.mismatch, "zoo.config \(key) is \(fields[i].1), expected \(expecting)")
        }
        guard fields[i].1 != value else {
            throw ZooError(.mismatch, "zoo.config \(key) is already \(value): the converted file has the wrong flavour")
        }
        fields[i].1 = value
    }
}
