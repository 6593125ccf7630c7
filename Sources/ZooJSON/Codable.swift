// `Codable` values to `JSONValue`, keeping the order in which a type encodes its members (the order
// of its stored properties, for synthesized conformances), so that a command's `--json` result is
// a `Codable` type and still prints with a fixed, documented member order. Foundation's
// `JSONEncoder` orders members by hash (or sorts them), which would make outputs differ run to run.

extension JSONValue {
    /// `value` as JSON. Members keep the order in which `value` encodes them; `sortedKeys` sorts
    /// them (every level) instead. Optionals encoded with `encodeIfPresent` (synthesized `Codable`)
    /// are left out when nil; wrap a property in `NullWhenNil` to print `null` instead. A nested
    /// `JSONValue` is kept as is (its members in their own order).
    public init(encoding value: some Encodable, sortedKeys: Bool = false) throws {
        let node = try OrderedEncoding.encode(value, codingPath: [])
        self = node.resolve(sortedKeys: sortedKeys)
    }
}

extension JSONValue: Encodable {
    /// Encodes the value as itself (members in order with `JSONValue(encoding:)`; any encoder).
    public func encode(to encoder: any Encoder) throws {
        switch self {
        case .null:
            var c = encoder.singleValueContainer()
            try c.encodeNil()
        case .bool(let b):
            var c = encoder.singleValueContainer()
            try c.encode(b)
        case .int(let i):
            var c = encoder.singleValueContainer()
            try c.encode(i)
        case .double(let d):
            var c = encoder.singleValueContainer()
            try c.encode(d)
        case .string(let s):
            var c = encoder.singleValueContainer()
            try c.encode(s)
        case .array(let a):
            var c = encoder.unkeyedContainer()
            for v in a { try c.encode(v) }
        case .object(let o):
            var c = encoder.container(keyedBy: JSONKey.self)
            for (k, v) in o { try c.encode(v, forKey: JSONKey(k)) }
        }
    }
}

/// A coding key for any member name.
public struct JSONKey: CodingKey, Sendable, Hashable {
    /// The member name.
    public var stringValue: String
    /// Always nil: members are named.
    public var intValue: Int? { nil }

    /// A key named `name`.
    public init(_ name: String) { stringValue = name }
    /// A key named `stringValue`.
    public init?(stringValue: String) { self.stringValue = stringValue }
    /// The key named by the integer's decimal digits.
    public init?(intValue: Int) { stringValue = String(intValue) }
}

/// An optional property that encodes as `null` when nil (synthesized `Codable` leaves a nil
/// optional out), for JSON results whose documented schema always has the member.
@propertyWrapper
public struct NullWhenNil<Value: Encodable & Sendable>: Encodable, Sendable {
    /// The value, nil printed as `null`.
    public var wrappedValue: Value?

    /// Wraps `wrappedValue`.
    public init(wrappedValue: Value?) { self.wrappedValue = wrappedValue }

    /// Encodes the value, or `null`.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        if let wrappedValue { try c.encode(wrappedValue) } else { try c.encodeNil() }
    }
}

/// The encoder behind `JSONValue(encoding:)`: a tree of nodes, each a value, an ordered object or
/// an array, filled by the containers and resolved into a `JSONValue` at the end.
enum OrderedEncoding {
    final class Node {
        var value: JSONValue?
        var members: [(String, Node)]?
        var elements: [Node]?

        func resolve(sortedKeys: Bool) -> JSONValue {
            if let members {
                let m = members.map { ($0.0, $0.1.resolve(sortedKeys: sortedKeys)) }
                return .object(sortedKeys ? m.sorted { $0.0 < $1.0 } : m)
            }
            if let elements { return .array(elements.map { $0.resolve(sortedKeys: sortedKeys) }) }
            return value ?? .null
        }
    }

    static func encode<T: Encodable>(_ value: T, codingPath: [any CodingKey]) throws -> Node {
        let node = Node()
        if let j = value as? JSONValue {
            node.value = j
        } else if let p = primitive(value) {
            node.value = p
        } else {
            try value.encode(to: NodeEncoder(node: node, codingPath: codingPath))
        }
        return node
    }

