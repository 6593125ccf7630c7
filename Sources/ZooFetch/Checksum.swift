import Crypto
import ZooErrors

/// The published digest a download must match.
public enum Checksum: Sendable, Equatable, CustomStringConvertible {
    /// The full SHA-256, 64 hex digits.
    case sha256(String)
    /// A leading part of the SHA-256 in hex, as torchvision publishes in its file names
    /// (`resnet50-11ad3fa6.pth`: the first 8 hex digits).
    case sha256Prefix(String)
    /// The MD5, 32 hex digits (Keras `get_file(file_hash=...)` for the applications' weights).
    case md5(String)

    /// Parses `sha256:HEX`, `sha256-prefix:HEX` or `md5:HEX`; a bare 64-digit hex is a SHA-256,
    /// a bare 32-digit one an MD5 (Keras's own rule).
    public init(parsing text: String) throws {
        let lower = text.lowercased()
        func hex(_ s: Substring) throws -> String {
            let h = String(s)
            guard !h.isEmpty, h.allSatisfy({ $0.isHexDigit }) else {
                throw ZooError(.usage, "checksum \"\(text)\" is not hexadecimal")
            }
            return h
        }
        if lower.hasPrefix("sha256:") {
            let h = try hex(lower.dropFirst(7))
            guard h.count == 64 else { throw ZooError(.usage, "SHA-256 \"\(text)\" needs 64 hex digits") }
            self = .sha256(h)
        } else if lower.hasPrefix("sha256-prefix:") {
            let h = try hex(lower.dropFirst(14))
            guard h.count >= 6, h.count <= 64 else { throw ZooError(.usage, "SHA-256 prefix \"\(text)\" needs 6 to 64 hex digits") }
            self = .sha256Prefix(h)
        } else if lower.hasPrefix("md5:") {
            let h = try hex(lower.dropFirst(4))
            guard h.count == 32 else { throw ZooError(.usage, "MD5 \"\(text)\" needs 32 hex digits") }
            self = .md5(h)
        } else {
            let h = try hex(Substring(lower))
            switch h.count {
            case 64: self = .sha256(h)
            case 32: self = .md5(h)
            default: throw ZooError(.usage, "checksum \"\(text)\": write sha256:HEX, sha256-prefix:HEX or md5:HEX")
            }
        }
    }

    /// The torchvision convention: the hex after the last `-` of the file's stem
    /// (`resnet50-11ad3fa6.pth` -> `.sha256Prefix("11ad3fa6")`), or nil.
    public static func torchvisionPrefix(fileName: String) -> Checksum? {
        let stem = fileName.split(separator: ".").first.map(String.init) ?? fileName
        guard let dash = stem.lastIndex(of: "-") else { return nil }
        let h = stem[stem.index(after: dash)...].lowercased()
        guard h.count >= 6, h.allSatisfy({ $0.isHexDigit }) else { return nil }
        return .sha256Prefix(h)
    }

    /// The strongest check available for a catalogue entry: the full SHA-256, else the MD5, else
    /// a published SHA-256 prefix, else the prefix in a torchvision file name; nil when none.
    /// Malformed values are a `.badInput` error (the catalogue is data).
    public static func best(sha256: String?, md5: String?, sha256Prefix: String?, fileName: String?) throws -> Checksum? {
        func parsed(_ tag: String, _ value: String?) throws -> Checksum? {
            guard let value, !value.isEmpty else { return nil }
            do { return try Checksum(parsing: tag + value) } catch let e as ZooError {
                throw ZooError(.badInput, e.message, item: "checksum")
            }
        }
        if let c = try parsed("sha256:", sha256) { return c }
        if let c = try parsed("md5:", md5) { return c }
        if let c = try parsed("sha256-prefix:", sha256Prefix) { return c }
        return fileName.flatMap { torchvisionPrefix(fileName: $0) }
    }

    /// `sha256:...`, `sha256-prefix:...` or `md5:...`.
    public var description: String {
        switch self {
        case .sha256(let h): return "sha256:\(h)"
        case .sha256Prefix(let h): return "sha256-prefix:\(h)"
        case .md5(let h): return "md5:\(h)"
        }
    }

    /// True when a digest computed by `Hasher` matches.
    func matches(sha256 shaHex: String, md5 md5Hex: String?) -> Bool {
        switch self {
        case .sha256(let h): return shaHex == h.lowercased()
        case .sha256Prefix(let h): return shaHex.hasPrefix(h.lowercased())
        case .md5(let h): return md5Hex == h.lowercased()
        }
    }

    var needsMD5: Bool { if case .md5 = self { return true }; return false }
}

/// Streaming SHA-256 (always) and MD5 (on request) of a byte stream.
struct StreamHasher {
    private var sha = SHA256()
    private var md5: Insecure.MD5?

    init(md5 wantMD5: Bool) { md5 = wantMD5 ? Insecure.MD5() : nil }

    mutating func update(_ bytes: UnsafeRawBufferPointer) {
        sha.update(bufferPointer: bytes)
        md5?.update(bufferPointer: bytes)
    }

    func finalize() -> (sha256: String, md5: String?) {
        func hex<S: Sequence>(_ s: S) -> String where S.Element == UInt8 {
            let digits = Array("0123456789abcdef")
            var out = ""
            for b in s { out.append(digits[Int(b >> 4)]); out.append(digits[Int(b & 15)]) }
            return out
        }
        return (hex(sha.finalize()), md5.map { hex($0.finalize()) })
    }
}
