import ZooFormats
import ZooErrors
import ZooJSON

/// Reads Keras's own structure from a scanned HDF5 file: the dialect and the layers with
/// their weights in Keras order. Works on the scanned object tree only (no libhdf5 calls).
///
/// - Legacy files (Keras 1/2, tf-keras, Keras 3's legacy `.h5` writer): the `layer_names`
///   attribute (or its chunks `layer_names0..N`) on `/` or `/model_weights` gives the
///   order; each layer group's `weight_names` gives its weights as paths relative to the
///   group (never guessed from the tree). A nested model's layer holds the weights of all
///   its inner layers: they are split by their layer prefix and ordered by the nested
///   model's config when the file has one (else by first appearance).
/// - Keras 3 `.weights.h5`: `layers/<key>/vars/<i>`, nested `layers/` for sub-models; the
///   `name` attribute of a `vars` group gives the real layer name; keys are ordered by their
///   class stem and numeric suffix (`conv2d`, `conv2d_1`, `conv2d_2`, ..., `conv2d_10`).
enum KerasReader {
    /// What the reader found.
    struct Result {
        var structure: SourceStructure
        var trainingConfig: JSONValue?
        var modelConfigText: String?
        var optimizerWeights: Int
    }

    /// The Keras structure, or nil when the file is not a Keras weight file.
    static func read(_ file: HDF5File) throws -> Result? {
        let tensors = Set(file.records.map(\.name))
        guard let root = file.object("") else { return nil }
        if hasChunked(root, "layer_names") {
            return try legacy(file, weightsGroup: "", tensors: tensors)
        }
        if let mw = file.object("model_weights"), mw.isGroup, hasChunked(mw, "layer_names") {
            return try legacy(file, weightsGroup: "model_weights", tensors: tensors)
        }
        if root.children.contains("layers") || root.children.contains("_layer_checkpoint_dependencies") {
            return try keras3(file, tensors: tensors)
        }
        return nil
    }

    // MARK: legacy

    static func hasChunked(_ o: HDF5File.Object, _ name: String) -> Bool {
        o.attribute(name) != nil || o.attribute(name + "0") != nil
    }

    /// A string-list attribute, possibly split by Keras into `name0`, `name1`, ... chunks.
    static func chunkedStrings(_ o: HDF5File.Object, _ name: String) throws -> [String]? {
        // The root group's path is empty: name it "/" so that the item is never blank.
        let path = o.path.isEmpty ? "/" : o.path
        if let v = o.attribute(name) { return try strings(v, item: "\(path) attribute \(name)") }
        var out: [String] = []
        var i = 0
        while let v = o.attribute("\(name)\(i)") {
            out += try strings(v, item: "\(path) attribute \(name)\(i)")
            i += 1
        }
        return i == 0 ? nil : out
    }

    static func strings(_ v: JSONValue, item: String) throws -> [String] {
        switch v {
        case .string(let s): return [s]
        case .null: return []
        case .array(let a):
            // Keras stores "no weights" as an empty float array.
            return try a.map {
                guard let s = $0.stringValue else { throw ZooError.bad("expected a list of strings", item: item) }
                return s
            }
        default: throw ZooError.bad("expected a list of strings", item: item)
        }
    }

    static func text(_ v: JSONValue?) -> String? {
        guard let v else { return nil }
        if let s = v.stringValue { return s }
        if case .array(let a) = v, a.count == 1, let s = a[0].stringValue { return s }
        return nil
    }

    /// One layer of a model config.
    struct ConfigLayer {
        var name: String
        var className: String?
        var config: JSONValue?
        /// Inner layers, for nested models (Functional, Sequential, Model).
        var inner: [ConfigLayer]?

        /// This layer and every inner layer, depth first.
        var flattened: [ConfigLayer] { [self] + (inner ?? []).flatMap(\.flattened) }
    }

    static func configLayers(_ model: JSONValue) -> [ConfigLayer]? {
        guard let layers = model["config"]?["layers"]?.arrayValue else { return nil }
        return layers.compactMap { entry in
            guard let name = entry["name"]?.stringValue ?? entry["config"]?["name"]?.stringValue else { return nil }
            return ConfigLayer(name: name, className: entry["class_name"]?.stringValue, config: entry["config"],
                               inner: configLayers(entry))
        }
    }

    static func legacy(_ file: HDF5File, weightsGroup: String, tensors: Set<String>) throws -> Result {
        guard let root = file.object(""), let wg = file.object(weightsGroup) else { throw ZooError.bad("no root group") }
        let layerNames = try chunkedStrings(wg, "layer_names") ?? []
        let kerasVersion = text(wg.attribute("keras_version")) ?? text(root.attribute("keras_version"))
        let backend = text(wg.attribute("backend")) ?? text(root.attribute("backend"))
        let modelConfigText = text(root.attribute("model_config"))
        var modelConfig: JSONValue?
        if let t = modelConfigText {
            // Python's json writes NaN/Infinity, which strict JSON refuses: then the text is kept
            // as is (metadata) and the layers get no classes.
            modelConfig = try? JSONValue.parse(t, maxDepth: 256)
        }
        var trainingConfig: JSONValue?
        if let t = text(root.attribute("training_config")) { trainingConfig = (try? JSONValue.parse(t, maxDepth: 256)) ?? .string(t) }
        let top = modelConfig.flatMap(configLayers) ?? []
        let byName = Dictionary(top.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })

        var layers: [SourceStructure.Layer] = []
        var allNames: [String] = []
        for name in layerNames {
            let gp = weightsGroup.isEmpty ? name : weightsGroup + "/" + name
            guard let g = file.object(gp), g.isGroup else {
                throw ZooError.bad("layer listed in layer_names has no group", item: gp)
            }
            let wn = try chunkedStrings(g, "weight_names") ?? []
            allNames += wn
            if wn.isEmpty { continue }
            let weights = try wn.map { w -> SourceStructure.Weight in
                let t = gp + "/" + w
                guard tensors.contains(t) else {
                    throw ZooError.bad("weight \(w) of layer \(name) has no numeric dataset at \(t)", item: gp)
                }
                return SourceStructure.Weight(name: w, tensor: t)
            }
            let cfg = byName[name]
            if let inner = cfg?.inner {
                layers += split(name, weights, inner: inner.flatMap(\.flattened), path: gp)
            } else if cfg == nil, needsSplit(name, wn) {
                layers += split(name, weights, inner: nil, path: gp)
            } else {
                layers.append(SourceStructure.Layer(name: name, className: cfg?.className, config: cfg?.config, weights: weights, path: gp))
            }
        }
        let flat = !allNames.isEmpty && !allNames.contains { $0.contains("/") }
        let dialect = (kerasVersion?.hasPrefix("1.") ?? false) || (kerasVersion == nil && flat) ? "keras1" : "keras2"
        var optimizer = 0
        if let og = file.object("optimizer_weights"), og.isGroup {
            optimizer = (try? chunkedStrings(og, "weight_names"))??.count ?? 0
        }
        let structure = SourceStructure(dialect: dialect, producerVersion: kerasVersion, backend: backend, modelConfig: modelConfig, layers: layers)
        return Result(structure: structure, trainingConfig: trainingConfig, modelConfigText: modelConfigText, optimizerWeights: optimizer)
    }

    static func prefix(_ w: String) -> String {
        guard let i = w.lastIndex(of: "/") else { return "" }
        return String(w[..<i])
    }

    /// Without a config, a layer's weights are split into inner layers only when they carry
    /// several layer prefixes none of which is the layer itself (a nested model, not a layer
    /// with sub-layers such as attention).
    static func needsSplit(_ name: String, _ weightNames: [String]) -> Bool {
        let prefixes = Set(weightNames.map(prefix))
        guard prefixes.count > 1 else { return false }
        return !prefixes.contains { $0 == name || $0.hasPrefix(name + "/") || $0.hasSuffix("/" + name) }
    }

    /// Splits a nested model's weights into its inner layers.
    static func split(_ outer: String, _ weights: [SourceStructure.Weight], inner: [ConfigLayer]?, path: String) -> [SourceStructure.Layer] {
        var order: [String] = []
        var groups: [String: [SourceStructure.Weight]] = [:]
        var info: [String: ConfigLayer] = [:]
        for w in weights {
            let p = prefix(w.name)
            var name = p.hasPrefix(outer + "/") ? String(p.dropFirst(outer.count + 1)) : (p.isEmpty ? outer : p)
            if let inner {
                // The inner layer whose name ends the prefix (longest match: names may contain '/').
                let match = inner.filter { p == $0.name || p.hasSuffix("/" + $0.name) }.max { $0.name.count < $1.name.count }
                if let match { name = match.name; info[name] = match }
            }
            if groups[name] == nil { order.append(name) }
            groups[name, default: []].append(w)
        }
        if let inner {
            let position = Dictionary(inner.enumerated().map { ($1.name, $0) }, uniquingKeysWith: { a, _ in a })
            let firstSeen = Dictionary(order.enumerated().map { ($1, $0) }, uniquingKeysWith: { a, _ in a })
            order.sort { a, b in
                let pa = position[a] ?? (inner.count + (firstSeen[a] ?? 0))
                let pb = position[b] ?? (inner.count + (firstSeen[b] ?? 0))
                return pa < pb
            }
        }
        return order.map { n in
            SourceStructure.Layer(name: n, className: info[n]?.className, config: info[n]?.config, weights: groups[n] ?? [], path: path)
        }
    }

    // MARK: Keras 3

    /// `conv2d_12` -> ("conv2d", 12); `conv2d` -> ("conv2d", 0).
    static func keyOrder(_ key: String) -> (String, Int) {
        if let i = key.lastIndex(of: "_") {
            let digits = key[key.index(after: i)...]
            if !digits.isEmpty, digits.allSatisfy(\.isASCII), digits.allSatisfy(\.isNumber), let n = Int(digits) {
                return (String(key[..<i]), n)
            }
        }
        return (key, 0)
    }

    static func sortedKeys(_ keys: [String]) -> [String] {
        keys.sorted { a, b in
            let (sa, na) = keyOrder(a), (sb, nb) = keyOrder(b)
            return sa != sb ? sa < sb : (na != nb ? na < nb : a < b)
        }
    }

    static func keras3(_ file: HDF5File, tensors: Set<String>) throws -> Result {
        var layers: [SourceStructure.Layer] = []
        var budget = HDF5File.maxDepth
        func vars(_ p: String, name: String) -> SourceStructure.Layer? {
            let vp = p.isEmpty ? "vars" : p + "/vars"
            guard let v = file.object(vp), v.isGroup else { return nil }
            let indices = v.children.compactMap { c -> (Int, String)? in
                guard let i = Int(c), tensors.contains(vp + "/" + c) else { return nil }
                return (i, c)
            }.sorted { $0.0 < $1.0 }
            guard !indices.isEmpty else { return nil }
            let layerName = text(v.attribute("name")) ?? name
            return SourceStructure.Layer(name: layerName, weights: indices.map { SourceStructure.Weight(name: "vars/\($0.1)", tensor: vp + "/" + $0.1) },
                                     path: p.isEmpty ? nil : p)
        }
        func saveable(_ p: String, name: String, depth: Int) throws {
            guard depth < budget else { throw ZooError.bad("Keras layers nested deeper than \(budget)", item: p) }
            guard let o = file.object(p), o.isGroup else { return }
            if let l = vars(p, name: name) { layers.append(l) }
            for child in sortedKeys(o.children) where child != "vars" {
                let cp = p.isEmpty ? child : p + "/" + child
                guard let c = file.object(cp), c.isGroup else { continue }
                if child == "layers" || child == "_layer_checkpoint_dependencies" {
                    for key in sortedKeys(c.children) { try saveable(cp + "/" + key, name: key, depth: depth + 1) }
                } else if !p.isEmpty {
                    try saveable(cp, name: name + "/" + child, depth: depth + 1)
                }
            }
        }
        budget = HDF5File.maxDepth
        try saveable("", name: "", depth: 0)
        let structure = SourceStructure(dialect: "keras3", layers: layers)
        return Result(structure: structure, trainingConfig: nil, modelConfigText: nil, optimizerWeights: 0)
    }
}

