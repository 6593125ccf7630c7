import ZooErrors
import ZooJSON
import ZooTensor

/// Flattens an unpickled object tree into dotted tensor names and a JSON tree of everything else.
///
/// Dict keys become name parts as strings (int keys too), list and tuple indices as numbers.
/// `nn.Module` objects pickled whole contribute their `_parameters`, `_buffers` (less those in
/// `_non_persistent_buffers_set`, which `state_dict()` leaves out) and `_modules` under state_dict
/// names; TorchScript module objects (`__torch__.*`) their parameters and buffers, as their class in
/// the archive's `code/` records lists them (`scriptMembers`), and their submodules. Other opaque
/// objects keep their class, arguments and state in the JSON tree.
struct ObjectTree {
    /// Tensors in walk order with their dotted names.
    var tensors: [(name: String, tensor: TorchTensor)] = []
    /// The parameter and buffer names of a TorchScript class (`__torch__...` module and class name), from
    /// the archive's code; nil when the archive has no code for it (then every tensor attribute counts).
    var scriptMembers: ((_ module: String, _ name: String) throws -> ScriptClassMembers?)?
    let limits: PickleLimits
    let maxVisits: Int
    private var visits = 0
    /// Estimated bytes so far, starting from what the pickle machine built (`PickleLimits.maxBytes`).
    private var estimatedBytes: Int
    private var active = Set<ObjectIdentifier>()
    /// JSON nesting kept in the value tree (NativeMetadata reads JSON at most 64 deep).
    private let maxJSONDepth = 40

    /// At most this many tensors per file (real checkpoints hold thousands).
    static let maxTensors = 1_000_000

    /// A tree within `limits`, whose pickle machine already used `startingBytes` of the byte budget.
    /// Real checkpoints flatten to thousands of nodes (a whole pickled ResNet-152 to about 15,000).
    init(limits: PickleLimits, startingBytes: Int = 0, maxVisits: Int = 2_000_000) {
        self.limits = limits
        self.maxVisits = maxVisits
        estimatedBytes = startingBytes
    }

    /// Walks `root`; a root that is itself a tensor is named `singleName`.
    mutating func flatten(_ root: PickleValue, singleName: String) throws -> JSONValue? {
        if case .tensor(let t) = root {
            tensors.append((singleName, t))
            return nil
        }
        return try walk(root, [], depth: 0)
    }

    private static func name(_ path: [String]) -> String { path.joined(separator: ".") }

    static func keyString(_ k: PickleValue) -> String {
        switch k {
        case .string(let s): return s
        case .int(let i): return String(i)
        case .bigInt(let s): return s
        case .bool(let b): return b ? "True" : "False"
        case .none: return "None"
        case .float(let d): return String(d)
        case .bytes(let b): return String(decoding: b, as: UTF8.self)
        case .tuple(let t): return "(" + t.items.map(keyString).joined(separator: ",") + ")"
        case .global(let m, let n): return "\(m).\(n)"
        default: return "<\(k.kind)>"
        }
    }

    private mutating func enter(_ id: ObjectIdentifier, _ path: [String]) throws {
        if !active.insert(id).inserted {
            throw ZooError.bad("the object tree contains a cycle", item: path.isEmpty ? nil : ObjectTree.name(path))
        }
    }

