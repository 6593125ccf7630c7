import ZooArchitectures
import ZooFormats
import ZooErrors
import ZooJSON
import ZooTensor

/// What a conversion found: which tensors fit the architecture and which do not.
public struct MappingReport: Sendable {
    /// A canonical tensor the source lacks.
    public struct Missing: Sendable, Hashable {
        /// Canonical name.
        public var name: String
        /// Expected shape.
        public var shape: [Int]
    }
    /// A source tensor the architecture has no place for.
    public struct Unexpected: Sendable, Hashable {
        /// Source name.
        public var name: String
        /// Source shape.
        public var shape: [Int]
    }
    /// A tensor present on both sides with different shapes.
    public struct Mismatch: Sendable, Hashable {
        /// Canonical name.
        public var name: String
        /// Expected canonical shape.
        public var expected: [Int]
        /// Source name.
        public var source: String
        /// Source shape (as stored).
        public var sourceShape: [Int]
        /// Source shape after the layout transform.
        public var got: [Int]
    }

    /// Architecture chosen.
    public var architecture: String
    /// Flavour of the configuration.
    public var flavour: Flavour
    /// `torchvision` (names) or `keras` (layer order).
    public var source: String
    /// Wrapper prefix stripped from torchvision-style names (`state_dict.module.`), when any.
    public var prefix: String?
    /// Canonical tensors absent from the source.
    public var missing: [Missing] = []
    /// Source tensors with no canonical counterpart.
    public var unexpected: [Unexpected] = []
    /// Shape mismatches.
    public var mismatched: [Mismatch] = []
    /// Canonical tensors created by the conversion (`num_batches_tracked` = 0).
    public var synthesized: [String] = []
    /// Source tensors outside the chosen wrapper (optimizer state, a second copy of the weights...).
    public var ignored: [String] = []
    /// The subtree the tensors were taken from, as `zoo convert --key` names it (`model`, `model_ema`,
    /// `state_dict`); nil when they sit at the file's top level (below wrappers, if any).
    public var key: String?
    /// Wrappers stripped between `key` and the canonical names, outermost first, each with its dot
    /// (`module.`, `_orig_mod.`, `model.`); `prefix` is `key` + `.` + these.
    public var wrappers: [String] = []
    /// The other candidate state dicts seen in the file (a second copy of the weights such as `model_ema`),
    /// each with how many of the architecture's names sit under it.
    public var otherStateDicts: [StateDictCandidate] = []
    /// Remarks (how the architecture was recognised, a missing head, ...).
    public var notes: [String] = []

    /// True when every canonical tensor was found with the right shape and nothing was left over.
    public var isComplete: Bool { missing.isEmpty && unexpected.isEmpty && mismatched.isEmpty }

    /// The report as JSON (stored as `zoo.report` by partial conversions).
    public var json: JSONValue {
        func shape(_ s: [Int]) -> JSONValue { .array(s.map { .int(Int64($0)) }) }
        return .object([
            ("architecture", .string(architecture)), ("flavour", .string(flavour.rawValue)), ("source", .string(source)),
            ("prefix", prefix.map { .string($0) } ?? .null),
            ("missing", .array(missing.map { .object([("name", .string($0.name)), ("shape", shape($0.shape))]) })),
            ("unexpected", .array(unexpected.map { .object([("name", .string($0.name)), ("shape", shape($0.shape))]) })),
            ("mismatched", .array(mismatched.map {
                .object([("name", .string($0.name)), ("expected", shape($0.expected)), ("source", .string($0.source)),
                         ("source_shape", shape($0.sourceShape)), ("got", shape($0.got))])
            })),
            ("synthesized", .array(synthesized.map { .string($0) })),
            ("ignored", .array(ignored.map { .string($0) })),
            ("notes", .array(notes.map { .string($0) })),
        ] + stateDictJSON)
    }

    /// `key`, `wrappers` and `other_state_dicts` for `json`, present only when there is something to say
    /// (so that the report of a plain state dict is what it was before they existed).
    var stateDictJSON: [(String, JSONValue)] {
        var out: [(String, JSONValue)] = []
        if let key { out.append(("key", .string(key))) }
        if !wrappers.isEmpty { out.append(("wrappers", .array(wrappers.map { .string($0) }))) }
        if !otherStateDicts.isEmpty {
            out.append(("other_state_dicts", .array(otherStateDicts.map {
                .object([("key", .string($0.key)), ("prefix", .string($0.prefix)), ("tensors", .int(Int64($0.tensors)))])
            })))
        }
        return out
    }

    /// The line `zoo convert` prints about the state dict it took, when there was a choice or a wrapper:
    /// `state dict: model (ignored: model_ema with 122 tensors; use --key to choose)`; nil for a plain state dict.
    public var stateDictNote: String? {
        guard key != nil || !wrappers.isEmpty || !otherStateDicts.isEmpty else { return nil }
        var parts: [String] = []
        if !wrappers.isEmpty { parts.append("stripped " + wrappers.joined(separator: " ")) }
        if !otherStateDicts.isEmpty {
            let shown = otherStateDicts.prefix(8).map { "\($0.displayName) with \($0.tensors) tensors" }.joined(separator: ", ")
            let more = otherStateDicts.count > 8 ? ", and \(otherStateDicts.count - 8) more" : ""
            parts.append("ignored: " + shown + more + "; use --key to choose")
        }
        return "state dict: \(key ?? "top level")" + (parts.isEmpty ? "" : " (" + parts.joined(separator: "; ") + ")")
    }

