import Crypto
import Foundation
import Testing
import ZooFormats
import ZooHDF5
import ZooErrors
import ZooJSON
import ZooTestSupport

/// The manifests the fixture generators write (what h5py and Keras read), and comparisons against them.
enum Manifest {
    /// `manifest.json` of a fixture folder (`hdf5`, `keras`).
    static func load(_ folder: String) throws -> JSONValue {
        let path = try TestSupport.fixture("\(folder)/manifest.json")
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        return try data.withUnsafeBytes { try JSONValue.parse($0, maxDepth: 256) }
    }

    /// The entry for one file.
    static func entry(_ folder: String, _ file: String) throws -> JSONValue {
        try #require(try load(folder)[file], "manifest has no entry for \(file)")
    }

    /// Lowercase hex SHA-256.
    static func sha256(_ bytes: UnsafeRawBufferPointer) -> String {
        SHA256.hash(data: bytes).map { String(format: "%02x", $0) }.joined()
    }

    /// Checks that `ckpt` holds exactly the manifest's numeric datasets, bit for bit.
    static func expectDatasetsMatch(_ ckpt: ImportedCheckpoint, _ entry: JSONValue, file: String) throws {
        let datasets = try #require(entry["datasets"]?.objectValue)
        let expected = Dictionary(uniqueKeysWithValues: datasets)
        let got = Dictionary(ckpt.tensors.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        #expect(Set(got.keys) == Set(expected.keys), "\(file): tensor names differ from h5py's datasets")
        #expect(got.count == ckpt.tensors.count, "\(file): duplicate tensor names")
        for (name, e) in datasets {
            guard let r = got[name] else { continue }
            #expect(r.dtype.name == e["dtype"]?.stringValue, "\(file): \(name) dtype")
            let shape = e["shape"]?.arrayValue?.compactMap(\.intValue) ?? [-1]
            #expect(r.shape == shape, "\(file): \(name) shape")
            let t = try r.load()
            #expect(t.dtype == r.dtype && t.shape == r.shape, "\(file): \(name) loaded tensor differs from its record")
            let digest = t.withUnsafeBytes { sha256($0) }
            #expect(digest == e["sha256"]?.stringValue, "\(file): \(name) bytes differ from h5py's")
        }
    }
}

/// JSON numbers compare by value (h5py writes 2.0 where libhdf5 reads a float 2).
func sameJSON(_ a: JSONValue, _ b: JSONValue) -> Bool {
    switch (a, b) {
    case (.int, .double), (.double, .int), (.double, .double), (.int, .int):
        return a.doubleValue == b.doubleValue
    case let (.double(x), .string(s)):
        // The manifest writes what JSON cannot hold as "nan", "inf", "-inf".
        return (s == "nan" && x.isNaN) || (s == "inf" && x == .infinity) || (s == "-inf" && x == -.infinity)
    case let (.array(x), .array(y)):
        return x.count == y.count && zip(x, y).allSatisfy { sameJSON($0, $1) }
    case let (.object(x), .object(y)):
        let dy = Dictionary(y, uniquingKeysWith: { a, _ in a })
        return x.count == y.count && x.allSatisfy { k, v in dy[k].map { sameJSON(v, $0) } ?? false }
    default:
        return a == b
    }
}

/// Expects `body` to throw a `ZooError`; returns it.
@discardableResult
func expectZooError(_ what: String, _ body: () throws -> Void) -> ZooError? {
    do {
        try body()
        Issue.record("\(what): expected an error, got none")
        return nil
    } catch let e as ZooError {
        return e
    } catch {
        Issue.record("\(what): expected a ZooError, got \(error)")
        return nil
    }
}
