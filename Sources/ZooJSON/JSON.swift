import ZooErrors
/// A JSON value with ordered object keys, and a strict parser that reports duplicate keys.
///
/// Checkpoint headers and metadata use it; `JSONSerialization` silently keeps the last of
/// duplicate keys, which safetensors validation must refuse.
public enum JSONValue: Sendable, Equatable, CustomStringConvertible {
    /// `null`.
    case null
    /// `true` / `false`.
    case bool(Bool)
    /// An integer that fits Int64 exactly.
    case int(Int64)
    /// Any other number.
    case double(Double)
    /// A string.
    case string(String)
    /// An array.
    case array([JSONValue])
    /// An object; keys keep their order.
    case object([(String, JSONValue)])

    /// Equality; objects compare in order.
    public static func == (a: JSONValue, b: JSONValue) -> Bool {
        switch (a, b) {
        case (.null, .null): return true
        case let (.bool(x), .bool(y)): return x == y
        case let (.int(x), .int(y)): return x == y
        case let (.double(x), .double(y)): return x == y
        case let (.string(x), .string(y)): return x == y
        case let (.array(x), .array(y)): return x == y
        case let (.object(x), .object(y)):
            return x.count == y.count && zip(x, y).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        default: return false
        }
    }

    /// The member named `key` of an object.
    public subscript(key: String) -> JSONValue? {
        if case .object(let members) = self { return members.first { $0.0 == key }?.1 }
        return nil
    }

    /// The string, when this is one.
    public var stringValue: String? { if case .string(let s) = self { return s }; return nil }
    /// The integer, when this is an integer (or a double with an integral value).
    public var intValue: Int? {
        switch self {
        case .int(let i): return Int(exactly: i)
        case .double(let d): return Int(exactly: d)
        default: return nil
        }
    }
    /// The number as Double.
    public var doubleValue: Double? {
        switch self {
        case .int(let i): return Double(i)
        case .double(let d): return d
        default: return nil
        }
    }
    /// The bool, when this is one.
    public var boolValue: Bool? { if case .bool(let b) = self { return b }; return nil }
    /// The elements, when this is an array.
    public var arrayValue: [JSONValue]? { if case .array(let a) = self { return a }; return nil }
    /// The members, when this is an object.
    public var objectValue: [(String, JSONValue)]? { if case .object(let o) = self { return o }; return nil }

    /// Compact JSON text. Object keys keep their order; `sortedKeys` sorts them.
    public func serialized(sortedKeys: Bool = false, pretty: Bool = false) -> String {
        var out = ""
        write(into: &out, sortedKeys: sortedKeys, pretty: pretty, indent: 0)
        return out
    }

    /// Compact JSON text.
    public var description: String { serialized() }

    private func write(into out: inout String, sortedKeys: Bool, pretty: Bool, indent: Int) {
        let nl = pretty ? "\n" : ""
        let pad = { (n: Int) in pretty ? String(repeating: "  ", count: n) : "" }
        switch self {
        case .null: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .int(let i): out += String(i)
        case .double(let d):
            if d.isFinite {
                if d == d.rounded(), abs(d) < 1e15 { out += String(Int64(d)) + ".0" } else { out += "\(d)" }
            } else { out += "null" }
        case .string(let s): JSONValue.writeString(s, into: &out)
        case .array(let a):
            if a.isEmpty { out += "[]"; return }
            out += "[" + nl
            for (i, v) in a.enumerated() {
                out += pad(indent + 1)
                v.write(into: &out, sortedKeys: sortedKeys, pretty: pretty, indent: indent + 1)
                if i + 1 < a.count { out += "," }
                out += nl
            }
            out += pad(indent) + "]"
        case .object(let o):
            if o.isEmpty { out += "{}"; return }
            let members = sortedKeys ? o.sorted { $0.0 < $1.0 } : o
            out += "{" + nl
            for (i, (k, v)) in members.enumerated() {
                out += pad(indent + 1)
                JSONValue.writeString(k, into: &out)
                out += pretty ? ": " : ":"
                v.write(into: &out, sortedKeys: sortedKeys, pretty: pretty, indent: indent + 1)
                if i + 1 < members.count { out += "," }
                out += nl
            }
            out += pad(indent) + "}"
        }
    }