    /// Lines for people: one per problem, naming both sides.
    public var lines: [String] {
        var out: [String] = []
        for m in missing { out.append("missing: \(m.name) \(m.shape)") }
        for u in unexpected { out.append("unexpected: \(u.name) \(u.shape)") }
        for m in mismatched {
            let via = m.sourceShape == m.got ? "" : " (stored as \(m.sourceShape))"
            out.append("shape mismatch: \(m.name) expects \(m.expected), \(m.source) has \(m.got)\(via)")
        }
        return out
    }

    /// The error a strict conversion throws: the first few problems on one line.
    public var error: ZooError {
        let problems = lines
        let shown = problems.prefix(6).joined(separator: "; ")
        let more = problems.count > 6 ? "; ... and \(problems.count - 6) more" : ""
        return ZooError(.mismatch, "checkpoint does not fit \(architecture) (\(flavour.rawValue)): \(missing.count) missing, \(unexpected.count) unexpected, \(mismatched.count) mismatched: \(shown)\(more) (use --allow-partial to write anyway)", item: architecture)
    }
}

/// The result of a mapping: canonical records (lazy), the metadata to write and the report.
public struct CanonicalCheckpoint: Sendable {
    /// Canonical records in architecture order (data transformed inside `load`).
    public var records: [TensorRecord]
    /// The configuration the records fit.
    public var config: ArchitectureConfig
    /// Metadata to write (architecture, config, preprocessing, labels; `source` left for the caller).
    public var metadata: NativeMetadata
    /// The report.
    public var report: MappingReport
}

/// Source tensors -> canonical names and layouts.
public enum Mapping {
    /// Maps `records` (and the structure the importer found, e.g. Keras's layer order) to the canonical tensors of `arch`
    /// (a catalogue name, or `auto` to recognise it), validating them against its parameter spec.
    ///
    /// Throws a `.mismatch` error listing missing, unexpected and mismatched tensors unless `allowPartial`,
    /// in which case the matching tensors are returned and the report goes into the metadata.
    ///
    /// `key` (`model_ema`, `state_dict`; `zoo convert --key`) maps only the tensors under that dotted prefix
    /// (wrappers below it are still stripped); nil takes the most complete candidate, preferring one that is not an
    /// EMA copy. A key under which no canonical name sits is a usage error listing the candidates
    /// (`StateDicts.candidates`).
    public static func canonicalize(records: [TensorRecord], structure: SourceStructure?, arch: String, allowPartial: Bool = false,
                                    key: String? = nil) throws -> CanonicalCheckpoint {
        let registry = ArchitectureRegistry.current
        var family: (any ArchitectureFamily)?
        if arch != "auto" {
            family = registry.family(named: arch)
            guard family != nil else {
                throw ZooError(.usage, "unknown architecture \"\(arch)\"; `zoo list` shows the known names (or use --arch auto)", item: arch)
            }
        }
        var source = SourceTensors(records: records, structure: structure)
        guard let convention = conventions.first(where: { $0.reads(source) }) else {
            throw ZooError(.unsupported, "no source convention reads these tensors", item: arch)
        }
        if let key {
            try StateDicts.validate(key: key)
            let normalized = StateDicts.normalized(key)
            let vocabulary = StateDicts.vocabulary(registry).all
            let under = StateDicts.count(records.lazy.map(\.name).filter { StateDicts.selects(normalized, $0) }, canonical: vocabulary)
            guard !under.isEmpty else {
                throw ZooError(.usage, "--key \"\(normalized)\" selects no state dict; candidates: "
                               + StateDicts.describe(StateDicts.candidates(records, registry: registry)), item: nil)
            }
            guard convention.selectsSubtrees else {
                throw ZooError(.usage, "--key selects a subtree of dotted names; \(convention.name) files are matched otherwise")
            }
            source.key = normalized
        }
        let candidates = try convention.candidates(for: arch, family: family, in: registry)
        var best: (score: Int, result: CanonicalCheckpoint)?
        var firstError: ZooError?
        for c in candidates {
            let result: CanonicalCheckpoint
            do {
                result = try convention.map(source, to: c)
            } catch let e as ZooError {
                if firstError == nil { firstError = e }
                continue
            }
            let rep = result.report
            let score = result.records.count * 4 - rep.missing.count * 3 - rep.unexpected.count * 3 - rep.mismatched.count * 4
            if score > (best?.score ?? Int.min) { best = (score, result) }
            if rep.isComplete { break }
        }
        guard var chosen = best?.result else {
            if arch != "auto", let firstError { throw firstError }
            throw ZooError(.mismatch, arch == "auto" ? "no architecture of the catalogue fits these tensors" : "the tensors do not fit \(arch)", item: arch)
        }
        if arch == "auto" {
            guard chosen.report.isComplete || allowPartial else {
                throw ZooError(.mismatch, "no architecture fits exactly; closest is \(chosen.config.name) (\(chosen.config.flavour.rawValue)): "
                               + chosen.report.lines.prefix(4).joined(separator: "; "), item: "auto")
            }
            chosen.report.notes.insert("recognised as \(chosen.config.name) (\(chosen.config.flavour.rawValue), \(chosen.config.classes) classes"
                                       + (chosen.config.includeTop ? "" : ", no top") + ")", at: 0)
        }
        if arch != "auto", chosen.config.name != arch {
            chosen.report.notes.insert("width \(chosen.config.width) read from the tensors: \(chosen.config.name)", at: 0)
        }
        if !chosen.report.isComplete {
            guard allowPartial else { throw chosen.report.error }
            chosen.metadata.report = chosen.report.json
        }
        return chosen
    }

    /// The source conventions, in the order they are asked whether they read a file (the first that does maps it).
    public static let conventions: [any SourceConvention] = [KerasLayerOrder(), TorchvisionNames()]

