import ZooTensor

/// A value produced by the restricted pickle machine.
///
/// Nothing in a pickle is ever resolved or called: a global is only a pair of names, and
/// calling one (REDUCE, NEWOBJ, INST, OBJ) yields an opaque ``PickleObject`` that records
/// what would have been called with which arguments. The few torch rebuild functions on the
/// allowlist are interpreted into ``TorchTensor`` values instead.
///
/// Mutable containers (lists, dicts, objects) are reference types so memo entries are shared,
/// exactly as in Python, never deep-copied.
package enum PickleValue {
    /// `None`.
    case none
    /// `True` / `False`.
    case bool(Bool)
    /// An integer that fits in 64 bits.
    case int(Int64)
    /// A larger integer, as text (decimal, or `0x`-prefixed two's-complement hex from LONG1/LONG4).
    case bigInt(String)
    /// A float.
    case float(Double)
    /// A text string.
    case string(String)
    /// A byte string.
    case bytes([UInt8])
    /// A tuple (immutable).
    case tuple(PickleTuple)
    /// A list (also sets and frozensets, in insertion order).
    case list(PickleList)
    /// A dict or `collections.OrderedDict`, keys in insertion order.
    case dict(PickleDict)
    /// A reference to a global (`module.name`), never resolved.
    case global(module: String, name: String)
    /// The opaque result of calling or instantiating something that is not on the allowlist.
    case object(PickleObject)
    /// A storage returned by the persistent-id hook.
    case storage(TorchStorageView)
    /// A tensor rebuilt by an allowlisted torch function.
    case tensor(TorchTensor)

    /// A short description for error messages.
    package var kind: String {
        switch self {
        case .none: return "None"
        case .bool: return "bool"
        case .int, .bigInt: return "int"
        case .float: return "float"
        case .string: return "str"
        case .bytes: return "bytes"
        case .tuple: return "tuple"
        case .list: return "list"
        case .dict: return "dict"
        case .global(let m, let n): return "global \(m).\(n)"
        case .object(let o): return "object \(o.className)"
        case .storage: return "storage"
        case .tensor: return "tensor"
        }
    }

    /// The string, when this is one.
    package var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    /// The integer, when this is one that fits `Int`.
    package var intValue: Int? {
        switch self {
        case .int(let i): return Int(exactly: i)
        case .bool(let b): return b ? 1 : 0
        default: return nil
        }
    }

    /// The elements of a tuple or list.
    package var sequence: [PickleValue]? {
        switch self {
        case .tuple(let t): return t.items
        case .list(let l): return l.items
        default: return nil
        }
    }
}

/// An immutable tuple. Its `depth` counts directly nested tuples so nesting stays bounded.
package final class PickleTuple {
    /// The elements.
    package let items: [PickleValue]
    /// Nesting depth through tuples (1 for a tuple holding no tuple).
    package let depth: Int

    init(_ items: [PickleValue]) {
        self.items = items
        var d = 0
        for v in items { if case .tuple(let t) = v { d = max(d, t.depth) } }
        depth = d + 1
    }
}

/// A mutable list (also used for sets).
package final class PickleList {
    /// The elements.
    package internal(set) var items: [PickleValue]

    init(_ items: [PickleValue] = []) { self.items = items }
}

/// A mutable dict; keys keep insertion order, a repeated key replaces the earlier value.
package final class PickleDict {
    /// The entries in insertion order.
    package internal(set) var entries: [(key: PickleValue, value: PickleValue)] = []
    /// Attributes set by BUILD (an OrderedDict's `_metadata`, for instance); never flattened.
    package internal(set) var attributes: PickleValue?

    init() {}

    func set(_ key: PickleValue, _ value: PickleValue) {
        if let k = PickleDict.hashKey(key), let i = index[k] {
            entries[i].value = value
            return
        }
        if let k = PickleDict.hashKey(key) { index[k] = entries.count }
        entries.append((key, value))
    }

    private var index: [String: Int] = [:]

    static func hashKey(_ v: PickleValue) -> String? {
        switch v {
        case .string(let s): return "s" + s
        case .int(let i): return "i\(i)"
        case .bool(let b): return "i\(b ? 1 : 0)"
        case .bigInt(let s): return "b" + s
        case .none: return "n"
        default: return nil
        }
    }
}

/// The opaque result of calling or instantiating a global that is not interpreted.
package final class PickleObject {
    /// What was called (normally a `.global`).
    package let callee: PickleValue
    /// The positional arguments.
    package internal(set) var args: [PickleValue]
    /// The state applied by BUILD, if any.
    package internal(set) var state: PickleValue?
    /// Items appended by APPEND/APPENDS (list subclasses).
    package internal(set) var listItems: [PickleValue] = []
    /// Items set by SETITEM/SETITEMS (dict subclasses).
    package internal(set) var dictItems: [(key: PickleValue, value: PickleValue)] = []

    init(callee: PickleValue, args: [PickleValue]) {
        self.callee = callee
        self.args = args
    }

    /// `module.name` of the callee, or a description when the callee is not a global.
    package var className: String {
        if case .global(let m, let n) = callee { return "\(m).\(n)" }
        if case .object(let o) = callee { return o.className + "()" }
        return callee.kind
    }

    /// The module of the callee's global, or "".
    package var module: String {
        if case .global(let m, _) = callee { return m }
        return ""
    }

    func clear() {
        args = []
        listItems = []
        dictItems = []
        state = nil
    }
}
