import Foundation
import ZooFormats
import ZooPyTorch
import ZooJSON
import ZooTensor
import ZooTestSupport

/// Access to the generated PyTorch fixtures (tools/fixtures/gen_pytorch.py) and the committed hostile files.
enum PT {
    static func json(_ path: String) throws -> JSONValue {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        return try data.withUnsafeBytes { try JSONValue.parse($0) }
    }

    static func manifest() throws -> [JSONValue] {
        let m = try json(try TestSupport.fixture("pytorch/manifest.json"))
        return m["cases"]?.arrayValue ?? []
    }

    static func fixture(_ file: String) throws -> String { try TestSupport.fixture("pytorch/" + file) }

    static func hostile() throws -> JSONValue { try json(TestSupport.committed("pytorch/hostile.json")) }

    static func committed(_ file: String) -> String { TestSupport.committed("pytorch/" + file) }

    /// Follows a dotted path through JSON objects.
    static func lookup(_ v: JSONValue?, _ path: String) -> JSONValue? {
        var cur = v
        for part in path.split(separator: ".") { cur = cur?[String(part)] }
        return cur
    }

    static func metadata(_ c: ImportedCheckpoint, _ key: String) -> JSONValue? {
        c.metadata.first { $0.0 == key }?.1
    }

    /// Writes bytes to a fresh temporary file and returns its path.
    static func temporaryFile(_ bytes: [UInt8], name: String = "t.pt") throws -> (URL, String) {
        let dir = try TestSupport.temporaryDirectory()
        let path = dir.appendingPathComponent(name).path
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return (dir, path)
    }

    /// Reads a file and loads every tensor (the full path a conversion takes).
    @discardableResult
    static func readAll(_ path: String, verifyCRC: Bool = true) throws -> [Tensor] {
        let c = try PyTorchImporter.read(path: path, options: .init(verifyCRC: verifyCRC))
        return try c.tensors.map { try $0.load() }
    }

    /// The legacy stream header (magic number, protocol 1001, empty sys_info) followed by `payload`.
    static func legacy(_ payload: [UInt8]) -> [UInt8] {
        let magic: [UInt8] = [0x80, 0x02, 0x8A, 0x0A, 0x6C, 0xFC, 0x9C, 0x46, 0xF9, 0x20, 0x6A, 0xA8, 0x50, 0x19, 0x2E]
        let version: [UInt8] = [0x80, 0x02, 0x4D, 0xE9, 0x03, 0x2E]
        let info: [UInt8] = [0x80, 0x02, 0x7D, 0x2E]
        return magic + version + info + payload
    }
}