    /// The other widths of a MobileNet (`mobilenet_v2` -> `mobilenet_v2_035`, ..., `mobilenet_v2_140`); empty for other families.
    public static func widthSiblings(of name: String) -> [String] {
        ArchitectureRegistry.current.family(named: name)?.widthSiblings(of: name) ?? []
    }

    /// Catalogue names that exist in the Keras flavour.
    public static var kerasNames: [String] { ArchitectureRegistry.current.names(in: .keras) }

    /// The metadata for a configuration: architecture, config, preprocessing from the catalogue, ImageNet labels for 1000 classes.
    public static func metadata(for config: ArchitectureConfig, inputSize: [Int]? = nil) throws -> NativeMetadata {
        var m = NativeMetadata()
        m.version = NativeMetadata.currentVersion
        m.architecture = config.name
        m.config = try config.json
        if let recipe = try? Catalogue.shared().recipe(for: config.name, flavour: config.flavour, classes: config.classes, inputSize: inputSize) {
            m.preprocessing = recipe.preprocessing
            m.labels = recipe.labels
        }
        return m
    }

    /// The side of the square map a flattened `features`-long vector of `channels` channels comes from, if it is one.
    static func squareSide(features: Int, channels: Int) -> Int? {
        let side = Int(Double(features / channels).squareRoot().rounded())
        return side * side * channels == features ? side : nil
    }

    // MARK: torchvision names

    /// Candidate wrapper prefixes in order of preference (EMA copies last).
    static func prefixRank(_ p: String) -> Int {
        if p.isEmpty { return 0 }
        if p.contains("ema") { return 2 }
        return 1
    }

    /// Maps torchvision-style names (identity, plus wrapper keys and `module.` prefixes) for one candidate architecture.
    ///
    /// The tensors are taken from the prefix under which most of the architecture's names sit (the top level first,
    /// EMA copies last among equals), or, with `key`, from the best prefix at or below that dotted key. The report
    /// names the key, the wrappers stripped and the other substantial candidates (`StateDicts`).
    public static func torchvisionMapping(records: [TensorRecord], name: String, flavour: Flavour, width: Double? = nil,
                                          key: String? = nil) throws -> CanonicalCheckpoint {
        var config = try ArchitectureRegistry.current.preset(name, flavour: flavour)
        if let width { config.width = width }
        var spec = try config.parameterSpec()
        let specNames = Set(spec.map(\.name))
        // Find the prefix under which most canonical names sit (within the key, when one is given).
        let counted = StateDicts.count(records.lazy.map(\.name), canonical: specNames)
        let selectable = key.map { k in counted.filter { StateDicts.selects(k, $0.prefix) } } ?? counted
        guard let prefix = selectable.max(by: { a, b in
            if a.tensors != b.tensors { return a.tensors < b.tensors }
            return prefixRank(a.prefix) > prefixRank(b.prefix)
        })?.prefix else {
            let within = key.map { " under --key \($0)" } ?? ""
            throw ZooError(.mismatch, "no tensor name of \(name) found\(within)", item: name)
        }
        var byName: [String: TensorRecord] = [:]
        var inScope: [TensorRecord] = []
        var ignored: [String] = []
        for r in records {
            if r.name.hasPrefix(prefix) {
                let canonical = String(r.name.dropFirst(prefix.count))
                var c = r
                c.name = canonical
                if byName[canonical] == nil { byName[canonical] = c; inScope.append(c) }
            } else {
                ignored.append(r.name)
            }
        }
        // Classes from the head; Keras VGG's flatten size from fc1.
        if let head = spec.last(where: { $0.role == .linearWeight }), let r = byName[head.name], r.shape.count == 2, r.shape[0] > 0 {
            config.classes = r.shape[0]
        } else if case let headStart = try config.graph().headStart, !spec.contains(where: { byName[$0.name] != nil && $0.node >= headStart }) {
            config.includeTop = false
        }
        if let flatten = config.quirks.flatten, config.flavour == .keras, let r = byName[flatten.layer + ".weight"], r.shape.count == 2 {
            if let side = squareSide(features: r.shape[1], channels: flatten.channels) { config.flattenSize = [side, side] }
        }
        spec = try config.parameterSpec()
        var report = MappingReport(architecture: name, flavour: flavour, source: "torchvision", prefix: prefix.isEmpty ? nil : prefix)
        report.ignored = ignored
        if let key {
            let k = StateDicts.normalized(key)
            report.key = k
            report.wrappers = prefix.dropFirst(k.count + 1).split(separator: ".").map { $0 + "." }
        } else {
            let (k, wrappers) = StateDicts.split(prefix)
            report.key = k.isEmpty ? nil : k
            report.wrappers = wrappers
        }
        let largest = counted.map(\.tensors).max() ?? 0
        report.otherStateDicts = counted.filter { $0.prefix != prefix && StateDicts.isSubstantial($0.tensors, largest: largest) }
            .map { StateDictCandidate(prefix: $0.prefix, tensors: $0.tensors) }
        if !config.includeTop { report.notes.append("no classifier head in the source: backbone only (include_top false)") }
        var out: [TensorRecord] = []
        var used = Set<String>()
        for p in spec {
            guard let r = byName[p.name] else {
                if p.role == .numBatchesTracked {
                    out.append(TensorRecord(name: p.name, dtype: .i64, shape: []) { try Tensor(zeros: .i64, shape: []) })
                    report.synthesized.append(p.name)
                } else {
                    report.missing.append(.init(name: p.name, shape: p.shape))
                }
                continue
            }
            used.insert(p.name)
            var shape = r.shape
            // A scalar stored as [1] (some old checkpoints) is accepted for num_batches_tracked.
            if p.role == .numBatchesTracked && shape == [1] { shape = [] }
            guard shape == p.shape else {
                report.mismatched.append(.init(name: p.name, expected: p.shape, source: prefix + p.name, sourceShape: r.shape, got: r.shape))
                continue
            }
            if p.role == .numBatchesTracked && (r.dtype != .i64 || r.shape != []) {
                let load = r.load
                let dt = r.dtype
                out.append(TensorRecord(name: p.name, dtype: .i64, shape: []) {
                    let t = try load()
                    var v: Int64 = 0
                    t.withUnsafeBytes { b in
                        switch dt {
                        case .i32: v = Int64(b.loadUnaligned(as: Int32.self))
                        case .i64: v = b.loadUnaligned(as: Int64.self)
                        default: v = 0
                        }
                    }
                    return try Tensor(dtype: .i64, shape: []) { $0.storeBytes(of: v, as: Int64.self) }
                })
                continue
            }
            var c = r
            c.name = p.name
            out.append(c)
        }
        for r in inScope where !used.contains(r.name) { report.unexpected.append(.init(name: prefix + r.name, shape: r.shape)) }
        let meta = try metadata(for: config)
        return CanonicalCheckpoint(records: out, config: config, metadata: meta, report: report)
    }

