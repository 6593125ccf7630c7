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
        } catch {
            Parity.record(c, kind: "logits", error: nil, passed: false, note: "\(error)")
            throw error
        }
    }

    /// Backbone feature maps (`zoo run --features 1,2,3,4`) against torchvision's feature extractor
    /// (timm `features_only` taps 1..4: strides 4, 8, 16, 32).
    @Test(arguments: ParityCatalog.featureCases)
    func features(_ c: ParityCase) throws {
        if let e = c.loadError {
            Parity.record(c, kind: "features", error: nil, passed: false, note: e)
            Issue.record("parity fixtures not loadable: \(e)")
            return
        }
        let dir = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        do {
            let native = try Parity.convert(c, into: dir)
            let out = dir.appendingPathComponent("features.safetensors").path
            let indices = [1, 2, 3, 4]
            try Parity.zoo(["run", native, "--input", try c.path(c.input), "--features",
                            indices.map(String.init).joined(separator: ","), "--output", out])
            let ours = try SafetensorsFile(path: out)
            let refs = try SafetensorsFile(path: try c.path(try #require(c.features)))
            #expect(ours.entries.count == indices.count,
                    "\(c.id): \(ours.entries.count) feature maps for \(indices.count) requested: \(ours.entries.map(\.name))")
            var worst = 0.0
            var notes: [String] = []
            for i in indices {
                let ref = try refs.tensor(named: String(i))
                let tap = c.taps.first { $0.index == i }
                // Prefer a tensor named like the tap (index or stage name); else the one map of that shape.
                let named = ours.entries.first { e in (e.name == String(i) || e.name == tap?.node) && e.shape == ref.shape }
                let sameShape = ours.entries.filter { $0.shape == ref.shape }
                guard let entry = named ?? (sameShape.count == 1 ? sameShape[0] : nil) else {
                    notes.append("tap \(i) (\(tap?.node ?? "?"), \(ref.shape)) not produced; got \(ours.entries.map { "\($0.name) \($0.shape)" })")
                    Issue.record("\(c.id): tap \(i) (\(tap?.node ?? "?"), shape \(ref.shape)) not found among \(ours.entries.map { "\($0.name) \($0.shape)" })")
                    worst = .infinity
                    continue
                }
                let err = try Parity.relativeError(try ours.tensor(entry), ref)
                worst = max(worst, err)
                #expect(err <= tolerance, "\(c.id): tap \(i) (\(tap?.node ?? "?")): max relative error \(err)")
            }
            Parity.record(c, kind: "features 1-4", error: worst, passed: worst <= tolerance, note: notes.joined(separator: "; "))
        } catch {
            Parity.record(c, kind: "features 1-4", error: nil, passed: false, note: "\(error)")
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
