import ZooArchitectures
import ZooErrors
import ZooFormats

/// A subtree of a checkpoint's dotted tensor names that could be a model's state dict: the `model` and
/// `model_ema` of a torchvision training-reference checkpoint, a Lightning `state_dict`, a teacher and a student.
///
/// Encodes (`zoo inspect --json`'s `state_dicts`) as its members in declaration order: `key`, `prefix`,
/// `wrappers`, `tensors`, `architectures`, `families`.
public struct StateDictCandidate: Sendable, Hashable, Encodable {
    /// The part of `prefix` that names the subtree, as `zoo convert --key` takes it (`model_ema`, `state_dict`),
    /// without a trailing dot; empty for the file's top level.
    public var key: String
    /// The whole prefix in front of the model's own names, with its trailing dot (`model_ema.module.`);
    /// empty when the names sit at the file's top level.
    public var prefix: String
    /// The wrappers between `key` and the model's own names, outermost first, each with its dot
    /// (`module.` from DataParallel/DDP or an EMA's AveragedModel, `_orig_mod.` from `torch.compile`, `model.`).
    public var wrappers: [String]
    /// Tensors under `prefix` whose names (below it) are canonical names: of the architecture mapped to in a
    /// `MappingReport`, of any catalogue architecture in `StateDicts.candidates`.
    public var tensors: Int
    /// Catalogue architectures whose parameter names these tensors are, all of them (`StateDicts.candidates`
    /// only; the classifier and `num_batches_tracked` may be absent). Empty when none fits exactly.
    public var architectures: [String]
    /// The families of `architectures` (`resnet`, `mobilenet_v3`, ...), in the same order, without repeats.
    public var families: [String]

    /// Creates a candidate; `key` and `wrappers` from `prefix` (`StateDicts.split`).
    public init(prefix: String, tensors: Int, architectures: [String] = [], families: [String] = []) {
        self.prefix = prefix
        (key, wrappers) = StateDicts.split(prefix)
        self.tensors = tensors
        self.architectures = architectures
        self.families = families
    }

    /// How people read it: the key, or `top level` for names without a prefix.
    public var displayName: String { key.isEmpty ? "top level" : key }
}

/// Finding the candidate state dicts of a checkpoint (`StateDictCandidate`): the prefixes in front of the
/// canonical names, split into the key that names a subtree and the wrappers below it.
///
/// Bounded on hostile input: only prefixes of at most `maxPrefixBytes` bytes and `maxPrefixDepth` dots are
/// considered, so a name costs at most `maxPrefixDepth + 1` look-ups whatever its length.
public enum StateDicts {
    /// Longest prefix (in UTF-8 bytes, trailing dot included) considered as a candidate.
    public static let maxPrefixBytes = 512
    /// Most dots a prefix considered as a candidate may hold.
    public static let maxPrefixDepth = 16

    /// Wrapper segments stripped below a key: `module` (DataParallel, DDP, AveragedModel), `_orig_mod`
    /// (`torch.compile`) and `model` (a module that holds the network as `self.model`). `model` as the first
    /// segment is a key (a training checkpoint's `{"model": state_dict}`), not a wrapper.
    public static let wrapperSegments: Set<Substring> = ["module", "_orig_mod", "model"]

    /// Splits a prefix (`state_dict._orig_mod.`) into its key (`state_dict`) and the wrapper segments at its end
    /// (`["_orig_mod."]`).
    public static func split(_ prefix: String) -> (key: String, wrappers: [String]) {
        var segments = prefix.split(separator: ".", omittingEmptySubsequences: false)
        if segments.last == "" { segments.removeLast() }
        var wrappers: [String] = []
        while let last = segments.last, wrapperSegments.contains(last), !(segments.count == 1 && last == "model") {
            wrappers.insert(last + ".", at: 0)
            segments.removeLast()
        }
        return (segments.joined(separator: "."), wrappers)
    }

    /// The prefix (possibly empty) in front of the first canonical name within `name`: the name itself when it
    /// is canonical, else the shortest prefix ending at a dot whose remainder is; nil when none is, within the
    /// limits (`maxPrefixBytes`, `maxPrefixDepth`).
    public static func prefix(of name: String, canonical: Set<String>) -> String? {
        if canonical.contains(name) { return "" }
        let utf8 = name.utf8
        var depth = 0
        var i = utf8.startIndex
        while i != utf8.endIndex {
            guard let dot = utf8[i...].firstIndex(of: UInt8(ascii: ".")) else { return nil }
            depth += 1
            let end = utf8.index(after: dot)
            if depth > maxPrefixDepth || utf8.distance(from: utf8.startIndex, to: end) > maxPrefixBytes { return nil }
            if let suffix = String(utf8[end...]), canonical.contains(suffix) { return String(utf8[..<end]) }
            i = end
        }
        return nil
    }

    /// The prefixes in front of canonical names, with how many names sit under each, in first-seen order.
    public static func count(_ names: some Sequence<String>, canonical: Set<String>) -> [(prefix: String, tensors: Int)] {
        var counts: [String: Int] = [:]
        var order: [String] = []
        for n in names {
            guard let p = prefix(of: n, canonical: canonical) else { continue }
            if counts[p] == nil { order.append(p) }
            counts[p, default: 0] += 1
        }
        return order.map { ($0, counts[$0] ?? 0) }
    }