    // MARK: Keras layer order

    /// What a Keras layer holds, from its class or its weights.
    enum KerasKind: Hashable { case conv, depthwise, dense, batchNorm, layerNorm, layerScale, normalization, other }

    static func kind(of layer: SourceStructure.Layer, shapes: [[Int]]) -> KerasKind {
        guard let first = shapes.first else { return .other }
        if let cls = layer.className {
            if cls == "BatchNormalization" { return .batchNorm }
            if cls == "Dense" { return .dense }
            if cls == "DepthwiseConv2D" { return .depthwise }
            if cls == "LayerNormalization" { return .layerNorm }
            if cls == "LayerScale" { return .layerScale }
            if cls == "Normalization" { return .normalization }
            // A Conv2D with `groups` = channels (ConvNeXt's 7x7) is depthwise: its kernel is (kh, kw, 1, C).
            if cls.hasPrefix("Conv2D") { return first.count == 4 && first[2] == 1 && first[3] > 1 ? .depthwise : .conv }
        }
        if layer.weights.first.map({ weightRole($0.name) == "depthwise_kernel" }) == true { return .depthwise }
        if shapes.count == 4 && shapes.allSatisfy({ $0.count == 1 && $0 == first }) { return .batchNorm }
        if shapes.count == 2 && shapes.allSatisfy({ $0.count == 1 && $0 == first }) { return .layerNorm }
        // A Normalization's mean and variance (C) and its count (a scalar).
        if shapes.count == 3 && first.count == 1 && shapes[1] == first && shapes[2].isEmpty { return .normalization }
        if shapes.count == 1 && first.count == 1 { return .layerScale }
        // A depthwise kernel is (kh, kw, C, 1) with C > 1, or (kh, kw, 1, C) for a Conv2D grouped by channel; no
        // Conv2D of these applications has one input or one output channel otherwise (their inputs are RGB).
        if first.count == 4 { return (first[3] == 1 && first[2] > 1) || (first[2] == 1 && first[3] > 1) ? .depthwise : .conv }
        if first.count == 2 { return .dense }
        return .other
    }

    /// The fixed (h, w) of a Keras model config's input layer (`batch_input_shape` / `batch_shape` [None, h, w, c]), if any.
    public static func staticInputShape(_ config: JSONValue, depth: Int = 0) -> [Int]? {
        guard depth < 16 else { return nil }
        switch config {
        case .object(let members):
            for (k, v) in members where k == "batch_input_shape" || k == "batch_shape" {
                if let a = v.arrayValue, a.count == 4, let h = a[1].intValue, let w = a[2].intValue, h > 0, w > 0 { return [h, w] }
                return nil
            }
            for (_, v) in members { if let r = staticInputShape(v, depth: depth + 1) { return r } }
        case .array(let items):
            for v in items { if let r = staticInputShape(v, depth: depth + 1) { return r } }
        default: break
        }
        return nil
    }

    /// True when a Keras layer sits in a nested model: a Keras 3 path with `layers/` below a container's
    /// `layers/` (`layers/sequential/layers/conv2d`), or a legacy file's inner layer, which is stored in
    /// its outer model's group (the path ends with another name than the layer's).
    static func isNested(_ layer: SourceStructure.Layer) -> Bool {
        guard let path = layer.path else { return false }
        let parts = path.split(separator: "/")
        if parts.filter({ $0 == "layers" }).count > 1 { return true }
        if parts.contains("layers") || parts.contains("_layer_checkpoint_dependencies") { return false }
        return parts.last.map { String($0) != layer.name } ?? false
    }

    /// Where a Keras model puts its last `LayerNormalization` relative to its global pooling: `.standard` when
    /// after it (Keras's ConvNeXt top, `GlobalAveragePooling2D` -> `LayerNormalization` -> `Dense`, or a base built
    /// with `pooling="avg"`), `.linear` when before it (a base without top, `LayerNormalization` at every position,
    /// then the user's pooling and `Dense`). From the model description of a full-model file (layers in document
    /// order, nested models included); otherwise from a legacy file's layer names (Keras's own top names its
    /// norm `<model>_head_layernorm`). Nil when the file cannot say (Keras 3 `.weights.h5`, auto-named layers).
    static func kerasNormHeadOrder(_ layout: SourceStructure) -> HeadKind? {
        if let mc = layout.modelConfig {
            let classes = kerasConfigLayers(mc).map(\.cls)
            let pools: Set<String> = ["GlobalAveragePooling2D", "GlobalMaxPooling2D"]
            if let norm = classes.lastIndex(of: "LayerNormalization"), let pool = classes.lastIndex(where: pools.contains) {
                return pool > norm ? .linear : .standard
            }
        }
        let norms = layout.layers.filter { $0.className == "LayerNormalization" || $0.name.contains("layernorm") || $0.name.contains("layer_normalization") }
        if let last = norms.last?.name, last.hasSuffix("_head_layernorm") { return .standard }
        return nil
    }

