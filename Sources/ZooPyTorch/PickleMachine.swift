import ZooErrors

/// Limits that keep a hostile pickle from exhausting memory or the stack.
///
/// `maxBytes` is the memory budget of the whole pickle stage of one file: the values the machine
/// builds, its memo and the flattened object tree, estimated from what they cost here (about
/// 190 bytes per value measured; `PickleCost`). Counts alone let a 19 MB pickle cost 3.6 GB
/// before the tree cap refused it; the byte budget stops it near 1 GiB.
public struct PickleLimits: Sendable {
    /// Maximum number of values created (each opcode creates at most one).
    public var maxObjects: Int
    /// Maximum nesting (marks open at once, tuples inside tuples, containers when flattening).
    public var maxDepth: Int
    /// Maximum number of memo entries.
    public var maxMemo: Int
    /// Maximum estimated bytes of values, memo entries and object-tree nodes for one file.
    public var maxBytes: Int

    /// The defaults: 20 million values, depth 200, 10 million memo entries, 1 GiB.
    public init(maxObjects: Int = 20_000_000, maxDepth: Int = 200, maxMemo: Int = 10_000_000, maxBytes: Int = 1 << 30) {
        self.maxObjects = maxObjects
        self.maxDepth = maxDepth
        self.maxMemo = maxMemo
        self.maxBytes = maxBytes
    }
}

/// What the pickle stage's structures cost in memory, for `PickleLimits.maxBytes` (estimates
/// from measurement: a value on the stack and in its container, a memo entry, a tree node).
enum PickleCost {
    static let value = 192
    static let memoEntry = 96
    static let treeNode = 192

    /// The estimated bytes of a value: the fixed cost plus its own payload.
    static func of(_ v: PickleValue) -> Int {
        switch v {
        case .string(let s): return value + s.utf8.count
        case .bytes(let b): return value + b.count
        case .bigInt(let s): return value + s.utf8.count
        default: return value
        }
    }

    /// The error for a file past its budget.
    static func exceeded(_ limit: Int) -> ZooError {
        ZooError.bad("pickle: needs more than \(limit >> 20) MiB of memory for its values (estimated; memory bomb?)")
    }
}

