import Foundation
import Testing
import ZooFormats
import ZooPyTorch
import ZooJSON
import ZooTestSupport

/// `zoo convert` and `zoo inspect` on PyTorch files through the built binary.
@Suite struct ConvertCLITests {
    @Test func convertIsBitExactWithProvenance() throws {
        let dir = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let input = try PT.fixture("resnet18_zip.pt")
        let out = dir.appendingPathComponent("r18.safetensors").path
        let r = try TestSupport.zoo(["convert", input, "-o", out])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.isEmpty, "no progress bar when stderr is not a terminal: \(r.stderr)")
        let native = try NativeCheckpoint(path: out)
        let expected = try SafetensorsFile(path: try PT.fixture("resnet18_zip.expected.safetensors"))
        #expect(native.file.entries.count == expected.entries.count)
        for e in expected.entries {
            #expect(try native.file.tensor(named: e.name).bitwiseEqual(try expected.tensor(e)), "\(e.name)")
        }
        let source = try #require(native.metadata.source)
        #expect(source.file == "resnet18_zip.pt")
        #expect(source.importer == "pytorch-zip")
        #expect(source.dtype == "F32")
        let sha = try TestSupport.python("import hashlib,sys; print(hashlib.sha256(open(sys.argv[1],'rb').read()).hexdigest())", [input])
        #expect(source.sha256 == sha.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
        #expect(native.metadata.extras?["pickle_protocol"] == .int(2))
        #expect(native.metadata.extras?["byte_order"] == .string("little"))

        // Refuses to overwrite without --force, and leaves the file alone.
        let before = try Data(contentsOf: URL(fileURLWithPath: out))
        let again = try TestSupport.zoo(["convert", try PT.fixture("views.pt"), "-o", out])
        #expect(again.status == 3)
        #expect(again.stderr.contains("--force"))
        #expect(try Data(contentsOf: URL(fileURLWithPath: out)) == before)
        let forced = try TestSupport.zoo(["convert", try PT.fixture("views.pt"), "-o", out, "--force"])
        #expect(forced.status == 0, "\(forced.stderr)")
        #expect(try NativeCheckpoint(path: out).file.entries.count == 9)
    }

    @Test func trainingCheckpointKeepsItsValuesAsExtras() throws {
        let dir = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("t.safetensors").path
        let input = try PT.fixture("training_checkpoint_legacy.pt")
        let r = try TestSupport.zoo(["convert", input, "-o", out])
        #expect(r.status == 0, "\(r.stderr)")
        // A small output (header still buffered when the digest arrives) also gets the real SHA-256.
        let sha = try TestSupport.python("import hashlib,sys; print(hashlib.sha256(open(sys.argv[1],'rb').read()).hexdigest())", [input])
        #expect(try NativeCheckpoint(path: out).metadata.source?.sha256 == sha.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
        #expect(r.stdout.contains(sha.stdout.trimmingCharacters(in: .whitespacesAndNewlines)))
        let extras = try #require(try NativeCheckpoint(path: out).metadata.extras)
        #expect(PT.lookup(extras, "values.epoch") == .int(7))
        #expect(PT.lookup(extras, "values.np_float") == .double(0.25))
        #expect(PT.lookup(extras, "values.args.lr") == .double(0.1))
        #expect(extras["values"]?["state_dict"] == nil, "tensor-only subtrees stay out of the extras")
    }

    /// --dtype f16/bf16 agrees with torch's own `.half()` / `.bfloat16()` (round to nearest even).
    @Test(arguments: ["f16", "bf16", "f32"]) func dtypeConversionMatchesTorch(_ dtype: String) throws {
        let dir = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let input = try PT.fixture("dtypes.pt")
        let out = dir.appendingPathComponent("d.safetensors").path
        let r = try TestSupport.zoo(["convert", input, "-o", out, "--dtype", dtype])
        #expect(r.status == 0, "\(r.stderr)")
        let script = """
        import sys, torch
        from safetensors.torch import load_file
        want = {"f16": torch.float16, "bf16": torch.bfloat16, "f32": torch.float32}[sys.argv[3]]
        src = torch.load(sys.argv[1], weights_only=True)
        got = load_file(sys.argv[2])
        bad = []
        for k, t in src.items():
            t = t.detach()
            ref = t.to(want) if t.dtype.is_floating_point and t.dtype != want else t
            if t.dtype.is_floating_point and t.dtype in (torch.float8_e4m3fn, torch.float8_e5m2, torch.float64):
                ref = t.float().to(want)
            g = got[k]
            if g.dtype != ref.dtype or g.shape != ref.shape or not torch.equal(g.reshape(-1).view(torch.uint8) if g.numel() else g, ref.contiguous().reshape(-1).view(torch.uint8) if ref.numel() else ref):
                bad.append(k)
        print("BAD", bad)
        """
        let check = try TestSupport.python(script, [input, out, dtype])
        #expect(check.status == 0, "\(check.stderr)")
        #expect(check.stdout.contains("BAD []"), "\(check.stdout)")
    }

    @Test func badOptionsAreUsageErrors() throws {
        let r = try TestSupport.zoo(["convert", try PT.fixture("views.pt"), "-o", "/tmp/never-written.safetensors", "--dtype", "f8"])
        #expect(r.status == 1)
        #expect(!FileManager.default.fileExists(atPath: "/tmp/never-written.safetensors"))
    }

    @Test func inspectShowsLayoutAndSharing() throws {
        let legacy = try TestSupport.zoo(["inspect", try PT.fixture("vgg_style_legacy.pt")])
        #expect(legacy.status == 0, "\(legacy.stderr)")
        #expect(legacy.stdout.contains("format:  pytorch-legacy"))
        #expect(legacy.stdout.contains("features.0.weight"))
        #expect(legacy.stdout.contains("pickle_protocol: 2"))
        let views = try TestSupport.zoo(["inspect", try PT.fixture("views.pt")])
        #expect(views.stdout.contains("shared storages:"))
        #expect(views.stdout.contains("(147,1,21,3)"))
        let json = try TestSupport.zoo(["inspect", "--json", try PT.fixture("views.pt")])
        let doc = try json.stdout.withCString { p in try JSONValue.parse(UnsafeRawBufferPointer(start: p, count: strlen(p))) }
        let tensors = try #require(doc["tensors"]?.arrayValue)
        let t = try #require(tensors.first { $0["name"] == .string("transposed") })
        #expect(t["strides"] == .array([.int(1), .int(6)]))
        #expect(t["storage"] != nil && t["storage_offset"] == .int(0))
        // Negative control: a file without shared storages shows no such table.
        let single = try TestSupport.zoo(["inspect", try PT.fixture("single_tensor.pt")])
        #expect(!single.stdout.contains("shared storages"))
        let ts = try TestSupport.zoo(["inspect", try PT.fixture("torchscript_small.pt")])
        #expect(ts.stdout.contains("format:  torchscript"))
        #expect(ts.stdout.contains("conv.weight") && ts.stdout.contains("scale"))
    }
}