    /// Every object with a `class_name` in a Keras model config, in document order (a container before what it
    /// holds, so nested models' layers stand where the model uses them): its class, its `config` and the object.
    /// Nesting deeper than 64 levels is not followed.
    static func kerasConfigLayers(_ config: JSONValue) -> [(cls: String, config: JSONValue?, layer: JSONValue)] {
        var layers: [(cls: String, config: JSONValue?, layer: JSONValue)] = []
        func walk(_ v: JSONValue, depth: Int) {
            guard depth < 64 else { return }
            switch v {
            case .object(let members):
                if let c = v["class_name"]?.stringValue { layers.append((c, v["config"], v)) }
                for (k, m) in members where k != "class_name" { walk(m, depth: depth + 1) }
            case .array(let items): for m in items { walk(m, depth: depth + 1) }
            default: break
            }
        }
        walk(config, depth: 0)
        return layers
    }

    /// ImageNet's per-channel standard deviation on 0-1 pixels (Keras's `IMAGENET_STDDEV_RGB`).
    static let imageNetStd = [0.229, 0.224, 0.225]
    /// ImageNet's per-channel mean on 0-1 pixels.
    static let imageNetMean = [0.485, 0.456, 0.406]

    /// The preprocessing of a Keras EfficientNet B0-B7 as mean and standard deviation on 0-1 pixels, from its input
    /// `Normalization` (`tensors`: mean, variance, count) and the layers around it.
    ///
    /// Keras computes `Rescaling(1/255)`, then `(x - mean) / max(sqrt(variance), 1e-7)`, then, in a model built with
    /// `weights="imagenet"`, `Rescaling(1 / sqrt(ImageNet std))` (TensorFlow issue 49930: the published files store
    /// the std as the variance). A full-model file's config says which Rescaling layers there are, with their
    /// scales and offsets; a weights-only file cannot, so its Normalization is taken as from `weights="imagenet"`
    /// when it holds ImageNet's mean and ImageNet's std as variance (those files' values, kept by fine-tuning), and
    /// as it stands otherwise (a Normalization adapted to the user's data, or never adapted). The note says which.
    static func kerasInputPreprocessing(_ tensors: [TensorRecord], layer: String, layout: SourceStructure) throws -> (mean: [Double], std: [Double], note: String) {
        guard tensors.count == 3 else { throw ZooError(.badInput, "Normalization layer has \(tensors.count) weights, expected mean, variance and count", item: layer) }
        let mean = try tensors[0].load().floats().map(Double.init)
        let variance = try tensors[1].load().floats().map(Double.init)
        guard mean.count == 3, variance.count == 3, (mean + variance).allSatisfy(\.isFinite), variance.allSatisfy({ $0 >= 0 }) else {
            throw ZooError(.badInput, "Normalization layer holds no finite per-channel mean and non-negative variance for 3 channels", item: layer)
        }
        let root = variance.map { max($0.squareRoot(), 1e-7) }
        // From the model description: the Rescaling layers before (scale, offset) and after (scale) the Normalization.
        if let mc = layout.modelConfig, let around = try kerasRescalingAround(mc) {
            // The first Rescaling's offset acts before the normalisation: it moves the mean.
            let m = mean.map { $0 - around.offset }
            let scale = around.before
            guard abs(scale * 255 - 1) < 1e-6 else {
                throw ZooError(.unsupported, "input Rescaling by \(scale) before the Normalization (Keras's EfficientNet has 1/255)", item: layer)
            }
            let std = zip(root, around.after).map { $0 / $1 }
            let note = "preprocessing read from the model: Rescaling(1/255), Normalization" + (around.after == [1, 1, 1] ? "" : ", then rescaled by (\(around.after.map { String(format: "%.6g", $0) }.joined(separator: ", ")))")
            return (m, std, note)
        }
        let imagenet = zip(mean, imageNetMean).allSatisfy { abs($0 - $1) < 1e-6 } && zip(variance, imageNetStd).allSatisfy { abs($0 - $1) < 1e-6 }
        if imagenet {
            return (mean, zip(root, imageNetStd).map { $0 * $1.squareRoot() },
                    "input Normalization holds ImageNet's values: preprocessing of a model built with weights=\"imagenet\" (with its extra Rescaling)")
        }
        return (mean, root, "input Normalization read from the file (a weights-only file: no Rescaling after it assumed)")
    }

