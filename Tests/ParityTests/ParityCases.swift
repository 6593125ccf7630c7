import Foundation
import ZooFormats
import ZooErrors
import ZooJSON
import ZooFiles
import ZooTensor
import ZooTestSupport

/// One parity case from a generator's `cases.json` (tools/fixtures/gen_parity_*.py).
struct ParityCase: Sendable, CustomStringConvertible {
    /// The least per-channel tolerance: 3e-4. The framework's own round-off is measured on the machine
    /// that wrote the fixtures, and the zoo's on the machine that runs the tests; where they differ (torch
    /// summing with AVX-512 kernels, the zoo's oneDNN capped at AVX2) a channel a ReLU has nearly switched
    /// off (wide_resnet50_2's layer4 channel 110, at 0.7% of the peak: 1.6e-4 against torch's 3.9e-5 x 3)
    /// can exceed 3x the framework's own noise while every map is within 3e-6 globally. It was 2e-4 until
    /// tf-keras EfficientNetV2L at 64 px (fixtures and tests on one AMD EPYC AVX2 machine) put channel 166
    /// of `top_activation`, a SiLU output at 0.16% of the peak, at 2.13e-4 with the map within 9.2e-6
    /// globally. A wrong mapping is orders of magnitude off; the low-channel negative control keeps the
    /// manifest's own tolerance.
    static let channelToleranceFloor = 3e-4

    /// A reference feature map of a backbone case: tap `index` (0...4, strides 2...32, like timm's
    /// `out_indices`) is the output of torchvision node `node` (tools/fixtures/parity_torch.py `tap_nodes`).
    struct Tap: Sendable {
        var index: Int
        var node: String
        var channels: Int
        var reduction: Int
        var shape: [Int]
        /// The per-channel tolerance of this tap (`MapParity`): 1e-4, or 3x the framework's own float32
        /// round-off per channel where that is larger (tools/fixtures/parity_lib.py `channel_tolerance`).
        /// Nil when the manifest does not say (the check then fails).
        /// The manifest's per-channel tolerance (3x the framework's own float32 round-off per channel, at
        /// least 1e-4), raised to `ParityCase.channelToleranceFloor`.
        var channelTolerance: Double?
        /// The manifest's own per-channel tolerance, which the low-channel negative control must exceed.
        var manifestChannelTolerance: Double?
    }

    /// A negative control of a backbone case: the map of `node` (the trunk module just before tap
    /// `index`, stored under `key` in the features file), which the zoo's tap must NOT match.
    struct Negative: Sendable {
        var index: Int
        var node: String
        var key: String
        var shape: [Int]
    }

    /// Fixture folder (`parity_torch`, `parity_keras`, `*_full`).
    var group: String
    /// `source/case/dtype`.
    var id: String
    /// Catalogue name given to `zoo convert --arch`.
    var arch: String
    /// `torchvision`, `tf-keras-h5`, `keras3-weights-h5`, `tf-keras-full-h5`, `keras3-full-h5`.
    var source: String
    /// `f32`, `f16`, `bf16` (the checkpoint's stored dtype).
    var dtype: String
    /// Paths relative to the group's fixture folder.
    var checkpoint: String
    var input: String
    var logits: String?
    var features: String?
    var taps: [Tap]
    var negatives: [Negative]
    /// Classes of the classifier head (logit cases; 1000 when the manifest does not say).
    var classes: Int = 1000
    /// Set when the manifest itself could not be read: the case fails with this message.
    var loadError: String?

    var description: String { id }

    /// Absolute path of a file of this case; throws (the test fails) when it was not generated.
    func path(_ relative: String) throws -> String { try TestSupport.fixture("\(group)/\(relative)") }
}

/// Which cases run: the `make test` subset by default, everything with `ZOO_PARITY=all`.
enum ParityCatalog {
    /// `parity_*_arch`: one small case (logits and all five feature taps) per catalogue architecture and flavour.
    static let subsetGroups = ["parity_torch", "parity_keras", "parity_torch_arch", "parity_keras_arch", "parity_keras_arch_convnext",
                                "parity_keras_arch_efficientnet"]
    static let fullGroups = ["parity_torch_full", "parity_keras_full"]
    /// The parity tolerance: max |ours - ref| / max |ref|.
    static let tolerance = 1e-4

    static var runAll: Bool { ProcessInfo.processInfo.environment["ZOO_PARITY"] == "all" }
    /// `ZOO_PARITY_GROUPS=a,b` runs just those fixture folders (e.g. one full group at a time).
    static var groups: [String] {
        if let g = ProcessInfo.processInfo.environment["ZOO_PARITY_GROUPS"], !g.isEmpty {
            return g.split(separator: ",").map(String.init)
        }
        return runAll ? subsetGroups + fullGroups : subsetGroups
    }