    // swiftlint:disable:next cyclomatic_complexity
    private mutating func walk(_ v: PickleValue, _ path: [String], depth: Int) throws -> JSONValue? {
        visits += 1
        if visits > maxVisits {
            throw ZooError.bad("the object tree has more than \(maxVisits) nodes (memo bomb?)")
        }
        estimatedBytes += PickleCost.treeNode
        if estimatedBytes > limits.maxBytes { throw PickleCost.exceeded(limits.maxBytes) }
        if depth > limits.maxDepth {
            throw ZooError.bad("the object tree is nested deeper than \(limits.maxDepth)", item: ObjectTree.name(path))
        }
        let deep = depth >= maxJSONDepth
        switch v {
        case .none: return .null
        case .bool(let b): return .bool(b)
        case .int(let i): return .int(i)
        case .bigInt(let s): return .string(s)
        case .float(let d): return d.isFinite ? .double(d) : .string(String(d))
        case .string(let s): return .string(s)
        case .bytes(let b): return ObjectTree.bytesJSON(b)
        case .global(let m, let n): return .object([("__global__", .string("\(m).\(n)"))])
        case .tensor(let t):
            if tensors.count >= ObjectTree.maxTensors { throw ZooError.bad("more than \(ObjectTree.maxTensors) tensors") }
            tensors.append((path.isEmpty ? "tensor" : ObjectTree.name(path), t))
            return nil
        case .storage(let s):
            let es = s.dtype.byteSize
            let count = es > 0 ? s.byteCount / es : 0
            tensors.append((path.isEmpty ? "storage" : ObjectTree.name(path),
                            TorchTensor(storage: s, dtype: s.dtype, offset: 0, shape: [count], strides: [1])))
            return nil
        case .tuple(let t):
            return try sequence(t.items, path, depth: depth, deep: deep)
        case .list(let l):
            try enter(ObjectIdentifier(l), path)
            defer { active.remove(ObjectIdentifier(l)) }
            return try sequence(l.items, path, depth: depth, deep: deep)
        case .dict(let d):
            try enter(ObjectIdentifier(d), path)
            defer { active.remove(ObjectIdentifier(d)) }
            return try mapping(d.entries, path, depth: depth, deep: deep)
        case .object(let o):
            try enter(ObjectIdentifier(o), path)
            defer { active.remove(ObjectIdentifier(o)) }
            return try object(o, path, depth: depth, deep: deep)
        }
    }

    private mutating func sequence(_ items: [PickleValue], _ path: [String], depth: Int, deep: Bool) throws -> JSONValue? {
        if items.isEmpty { return .array([]) }
        var out: [JSONValue] = []
        var any = false
        for (i, item) in items.enumerated() {
            let childPath = path + [String(i)]
            if let j = try walk(item, childPath, depth: depth + 1) {
                any = true
                out.append(j)
            } else {
                out.append(.object([("__tensor__", .string(ObjectTree.name(childPath)))]))
            }
        }
        if !any { return nil }
        return deep ? .string("<nested too deep>") : .array(out)
    }

    private mutating func mapping(_ entries: [(key: PickleValue, value: PickleValue)], _ path: [String], depth: Int, deep: Bool) throws -> JSONValue? {
        if entries.isEmpty { return .object([]) }
        var out: [(String, JSONValue)] = []
        for (k, value) in entries {
            let key = ObjectTree.keyString(k)
            if let j = try walk(value, path + [key], depth: depth + 1) { out.append((key, j)) }
        }
        if out.isEmpty { return nil }
        return deep ? .string("<nested too deep>") : .object(out)
    }

