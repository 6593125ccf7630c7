/// The one error type every stage of ModelZoo throws.
///
/// It carries what a user needs to fix the problem: the kind (which decides the
/// command-line exit code), the file, the record or tensor concerned, the byte
/// position where it applies, and a one-line message.
public struct ZooError: Error, Sendable, CustomStringConvertible, Equatable {
    /// Broad classes of failure; each maps to one exit code of the `zoo` tool.
    public enum Kind: String, Sendable, Equatable {
        /// The command line itself is wrong (exit code 1).
        case usage
        /// The input is malformed, hostile, truncated or does not fit (exit code 2).
        case badInput
        /// Reading or writing the file system or network failed (exit code 3).
        case io
        /// The input is well formed but uses a feature ModelZoo refuses or lacks (exit code 2).
        case unsupported
        /// A checkpoint does not fit an architecture (exit code 2).
        case mismatch

        /// The process exit code for this kind of failure.
        public var exitCode: Int32 {
            switch self {
            case .usage: return 1
            case .badInput, .unsupported, .mismatch: return 2
            case .io: return 3
            }
        }
    }

    /// What kind of failure this is.
    public var kind: Kind
    /// The file concerned, when known.
    public var file: String?
    /// The record, tensor or dataset concerned, when it applies.
    public var item: String?
    /// The byte position in the file, when it applies.
    public var offset: Int?
    /// A short human-readable statement of the problem, without the file name.
    public var message: String

    /// Creates an error.
    public init(_ kind: Kind, _ message: String, file: String? = nil, item: String? = nil, offset: Int? = nil) {
        self.kind = kind
        self.message = message
        self.file = file
        self.item = item
        self.offset = offset
    }

    /// Returns a copy with the file set, unless one is already set.
    public func inFile(_ path: String) -> ZooError {
        var copy = self
        if copy.file == nil { copy.file = path }
        return copy
    }

    /// One line: `FILE: ITEM: MESSAGE (at byte N)`, control characters escaped
    /// (`String.escapingControlCharacters`), so a name quoted from a hostile file can neither
    /// break the line nor reach the terminal as an escape sequence.
    public var description: String {
        var parts: [String] = []
        if let file { parts.append(file) }
        if let item { parts.append(item) }
        var text = message
        if let offset { text += " (at byte \(offset))" }
        parts.append(text)
        return parts.joined(separator: ": ").escapingControlCharacters
    }

    /// The error with control characters in its item and message escaped
    /// (`String.escapingControlCharacters`), for errors whose text is composed into other text.
    public var singleLine: ZooError {
        var copy = self
        copy.message = message.escapingControlCharacters
        copy.item = item?.escapingControlCharacters
        return copy
    }
}

extension ZooError {
    /// Convenience for malformed input.
    public static func bad(_ message: String, item: String? = nil, offset: Int? = nil) -> ZooError {
        ZooError(.badInput, message, item: item, offset: offset)
    }
}

/// Overflow-checked arithmetic for sizes read from files.
public enum Checked {
    /// a * b, or a `badInput` error when it overflows.
    @inlinable
    public static func mul(_ a: Int, _ b: Int, _ what: @autoclosure () -> String = "size") throws -> Int {
        let (r, o) = a.multipliedReportingOverflow(by: b)
        if o { throw ZooError.bad("\(what()) overflows") }
        return r
    }

    /// a + b, or a `badInput` error when it overflows.
    @inlinable
    public static func add(_ a: Int, _ b: Int, _ what: @autoclosure () -> String = "size") throws -> Int {
        let (r, o) = a.addingReportingOverflow(b)
        if o { throw ZooError.bad("\(what()) overflows") }
        return r
    }

    /// Product of the dimensions of a shape; every dimension must be >= 0.
    @inlinable
    public static func elementCount(_ shape: [Int]) throws -> Int {
        var n = 1
        for d in shape {
            if d < 0 { throw ZooError.bad("negative dimension \(d) in shape \(shape)") }
            n = try mul(n, d, "element count of shape \(shape)")
        }
        return n
    }
}