    /// The scale and offset of the `Rescaling` before a Keras model config's `Normalization` and the per-channel
    /// scale of what follows it before the first convolution or padding: `Rescaling` layers (Keras 3), or tf-keras's
    /// `tf.math.multiply` by a constant (a `TFOpLambda`, its factor in the node's arguments). Nil without a
    /// Normalization; an operation there that is neither is an error naming it.
    static func kerasRescalingAround(_ config: JSONValue) throws -> (before: Double, offset: Double, after: [Double])? {
        let layers = kerasConfigLayers(config)
        guard let norm = layers.firstIndex(where: { $0.cls == "Normalization" }) else { return nil }
        func scales(_ c: JSONValue?) -> [Double] {
            if let a = c?["scale"]?.arrayValue { return a.compactMap(\.doubleValue) }
            return [c?["scale"]?.doubleValue ?? 1]
        }
        var before = 1.0, offset = 0.0
        if let r = layers[..<norm].last(where: { $0.cls == "Rescaling" }) {
            before = scales(r.config).first ?? 1
            offset = r.config?["offset"]?.doubleValue ?? 0
        }
        /// Every number in a (nested) array, in order.
        func numbers(_ v: JSONValue?, depth: Int = 0) -> [Double] {
            guard let v, depth < 16 else { return [] }
            if let d = v.doubleValue { return [d] }
            return (v.arrayValue ?? []).flatMap { numbers($0, depth: depth + 1) }
        }
        var after = [1.0, 1.0, 1.0]
        for l in layers[(norm + 1)...] {
            if ["Conv2D", "ZeroPadding2D", "DepthwiseConv2D"].contains(l.cls) { break }
            let s: [Double]
            switch l.cls {
            case "Rescaling":
                guard (l.config?["offset"]?.doubleValue ?? 0) == 0 else {
                    throw ZooError(.unsupported, "a Rescaling with an offset after the input Normalization", item: l.config?["name"]?.stringValue)
                }
                s = scales(l.config)
            case "TFOpLambda":
                // tf-keras's EfficientNet: `tf.math.multiply(x, [[[[s0, s1, s2]]]])`, the factor kept as argument `y`.
                let node = l.layer["inbound_nodes"]?.arrayValue?.first?.arrayValue
                let y = numbers(node?.last?["y"])
                guard l.config?["function"]?.stringValue == "math.multiply", [1, 3].contains(y.count) else {
                    throw ZooError(.unsupported, "operation \(l.config?["function"]?.stringValue ?? "?") after the input Normalization", item: l.config?["name"]?.stringValue)
                }
                s = y
            default:
                continue
            }
            guard s.count == 1 || s.count == 3, s.allSatisfy({ $0.isFinite && $0 > 0 }) else {
                throw ZooError(.unsupported, "input rescaling by \(s) after the Normalization", item: l.config?["name"]?.stringValue)
            }
            after = zip(after, s.count == 1 ? [s[0], s[0], s[0]] : s).map { $0 * $1 }
        }
        return (before, offset, after)
    }

    /// A preprocessing recipe with the mean and std read from a file: the recipe itself when they agree with it
    /// (to 1e-6), else the recipe with them (and a note), or a plain torch-style recipe when there was none.
    static func preprocessing(_ recipe: JSONValue?, mean: [Double], std: [Double]) -> JSONValue {
        let rm = recipe?["mean"]?.arrayValue?.compactMap(\.doubleValue) ?? []
        let rs = recipe?["std"]?.arrayValue?.compactMap(\.doubleValue) ?? []
        func close(_ a: [Double], _ b: [Double]) -> Bool { a.count == b.count && zip(a, b).allSatisfy { abs($0 - $1) <= 1e-6 * max(1, abs($1)) } }
        if let recipe, close(rm, mean), close(rs, std) { return recipe }
        let values: [(String, JSONValue)] = [("mean", .array(mean.map { .double($0) })), ("std", .array(std.map { .double($0) })),
                                             ("note", .string("mean and std read from the file's input Normalization layer"))]
        guard case .object(var members)? = recipe else {
            return .object([("mode", .string("torch")), ("channel_order", .string("RGB")), ("scale", .double(1.0 / 255))] + values)
        }
        for (k, v) in values {
            if let i = members.firstIndex(where: { $0.0 == k }) { members[i].1 = v } else { members.append((k, v)) }
        }
        return .object(members)
    }

    /// The short Keras name of a weight (`conv1/kernel:0` -> `kernel`, `vars/0` -> nil).
    static func weightRole(_ name: String) -> String? {
        var base = name
        if let colon = base.lastIndex(of: ":") { base = String(base[..<colon]) }
        if let slash = base.lastIndex(of: "/") { base = String(base[base.index(after: slash)...]) }
        let known = ["kernel", "depthwise_kernel", "bias", "gamma", "beta", "moving_mean", "moving_variance"]
        return known.contains(base) ? base : nil
    }

