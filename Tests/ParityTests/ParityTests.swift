import Foundation
import Testing
import ZooFormats
import ZooErrors
import ZooJSON
import ZooTensor
import ZooTestSupport

extension ParityCase: CustomTestStringConvertible {
    var testDescription: String { id }
}

/// End-to-end parity with the real frameworks: `zoo convert SRC --arch NAME` then `zoo run`, compared
/// with torchvision's / Keras's own outputs on the same weights and input (fixtures written by
/// tools/fixtures/gen_parity_*.py). Tolerance: max |ours - ref| / max |ref| <= 1e-4.
///
/// `make test` runs the subset: one small case per catalogue architecture and flavour (`parity_*_arch`: logits
/// and all five feature taps), plus one larger architecture per family per source; `ZOO_PARITY=all`
/// (`make parity`) adds the full set. Feature maps are compared globally and per channel (`MapParity`). Each case
/// converts into its own temporary folder. The cases of `logits` and `features` (the larger inputs) run one at a
/// time; the small per-architecture cases run side by side, as the tests of other suites do.
@Suite struct ParityTests {
    let tolerance = ParityCatalog.tolerance

    /// Classifier logits, every selected case (torchvision fp32/fp16/bf16, Keras legacy .h5, Keras 3
    /// .weights.h5, full-model .h5 with a custom head); every torchvision fp32 file also round-trips.
    @Test(.serialized, arguments: ParityCatalog.logitCases)
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
            try checkLogits(c, native: native, dir: dir)
        } catch {
            Parity.record(c, kind: "logits", error: nil, passed: false, note: "\(error)")
            throw error
        }
    }

    /// Backbone feature maps (`zoo run --features 0,1,2,3,4`) against torchvision's `create_feature_extractor`
    /// at torchvision's tap nodes (the last trunk module at each stride 2...32, derived from the torchvision
    /// model by the generator; docs/models.md, "Feature stages"): the zoo must name the same nodes with the
    /// same channels and strides (`zoo.feature_info`) and produce the same maps, globally and per channel
    /// (`MapParity`). Negative controls in the same test: the map of the module just before each tap (e.g.
    /// MobileNetV2's 320-channel `features.17`, timm's tap 4) must NOT match the zoo's tap, and a low-magnitude
    /// channel moved by less than the global tolerance must fail the per-channel check.
    @Test(.serialized, arguments: ParityCatalog.featureCases)
    func features(_ c: ParityCase) throws {
        let dir = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        do {
            let native = try Parity.convert(c, into: dir)
            let (maps, refs) = try checkFeatures(c, native: native, dir: dir)
            try negativeTaps(c, maps: maps, refs: refs)
            try lowChannelControl(c, maps: maps, refs: refs)
        } catch {
            Parity.record(c, kind: "features 0-4", error: nil, passed: false, note: "\(error)")
            throw error
        }
    }

    /// One small case per catalogue architecture and flavour (tools/fixtures/gen_parity_*_arch.py): one
    /// conversion, then the logits (and, from torchvision, the round trip), the maps at all five taps
    /// globally and per channel, and the per-channel negative control.
    @Test(arguments: ParityCatalog.architectureCases)
    func architecture(_ c: ParityCase) throws {
        let dir = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let native: String
        do {
            native = try Parity.convert(c, into: dir)
        } catch {
            Parity.record(c, kind: "logits", error: nil, passed: false, note: "\(error)")
            Parity.record(c, kind: "features 0-4", error: nil, passed: false, note: "\(error)")
            throw error
        }
        do {
            try checkLogits(c, native: native, dir: dir)
        } catch {
            Parity.record(c, kind: "logits", error: nil, passed: false, note: "\(error)")
            Issue.record(error)
        }
        do {
            let (maps, refs) = try checkFeatures(c, native: native, dir: dir)
            try lowChannelControl(c, maps: maps, refs: refs)
        } catch {
            Parity.record(c, kind: "features 0-4", error: nil, passed: false, note: "\(error)")
            throw error
        }
    }

    /// Every architecture of the catalogue (zoo/*.json), in every flavour its weights come in
    /// (torchvision, Keras), has a case in the `make test` groups with logits and at least two feature taps.
    @Test func everyCatalogueArchitectureAndFlavourHasACase() throws {
        let cases = ParityCatalog.subsetGroups.flatMap { ParityCatalog.load(group: $0) }
        for bad in cases where bad.loadError != nil { Issue.record("\(bad.id): \(bad.loadError ?? "")") }
        let folder = TestSupport.root.appendingPathComponent("zoo")
        let files = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.hasSuffix(".json") }.sorted()
        var pairs: [(arch: String, flavour: String)] = []
        for file in files {
            let doc = try JSONValue.parse(String(decoding: try Data(contentsOf: folder.appendingPathComponent(file)), as: UTF8.self))
            for a in doc["architectures"]?.arrayValue ?? [] {
                let name = try #require(a["name"]?.stringValue, "\(file): an architecture without a name")
                let sources = Set((a["weights"]?.arrayValue ?? []).compactMap { $0["source"]?.stringValue })
                #expect(!sources.isEmpty, "\(file): \(name) has no weights")
                for s in sources.sorted() { pairs.append((name, s)) }
            }
        }
        #expect(pairs.count >= 40, "only \(pairs.count) architecture/flavour pairs read from zoo/")
        func flavour(_ source: String) -> String { source == "torchvision" ? "torchvision" : "keras" }
        for (arch, fl) in pairs {
            let covering = cases.filter { $0.arch == arch && flavour($0.source) == fl && $0.logits != nil && $0.taps.count >= 2 }
            #expect(!covering.isEmpty, "\(arch) (\(fl)): no parity case with logits and at least two feature taps in \(ParityCatalog.subsetGroups)")
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

    /// Negative control of the round trip: a converted file with one byte of its last tensor changed must
    /// not come back "OK", a file that is not there must fail with Python's error, and the one worker
    /// process that answers both still answers the unchanged file "OK" after them.
    @Test func roundTripCatchesAChangedTensor() throws {
        let c = try ParityCatalog.subsetCase("torchvision/resnet18-224x224/f32")
        let dir = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let native = try Parity.convert(c, into: dir)
        var bytes = try Data(contentsOf: URL(fileURLWithPath: native))
        let last = try #require(bytes.indices.last)
        bytes[last] ^= 0x40
        let changed = dir.appendingPathComponent("changed.safetensors").path
        try bytes.write(to: URL(fileURLWithPath: changed))
        let differ = try Parity.torchvisionRoundTrip(c, native: changed)
        #expect(differ.hasPrefix("differ: ["), "\(differ)")
        let missing = try Parity.torchvisionRoundTrip(c, native: dir.appendingPathComponent("absent.safetensors").path)
        #expect(missing.hasPrefix("python failed:"), "\(missing)")
        #expect(try Parity.torchvisionRoundTrip(c, native: native) == "OK")
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

    /// Negative control: a Keras EfficientNet B0 pads its stride-2 convolutions by `correct_pad` (k/2 - 1 before,
    /// k/2 after on a model without a fixed input size: TF "same" on even sizes); run with PyTorch's symmetric
    /// padding it must miss the tolerance.
    @Test func kerasEfficientNetWithSymmetricPaddingFails() throws {
        try negativeControl("tf-keras-h5/efficientnet_b0-64/f32", kind: "negative: symmetric padding") { fields in
            try Self.set(&fields, "strided_padding", expecting: .string("correct_pad"), to: .string("symmetric"))
        }
    }

    /// Negative control: a Keras ConvNeXt built on its base without top, then GlobalAveragePooling2D and
    /// Dense, normalises before pooling; the same weights run in Keras's own top's order (pooling, then the
    /// LayerNorm, then the classifier) must miss the tolerance, so the order the converter reads from the
    /// file matters. The other file of the pair (`pooling="avg"`, then Dense) passes in that order: `logits`.
    @Test func kerasConvNeXtNormAfterPoolingFails() throws {
        try negativeControl("tf-keras-full-h5/ConvNeXtTiny-64-gap-dense7-tf-keras/f32", kind: "negative: norm after pooling",
                            rename: ["head.weight": "classifier.2.weight", "head.bias": "classifier.2.bias"]) { fields in
            try Self.set(&fields, "head", expecting: .string("linear"), to: .string("standard"))
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

    /// The per-channel measure's own negative control: an error confined to a channel at 1/50 of the
    /// peak, 5e-5 of the peak (so the global measure passes it), is 2.5e-3 of that channel and fails per
    /// channel; a dead channel is measured against the floor, NaN never passes, and `perturbLowChannel`
    /// builds exactly such a case from a real-looking map.
    @Test func perChannelMeasureCatchesWhatTheGlobalOneMisses() throws {
        // [N=1, C=3, 2x2]: a loud channel (peak 10), a quiet one (peak 0.2), a dead one.
        let ref: [Float] = [10, -4, 3, 1, 0.2, 0.02, -0.01, 0.03, 0, 0, 0, 0]
        let shape = [1, 3, 2, 2]
        let exact = try MapParity.compare(ref, ref, shape: shape)
        #expect(exact.global == 0 && exact.perChannel == 0)
        var quiet = ref
        quiet[4] += 5e-4
        let q = try MapParity.compare(quiet, ref, shape: shape)
        #expect(q.global <= tolerance, "\(q)")
        #expect(q.perChannel > tolerance, "\(q)")
        #expect(q.worstChannel == 1)
        // The same shift on the loud channel passes both.
        var loud = ref
        loud[0] += 5e-4
        #expect(try MapParity.compare(loud, ref, shape: shape).within(tolerance))
        // A dead channel is measured against the floor (1e-2 of the peak): 1e-5 of the peak passes
        // globally and is 1e-3 of the floor.
        var dead = ref
        dead[9] = 1e-4
        let d = try MapParity.compare(dead, ref, shape: shape)
        #expect(d.perChannel > tolerance && d.global <= tolerance && d.worstChannel == 2, "\(d)")
        var nan = ref
        nan[5] = .nan
        #expect(!(try MapParity.compare(nan, ref, shape: shape)).within(tolerance))
        #expect(throws: ZooError.self) { try MapParity.compare(ref, ref, shape: [1, 4, 2, 2]) }
        // perturbLowChannel: the dead channel is the lowest (its scale is the floor); the shift lands
        // between the two tolerances, by the same factor on each side.
        let t = try Tensor(shape: shape, floats: ref)
        let p = try #require(try MapParity.perturbLowChannel(t, reference: t, tolerance: tolerance, channelTolerance: tolerance))
        #expect(p.channel == 2)
        let e = try MapParity.compare(p.perturbed, t)
        #expect(e.global <= tolerance && e.perChannel > tolerance, "\(e)")
        #expect(abs(tolerance / e.global - e.perChannel / tolerance) < 1e-3 * e.perChannel / tolerance, "\(e)")
        // A per-channel tolerance as loose as the global one leaves no room for a control.
        #expect(try MapParity.perturbLowChannel(t, reference: t, tolerance: tolerance, channelTolerance: 1e-2) == nil)
    }

    // MARK: - helpers

    /// `zoo run` logits against the reference, then (torchvision fp32) the round trip; one record with both.
    private func checkLogits(_ c: ParityCase, native: String, dir: URL) throws {
        let (err, _) = try Parity.runLogits(c, native: native, dir: dir)
        #expect(err <= tolerance, "\(c.id): max relative error \(err) exceeds \(tolerance)")
        var roundTrip: String?
        if c.source == "torchvision", c.dtype == "f32" {
            // torchvision -> native -> torchvision, for every torchvision fp32 file.
            let r = try Parity.torchvisionRoundTrip(c, native: native)
            roundTrip = r
            #expect(r == "OK", "\(c.id): torchvision -> native -> torchvision: \(r)")
        }
        Parity.record(c, kind: "logits", error: err, roundTrip: roundTrip,
                      passed: err <= tolerance && (roundTrip == nil || roundTrip == "OK"))
    }

    /// `zoo run --features` at the case's taps: the description (`zoo.feature_info`) and every map, globally
    /// (<= 1e-4) and per channel (<= the tap's per-channel tolerance). Records the row; returns the maps.
    private func checkFeatures(_ c: ParityCase, native: String, dir: URL) throws -> ([Int: Tensor], SafetensorsFile) {
        let out = dir.appendingPathComponent("features.safetensors").path
        let indices = c.taps.map(\.index)
        // Five taps at strides 2..32; four (4..32) for ConvNeXt, whose stem has stride 4.
        #expect(indices == Array(0..<(c.arch.hasPrefix("convnext") ? 4 : 5)), "\(c.id): the manifest lists taps \(indices)")
        try Parity.zoo(["run", native, "--input", try c.path(c.input), "--features",
                        indices.map(String.init).joined(separator: ","), "--output", out])
        let ours = try SafetensorsFile(path: out)
        let refs = try SafetensorsFile(path: try c.path(try #require(c.features)))
        var notes: [String] = []
        // The zoo's description of its taps: torchvision's nodes, channels and strides (for a Keras case the
        // manifest names Keras layers, so only channels and strides are compared).
        let names = c.source == "torchvision"
        let expected = c.taps.map { "\($0.index):\(names ? $0.node : "")/\($0.channels)ch/x\($0.reduction)" }
        let described = try Parity.featureInfo(ours).map { "\($0.index):\(names ? $0.name : "")/\($0.channels)ch/x\($0.reduction)" }
        if described != expected { notes.append("zoo taps \(described), reference \(expected)") }
        #expect(described == expected, "\(c.id): the zoo's taps \(described) are not the reference's \(expected)")
        var worst = described == expected ? 0.0 : Double.infinity
        var channel: (error: Double, tolerance: Double)?
        var passed = described == expected
        var maps: [Int: Tensor] = [:]
        for tap in c.taps {
            let ref = try refs.tensor(named: String(tap.index))
            guard let entry = ours.entries.first(where: { $0.name == String(tap.index) }), entry.shape == ref.shape else {
                notes.append("tap \(tap.index) (\(tap.node), \(ref.shape)) not produced; got \(ours.entries.map { "\($0.name) \($0.shape)" })")
                Issue.record("\(c.id): tap \(tap.index) (\(tap.node), shape \(ref.shape)) not found among \(ours.entries.map { "\($0.name) \($0.shape)" })")
                worst = .infinity
                passed = false
                continue
            }
            let mine = try ours.tensor(entry)
            maps[tap.index] = mine
            let e = try MapParity.compare(mine, ref)
            worst = max(worst, e.global)
            #expect(e.global <= tolerance, "\(c.id): tap \(tap.index) (\(tap.node)): \(e)")
            guard let ct = tap.channelTolerance else {
                notes.append("tap \(tap.index): the manifest gives no per-channel tolerance")
                Issue.record("\(c.id): tap \(tap.index): the manifest gives no channel_tolerance (regenerate the fixtures)")
                passed = false
                continue
            }
            #expect(e.perChannel <= ct, "\(c.id): tap \(tap.index) (\(tap.node)): per channel \(e) exceeds \(ct)")
            if !(e.global <= tolerance && e.perChannel <= ct) {
                passed = false
                notes.append("tap \(tap.index): \(e), per-channel tolerance \(MapParity.Errors.format(ct))")
            }
            if channel.map({ e.perChannel / ct > $0.error / $0.tolerance }) ?? true { channel = (e.perChannel, ct) }
        }
        Parity.record(c, kind: "features 0-4", error: worst, channel: channel, passed: passed && worst <= tolerance,
                      note: notes.joined(separator: "; "))
        return (maps, refs)
    }

    /// The per-channel negative control on the case's own maps: one element of a low-magnitude channel of
    /// the zoo's map moved by an amount the global check (1e-4 of the peak) misses and the per-channel
    /// check catches. Run on the tap where the two are furthest apart; at least one tap must allow it.
    private func lowChannelControl(_ c: ParityCase, maps: [Int: Tensor], refs: SafetensorsFile) throws {
        do {
            try lowChannelControlChecked(c, maps: maps, refs: refs)
        } catch {
            Parity.record(c, kind: "negative: low channel", error: nil, passed: false, note: "\(error)")
            throw error
        }
    }

    private func lowChannelControlChecked(_ c: ParityCase, maps: [Int: Tensor], refs: SafetensorsFile) throws {
        let kind = "negative: low channel"
        var best: (tap: Int, margin: Double, global: Double, channel: Double, ct: Double, ch: Int, scale: Double)?
        for tap in c.taps {
            guard let mine = maps[tap.index], let ct = tap.manifestChannelTolerance else { continue }
            let ref = try refs.tensor(named: String(tap.index))
            guard let p = try MapParity.perturbLowChannel(mine, reference: ref, tolerance: tolerance, channelTolerance: ct) else { continue }
            let e = try MapParity.compare(p.perturbed, ref)
            // How far inside the global tolerance and outside the per-channel one the control lands.
            let margin = min(tolerance / e.global, e.perChannel / ct)
            if best.map({ margin > $0.margin }) ?? true {
                best = (tap.index, margin, e.global, e.perChannel, ct, p.channel, p.scale)
            }
        }
        guard let b = best else {
            Parity.record(c, kind: kind, error: nil, passed: false, note: "no tap has a channel low enough for the control")
            Issue.record("\(c.id): no tap has a channel low enough for the per-channel negative control")
            return
        }
        let ok = b.global <= tolerance && b.channel > b.ct
        Parity.record(c, kind: kind, error: b.global, channel: (b.channel, b.ct), passed: ok,
                      note: "tap \(b.tap), channel \(b.ch) (at \(MapParity.Errors.format(b.scale)) of the peak): global must pass, per channel must fail")
        #expect(b.global <= tolerance, "\(c.id): the perturbed tap \(b.tap) fails the global check too (\(b.global)); the control proves nothing")
        #expect(b.channel > b.ct, "\(c.id): a low channel of tap \(b.tap) moved by \(b.global) of the peak passes the per-channel check (\(b.channel) <= \(b.ct))")
    }

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

    private func negativeControl(_ id: String, kind: String, rename: [String: String] = [:],
                                 edit: (inout [(String, JSONValue)]) throws -> Void) throws {
        let c = try ParityCatalog.subsetCase(id)
        let dir = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let native = try Parity.convert(c, into: dir)
        let (good, _) = try Parity.runLogits(c, native: native, dir: dir, tag: "good")
        #expect(good <= tolerance, "\(id): the correctly converted file misses parity (\(good)), so the control proves nothing")
        let wrong = dir.appendingPathComponent("wrong.safetensors").path
        try Parity.rewriteConfig(native, to: wrong, rename: rename, edit)
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