    private static func writeString(_ s: String, into out: inout String) {
        out += "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if String.isEscapedOnTerminal(u) {
                    // C0 as JSON requires; DEL and C1 too, so JSON printed on a terminal is safe.
                    let hex = String(u.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(u)
                }
            }
        }
        out += "\""
    }

    /// Default cap on the number of values (scalars, arrays, objects) in one parsed document.
    ///
    /// A value costs far more memory parsed than as text (`[0],` is 4 bytes of text but about
    /// 80 bytes as `JSONValue`), so the text length alone does not bound memory: 4 Mi values
    /// keep a hostile document under roughly 400 MB, while a safetensors header with 100,000
    /// tensors has about 1 Mi values.
    public static let defaultMaxValues = 1 << 22

    /// Parses JSON text strictly (RFC 8259): one value, no trailing data, no duplicate
    /// object keys, nesting at most `maxDepth`, at most `maxValues` values. Errors carry the byte offset.
    public static func parse(_ bytes: UnsafeRawBufferPointer, maxDepth: Int = 64,
                             maxValues: Int = JSONValue.defaultMaxValues) throws -> JSONValue {
        var p = JSONParser(bytes: bytes, maxDepth: maxDepth, maxValues: maxValues)
        p.skipSpace()
        let v = try p.value(depth: 0)
        p.skipSpace()
        if p.pos != bytes.count { throw ZooError.bad("JSON: unexpected data after the value", offset: p.pos) }
        return v
    }

    /// Parses JSON text from a string.
    public static func parse(_ text: String, maxDepth: Int = 64, maxValues: Int = JSONValue.defaultMaxValues) throws -> JSONValue {
        var copy = text
        return try copy.withUTF8 { try parse(UnsafeRawBufferPointer($0), maxDepth: maxDepth, maxValues: maxValues) }
    }
}

private struct JSONParser {
    let bytes: UnsafeRawBufferPointer
    let maxDepth: Int
    let maxValues: Int
    var values = 0
    var pos = 0

    init(bytes: UnsafeRawBufferPointer, maxDepth: Int, maxValues: Int) {
        self.bytes = bytes
        self.maxDepth = maxDepth
        self.maxValues = maxValues
    }

    func fail(_ m: String) -> ZooError { ZooError.bad("JSON: \(m)", offset: pos) }

    mutating func skipSpace() {
        while pos < bytes.count {
            let c = bytes[pos]
            if c == 0x20 || c == 0x0A || c == 0x0D || c == 0x09 { pos += 1 } else { break }
        }
    }

    mutating func expect(_ literal: String) throws {
        for b in literal.utf8 {
            guard pos < bytes.count, bytes[pos] == b else { throw fail("invalid literal") }
            pos += 1
        }
    }

