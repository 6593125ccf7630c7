import Foundation
import Testing
import ZooFormats
import ZooHDF5
import ZooJSON
import ZooTestSupport

/// Generic HDF5 files written by h5py (tools/fixtures/gen_hdf5.py), compared with what h5py reads.
@Suite struct GenericHDF5Tests {
    @Test func everyNumericDatasetMatchesH5py() throws {
        let path = try TestSupport.fixture("hdf5/generic.h5")
        let entry = try Manifest.entry("hdf5", "generic.h5")
        let ckpt = try HDF5Importer.read(path: path)
        #expect(ckpt.format == "hdf5")
        #expect(ckpt.structure == nil)
        #expect(ckpt.tensors.count >= 20)
        try Manifest.expectDatasetsMatch(ckpt, entry, file: "generic.h5")
        // Non-numeric datasets are listed, not imported.
        let skipped = ckpt.metadata.first { $0.0 == "skipped_datasets" }?.1.arrayValue?.compactMap(\.stringValue) ?? []
        let expectedSkipped = entry["skipped"]?.arrayValue?.compactMap(\.stringValue) ?? ["?"]
        #expect(skipped.sorted() == expectedSkipped.sorted())
    }

    @Test func kindsOfDatasets() throws {
        let ckpt = try HDF5Importer.read(path: try TestSupport.fixture("hdf5/generic.h5"))
        let byName = Dictionary(ckpt.tensors.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        // Scalars keep shape [].
        #expect(byName["scalar/f32"]?.shape == [])
        #expect(try byName["scalar/f32"]?.load().floats() == [3.5])
        #expect(byName["scalar/bool"]?.dtype == .bool)
        #expect(byName["empty"]?.shape == [0, 3])
        #expect(byName["f16"]?.dtype == .f16)
        // Storage facts are reported.
        let gz = try #require(byName["f32_shuffle_gzip"])
        #expect(gz.details.contains { $0.0 == "hdf5_filters" && $0.1 == .array([.string("shuffle"), .string("deflate")]) })
        #expect(gz.details.contains { $0.0 == "hdf5_layout" && $0.1 == .string("chunked") })
        let be = try #require(byName["be/f32"])
        #expect(be.details.contains { $0.0 == "hdf5_byte_order" && $0.1 == .string("big-endian") })
        #expect(!(byName["f32"]?.details.contains { $0.0 == "hdf5_byte_order" } ?? true))
    }

    @Test func bigEndianDataIsConvertedNotCopied() throws {
        // Negative control: the stored big-endian bytes are not what h5py (or we) return.
        let ckpt = try HDF5Importer.read(path: try TestSupport.fixture("hdf5/generic.h5"))
        let entry = try Manifest.entry("hdf5", "generic.h5")
        let r = try #require(ckpt.tensors.first { $0.name == "be/f64" })
        let t = try r.load()
        var swapped = t.bytes
        for i in stride(from: 0, to: swapped.count, by: 8) { swapped[i..<(i + 8)].reverse() }
        let want = entry["datasets"]?["be/f64"]?["sha256"]?.stringValue
        #expect(t.withUnsafeBytes { Manifest.sha256($0) } == want)
        #expect(swapped.withUnsafeBytes { Manifest.sha256($0) } != want)
        let values = try t.floats()
        #expect(values.allSatisfy { $0.isFinite && abs($0) < 10 })
    }

    @Test func attributesOfEveryKind() throws {
        let file = try HDF5File(path: try TestSupport.fixture("hdf5/generic.h5"))
        let entry = try Manifest.entry("hdf5", "generic.h5")
        let expected = try #require(entry["attributes"]?.objectValue)
        #expect(expected.count >= 3)
        for (object, attrs) in expected {
            let got = JSONValue.object(file.attributes(object))
            #expect(sameJSON(got, attrs), "attributes of '\(object)': got \(got), h5py read \(attrs)")
        }
        // Both string kinds, explicitly.
        let root = try #require(file.object(""))
        #expect(root.attribute("title") == .string("generic fixture"))          // variable-length
        #expect(root.attribute("fixed") == .string("fixed-length bytes"))       // fixed-length
        #expect(root.attribute("names_vlen") == .array(["one", "two", "three"].map { .string($0) }))
        #expect(root.attribute("missing") == nil)
        // Non-Keras files show their root attributes in the metadata.
        let ckpt = try HDF5Importer.imported(file)
        #expect(ckpt.metadata.contains { $0.0 == "attributes" })
    }

    @Test func loadsConcurrentlyBehindOneLock() async throws {
        let path = try TestSupport.fixture("hdf5/generic.h5")
        let entry = try Manifest.entry("hdf5", "generic.h5")
        let ckpt = try HDF5Importer.read(path: path)
        let records = ckpt.tensors
        let digests = try await withThrowingTaskGroup(of: (String, String).self) { group in
            for _ in 0..<4 {
                for r in records {
                    group.addTask { (r.name, try r.load().withUnsafeBytes { Manifest.sha256($0) }) }
                }
            }
            var out: [(String, String)] = []
            for try await d in group { out.append(d) }
            return out
        }
        #expect(digests.count == records.count * 4)
        for (name, d) in digests {
            #expect(d == entry["datasets"]?[name]?["sha256"]?.stringValue, "\(name) read concurrently")
        }
        // And two files open at once.
        let other = try HDF5Importer.read(path: try TestSupport.fixture("hdf5/keras1.h5"))
        #expect(try other.tensors[0].load().elementCount == other.tensors[0].elementCount)
    }

    @Test(arguments: [
        ("softlink.h5", "soft link", "alias"),
        ("extlink.h5", "external link", "elsewhere"),
        ("external.h5", "external raw files", "outside"),
        ("virtual.h5", "virtual dataset", "view"),
    ])
    func refusedStructures(file: String, phrase: String, item: String) throws {
        let path = try TestSupport.fixture("hdf5/\(file)")
        let e = expectZooError(file) { _ = try HDF5Importer.read(path: path) }
        #expect(e?.kind == .unsupported)
        #expect(e?.message.contains(phrase) == true, "\(e?.description ?? "")")
        #expect(e?.item == item)
        #expect(e?.file == path)
    }

    @Test(arguments: [("bomb_chunked.h5", "1099511627776"), ("bomb_contig.h5", "1099511627776"), ("bomb_chunk.h5", "chunks of 536870912 bytes")])
    func shapeBombsRefusedBeforeAllocating(file: String, phrase: String) throws {
        let path = try TestSupport.fixture("hdf5/\(file)")
        let e = expectZooError(file) { _ = try HDF5Importer.read(path: path) }
        #expect(e?.kind == .badInput)
        #expect(e?.item == "bomb")
        #expect(e?.description.contains(phrase) == true, "\(e?.description ?? "")")
    }

    @Test func deflateBombStopsAtTheChunkSize() throws {
        // libhdf5's own deflate filter would inflate this 4 KiB chunk to ~4 MB (h5py reads it
        // silently); the chunk check refuses it before libhdf5 decodes it. The gzip datasets of
        // generic.h5 (everyNumericDatasetMatchesH5py) are the negative control.
        let ckpt = try HDF5Importer.read(path: try TestSupport.fixture("hdf5/bomb_deflate.h5"))
        let r = try #require(ckpt.tensors.first)
        #expect(r.name == "bomb" && r.shape == [1024])
        let e = expectZooError("bomb_deflate.h5") { _ = try r.load() }
        #expect(e?.kind == .badInput)
        #expect(e?.item == "bomb")
        #expect(e?.description.contains("deflate bomb") == true, "\(e?.description ?? "")")
        #expect(e?.file?.hasSuffix("bomb_deflate.h5") == true || e?.file == nil)
    }

    @Test func userBlockBeforeTheSignature() throws {
        let path = try TestSupport.fixture("hdf5/userblock.h5")
        let head = try FileHandle(forReadingFrom: URL(fileURLWithPath: path)).readData(ofLength: 16)
        #expect(String(decoding: head, as: UTF8.self) == "user block text ")
        let ckpt = try HDF5Importer.read(path: path)
        try Manifest.expectDatasetsMatch(ckpt, try Manifest.entry("hdf5", "userblock.h5"), file: "userblock.h5")
        #expect(ckpt.tensors.map(\.name) == ["x"])
    }

    @Test func hardLinksAndNamedTypes() throws {
        let ckpt = try HDF5Importer.read(path: try TestSupport.fixture("hdf5/generic.h5"))
        let names = ckpt.tensors.map(\.name)
        // The second hard link to f32 is the same object: read once, under its first name.
        #expect(names.contains("f32") && !names.contains("zz_hard_alias"))
        // A dataset whose type is a committed datatype reads like any other; the type itself is no tensor.
        #expect(names.contains("uses_named_type") && !names.contains("named_type"))
    }

    @Test func modelConfigWithNaNKeptAsText() throws {
        let path = try TestSupport.fixture("hdf5/keras_nan_config.h5")
        let ckpt = try HDF5Importer.read(path: path)
        try Manifest.expectDatasetsMatch(ckpt, try Manifest.entry("hdf5", "keras_nan_config.h5"), file: "keras_nan_config.h5")
        let k = try #require(ckpt.structure)
        #expect(k.dialect == "keras2")
        #expect(k.modelConfig == nil)
        #expect(k.layers.map(\.name) == ["fc"])
        #expect(k.layers.first?.className == nil)
        #expect(k.layers.first?.weights.map(\.tensor) == ["model_weights/fc/fc/kernel:0", "model_weights/fc/fc/bias:0"])
        let text = ckpt.metadata.first { $0.0 == "model_config" }?.1.stringValue
        #expect(text?.contains("NaN") == true)
    }

    @Test func keras1FlatNames() throws {
        let path = try TestSupport.fixture("hdf5/keras1.h5")
        let entry = try Manifest.entry("hdf5", "keras1.h5")
        let ckpt = try HDF5Importer.read(path: path)
        try Manifest.expectDatasetsMatch(ckpt, entry, file: "keras1.h5")
        let k = try #require(ckpt.structure)
        #expect(k.dialect == "keras1")
        #expect(k.producerVersion == nil)
        // The layers with weights, in layer_names order, weights in weight_names order (from h5py's reading).
        let attrs = try #require(entry["attributes"])
        let layerNames = attrs[""]?["layer_names"]?.arrayValue?.compactMap(\.stringValue) ?? []
        var expected: [(String, [String])] = []
        for l in layerNames {
            let w = attrs[l]?["weight_names"]?.arrayValue?.compactMap(\.stringValue) ?? []
            if !w.isEmpty { expected.append((l, w)) }
        }
        #expect(expected.count == 2)
        #expect(k.layers.map(\.name) == expected.map(\.0))
        #expect(k.layers.map { $0.weights.map(\.name) } == expected.map(\.1))
        #expect(k.layers.first?.weights.first?.tensor == "block1_conv1/block1_conv1_W_1:0")
    }

    @Test func nativeRoundTripIsBitExact() throws {
        let ckpt = try HDF5Importer.read(path: try TestSupport.fixture("hdf5/generic.h5"))
        let dir = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("generic.safetensors").path
        var meta = NativeMetadata()
        meta.source = .init(file: "generic.h5", sha256: String(repeating: "0", count: 64), importer: "hdf5", dtype: "F32")
        try NativeCheckpoint.write(ckpt.tensors, metadata: meta, to: out, overwrite: false)
        let back = try NativeCheckpoint(path: out)
        #expect(back.metadata.source?.importer == "hdf5")
        let records = Dictionary(back.file.records.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        #expect(records.count == ckpt.tensors.count)
        for r in ckpt.tensors {
            let a = try r.load()
            let b = try #require(records[r.name], "\(r.name) missing after the round trip").load()
            #expect(a.bitwiseEqual(b), "\(r.name) differs after the round trip")
        }
    }
}