    /// Every selected case; a group whose manifest is missing yields one failing placeholder case.
    static let all: [ParityCase] = groups.flatMap { load(group: $0) }
    /// Logits only (and the placeholders of unreadable manifests).
    static var logitCases: [ParityCase] { all.filter { $0.features == nil } }
    /// Feature maps only (with negative-control maps of the module before each tap).
    static var featureCases: [ParityCase] { all.filter { $0.features != nil && $0.logits == nil } }
    /// Both logits and feature maps of one checkpoint (the per-architecture cases).
    static var architectureCases: [ParityCase] { all.filter { $0.features != nil && $0.logits != nil } }

    static func load(group: String) -> [ParityCase] {
        func failed(_ message: String) -> [ParityCase] {
            [ParityCase(group: group, id: "\(group)/cases.json", arch: "", source: "", dtype: "", checkpoint: "", input: "",
                        logits: nil, features: nil, taps: [], negatives: [], loadError: message)]
        }
        do {
            let path = try TestSupport.fixture("\(group)/cases.json")
            let doc = try JSONValue.parse(String(decoding: try Data(contentsOf: URL(fileURLWithPath: path)), as: UTF8.self))
            guard let rows = doc["cases"]?.arrayValue, !rows.isEmpty else { return failed("\(path): no cases") }
            return try rows.map { r in
                func s(_ k: String) throws -> String {
                    guard let v = r[k]?.stringValue else { throw ZooError(.badInput, "case lacks \(k)", file: path) }
                    return v
                }
                let taps = (r["taps"]?.arrayValue ?? []).map { t in
                    ParityCase.Tap(index: t["index"]?.intValue ?? -1, node: t["node"]?.stringValue ?? "",
                                   channels: t["channels"]?.intValue ?? -1, reduction: t["reduction"]?.intValue ?? -1,
                                   shape: t["shape"]?.arrayValue?.compactMap(\.intValue) ?? [],
                                   channelTolerance: t["channel_tolerance"]?.doubleValue.map { max($0, ParityCase.channelToleranceFloor) },
                                   manifestChannelTolerance: t["channel_tolerance"]?.doubleValue)
                }
                let negatives = (r["negatives"]?.arrayValue ?? []).map { t in
                    ParityCase.Negative(index: t["index"]?.intValue ?? -1, node: t["node"]?.stringValue ?? "",
                                        key: t["key"]?.stringValue ?? "", shape: t["shape"]?.arrayValue?.compactMap(\.intValue) ?? [])
                }
                return ParityCase(group: group, id: try s("id"), arch: try s("arch"), source: try s("source"),
                                  dtype: try s("dtype"), checkpoint: try s("checkpoint"), input: try s("input"),
                                  logits: r["logits"]?.stringValue, features: r["features"]?.stringValue, taps: taps,
                                  negatives: negatives, classes: r["classes"]?.intValue ?? 1000, loadError: nil)
            }
        } catch {
            return failed("\(error)")
        }
    }

    /// The case with this id among the subset (used by the thread and negative-control tests).
    static func subsetCase(_ id: String) throws -> ParityCase {
        let cases = subsetGroups.flatMap { load(group: $0) }
        if let bad = cases.first(where: { $0.loadError != nil }) { throw ZooError(.io, bad.loadError ?? "", item: bad.id) }
        guard let c = cases.first(where: { $0.id == id }) else { throw ZooError(.mismatch, "no parity case \(id)") }
        return c
    }
}

/// Running the `zoo` tool and comparing with the references.
enum Parity {
    /// max |a - ref| / max |ref| over two tensors of the same shape.
    static func relativeError(_ ours: Tensor, _ ref: Tensor) throws -> Double {
        guard ours.shape == ref.shape else {
            throw ZooError(.mismatch, "shape \(ours.shape) differs from the reference's \(ref.shape)")
        }
        let a = ours.floats(), b = ref.floats()
        var diff = 0.0, peak = 0.0
        for i in 0..<a.count {
            let d = abs(Double(a[i]) - Double(b[i]))
            // NaN never compares greater: force it to fail.
            if d.isNaN { return .infinity }
            diff = max(diff, d)
            peak = max(peak, abs(Double(b[i])))
        }
        guard peak > 0 else { throw ZooError(.badInput, "reference is all zeros") }
        return diff / peak
    }

    /// The `zoo.feature_info` metadata `zoo run --features` writes: the taps it computed, in order.
    static func featureInfo(_ file: SafetensorsFile) throws -> [(index: Int, name: String, channels: Int, reduction: Int)] {
        guard let text = file.metadata.first(where: { $0.0 == "zoo.feature_info" })?.1 else {
            throw ZooError(.badInput, "no zoo.feature_info metadata", file: file.path)
        }
        guard let rows = try JSONValue.parse(text).arrayValue else {
            throw ZooError(.badInput, "zoo.feature_info is not an array", file: file.path)
        }
        return rows.map { r in
            (r["index"]?.intValue ?? -1, r["name"]?.stringValue ?? "?", r["channels"]?.intValue ?? -1, r["reduction"]?.intValue ?? -1)
        }
    }

    static func readNPY(_ path: String) throws -> Tensor {
        let file = try MappedFile(path: path)
        do { return try file.withBytes { try NPY.read($0) } } catch let e as ZooError { throw e.inFile(path) }
    }