    /// The JSON of a standard-library scalar, nil for anything else.
    static func primitive(_ v: Any) -> JSONValue? {
        switch v {
        case let b as Bool: return .bool(b)
        case let s as String: return .string(s)
        case let d as Double: return .double(d)
        case let f as Float: return .double(Double(f))
        case let i as Int: return .int(Int64(i))
        case let i as Int64: return .int(i)
        case let i as Int32: return .int(Int64(i))
        case let i as Int16: return .int(Int64(i))
        case let i as Int8: return .int(Int64(i))
        case let u as UInt8: return .int(Int64(u))
        case let u as UInt16: return .int(Int64(u))
        case let u as UInt32: return .int(Int64(u))
        case let u as UInt: return Int64(exactly: u).map { .int($0) } ?? .double(Double(u))
        case let u as UInt64: return Int64(exactly: u).map { .int($0) } ?? .double(Double(u))
        default: return nil
        }
    }

    struct NodeEncoder: Encoder {
        let node: Node
        var codingPath: [any CodingKey]
        var userInfo: [CodingUserInfoKey: Any] { [:] }

        func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
            if node.members == nil { node.members = [] }
            return KeyedEncodingContainer(Keyed<Key>(node: node, codingPath: codingPath))
        }

        func unkeyedContainer() -> any UnkeyedEncodingContainer {
            if node.elements == nil { node.elements = [] }
            return Unkeyed(node: node, codingPath: codingPath)
        }

        func singleValueContainer() -> any SingleValueEncodingContainer {
            Single(node: node, codingPath: codingPath)
        }
    }

    struct Keyed<Key: CodingKey>: KeyedEncodingContainerProtocol {
        let node: Node
        var codingPath: [any CodingKey]

        private func set(_ key: Key, _ child: Node) {
            if let i = node.members?.firstIndex(where: { $0.0 == key.stringValue }) {
                node.members?[i].1 = child
            } else {
                node.members?.append((key.stringValue, child))
            }
        }

        mutating func encodeNil(forKey key: Key) throws {
            let n = Node()
            n.value = .null
            set(key, n)
        }

        mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws {
            set(key, try OrderedEncoding.encode(value, codingPath: codingPath + [key]))
        }

        mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type, forKey key: Key) -> KeyedEncodingContainer<NestedKey> {
            let n = Node()
            set(key, n)
            return NodeEncoder(node: n, codingPath: codingPath + [key]).container(keyedBy: keyType)
        }

        mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer {
            let n = Node()
            set(key, n)
            return NodeEncoder(node: n, codingPath: codingPath + [key]).unkeyedContainer()
        }

        mutating func superEncoder() -> any Encoder {
            guard let key = Key(stringValue: "super") else { return NodeEncoder(node: Node(), codingPath: codingPath) }
            return superEncoder(forKey: key)
        }

        mutating func superEncoder(forKey key: Key) -> any Encoder {
            let n = Node()
            set(key, n)
            return NodeEncoder(node: n, codingPath: codingPath + [key])
        }
    }

    struct Unkeyed: UnkeyedEncodingContainer {
        let node: Node
        var codingPath: [any CodingKey]
        var count: Int { node.elements?.count ?? 0 }

        mutating func encodeNil() throws {
            let n = Node()
            n.value = .null
            node.elements?.append(n)
        }

        mutating func encode<T: Encodable>(_ value: T) throws {
            let child = try OrderedEncoding.encode(value, codingPath: codingPath + [JSONKey(String(count))])
            node.elements?.append(child)
        }

        mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type) -> KeyedEncodingContainer<NestedKey> {
            let n = Node()
            node.elements?.append(n)
            return NodeEncoder(node: n, codingPath: codingPath).container(keyedBy: keyType)
        }

        mutating func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer {
            let n = Node()
            node.elements?.append(n)
            return NodeEncoder(node: n, codingPath: codingPath).unkeyedContainer()
        }

        mutating func superEncoder() -> any Encoder {
            let n = Node()
            node.elements?.append(n)
            return NodeEncoder(node: n, codingPath: codingPath)
        }
    }

    struct Single: SingleValueEncodingContainer {
        let node: Node
        var codingPath: [any CodingKey]

        mutating func encodeNil() throws { node.value = .null }

        mutating func encode<T: Encodable>(_ value: T) throws {
            let child = try OrderedEncoding.encode(value, codingPath: codingPath)
            node.value = child.value
            node.members = child.members
            node.elements = child.elements
        }
    }
}