    private mutating func object(_ o: PickleObject, _ path: [String], depth: Int, deep: Bool) throws -> JSONValue? {
        let cls = o.className
        // Tensor kinds that a torch rebuild function would produce but ModelZoo does not read.
        if o.module == "torch._utils" || o.module == "torch._tensor" || o.module == "torch.nested._internal.nested_tensor" {
            throw ZooError(.unsupported, "\(cls) tensors (quantized, sparse, nested or device-specific) are not supported",
                           item: path.isEmpty ? "tensor" : ObjectTree.name(path))
        }
        if let n = ObjectTree.numpyScalar(o) { return n }
        let stateEntries: [(key: PickleValue, value: PickleValue)]? = {
            if case .dict(let d)? = o.state { return d.entries }
            return nil
        }()
        // A whole nn.Module: parameters, buffers and submodules under state_dict names.
        if let st = stateEntries, st.contains(where: { $0.key.stringValue == "_parameters" }) {
            // Buffers registered with persistent=False are not part of state_dict() (a Python set,
            // which the pickle machine reads as a list).
            var nonPersistent = Set<String>()
            if let v = st.first(where: { $0.key.stringValue == "_non_persistent_buffers_set" })?.value,
               case .list(let l) = v {
                nonPersistent = Set(l.items.compactMap(\.stringValue))
            }
            for part in ["_parameters", "_buffers", "_modules"] {
                guard let value = st.first(where: { $0.key.stringValue == part })?.value else { continue }
                guard case .dict(let d) = value else { continue }
                try enter(ObjectIdentifier(d), path)
                defer { active.remove(ObjectIdentifier(d)) }
                for (k, child) in d.entries {
                    if case .none = child { continue }
                    let key = ObjectTree.keyString(k)
                    if part == "_buffers", nonPersistent.contains(key) { continue }
                    _ = try walk(child, path + [key], depth: depth + 1)
                }
            }
            return .object([("__class__", .string(cls))])
        }
        // A TorchScript object: the parameters and buffers its class declares, then its submodules.
        if o.module.hasPrefix("__torch__") {
            guard let st = stateEntries else { return nil }
            guard case .global(let module, let name) = o.callee, let members = try scriptMembers?(module, name) else {
                // No code record for the class: every tensor attribute and object, as named in the state.
                for (k, child) in st {
                    switch child {
                    case .tensor, .object, .storage:
                        _ = try walk(child, path + [ObjectTree.keyString(k)], depth: depth + 1)
                    default: continue
                    }
                }
                return nil
            }
            // torch's state_dict order: parameters, buffers (both in declaration order), submodules.
            // Plain tensor attributes (neither) are left out, as state_dict() leaves them out; a
            // class that is not a Module (no member lists) contributes nothing.
            guard members.isModule else { return nil }
            for member in members.parameters + members.buffers {
                guard let child = st.first(where: { $0.key.stringValue == member })?.value else { continue }
                switch child {
                case .tensor, .storage: _ = try walk(child, path + [member], depth: depth + 1)
                default: continue // None (an absent optional bias) or not a tensor
                }
            }
            let declared = Set(members.parameters + members.buffers)
            for (k, child) in st {
                guard case .object(let sub) = child, sub.module.hasPrefix("__torch__") else { continue }
                let key = ObjectTree.keyString(k)
                if declared.contains(key) { continue }
                _ = try walk(child, path + [key], depth: depth + 1)
            }
            return nil
        }
        // Any other object: class, arguments and state, tensors inside named by position/key.
        var members: [(String, JSONValue)] = [("__class__", .string(cls))]
        if !o.args.isEmpty, let a = try sequence(o.args, path + ["args"], depth: depth, deep: deep) { members.append(("__args__", a)) }
        if let st = stateEntries {
            for (k, value) in st {
                let key = ObjectTree.keyString(k)
                if let j = try walk(value, path + [key], depth: depth + 1) { members.append((key, j)) }
            }
        } else if let state = o.state, let j = try walk(state, path + ["state"], depth: depth + 1) {
            members.append(("__state__", j))
        }
        if !o.listItems.isEmpty, let j = try sequence(o.listItems, path, depth: depth, deep: deep) { members.append(("__items__", j)) }
        if !o.dictItems.isEmpty, let j = try mapping(o.dictItems, path, depth: depth, deep: deep) { members.append(("__entries__", j)) }
        return deep ? .string("<\(cls)>") : .object(members)
    }

    static func bytesJSON(_ b: [UInt8]) -> JSONValue {
        if b.count > 256 { return .object([("__bytes__", .int(Int64(b.count)))]) }
        var s = ""
        for x in b {
            let h = String(x, radix: 16)
            s += h.count == 1 ? "0" + h : h
        }
        return .object([("__bytes__", .string(s))])
    }