    /// Fails with the tool's stderr when it exits non-zero.
    @discardableResult
    static func zoo(_ args: [String]) throws -> TestSupport.ProcessResult {
        let r = try TestSupport.zoo(args)
        guard r.status == 0 else {
            let lines = r.stderr.split(separator: "\n").map(String.init)
            // The tool's one-line error (`zoo: ...`), else the last line.
            let line = lines.first { $0.hasPrefix("zoo:") || $0.hasPrefix("Error:") } ?? lines.last ?? ""
            throw ZooError(.mismatch, "`zoo \(args.prefix(2).joined(separator: " ")) ...` exited \(r.status): \(line)")
        }
        return r
    }

    /// `zoo convert SRC --arch NAME -o DIR/native.safetensors`.
    static func convert(_ c: ParityCase, into dir: URL) throws -> String {
        let out = dir.appendingPathComponent("native.safetensors").path
        try zoo(["convert", try c.path(c.checkpoint), "--arch", c.arch, "-o", out])
        return out
    }

    /// torchvision -> native -> torchvision: the converted file loads into torchvision's model with
    /// `load_state_dict(strict=True)` and every tensor equals the source checkpoint's (name, dtype,
    /// values). Returns "OK" or what differed. One Python process answers every case (`TorchvisionWorker`).
    static func torchvisionRoundTrip(_ c: ParityCase, native: String) throws -> String {
        TorchvisionWorker.shared.roundTrip(arch: c.arch, native: native, source: try c.path(c.checkpoint), classes: c.classes)
    }

    /// `zoo run NATIVE --input x.npy --output y.npy [--threads T]`, then the relative error to the reference logits.
    static func runLogits(_ c: ParityCase, native: String, dir: URL, threads: Int? = nil, tag: String = "y") throws -> (Double, Tensor) {
        let y = dir.appendingPathComponent("\(tag).npy").path
        var args = ["run", native, "--input", try c.path(c.input), "--output", y]
        if let threads { args += ["--threads", String(threads)] }
        try zoo(args)
        let ours = try readNPY(y)
        guard let logits = c.logits else { throw ZooError(.badInput, "case has no logits", item: c.id) }
        let ref = try readNPY(try c.path(logits))
        return (try relativeError(ours, ref), ours)
    }

    /// Rewrites a native file's `zoo.config`, keeping tensors and the other metadata.
    static func rewriteConfig(_ native: String, to out: String, rename: [String: String] = [:],
                              _ edit: (inout [(String, JSONValue)]) throws -> Void) throws {
        let ckpt = try NativeCheckpoint(path: native)
        var meta = ckpt.metadata
        guard case .object(var fields)? = meta.config else {
            throw ZooError(.badInput, "no zoo.config object", file: native)
        }
        try edit(&fields)
        meta.config = .object(fields)
        var records = ckpt.file.records
        for (from, to) in rename {
            guard let i = records.firstIndex(where: { $0.name == from }) else { throw ZooError(.mismatch, "no tensor \(from) to rename", file: native) }
            records[i].name = to
        }
        try NativeCheckpoint.write(records, metadata: meta, to: out, overwrite: true)
    }

    /// Appends one result line to `$ZOO_PARITY_RESULTS` (JSON lines; tools/parity_report.py makes docs/parity.md),
    /// once every check of the row has run: `error` (global), `channel` (the per-channel error of the tap
    /// closest to its per-channel tolerance, and that tolerance), `roundTrip` ("OK" or what differed; nil
    /// when the row has no round trip). `passed` must be the conjunction of all of them.
    static func record(_ c: ParityCase, kind: String, error: Double?, channel: (error: Double, tolerance: Double)? = nil,
                       roundTrip: String? = nil, passed: Bool, note: String = "") {
        guard let path = ProcessInfo.processInfo.environment["ZOO_PARITY_RESULTS"], !path.isEmpty else { return }
        func number(_ v: Double?) -> JSONValue { v.map { $0.isFinite ? .double($0) : .string("inf") } ?? .null }
        let line = JSONValue.object([
            ("id", .string(c.id)), ("group", .string(c.group)), ("arch", .string(c.arch)), ("source", .string(c.source)),
            ("dtype", .string(c.dtype)), ("kind", .string(kind)),
            ("max_rel_err", number(error)),
            ("max_channel_rel_err", number(channel?.error)), ("channel_tolerance", number(channel?.tolerance)),
            ("round_trip", roundTrip.map { .string($0) } ?? .null),
            ("passed", .bool(passed)), ("note", .string(note)),
        ]).serialized() + "\n"
        // Cases run concurrently: one append at a time.
        recordLock.lock()
        defer { recordLock.unlock() }
        if !FileManager.default.fileExists(atPath: path) { FileManager.default.createFile(atPath: path, contents: nil) }
        if let h = FileHandle(forWritingAtPath: path) {
            h.seekToEndOfFile()
            h.write(Data(line.utf8))
            try? h.close()
        }
    }

    /// Serialises `record`'s appends.
    static let recordLock = NSLock()
}
