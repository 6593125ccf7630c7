import Foundation
import Testing
import ZooHDF5
import ZooJSON
import ZooTestSupport

/// A dataset compressed with h5py's LZF filter (id 32000, which libhdf5 does not build in): the file
/// lists, the dataset fails with a message that names the filter (not libhdf5's "can't open
/// directory" for its plugin folder), and the same data gzip-compressed beside it reads as h5py reads it.
@Suite struct LZFTests {
    static func h5pyManifest() throws -> JSONValue {
        let data = try Data(contentsOf: URL(fileURLWithPath: try TestSupport.fixture("hdf5/manifest-lzf.json")))
        return try data.withUnsafeBytes { try JSONValue.parse($0) }
    }

    @Test func lzfDatasetNamesTheMissingFilter() throws {
        let path = try TestSupport.fixture("hdf5/lzf.h5")
        let h5py = try Self.h5pyManifest()
        let ckpt = try HDF5Importer.read(path: path)
        let records = Dictionary(uniqueKeysWithValues: ckpt.tensors.map { ($0.name, $0) })
        #expect(Set(records.keys) == ["lzf", "gzip"])
        // h5py (which bundles LZF) reads the same values from both datasets.
        let lzfDigest = try #require(h5py["datasets"]?["lzf"]?["sha256"]?.stringValue)
        #expect(h5py["datasets"]?["gzip"]?["sha256"]?.stringValue == lzfDigest)
        // Negative control: the gzip copy loads, bit for bit what h5py reads.
        let gzip = try #require(records["gzip"]).load()
        #expect(gzip.withUnsafeBytes { Manifest.sha256($0) } == lzfDigest)
        let lzf = try #require(records["lzf"])
        #expect(lzf.shape == [40, 24])
        let e = expectZooError("lzf.h5/lzf") { _ = try lzf.load() }
        #expect(e?.kind == .unsupported)
        #expect(e?.item == "lzf")
        let message = e?.message ?? ""
        #expect(message.contains("LZF") && message.contains("32000") && message.contains("gzip"), "\(message)")
        #expect(!message.contains("directory"), "\(message)")
    }

    @Test func convertStopsWithOneLineNamingTheFilterAndNoOutput() throws {
        let dir = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("lzf.safetensors").path
        let r = try TestSupport.zoo(["convert", try TestSupport.fixture("hdf5/lzf.h5"), "-o", out])
        #expect(r.status != 0)
        let lines = r.stderr.split(separator: "\n")
        #expect(lines.count == 1 && r.stderr.contains("lzf.h5") && r.stderr.contains("LZF (h5py's own filter), filter id 32000"), "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: out))
    }
}