    /// True when a candidate with `tensors` canonical names is substantial next to the largest one
    /// (`largest` names): at least two names and a tenth of the largest.
    public static func isSubstantial(_ tensors: Int, largest: Int) -> Bool { tensors >= 2 && tensors * 10 >= largest }

    /// The prefixes `key` (`model_ema`, `state_dict.model`; a trailing dot is ignored) selects: itself and
    /// those below it.
    /// Compared byte by byte, as `prefix(of:canonical:)` cuts names.
    public static func selects(_ key: String, _ prefix: String) -> Bool {
        prefix.utf8.starts(with: (normalized(key) + ".").utf8)
    }

    /// `key` without a trailing dot.
    public static func normalized(_ key: String) -> String {
        var k = Substring(key)
        while k.hasSuffix(".") { k = k.dropLast() }
        return String(k)
    }

    /// Checks a `--key` value: not empty, within the prefix limits. Throws a usage error otherwise.
    public static func validate(key: String) throws {
        let k = normalized(key)
        guard !k.isEmpty else { throw ZooError(.usage, "--key needs a dotted prefix such as model_ema or state_dict") }
        guard k.utf8.count < maxPrefixBytes, k.utf8.reduce(0, { $0 + ($1 == UInt8(ascii: ".") ? 1 : 0) }) < maxPrefixDepth else {
            throw ZooError(.usage, "--key is longer than \(maxPrefixBytes) bytes or deeper than \(maxPrefixDepth) dots")
        }
    }

    /// The canonical names of every catalogue architecture (torchvision and Keras flavours, default widths),
    /// and for each, its names (without `num_batches_tracked`) and head names: what `candidates` matches against.
    struct Vocabulary: Sendable {
        var all: Set<String> = []
        var architectures: [(name: String, body: Set<String>, head: Set<String>)] = []
    }

    static func vocabulary(_ registry: ArchitectureRegistry) -> Vocabulary {
        var v = Vocabulary()
        for name in registry.names {
            for flavour in registry.flavours(of: name) {
                guard let config = try? registry.preset(name, flavour: flavour), let spec = try? config.parameterSpec(),
                      let headStart = try? config.graph().headStart else { continue }
                var body = Set<String>(), head = Set<String>()
                for p in spec {
                    v.all.insert(p.name)
                    if p.role == .numBatchesTracked { continue }
                    if p.node >= headStart { head.insert(p.name) } else { body.insert(p.name) }
                }
                if !v.architectures.contains(where: { $0.name == name && $0.body == body && $0.head == head }) {
                    v.architectures.append((name, body, head))
                }
            }
        }
        return v
    }

    /// The candidate state dicts of `records`: every prefix in front of names of the catalogue's architectures
    /// with a substantial share of them (`isSubstantial`), largest first, each with the architectures whose
    /// names it holds exactly (the head may be absent). Empty for files whose names are not torchvision-style
    /// (Keras layer names).
    public static func candidates(_ records: [TensorRecord], registry: ArchitectureRegistry = .current) -> [StateDictCandidate] {
        let vocabulary = vocabulary(registry)
        // One pass: the prefix of each name and the canonical names under each prefix.
        var counts: [String: Int] = [:]
        var order: [String] = []
        var namesUnder: [String: Set<String>] = [:]
        for r in records {
            guard let p = prefix(of: r.name, canonical: vocabulary.all) else { continue }
            if counts[p] == nil { order.append(p) }
            counts[p, default: 0] += 1
            let n = String(r.name.utf8.dropFirst(p.utf8.count)) ?? ""
            if !n.hasSuffix("num_batches_tracked") { namesUnder[p, default: []].insert(n) }
        }
        let largest = counts.values.max() ?? 0
        var out: [StateDictCandidate] = []
        for prefix in order {
            let tensors = counts[prefix] ?? 0
            guard isSubstantial(tensors, largest: largest) else { continue }
            let names = namesUnder[prefix] ?? []
            var fits: [String] = []
            for a in vocabulary.architectures where !fits.contains(a.name) {
                if names == a.body.union(a.head) || names == a.body { fits.append(a.name) }
            }
            var families: [String] = []
            for a in fits {
                if let id = registry.family(named: a)?.id.rawValue, !families.contains(id) { families.append(id) }
            }
            out.append(StateDictCandidate(prefix: prefix, tensors: tensors, architectures: fits, families: families))
        }
        return out.enumerated().sorted { a, b in
            a.element.tensors != b.element.tensors ? a.element.tensors > b.element.tensors : a.offset < b.offset
        }.map(\.element)
    }

    /// One line listing candidates for messages: `model (122 tensors), model_ema (122 tensors, module.)`.
    /// At most `limit` of them are named, then `and N more`.
    public static func describe(_ candidates: [StateDictCandidate], limit: Int = 8) -> String {
        guard !candidates.isEmpty else { return "none found" }
        let shown = candidates.prefix(limit).map { c in
            let wrappers = c.wrappers.isEmpty ? "" : ", " + c.wrappers.joined(separator: " ")
            return "\(c.displayName) (\(c.tensors) tensors\(wrappers))"
        }.joined(separator: ", ")
        return shown + (candidates.count > limit ? ", and \(candidates.count - limit) more" : "")
    }
}