    /// Maps a Keras weight file for one catalogue name.
    ///
    /// Driven by Keras's order *within each kind of layer* (convolutions, depthwise convolutions,
    /// BatchNorms, Dense): the graph's conv / BN / linear nodes, listed in Keras's order, take the next
    /// layer of their kind. This needs no layer names and holds both for legacy `.h5` files (one global
    /// order) and for Keras 3 `.weights.h5` files (which keep the order only within a class).
    public static func kerasMapping(records: [TensorRecord], layout: SourceStructure, name: String, head: HeadKind = .standard) throws -> CanonicalCheckpoint {
        var byName: [String: TensorRecord] = [:]
        for r in records { byName[r.name] = r }
        struct Src { var layer: SourceStructure.Layer; var tensors: [TensorRecord]; var kind: KerasKind; var index: Int }
        /// A queue: one kind of layer, nested in a sub-model or not (told apart only where the family names nested nodes).
        struct QueueKey: Hashable { var kind: KerasKind; var nested = false }
        var sources: [Src] = []
        var unexpected: [MappingReport.Unexpected] = []
        for l in layout.layers where !l.weights.isEmpty {
            var ts: [TensorRecord] = []
            for w in l.weights {
                guard let r = byName[w.tensor] else {
                    throw ZooError(.badInput, "Keras layout names tensor \(w.tensor), which the file does not hold", item: l.name)
                }
                ts.append(r)
            }
            // Order weights by role when the names say it (Keras order otherwise).
            let roles = l.weights.map { weightRole($0.name) }
            if roles.allSatisfy({ $0 != nil }) {
                let rank = ["kernel": 0, "depthwise_kernel": 0, "gamma": 0, "bias": 1, "beta": 1, "moving_mean": 2, "moving_variance": 3]
                ts = zip(roles, ts).sorted { rank[$0.0 ?? ""] ?? 9 < rank[$1.0 ?? ""] ?? 9 }.map(\.1)
            }
            let k = kind(of: l, shapes: ts.map(\.shape))
            if k == .other {
                for t in ts { unexpected.append(.init(name: t.name, shape: t.shape)) }
                continue
            }
            sources.append(Src(layer: l, tensors: ts, kind: k, index: sources.count))
        }
        var config = try ArchitectureRegistry.current.preset(name, flavour: .keras)
        config.head = head
        let quirks = config.quirks
        // Keras's EfficientNet B0-B7 normalise their input in the model (the graph counts that layer's weights):
        // its Normalization (the file's first; a Keras 3 file orders layers by class) becomes the preprocessing.
        let expectsNormalization = try config.graph().kerasPreprocessingParameters > 0
        var inputNormalization: Src?
        if expectsNormalization, let i = sources.firstIndex(where: { $0.kind == .normalization }) {
            inputNormalization = sources.remove(at: i)
        }
        for src in sources where src.kind == .normalization {
            for t in src.tensors { unexpected.append(.init(name: t.name, shape: t.shape)) }
        }
        sources.removeAll { $0.kind == .normalization }
        let layerCount = sources.count
        // Nested and top-level layers are matched separately where the family names its nested nodes and the file
        // has nested layers (a Keras 3 file orders a class only within a container); one order per kind otherwise.
        let splitNested = !quirks.kerasNestedNodePrefixes.isEmpty && sources.contains { isNested($0.layer) }
        var queues: [QueueKey: [Src]] = [:]
        for src in sources { queues[QueueKey(kind: src.kind, nested: splitNested && isNested(src.layer)), default: []].append(src) }
        func isNestedNode(_ name: String) -> Bool { splitNested && quirks.kerasNestedNodePrefixes.contains { name.hasPrefix($0) } }
        // Keras's ConvNeXt normalises after its pooling (its own top, or `pooling="avg"`), a model built on the
        // base without top before a user's pooling: the same tensors, different numbers. The file says which
        // when it can (`kerasNormHeadOrder`); a candidate it contradicts does not fit.
        var headNote: String?
        if sources.contains(where: { $0.kind == .layerNorm }), sources.contains(where: { $0.kind == .dense }) {
            if let order = kerasNormHeadOrder(layout) {
                guard order == head else {
                    throw ZooError(.mismatch, order == .linear
                                   ? "the file's model normalises before its pooling (a base without top, then pooling and Dense), not as Keras's own top"
                                   : "the file's model normalises after its pooling (Keras's own top or pooling=\"avg\"), not before", item: name)
                }
            } else if head == .standard {
                headNote = "the file does not say whether its last LayerNormalization comes after the global pooling (Keras's own top, "
                    + "pooling=\"avg\") or before it (a base without top, then GlobalAveragePooling2D and Dense); mapped as the former. "
                    + "A full-model file says which"
            }
        }
        // Keras's MobileNetV3 pads its stride-2 depthwise convolutions with `correct_pad`, which follows TF "same"
        // when the model was built for a fixed input size and is fixed (k/2-1, k/2) otherwise. A full-model file says which.
        var staticInput: [Int]?
        if let padding = quirks.fixedInputStridedPadding, let mc = layout.modelConfig, let shape = staticInputShape(mc) {
            config.stridedPadding = padding
            staticInput = shape
        }
        if head == .linear { config.flattenSize = nil }
        // Classes from the classifier: the last Dense, or (MobileNet v1/V3) the last 1x1 conv with a bias.
        let presetClasses = config.classes
        if let last = queues[QueueKey(kind: .dense)]?.last, let k = last.tensors.first, k.shape.count == 2 {
            config.classes = k.shape[1]
        } else if quirks.kerasConvHead, let last = queues[QueueKey(kind: .conv)]?.last,
                  let k = last.tensors.first, k.shape.count == 4, k.shape[0] == 1, k.shape[1] == 1, last.tensors.count == 2 {
            config.classes = k.shape[3]
        }
        if let flatten = quirks.flatten, head == .standard, let fc1 = queues[QueueKey(kind: .dense)]?.first, let k = fc1.tensors.first, k.shape.count == 2 {
            if let side = squareSide(features: k.shape[0], channels: flatten.channels) { config.flattenSize = [side, side] }
        }
        func mappedNodes(_ g: LayerGraph) -> [Int] {
            g.nodes.indices.filter { i in
                switch g.nodes[i].op {
                case .conv2d, .batchNorm, .linear, .layerNorm, .pointwiseLinear, .layerScale: return true
                default: return false
                }
            }
        }
        var graph = try config.graph()
        var targets = mappedNodes(graph)
        if layerCount < targets.count {
            // A file without the classifier: the backbone's graph (Keras's ConvNeXt keeps a LayerNorm there).
            var backbone = config
            backbone.includeTop = false
            backbone.classes = presetClasses
            let g = try backbone.graph()
            let t = mappedNodes(g).filter { $0 < g.headStart }
            if layerCount == t.count {
                config = backbone
                graph = g
                targets = t
            }
        }
        var report = MappingReport(architecture: name, flavour: .keras, source: "keras")
        report.unexpected = unexpected
        if !config.includeTop { report.notes.append("Keras file without the classifier (no top): backbone only") }
        if let staticInput { report.notes.append("model built for a fixed \(staticInput[0])x\(staticInput[1]) input: stride-2 padding is TF \"same\"") }
        if head == .linear { report.notes.append("custom head: global average pooling -> Dense(\(config.classes)), stored as head.weight / head.bias") }
        let spec = config.includeTop ? graph.parameterSpec : graph.parameterSpec.filter { $0.node < graph.headStart }
        var specByNode: [Int: [ParameterSpec]] = [:]
        for p in spec { specByNode[p.node, default: []].append(p) }
        var out: [TensorRecord] = []
        var firstLinear = true
        var nestedNode = false
        func pop(_ k: KerasKind) -> Src? {
            let key = QueueKey(kind: k, nested: nestedNode)
            guard var q = queues[key], !q.isEmpty else { return nil }
            let s = q.removeFirst()
            queues[key] = q
            return s
        }
        for node in targets {
            let n = graph.nodes[node]
            nestedNode = isNestedNode(n.name)
            let ps = specByNode[node] ?? []
            let canon = ps.filter { $0.role != .numBatchesTracked }
            // Which layer kind feeds the node, and the transform of each of its tensors.
            var src: Src?
            var transforms: [LayoutTransform] = []
            switch n.op {
            case let .conv2d(cin, cout, _, _, _, _, groups, _):
                let dw = groups > 1 && groups == cin && groups == cout
                src = pop(dw ? .depthwise : .conv)
                // DepthwiseConv2D's kernel is (kh, kw, C, 1); a Conv2D grouped by channel has (kh, kw, 1, C).
                let grouped = src?.tensors.first.map { $0.shape.count == 4 && $0.shape[2] == 1 } ?? false
                transforms = [dw && !grouped ? .depthwiseToOIHW : .hwioToOIHW, .identity]
            case .batchNorm:
                src = pop(.batchNorm)
                transforms = [.identity, .identity, .identity, .identity]
            case .layerNorm:
                src = pop(.layerNorm)
                transforms = [.identity, .identity]
            case .pointwiseLinear:
                src = pop(.dense)
                transforms = [.denseToLinear, .identity]
            case .layerScale:
                src = pop(.layerScale)
                transforms = [.channelVectorToMap]
            case let .linear(fin, _, _):
                // A 1x1 conv head (MobileNet v1/V3) when the next convolution is one; a Dense otherwise.
                if let c = queues[QueueKey(kind: .conv)]?.first, let k = c.tensors.first, k.shape.count == 4, k.shape[0] == 1, k.shape[1] == 1,
                   k.shape[2] == fin, c.tensors.count == 2, (queues[QueueKey(kind: .dense)] ?? []).isEmpty {
                    src = pop(.conv)
                    transforms = [.conv1x1ToLinear, .identity]
                } else {
                    src = pop(.dense)
                    if quirks.flatten != nil, firstLinear, let f = config.flattenSize {
                        transforms = [.flattenHWCToLinear(h: f[0], w: f[1], c: fin / (f[0] * f[1])), .identity]
                    } else {
                        transforms = [.denseToLinear, .identity]
                    }
                }
                firstLinear = false
            default: break
            }
            guard let src else {
                for p in canon { report.missing.append(.init(name: p.name, shape: p.shape)) }
                continue
            }
            guard canon.count == src.tensors.count else {
                let srcDesc = src.tensors.map { "\($0.name) \($0.shape)" }.joined(separator: ", ")
                for p in canon {
                    report.mismatched.append(.init(name: p.name, expected: p.shape, source: "\(src.layer.name) (\(srcDesc))", sourceShape: [], got: []))
                }
                continue
            }
            for (i, p) in canon.enumerated() {
                let r = src.tensors[i]
                let tf = transforms[min(i, transforms.count - 1)]
                guard let got = tf.outputShape(r.shape), got == p.shape else {
                    report.mismatched.append(.init(name: p.name, expected: p.shape, source: r.name, sourceShape: r.shape,
                                                   got: tf.outputShape(r.shape) ?? r.shape))
                    continue
                }
                let load = r.load
                let item = p.name
                let details: [(String, JSONValue)] = [("source", .string(r.name)), ("keras_layer", .string(src.layer.name))]
                out.append(TensorRecord(name: p.name, dtype: r.dtype, shape: got, details: details) { try tf.apply(load(), item: item) })
            }
            if let nbt = ps.first(where: { $0.role == .numBatchesTracked }) {
                out.append(TensorRecord(name: nbt.name, dtype: .i64, shape: []) { try Tensor(zeros: .i64, shape: []) })
                report.synthesized.append(nbt.name)
            }
        }
        // Layers no node took, in the file's order.
        for l in queues.values.joined().sorted(by: { $0.index < $1.index }) {
            for t in l.tensors { report.unexpected.append(.init(name: t.name, shape: t.shape)) }
        }
        if layout.dialect == "keras3" { report.notes.append("Keras 3 weights") }
        if let headNote, config.includeTop { report.notes.append(headNote) }
        // The records in the spec's (torchvision's state_dict) order, which lists a block's layer_scale before the block.
        let rank = Dictionary(spec.enumerated().map { ($0.element.name, $0.offset) }, uniquingKeysWith: { a, _ in a })
        out = out.enumerated().sorted { (rank[$0.element.name] ?? Int.max, $0.offset) < (rank[$1.element.name] ?? Int.max, $1.offset) }.map(\.element)
        var meta = try metadata(for: config, inputSize: quirks.flatten.flatMap { f in config.flattenSize.map { $0.map { $0 * f.reduction } } })
        if let inputNormalization {
            let read = try kerasInputPreprocessing(inputNormalization.tensors, layer: inputNormalization.layer.name, layout: layout)
            meta.preprocessing = Self.preprocessing(meta.preprocessing, mean: read.mean, std: read.std)
            report.notes.append(read.note)
        } else if expectsNormalization {
            report.notes.append("the file holds no input Normalization layer: the catalogue's preprocessing is assumed")
        }
        if case .object(var o)? = meta.config {
            o.append(("source_dialect", .string(layout.dialect)))
            meta.config = .object(o)
        }
        return CanonicalCheckpoint(records: out, config: config, metadata: meta, report: report)
    }
}