    /// A NumPy scalar (`numpy.core.multiarray.scalar(dtype, bytes)`) as a JSON number, when it is a plain one.
    static func numpyScalar(_ o: PickleObject) -> JSONValue? {
        guard o.module == "numpy.core.multiarray" || o.module == "numpy._core.multiarray",
              o.className.hasSuffix(".scalar"), o.args.count == 2,
              case .object(let dt) = o.args[0], dt.className.hasSuffix("dtype"),
              let code = dt.args.first?.stringValue else { return nil }
        var raw: [UInt8]
        switch o.args[1] {
        case .bytes(let b): raw = b
        case .string(let s): raw = s.unicodeScalars.map { UInt8(truncatingIfNeeded: $0.value) }
        default: return nil
        }
        if case .tuple(let st)? = dt.state, st.items.count > 1, st.items[1].stringValue == ">" { raw.reverse() }
        func le<T: FixedWidthInteger>(_: T.Type) -> T? {
            guard raw.count == MemoryLayout<T>.size else { return nil }
            var v: T = 0
            for (i, b) in raw.enumerated() { v |= T(truncatingIfNeeded: b) << (8 * i) }
            return v
        }
        switch code {
        case "f8": return le(UInt64.self).map { .double(Double(bitPattern: $0)) }
        case "f4": return le(UInt32.self).map { .double(Double(Float(bitPattern: $0))) }
        case "f2": return le(UInt16.self).map { .double(Double(FloatBits.f16ToF32($0))) }
        case "i8": return le(Int64.self).map { .int($0) }
        case "i4": return le(Int32.self).map { .int(Int64($0)) }
        case "i2": return le(Int16.self).map { .int(Int64($0)) }
        case "i1": return le(Int8.self).map { .int(Int64($0)) }
        case "u8": return le(UInt64.self).flatMap { Int64(exactly: $0) }.map { .int($0) }
        case "u4": return le(UInt32.self).map { .int(Int64($0)) }
        case "u2": return le(UInt16.self).map { .int(Int64($0)) }
        case "u1": return le(UInt8.self).map { .int(Int64($0)) }
        case "b1": return le(UInt8.self).map { .bool($0 != 0) }
        default: return nil
        }
    }
}

/// What a TorchScript class in an archive's `code/` records declares: for a Module, the lines
/// `__parameters__ = ["weight", "bias", ]` and `__buffers__ = [...]` that `torch.jit.save` writes.
struct ScriptClassMembers: Equatable {
    /// False for TorchScript classes that are not Modules (no `__parameters__` line).
    var isModule: Bool
    /// Parameter names in declaration order.
    var parameters: [String]
    /// Buffer names in declaration order.
    var buffers: [String]

    /// The classes defined in the Python source of one code record (`class C(...):` at the start of
    /// a line), with their members; the first definition of a name wins.
    static func parse(source: String) -> [String: ScriptClassMembers] {
        var classes: [String: ScriptClassMembers] = [:]
        var current: String?
        var members = ScriptClassMembers(isModule: false, parameters: [], buffers: [])
        func close() {
            if let c = current, classes[c] == nil { classes[c] = members }
        }
        for raw in source.split(separator: "\n", omittingEmptySubsequences: false) {
            let line = Substring(raw)
            if line.hasPrefix("class ") {
                close()
                let ident = line.dropFirst("class ".count).prefix { $0 != "(" && $0 != ":" && $0 != " " }
                current = String(ident)
                members = ScriptClassMembers(isModule: false, parameters: [], buffers: [])
                continue
            }
            guard current != nil else { continue }
            let trimmed = line.drop { $0 == " " }
            if trimmed.hasPrefix("__parameters__ = ") {
                members.isModule = true
                members.parameters = quoted(trimmed.dropFirst("__parameters__ = ".count))
            } else if trimmed.hasPrefix("__buffers__ = ") {
                members.buffers = quoted(trimmed.dropFirst("__buffers__ = ".count))
            }
        }
        close()
        return classes
    }

    /// The double-quoted strings of a list literal such as `["weight", "bias", ]`.
    static func quoted(_ s: Substring) -> [String] {
        var out: [String] = []
        var current: String?
        var escaped = false
        for ch in s {
            if var c = current {
                if escaped { c.append(ch); escaped = false; current = c; continue }
                if ch == "\\" { escaped = true; continue }
                if ch == "\"" { out.append(c); current = nil; continue }
                c.append(ch)
                current = c
            } else if ch == "\"" {
                current = ""
            }
        }
        return out
    }
}
