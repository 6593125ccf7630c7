import Foundation
import Testing
import ZooFormats
import ZooTensor
import ZooTestSupport

/// `zoo convert FILE.h5 -o OUT` (raw): every numeric dataset bit-exact under its path, the model's
/// description (dialect, keras_version, backend, model_config) kept in the metadata, no partial output.
@Suite struct HDF5ConvertCLITests {
    @Test(arguments: ["keras/tfk_full.h5", "keras/k3_bf16.weights.h5", "hdf5/generic.h5"])
    func convertIsBitExactAgainstH5py(file: String) throws {
        let path = try TestSupport.fixture(file)
        let parts = file.split(separator: "/").map(String.init)
        let entry = try Manifest.entry(parts[0], parts[1])
        let dir = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("out.safetensors").path
        let r = try TestSupport.zoo(["convert", path, "-o", out])
        #expect(r.status == 0, "\(r.stderr)")
        let native = try NativeCheckpoint(path: out)
        let datasets = try #require(entry["datasets"]?.objectValue)
        let records = native.file.records
        #expect(Set(records.map(\.name)) == Set(datasets.map(\.0)))
        for rec in records {
            let t = try rec.load()
            #expect(rec.dtype.name == entry["datasets"]?[rec.name]?["dtype"]?.stringValue, "\(rec.name) dtype")
            #expect(t.withUnsafeBytes { Manifest.sha256($0) } == entry["datasets"]?[rec.name]?["sha256"]?.stringValue, "\(rec.name) bytes")
        }
        #expect(native.metadata.source?.importer == "hdf5")
        let extras = native.metadata.extras
        if let keras = entry["keras"] {
            #expect(extras?["dialect"] == keras["dialect"])
            if let v = keras["keras_version"]?.stringValue { #expect(extras?["keras_version"] == .string(v)) }
            if keras["full"]?.boolValue == true {
                #expect(extras?["model_config"]?["class_name"] != nil)
                #expect(extras?["backend"] == .string("tensorflow"))
            }
        }
    }

    @Test func convertOutputLoadsInPythonSafetensorsLikeH5pyReads() throws {
        let path = try TestSupport.fixture("keras/tfk_mobilenetv3small.h5")
        let dir = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("m.safetensors").path
        let r = try TestSupport.zoo(["convert", path, "-o", out])
        #expect(r.status == 0, "\(r.stderr)")
        let check = try TestSupport.python("""
        import sys, h5py, numpy as np
        from safetensors.numpy import load_file
        st = load_file(sys.argv[2])
        seen = []
        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                a = obj[()]
                b = st[name]
                assert a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes(), name
                seen.append(name)
        h5py.File(sys.argv[1], "r").visititems(visit)
        assert len(seen) == len(st), (len(seen), len(st))
        print(len(seen))
        """, [path, out])
        #expect(check.status == 0, "\(check.stderr)")
        #expect(Int(check.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0 > 100)
    }

    @Test(arguments: ["keras/truncated_90.h5", "keras/corrupt_scattered.h5", "hdf5/virtual.h5", "hdf5/bomb_chunked.h5",
                      "hdf5/bomb_deflate.h5"])
    func refusedConversionLeavesNothing(file: String) throws {
        let path = try TestSupport.fixture(file)
        let dir = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("out.safetensors").path
        let r = try TestSupport.zoo(["convert", path, "-o", out])
        #expect(r.status == 2, "\(file): \(r.status) \(r.stderr)")
        #expect(r.stderr.split(separator: "\n").count == 1, "\(r.stderr)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).isEmpty, "partial output left behind")
    }
}