    mutating func value(depth: Int) throws -> JSONValue {
        guard depth <= maxDepth else { throw fail("nesting deeper than \(maxDepth)") }
        values += 1
        guard values <= maxValues else { throw fail("more than \(maxValues) values") }
        guard pos < bytes.count else { throw fail("unexpected end of text") }
        switch bytes[pos] {
        case UInt8(ascii: "{"):
            pos += 1
            var members: [(String, JSONValue)] = []
            var seen = Set<String>()
            skipSpace()
            if pos < bytes.count, bytes[pos] == UInt8(ascii: "}") { pos += 1; return .object(members) }
            while true {
                skipSpace()
                guard pos < bytes.count, bytes[pos] == UInt8(ascii: "\"") else { throw fail("expected a string key") }
                let keyPos = pos
                let key = try string()
                if !seen.insert(key).inserted { throw ZooError.bad("JSON: duplicate key \"\(key)\"", offset: keyPos) }
                skipSpace()
                guard pos < bytes.count, bytes[pos] == UInt8(ascii: ":") else { throw fail("expected ':'") }
                pos += 1
                skipSpace()
                members.append((key, try value(depth: depth + 1)))
                skipSpace()
                guard pos < bytes.count else { throw fail("unexpected end of text in object") }
                if bytes[pos] == UInt8(ascii: ",") { pos += 1; continue }
                if bytes[pos] == UInt8(ascii: "}") { pos += 1; return .object(members) }
                throw fail("expected ',' or '}'")
            }
        case UInt8(ascii: "["):
            pos += 1
            var items: [JSONValue] = []
            skipSpace()
            if pos < bytes.count, bytes[pos] == UInt8(ascii: "]") { pos += 1; return .array(items) }
            while true {
                skipSpace()
                items.append(try value(depth: depth + 1))
                skipSpace()
                guard pos < bytes.count else { throw fail("unexpected end of text in array") }
                if bytes[pos] == UInt8(ascii: ",") { pos += 1; continue }
                if bytes[pos] == UInt8(ascii: "]") { pos += 1; return .array(items) }
                throw fail("expected ',' or ']'")
            }
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "t"): try expect("true"); return .bool(true)
        case UInt8(ascii: "f"): try expect("false"); return .bool(false)
        case UInt8(ascii: "n"): try expect("null"); return .null
        default: return try number()
        }
    }

    mutating func number() throws -> JSONValue {
        let start = pos
        var isInt = true
        if pos < bytes.count, bytes[pos] == UInt8(ascii: "-") { pos += 1 }
        guard pos < bytes.count, (0x30...0x39).contains(bytes[pos]) else { throw fail("invalid value") }
        if bytes[pos] == 0x30 { pos += 1 } else { while pos < bytes.count, (0x30...0x39).contains(bytes[pos]) { pos += 1 } }
        if pos < bytes.count, bytes[pos] == UInt8(ascii: ".") {
            isInt = false
            pos += 1
            guard pos < bytes.count, (0x30...0x39).contains(bytes[pos]) else { throw fail("invalid number") }
            while pos < bytes.count, (0x30...0x39).contains(bytes[pos]) { pos += 1 }
        }
        if pos < bytes.count, bytes[pos] == UInt8(ascii: "e") || bytes[pos] == UInt8(ascii: "E") {
            isInt = false
            pos += 1
            if pos < bytes.count, bytes[pos] == UInt8(ascii: "+") || bytes[pos] == UInt8(ascii: "-") { pos += 1 }
            guard pos < bytes.count, (0x30...0x39).contains(bytes[pos]) else { throw fail("invalid number") }
            while pos < bytes.count, (0x30...0x39).contains(bytes[pos]) { pos += 1 }
        }
        let text = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<pos]), as: UTF8.self)
        if isInt, let i = Int64(text) { return .int(i) }
        guard let d = Double(text) else { throw ZooError.bad("JSON: invalid number", offset: start) }
        return .double(d)
    }

    mutating func hex4() throws -> UInt32 {
        guard pos + 4 <= bytes.count else { throw fail("truncated \\u escape") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = bytes[pos]
            let d: UInt32
            switch c {
            case 0x30...0x39: d = UInt32(c - 0x30)
            case 0x41...0x46: d = UInt32(c - 0x41 + 10)
            case 0x61...0x66: d = UInt32(c - 0x61 + 10)
            default: throw fail("invalid \\u escape")
            }
            v = v << 4 | d
            pos += 1
        }
        return v
    }

    mutating func string() throws -> String {
        pos += 1 // opening quote
        var scalars = String.UnicodeScalarView()
        var run = pos
        func flush(_ end: Int) throws {
            if end > run {
                let slice = UnsafeRawBufferPointer(rebasing: bytes[run..<end])
                guard let s = String(validating: slice, as: UTF8.self) else { throw ZooError.bad("JSON: invalid UTF-8 in string", offset: run) }
                scalars.append(contentsOf: s.unicodeScalars)
            }
        }
        while true {
            guard pos < bytes.count else { throw fail("unterminated string") }
            let c = bytes[pos]
            if c == UInt8(ascii: "\"") {
                try flush(pos)
                pos += 1
                return String(scalars)
            }
            if c < 0x20 { throw fail("control character in string") }
            if c == UInt8(ascii: "\\") {
                try flush(pos)
                pos += 1
                guard pos < bytes.count else { throw fail("unterminated escape") }
                let e = bytes[pos]
                pos += 1
                switch e {
                case UInt8(ascii: "\""): scalars.append("\"")
                case UInt8(ascii: "\\"): scalars.append("\\")
                case UInt8(ascii: "/"): scalars.append("/")
                case UInt8(ascii: "b"): scalars.append("\u{08}")
                case UInt8(ascii: "f"): scalars.append("\u{0C}")
                case UInt8(ascii: "n"): scalars.append("\n")
                case UInt8(ascii: "r"): scalars.append("\r")
                case UInt8(ascii: "t"): scalars.append("\t")
                case UInt8(ascii: "u"):
                    var v = try hex4()
                    if (0xD800...0xDBFF).contains(v) {
                        guard pos + 6 <= bytes.count, bytes[pos] == UInt8(ascii: "\\"), bytes[pos + 1] == UInt8(ascii: "u") else {
                            throw fail("unpaired surrogate")
                        }
                        pos += 2
                        let lo = try hex4()
                        guard (0xDC00...0xDFFF).contains(lo) else { throw fail("unpaired surrogate") }
                        v = 0x10000 + ((v - 0xD800) << 10) + (lo - 0xDC00)
                    } else if (0xDC00...0xDFFF).contains(v) {
                        throw fail("unpaired surrogate")
                    }
                    guard let u = Unicode.Scalar(v) else { throw fail("invalid \\u escape") }
                    scalars.append(u)
                default: throw fail("invalid escape")
                }
                run = pos
                continue
            }
            pos += 1
        }
    }
}