/// Keras-specific reading of a `SourceStructure` that the HDF5 importer filled from a Keras file.
extension SourceStructure {
    /// Keras 3 `.weights.h5` files do not record the order between layers of different classes:
    /// Keras names each layer's group after its class and a per-class counter, in model order
    /// (`layers/conv2d`, `layers/batch_normalization`, `layers/conv2d_1`, ...), and `layers` holds
    /// them by key. Given the model's Keras class names for its layers with weights, in model
    /// order (`["Conv2D", "BatchNormalization", ...]`), this returns the layers in model order,
    /// matched by key exactly as Keras itself loads the file. Nil when the structure is not a flat
    /// Keras 3 model (nested containers) or does not fit the sequence (a key missing, layers left over).
    public func keras3Ordered(classes: [String]) -> [Layer]? {
        guard dialect == "keras3", !layers.isEmpty else { return nil }
        var byKey: [String: Layer] = [:]
        var container: String?
        for l in layers {
            guard let path = l.path, let slash = path.lastIndex(of: "/") else { return nil }
            let parent = String(path[..<slash])
            if container == nil { container = parent }
            guard parent == container else { return nil }
            byKey[String(path[path.index(after: slash)...])] = l
        }
        guard classes.count == layers.count else { return nil }
        var counters: [String: Int] = [:]
        var out: [Layer] = []
        for c in classes {
            let stem = SourceStructure.snakeCase(c)
            let key: String
            if let n = counters[stem] { key = "\(stem)_\(n + 1)"; counters[stem] = n + 1 } else { key = stem; counters[stem] = 0 }
            guard let l = byKey.removeValue(forKey: key) else { return nil }
            out.append(l)
        }
        return byKey.isEmpty ? out : nil
    }

    /// Keras's `to_snake_case` for class names: `DepthwiseConv2D` -> `depthwise_conv2d`.
    public static func snakeCase(_ name: String) -> String {
        let chars = Array(name.filter { $0.isLetter || $0.isNumber || $0 == "_" })
        func upper(_ c: Character) -> Bool { c.isASCII && c.isUppercase }
        func lower(_ c: Character) -> Bool { c.isASCII && c.isLowercase }
        // Keras: re.sub("(.)([A-Z][a-z]+)", r"\\1_\\2", name)
        var first: [Character] = []
        var i = 0
        while i < chars.count {
            if i > 0, i + 1 < chars.count, upper(chars[i]), lower(chars[i + 1]) {
                first.append("_")
            }
            first.append(chars[i])
            i += 1
        }
        // Keras: re.sub("([a-z])([A-Z])", r"\\1_\\2", name)
        var second: [Character] = []
        for (j, c) in first.enumerated() {
            if j > 0, lower(first[j - 1]), upper(c) { second.append("_") }
            second.append(c)
        }
        return String(second).lowercased()
    }
}