/// A restricted pickle virtual machine (protocols 0 to 5).
///
/// It never imports, resolves or calls anything. Globals are pairs of names; calling one
/// yields a ``PickleObject`` that records the call. A small allowlist is interpreted:
/// the torch tensor rebuild functions (`torch._utils._rebuild_tensor`, `_v2`, `_v3`,
/// `_rebuild_parameter`, `_rebuild_parameter_with_state`, `torch._tensor._rebuild_from_type`
/// and `_v2`), `collections.OrderedDict`, `torch.Size`, `builtins.set`/`frozenset` and
/// `_codecs.encode`. Globals that can only serve to run code (`os.system`, `builtins.eval`,
/// `subprocess.*`, ...) make the whole pickle refused, as a clear signal of a hostile file.
///
/// Containers are reference types shared through the memo. Call ``release()`` when done with
/// the result: it tears the object graph down without recursion, so arbitrarily long chains
/// of nested lists cannot overflow the stack when freed.
package final class PickleMachine {
    /// The limits in force.
    package let limits: PickleLimits
    /// Called for PERSID / BINPERSID with the persistent id; returns the object it stands for.
    package var persistentLoad: ((PickleValue) throws -> PickleValue)?
    /// The pickle protocol: the highest PROTO opcode, else 1 when binary opcodes occur, else 0.
    package private(set) var protocolVersion = 0
    /// Every distinct global the pickle named, in first-seen order (`module.name`).
    package private(set) var globalsSeen: [String] = []

    private var stack: [PickleValue] = []
    private var marks: [Int] = []
    private var memo: [Int: PickleValue] = [:]
    private var created = 0
    /// Estimated bytes of everything this machine built (`PickleLimits.maxBytes`), across loads.
    package private(set) var estimatedBytes = 0
    private var lists: [PickleList] = []
    private var dicts: [PickleDict] = []
    private var objects: [PickleObject] = []
    private var seenGlobals = Set<String>()

    /// A machine with the given limits.
    package init(limits: PickleLimits = PickleLimits()) {
        self.limits = limits
    }

    deinit { release() }

    /// Empties every container the machine created, so the graph is freed without recursion.
    /// Values returned earlier become empty shells.
    package func release() {
        for l in lists { l.items = [] }
        for d in dicts { d.entries = []; d.attributes = nil }
        for o in objects { o.clear() }
        lists = []
        dicts = []
        objects = []
        stack = []
        memo = [:]
    }

    /// Runs one pickle from `reader`'s position up to and including its STOP opcode and
    /// returns the value it produces. The reader is left just after STOP.
    package func load(_ reader: inout ByteReader) throws -> PickleValue {
        stack = []
        marks = []
        memo = [:]
        created = 0
        while true {
            let at = reader.baseOffset + reader.position
            let op = try reader.u8("pickle opcode")
            if protocolVersion == 0, !PickleMachine.textOpcodes.contains(op) { protocolVersion = 1 }
            do {
                if let result = try step(op, &reader) { return result }
            } catch var e as ZooError {
                if e.offset == nil { e.offset = at }
                throw e
            }
        }
    }

    /// Convenience: runs a pickle held entirely in `bytes`.
    package func load(_ bytes: UnsafeRawBufferPointer) throws -> PickleValue {
        var r = ByteReader(bytes)
        return try load(&r)
    }

    /// The opcodes of protocol 0; any other opcode means at least protocol 1.
    static let textOpcodes: Set<UInt8> = Set("(.012FILNPRSVabcdgilpst".utf8)

    // MARK: - Helpers

    private func fail(_ m: String) -> ZooError { ZooError.bad("pickle: \(m)") }

    private func push(_ v: PickleValue) throws {
        created += 1
        if created > limits.maxObjects {
            throw fail("more than \(limits.maxObjects) values (memo or object bomb?)")
        }
        try charge(PickleCost.of(v))
        stack.append(v)
    }

    private func charge(_ bytes: Int) throws {
        estimatedBytes += bytes
        if estimatedBytes > limits.maxBytes { throw PickleCost.exceeded(limits.maxBytes) }
    }

    private func pop() throws -> PickleValue {
        if let m = marks.last, stack.count <= m { throw fail("stack underflow (pop past a mark)") }
        guard let v = stack.popLast() else { throw fail("stack underflow") }
        return v
    }

    private func top() throws -> PickleValue {
        if let m = marks.last, stack.count <= m { throw fail("stack underflow (top past a mark)") }
        guard let v = stack.last else { throw fail("stack underflow") }
        return v
    }

    private func popMark() throws -> [PickleValue] {
        guard let m = marks.popLast() else { throw fail("no MARK on the stack") }
        let items = Array(stack[m...])
        stack.removeSubrange(m...)
        return items
    }

    private func newList(_ items: [PickleValue] = []) -> PickleList {
        let l = PickleList(items)
        lists.append(l)
        return l
    }

    private func newDict() -> PickleDict {
        let d = PickleDict()
        dicts.append(d)
        return d
    }

    private func newTuple(_ items: [PickleValue]) throws -> PickleValue {
        let t = PickleTuple(items)
        if t.depth > limits.maxDepth { throw fail("tuples nested deeper than \(limits.maxDepth)") }
        return .tuple(t)
    }

    private func memoPut(_ index: Int, _ v: PickleValue) throws {
        guard index >= 0 else { throw fail("negative memo index \(index)") }
        if memo[index] == nil {
            if memo.count >= limits.maxMemo { throw fail("more than \(limits.maxMemo) memo entries") }
            try charge(PickleCost.memoEntry)
        }
        memo[index] = v
    }

    private func memoGet(_ index: Int) throws -> PickleValue {
        guard let v = memo[index] else { throw fail("memo entry \(index) is not defined") }
        return v
    }

    private func line(_ r: inout ByteReader, _ what: String) throws -> UnsafeRawBufferPointer {
        let start = r.position
        var i = start
        while i < r.bytes.count, r.bytes[i] != 0x0A { i += 1 }
        guard i < r.bytes.count else { throw ZooError.bad("truncated: \(what) has no end of line", offset: r.baseOffset + start) }
        let text = UnsafeRawBufferPointer(rebasing: r.bytes[start..<i])
        r.position = i + 1
        return text
    }

    private func lineString(_ r: inout ByteReader, _ what: String) throws -> String {
        let b = try line(&r, what)
        guard let s = String(validating: b, as: UTF8.self) else { throw fail("\(what) is not valid text") }
        return s
    }

    private func utf8(_ b: UnsafeRawBufferPointer, _ what: String) throws -> String {
        guard let s = String(validating: b, as: UTF8.self) else { throw fail("\(what) is not valid UTF-8") }
        return s
    }

    private func length<T: FixedWidthInteger>(_ r: inout ByteReader, _ type: T.Type, _ what: String) throws -> Int {
        let v = try r.le(T.self, "\(what) length")
        guard v >= 0, let n = Int(exactly: v), n <= r.remaining else {
            throw ZooError.bad("truncated: \(what) claims \(v) bytes, \(r.remaining) left", offset: r.baseOffset + r.position)
        }
        return n
    }

    // MARK: - The opcodes

    // swiftlint:disable:next cyclomatic_complexity function_body_length
    private func step(_ op: UInt8, _ r: inout ByteReader) throws -> PickleValue? {
        switch op {
        case 0x80: // PROTO
            let v = Int(try r.u8("protocol"))
            guard v <= 5 else { throw ZooError(.unsupported, "pickle protocol \(v) is newer than 5") }
            protocolVersion = max(protocolVersion, v)
        case 0x95: // FRAME: the length of the frame that follows, which must lie inside the bytes left
            _ = try length(&r, UInt64.self, "FRAME")
        case 0x2E: // STOP
            let v = try pop()
            return v
        case 0x28: // MARK
            if marks.count >= limits.maxDepth { throw fail("more than \(limits.maxDepth) open marks") }
            marks.append(stack.count)
        case 0x30: _ = try pop() // POP
        case 0x31: _ = try popMark() // POP_MARK
        case 0x32: try push(try top()) // DUP

        // Constants
        case 0x4E: try push(.none) // NONE
        case 0x88: try push(.bool(true)) // NEWTRUE
        case 0x89: try push(.bool(false)) // NEWFALSE
        case 0x4A: try push(.int(Int64(try r.le(Int32.self, "BININT")))) // BININT
        case 0x4B: try push(.int(Int64(try r.u8("BININT1")))) // BININT1
        case 0x4D: try push(.int(Int64(try r.le(UInt16.self, "BININT2")))) // BININT2
        case 0x49: // INT
            let s = try lineString(&r, "INT")
            if s == "00" { try push(.bool(false)) } else if s == "01" { try push(.bool(true)) } else {
                guard let v = Int64(s.trimmingSpaces) else { throw fail("INT \"\(s.prefix(40))\" is not an integer") }
                try push(.int(v))
            }
        case 0x4C: // LONG
            var s = try lineString(&r, "LONG").trimmingSpaces
            if s.hasSuffix("L") { s.removeLast() }
            if let v = Int64(s) { try push(.int(v)) } else {
                guard !s.isEmpty, s.drop(while: { $0 == "-" }).allSatisfy(\.isNumber) else { throw fail("LONG \"\(s.prefix(40))\" is not an integer") }
                try push(.bigInt(s))
            }
        case 0x8A: // LONG1
            let n = Int(try r.u8("LONG1 length"))
            try push(decodeLong(try r.take(n, "LONG1")))
        case 0x8B: // LONG4
            let n = try length(&r, Int32.self, "LONG4")
            try push(decodeLong(try r.take(n, "LONG4")))
        case 0x46: // FLOAT
            let s = try lineString(&r, "FLOAT").trimmingSpaces
            guard let d = Double(s) else { throw fail("FLOAT \"\(s.prefix(40))\" is not a number") }
            try push(.float(d))
        case 0x47: // BINFLOAT
            try push(.float(Double(bitPattern: try r.be(UInt64.self, "BINFLOAT"))))

        // Strings and bytes
        case 0x53: // STRING
            try push(try decodeQuoted(try line(&r, "STRING")))
        case 0x54: // BINSTRING
            let n = try length(&r, Int32.self, "BINSTRING")
            try push(latin1OrUTF8(try r.take(n, "BINSTRING")))
        case 0x55: // SHORT_BINSTRING
            let n = Int(try r.u8("SHORT_BINSTRING length"))
            try push(latin1OrUTF8(try r.take(n, "SHORT_BINSTRING")))
        case 0x56: // UNICODE
            try push(.string(decodeRawUnicodeEscape(try line(&r, "UNICODE"))))
        case 0x58: // BINUNICODE
            let n = try length(&r, UInt32.self, "BINUNICODE")
            try push(.string(try utf8(try r.take(n, "BINUNICODE"), "BINUNICODE")))
        case 0x8C: // SHORT_BINUNICODE
            let n = Int(try r.u8("SHORT_BINUNICODE length"))
            try push(.string(try utf8(try r.take(n, "SHORT_BINUNICODE"), "SHORT_BINUNICODE")))
        case 0x8D: // BINUNICODE8
            let n = try length(&r, UInt64.self, "BINUNICODE8")
            try push(.string(try utf8(try r.take(n, "BINUNICODE8"), "BINUNICODE8")))
        case 0x42: // BINBYTES
            let n = try length(&r, UInt32.self, "BINBYTES")
            try push(.bytes(Array(try r.take(n, "BINBYTES"))))
        case 0x43: // SHORT_BINBYTES
            let n = Int(try r.u8("SHORT_BINBYTES length"))
            try push(.bytes(Array(try r.take(n, "SHORT_BINBYTES"))))
        case 0x8E, 0x96: // BINBYTES8, BYTEARRAY8
            let n = try length(&r, UInt64.self, "BINBYTES8")
            try push(.bytes(Array(try r.take(n, "BINBYTES8"))))
        case 0x97: // NEXT_BUFFER
            throw ZooError(.unsupported, "pickle: out-of-band buffers (NEXT_BUFFER) are not supported")
        case 0x98: // READONLY_BUFFER
            _ = try top()

        // Tuples
        case 0x29: try push(try newTuple([])) // EMPTY_TUPLE
        case 0x74: try push(try newTuple(try popMark())) // TUPLE
        case 0x85: // TUPLE1
            let a = try pop()
            try push(try newTuple([a]))
        case 0x86: // TUPLE2
            let b = try pop(), a = try pop()
            try push(try newTuple([a, b]))
        case 0x87: // TUPLE3
            let c = try pop(), b = try pop(), a = try pop()
            try push(try newTuple([a, b, c]))

        // Lists
        case 0x5D: try push(.list(newList())) // EMPTY_LIST
        case 0x6C: try push(.list(newList(try popMark()))) // LIST
        case 0x61: // APPEND
            let v = try pop()
            try append(to: try top(), [v])
        case 0x65: // APPENDS
            let items = try popMark()
            try append(to: try top(), items)

        // Dicts
        case 0x7D: try push(.dict(newDict())) // EMPTY_DICT
        case 0x64: // DICT
            let items = try popMark()
            guard items.count % 2 == 0 else { throw fail("DICT with an odd number of items") }
            let d = newDict()
            for i in stride(from: 0, to: items.count, by: 2) { d.set(items[i], items[i + 1]) }
            try push(.dict(d))
        case 0x73: // SETITEM
            let v = try pop(), k = try pop()
            try setItems(on: try top(), [k, v])
        case 0x75: // SETITEMS
            let items = try popMark()
            guard items.count % 2 == 0 else { throw fail("SETITEMS with an odd number of items") }
            try setItems(on: try top(), items)

        // Sets
        case 0x8F: try push(.list(newList())) // EMPTY_SET
        case 0x90: // ADDITEMS
            let items = try popMark()
            try append(to: try top(), items)
        case 0x91: try push(.list(newList(try popMark()))) // FROZENSET

        // Memo
        case 0x67: // GET
            guard let i = Int(try lineString(&r, "GET").trimmingSpaces) else { throw fail("GET index is not an integer") }
            try push(try memoGet(i))
        case 0x68: try push(try memoGet(Int(try r.u8("BINGET")))) // BINGET
        case 0x6A: try push(try memoGet(Int(try r.le(UInt32.self, "LONG_BINGET")))) // LONG_BINGET
        case 0x70: // PUT
            guard let i = Int(try lineString(&r, "PUT").trimmingSpaces) else { throw fail("PUT index is not an integer") }
            try memoPut(i, try top())
        case 0x71: try memoPut(Int(try r.u8("BINPUT")), try top()) // BINPUT
        case 0x72: try memoPut(Int(try r.le(UInt32.self, "LONG_BINPUT")), try top()) // LONG_BINPUT
        case 0x94: try memoPut(memo.count, try top()) // MEMOIZE

        // Globals and calls
        case 0x63: // GLOBAL
            let module = try lineString(&r, "GLOBAL module")
            let name = try lineString(&r, "GLOBAL name")
            try push(try global(module, name))
        case 0x93: // STACK_GLOBAL
            let name = try pop(), module = try pop()
            guard let m = module.stringValue, let n = name.stringValue else { throw fail("STACK_GLOBAL needs two strings") }
            try push(try global(m, n))
        case 0x69: // INST
            let module = try lineString(&r, "INST module")
            let name = try lineString(&r, "INST name")
            let cls = try global(module, name)
            let args = try popMark()
            try push(try call(cls, args))
        case 0x6F: // OBJ
            var items = try popMark()
            guard !items.isEmpty else { throw fail("OBJ without a class") }
            let cls = items.removeFirst()
            try push(try call(cls, items))
        case 0x81: // NEWOBJ
            let args = try pop(), cls = try pop()
            guard let a = args.sequence else { throw fail("NEWOBJ arguments are not a tuple") }
            try push(try call(cls, a))
        case 0x92: // NEWOBJ_EX
            let kwargs = try pop(), args = try pop(), cls = try pop()
            guard let a = args.sequence else { throw fail("NEWOBJ_EX arguments are not a tuple") }
            let v = try call(cls, a)
            if case .object(let o) = v, case .dict = kwargs { o.state = kwargs }
            try push(v)
        case 0x52: // REDUCE
            let args = try pop(), callee = try pop()
            guard let a = args.sequence else { throw fail("REDUCE arguments are not a tuple (\(args.kind))") }
            try push(try call(callee, a))
        case 0x62: // BUILD
            let state = try pop()
            try build(try top(), state)
        case 0x82, 0x83, 0x84: // EXT1, EXT2, EXT4
            throw ZooError(.unsupported, "pickle: extension-registry opcodes (EXT1/2/4) are not supported")

        // Persistent ids
        case 0x50: // PERSID
            let id = PickleValue.string(try lineString(&r, "PERSID"))
            try push(try persistent(id))
        case 0x51: // BINPERSID
            let id = try pop()
            try push(try persistent(id))

        default:
            throw fail("unknown opcode 0x\(String(op, radix: 16))")
        }
        return nil
    }

    private func persistent(_ id: PickleValue) throws -> PickleValue {
        guard let persistentLoad else { throw fail("persistent id found but the file format defines none here") }
        return try persistentLoad(id)
    }

    private func append(to target: PickleValue, _ items: [PickleValue]) throws {
        switch target {
        case .list(let l): l.items.append(contentsOf: items)
        case .object(let o): o.listItems.append(contentsOf: items)
        default: throw fail("APPEND to a \(target.kind)")
        }
    }

    private func setItems(on target: PickleValue, _ items: [PickleValue]) throws {
        switch target {
        case .dict(let d):
            for i in stride(from: 0, to: items.count, by: 2) { d.set(items[i], items[i + 1]) }
        case .object(let o):
            for i in stride(from: 0, to: items.count, by: 2) { o.dictItems.append((items[i], items[i + 1])) }
        default: throw fail("SETITEM on a \(target.kind)")
        }
    }

    private func build(_ target: PickleValue, _ state: PickleValue) throws {
        switch target {
        case .object(let o): o.state = state
        case .dict(let d): d.attributes = state
        case .tensor, .list, .storage: break // tensor attributes (requires_grad, hooks...) and list states are ignored
        default: throw fail("BUILD on a \(target.kind)")
        }
    }

    // MARK: - Globals

    /// Modules whose globals can only serve to run code or touch the system.
    static let deniedModules: [String] = [
        "os", "posix", "nt", "subprocess", "sys", "shutil", "socket", "pty", "importlib", "runpy", "pickle", "_pickle",
        "marshal", "ctypes", "code", "codeop", "commands", "webbrowser", "multiprocessing", "asyncio", "signal",
        "_thread", "tempfile", "pip", "setuptools", "distutils", "http", "urllib", "ftplib", "smtplib", "telnetlib",
        "zipimport", "pkgutil", "imp", "bdb", "pdb", "trace", "timeit", "profile", "cProfile", "dill", "cloudpickle",
        "torch.hub", "torch.serialization", "_posixsubprocess", "posixpath.system",
    ]
    /// Builtins that can only serve to run code or touch the system.
    static let deniedBuiltins: Set<String> = [
        "eval", "exec", "compile", "open", "getattr", "setattr", "delattr", "globals", "locals", "vars",
        "input", "breakpoint", "exit", "quit", "help", "execfile", "file", "reload", "apply",
    ]

    static func isDenied(_ module: String, _ name: String) -> Bool {
        if module == "builtins" || module == "__builtin__" || module == "__builtins__" {
            return deniedBuiltins.contains(name) || name.hasPrefix("_")
        }
        for m in deniedModules where module == m || module.hasPrefix(m + ".") { return true }
        return false
    }

    private func global(_ module: String, _ name: String) throws -> PickleValue {
        let full = "\(module).\(name)"
        if PickleMachine.isDenied(module, name) {
            throw ZooError.bad("refusing a pickle that references \(full) (a way to run code; nothing was executed)")
        }
        if seenGlobals.insert(full).inserted { globalsSeen.append(full) }
        return .global(module: module, name: name)
    }

    // MARK: - Calls (interpreted for the allowlist, recorded otherwise)

    private func call(_ callee: PickleValue, _ args: [PickleValue]) throws -> PickleValue {
        if case .global(let module, let name) = callee {
            if let v = try interpret(module, name, args) { return v }
        }
        let o = PickleObject(callee: callee, args: args)
        objects.append(o)
        return .object(o)
    }

    private func interpret(_ module: String, _ name: String, _ args: [PickleValue]) throws -> PickleValue? {
        switch (module, name) {
        case ("collections", "OrderedDict"), ("builtins", "dict"), ("__builtin__", "dict"):
            let d = newDict()
            if let first = args.first {
                guard let pairs = first.sequence else {
                    if case .dict(let src) = first { for (k, v) in src.entries { d.set(k, v) }; return .dict(d) }
                    throw fail("\(module).\(name) argument is a \(first.kind)")
                }
                for p in pairs {
                    guard let kv = p.sequence, kv.count == 2 else { throw fail("\(module).\(name) item is not a pair") }
                    d.set(kv[0], kv[1])
                }
            }
            return .dict(d)
        case ("torch", "Size"):
            guard let first = args.first else { return try newTuple([]) }
            guard let items = first.sequence else { throw fail("torch.Size argument is a \(first.kind)") }
            return try newTuple(items)
        case ("builtins", "set"), ("builtins", "frozenset"), ("__builtin__", "set"), ("__builtin__", "frozenset"):
            return .list(newList(args.first?.sequence ?? []))
        case ("_codecs", "encode"):
            guard let s = args.first?.stringValue else { return nil }
            return .bytes(s.unicodeScalars.map { UInt8(truncatingIfNeeded: $0.value) })
        case ("torch._utils", "_rebuild_tensor"):
            return try rebuildTensor(args, version: 1)
        case ("torch._utils", "_rebuild_tensor_v2"):
            return try rebuildTensor(args, version: 2)
        case ("torch._utils", "_rebuild_tensor_v3"):
            return try rebuildTensor(args, version: 3)
        case ("torch._utils", "_rebuild_parameter"), ("torch._utils", "_rebuild_parameter_with_state"):
            guard let data = args.first else { throw fail("\(name) without arguments") }
            guard case .tensor = data else { throw fail("\(name) of a \(data.kind)") }
            return data
        case ("torch._tensor", "_rebuild_from_type_v2"), ("torch._tensor", "_rebuild_from_type"):
            guard args.count >= 3, let inner = args[2].sequence else { throw fail("\(name) needs (function, type, args, ...)") }
            guard case .global(let m, let n) = args[0], let v = try interpret(m, n, inner) else {
                throw ZooError(.unsupported, "pickle: \(name) wraps \(args[0].kind), which is not a tensor rebuild function")
            }
            return v
        default:
            return nil
        }
    }

    private func ints(_ v: PickleValue, _ what: String) throws -> [Int] {
        guard let items = v.sequence else { throw fail("tensor \(what) is a \(v.kind), not a tuple") }
        guard items.count <= 64 else { throw fail("tensor \(what) has \(items.count) dimensions (at most 64)") }
        return try items.map {
            guard case .int(let i) = $0, let n = Int(exactly: i) else { throw fail("tensor \(what) holds a \($0.kind)") }
            return n
        }
    }

    private func rebuildTensor(_ args: [PickleValue], version: Int) throws -> PickleValue {
        let needed = version == 3 ? 7 : (version == 2 ? 6 : 4)
        guard args.count >= needed else { throw fail("tensor rebuild needs \(needed) arguments, got \(args.count)") }
        guard case .storage(let view) = args[0] else { throw fail("tensor rebuilt from a \(args[0].kind), not a storage") }
        guard case .int(let off) = args[1], let offset = Int(exactly: off), offset >= 0 else {
            throw fail("tensor storage offset is not a non-negative integer")
        }
        let shape = try ints(args[2], "size")
        let strides = try ints(args[3], "stride")
        guard shape.count == strides.count else { throw fail("tensor size \(shape) and stride \(strides) differ in rank") }
        for d in shape where d < 0 { throw fail("tensor size \(shape) has a negative dimension") }
        for s in strides where s < 0 { throw fail("tensor stride \(strides) is negative") }
        var dtype = view.dtype
        if version == 3 {
            guard case .global(let m, let n) = args[6], m == "torch", let d = TorchDType.fromTorchName(n) else {
                throw ZooError(.unsupported, "pickle: tensor dtype \(args[6].kind) is not a known torch dtype")
            }
            dtype = d
        }
        if !view.untyped, dtype != view.dtype {
            throw fail("tensor dtype \(dtype.torchName) differs from its storage's \(view.dtype.torchName)")
        }
        return .tensor(TorchTensor(storage: view, dtype: dtype, offset: offset, shape: shape, strides: strides))
    }

    // MARK: - Text decoding

    private func decodeLong(_ b: UnsafeRawBufferPointer) -> PickleValue {
        if b.isEmpty { return .int(0) }
        if b.count <= 8 {
            var v: UInt64 = 0
            for i in stride(from: b.count - 1, through: 0, by: -1) { v = v << 8 | UInt64(b[i]) }
            let shift = UInt64(64 - 8 * b.count)
            // Sign-extend from the top bit of the last byte.
            let signed = b.count == 8 ? Int64(bitPattern: v) : Int64(bitPattern: v << shift) >> Int64(shift)
            return .int(signed)
        }
        // Too big for Int64: keep the two's-complement bytes as hex text, most significant first.
        var s = "0x"
        for byte in b.reversed() {
            let h = String(byte, radix: 16)
            s += h.count == 1 ? "0" + h : h
        }
        return .bigInt(s)
    }

    private func latin1OrUTF8(_ b: UnsafeRawBufferPointer) -> PickleValue {
        if let s = String(validating: b, as: UTF8.self) { return .string(s) }
        return .bytes(Array(b))
    }

    /// A Python 2 `repr` of a byte string: quoted, with backslash escapes.
    private func decodeQuoted(_ b: UnsafeRawBufferPointer) throws -> PickleValue {
        guard b.count >= 2, let q = b.first, q == 0x27 || q == 0x22, b[b.count - 1] == q else {
            throw fail("STRING is not quoted")
        }
        var out: [UInt8] = []
        var i = 1
        let end = b.count - 1
        while i < end {
            let c = b[i]
            if c != 0x5C { out.append(c); i += 1; continue }
            i += 1
            guard i < end else { throw fail("STRING ends inside an escape") }
            let e = b[i]
            i += 1
            switch e {
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "a"): out.append(0x07)
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "v"): out.append(0x0B)
            case UInt8(ascii: "x"):
                guard i + 2 <= end, let v = UInt8(String(decoding: UnsafeRawBufferPointer(rebasing: b[i..<(i + 2)]), as: UTF8.self), radix: 16) else {
                    throw fail("STRING has a bad \\x escape")
                }
                out.append(v)
                i += 2
            case UInt8(ascii: "0")...UInt8(ascii: "7"):
                var v = Int(e - 0x30)
                var k = 0
                while k < 2, i < end, (0x30...0x37).contains(b[i]) { v = v * 8 + Int(b[i] - 0x30); i += 1; k += 1 }
                out.append(UInt8(truncatingIfNeeded: v))
            default: out.append(e) // \\ \' \" and unknown escapes keep the character
            }
        }
        return out.withUnsafeBytes { latin1OrUTF8($0) }
    }

    /// Python's raw-unicode-escape: `\uXXXX` and `\UXXXXXXXX` escapes, other bytes are Latin-1.
    private func decodeRawUnicodeEscape(_ b: UnsafeRawBufferPointer) throws -> String {
        var scalars = String.UnicodeScalarView()
        var i = 0
        while i < b.count {
            let c = b[i]
            if c == 0x5C, i + 1 < b.count, b[i + 1] == UInt8(ascii: "u") || b[i + 1] == UInt8(ascii: "U") {
                let n = b[i + 1] == UInt8(ascii: "u") ? 4 : 8
                guard i + 2 + n <= b.count,
                      let v = UInt32(String(decoding: UnsafeRawBufferPointer(rebasing: b[(i + 2)..<(i + 2 + n)]), as: UTF8.self), radix: 16),
                      let u = Unicode.Scalar(v) else { throw fail("UNICODE has a bad escape") }
                scalars.append(u)
                i += 2 + n
            } else {
                scalars.append(Unicode.Scalar(c))
                i += 1
            }
        }
        return String(scalars)
    }
}

extension String {
    var trimmingSpaces: String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\r" || f == "\t" { s.removeFirst() }
        while let l = s.last, l == " " || l == "\r" || l == "\t" { s.removeLast() }
        return String(s)
    }
}
