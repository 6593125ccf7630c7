import Foundation
import Testing
import ZooFormats
import ZooErrors
import ZooJSON
import ZooFiles
import ZooTensor
import ZooTestSupport

/// Builds a safetensors file from a raw header text and data bytes (for crafted bad files).
func craft(header: String, data: [UInt8] = [], declaredLength: UInt64? = nil) -> [UInt8] {
    let h = Array(header.utf8)
    var out: [UInt8] = []
    withUnsafeBytes(of: (declaredLength ?? UInt64(h.count)).littleEndian) { out.append(contentsOf: $0) }
    return out + h + data
}

func withTempFile<R>(_ bytes: [UInt8], _ body: (String) throws -> R) throws -> R {
    let dir = try TestSupport.temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: dir) }
    let path = dir.appendingPathComponent("f.safetensors").path
    try Data(bytes).write(to: URL(fileURLWithPath: path))
    return try body(path)
}

@Suite struct SafetensorsRoundTripTests {
    static func sample(_ dtype: DType, _ shape: [Int]) throws -> Tensor {
        var seed: UInt64 = 0x9E37_79B9_7F4A_7C15 &* UInt64(shape.reduce(1, *) + dtype.byteSize)
        return try Tensor(dtype: dtype, shape: shape) { buf in
            for i in 0..<buf.count {
                seed = seed &* 6364136223846793005 &+ 1442695040888963407
                buf[i] = dtype == .bool ? UInt8(seed >> 63) : UInt8(truncatingIfNeeded: seed >> 33)
            }
        }
    }

    @Test(arguments: DType.allCases) func roundTripsEveryDtype(_ dtype: DType) throws {
        let dir = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let shapes: [[Int]] = [[], [0], [3, 0, 2], [7], [2, 3, 5]]
        var records: [TensorRecord] = []
        var originals: [String: Tensor] = [:]
        for (i, s) in shapes.enumerated() {
            let t = try Self.sample(dtype, s)
            originals["t\(i)"] = t
            records.append(TensorRecord(name: "t\(i)", tensor: t))
        }
        let path = dir.appendingPathComponent("rt.safetensors").path
        try SafetensorsWriter.write(records, metadata: [("k", "v")], to: path, overwrite: false)
        let f = try SafetensorsFile(path: path)
        #expect(f.dataStart % 64 == 0)
        #expect(f.metadataValue("k") == "v")
        #expect(f.entries.count == shapes.count)
        for (name, t) in originals {
            let back = try f.tensor(named: name)
            #expect(back.isMapped)
            #expect(back.bitwiseEqual(t), "\(name) \(dtype)")
        }
    }

    @Test func writesInStableAlignedOrder() throws {
        let dir = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let records = [
            TensorRecord(name: "b", tensor: try Tensor(zeros: .u8, shape: [3])),
            TensorRecord(name: "a", tensor: try Tensor(zeros: .f32, shape: [2])),
            TensorRecord(name: "c", tensor: try Tensor(zeros: .f64, shape: [1])),
            TensorRecord(name: "d", tensor: try Tensor(zeros: .f16, shape: [1])),
        ]
        let p1 = dir.appendingPathComponent("1.safetensors").path
        let p2 = dir.appendingPathComponent("2.safetensors").path
        try SafetensorsWriter.write(records, metadata: [], to: p1, overwrite: false)
        try SafetensorsWriter.write(records.reversed(), metadata: [], to: p2, overwrite: false)
        #expect(try Data(contentsOf: URL(fileURLWithPath: p1)) == Data(contentsOf: URL(fileURLWithPath: p2)))
        let f = try SafetensorsFile(path: p1)
        #expect(f.entries.map(\.name) == ["c", "a", "d", "b"])
        for e in f.entries { #expect((f.dataStart + e.range.lowerBound) % e.dtype.byteSize == 0) }
    }

    /// Files written by the Python safetensors package: generated at test time by the installed
    /// package (tools/fixtures/gen_core.py), and the same files committed under
    /// Tests/Fixtures/safetensors (written by safetensors 0.8.0 with torch 2.15), so a reader change is
    /// also checked against files that do not depend on the installed versions.
    @Test(arguments: ["generated", "committed"]) func readsFilesWrittenByPythonSafetensorsBitExactly(_ origin: String) throws {
        func path(_ name: String) throws -> String {
            origin == "committed" ? TestSupport.committed("safetensors/\(name)") : try TestSupport.fixture("core/safetensors/\(name)")
        }
        let manifestURL = URL(fileURLWithPath: try path("manifest.json"))
        let manifest = try JSONValue.parse(String(decoding: Data(contentsOf: manifestURL), as: UTF8.self))
        let f = try SafetensorsFile(path: try path("all_dtypes.safetensors"))
        #expect(try SafetensorsFile(path: try path("no_metadata.safetensors")).tensor(named: "only").floats() == [1, 1])
        #expect(f.metadataValue("note") == "written by safetensors.torch")
        let entries = try #require(manifest.arrayValue)
        #expect(entries.count == f.entries.count)
        for e in entries {
            let name = try #require(e["name"]?.stringValue)
            let t = try f.tensor(named: name)
            #expect(t.shape == e["shape"]?.arrayValue?.compactMap(\.intValue), "\(name)")
            #expect(sha256Hex(t.bytes) == e["sha256"]?.stringValue, "\(name)")
            if let values = e["float32"]?.arrayValue {
                let got = t.floats()
                let want = values.map { Float($0.doubleValue ?? .nan) }
                #expect(got.count == want.count)
                for (g, w) in zip(got, want) { #expect(g == w || (g.isNaN && w.isNaN), "\(name)") }
            }
        }
        #expect(try f.tensor(named: "f32").dtype == .f32)
        #expect(try f.tensor(named: "f8_e4m3").dtype == .f8e4m3)
        #expect(try f.tensor(named: "scalar").shape == [])
    }

    @Test func ourFilesLoadInPythonSafetensors() throws {
        let dir = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("ours.safetensors").path
        var meta = NativeMetadata()
        meta.architecture = "resnet18"
        meta.labels = ["a", "b"]
        meta.config = .object([("classes", .int(2))])
        let t = try Tensor(shape: [2, 3], floats: [1, 2, 3, 4, 5, 6])
        let h = try t.converted(to: .bf16)
        try NativeCheckpoint.write([TensorRecord(name: "fc.weight", tensor: t), TensorRecord(name: "fc.bias", tensor: h),
                                    TensorRecord(name: "n", tensor: try Tensor(zeros: .i64, shape: []))],
                                   metadata: meta, to: path, overwrite: false)
        let code = """
        import sys, json
        from safetensors import safe_open
        from safetensors.torch import load_file
        d = load_file(sys.argv[1])
        with safe_open(sys.argv[1], "pt") as f: m = f.metadata()
        print(json.dumps({"w": d["fc.weight"].flatten().tolist(), "b": d["fc.bias"].float().flatten().tolist(),
                          "bd": str(d["fc.bias"].dtype), "n": d["n"].item(), "nshape": list(d["n"].shape),
                          "arch": m["zoo.architecture"], "labels": json.loads(m["zoo.labels"]), "fmt": m["format"]}))
        """
        let r = try TestSupport.python(code, [path])
        #expect(r.status == 0, "\(r.stderr)")
        let out = try JSONValue.parse(r.stdout)
        #expect(out["w"]?.arrayValue?.compactMap(\.doubleValue) == [1, 2, 3, 4, 5, 6])
        #expect(out["bd"]?.stringValue == "torch.bfloat16")
        #expect(out["nshape"]?.arrayValue?.count == 0)
        #expect(out["arch"]?.stringValue == "resnet18")
        #expect(out["labels"]?.arrayValue?.compactMap(\.stringValue) == ["a", "b"])
        #expect(out["fmt"]?.stringValue == "pt")
        let back = try NativeCheckpoint(path: path)
        #expect(back.metadata == meta)
    }
}

@Suite struct SafetensorsValidationTests {
    /// Every rule, each with a crafted file that breaks it and the words the error must contain.
    static let cases: [(String, [UInt8], String)] = [
        ("empty file", [], "truncated"),
        ("short length", [1, 2, 3], "truncated"),
        ("huge header length", craft(header: "{}", declaredLength: 1 << 60), "exceeds the limit"),
        ("header past end", craft(header: "{}", declaredLength: 400), "past the end"),
        ("not JSON", craft(header: "{nope"), "JSON"),
        ("not an object", craft(header: "[1,2]  "), "start with '{'"),
        ("trailing garbage", craft(header: "{} x"), "unexpected data"),
        ("duplicate names", craft(header: #"{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}"#, data: [1, 2]), "duplicate key"),
        ("unknown dtype", craft(header: #"{"a":{"dtype":"C64","shape":[1],"data_offsets":[0,8]}}"#, data: Array(repeating: 0, count: 8)), "unknown dtype"),
        ("negative dim", craft(header: #"{"a":{"dtype":"U8","shape":[-1],"data_offsets":[0,1]}}"#, data: [0]), "non-negative"),
        ("size mismatch", craft(header: #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}"#, data: [0, 0, 0, 0]), "needs 8 bytes"),
        ("offsets reversed", craft(header: #"{"a":{"dtype":"U8","shape":[0],"data_offsets":[4,0]}}"#, data: [0, 0, 0, 0]), "end before"),
        ("out of bounds", craft(header: #"{"a":{"dtype":"U8","shape":[8],"data_offsets":[0,8]}}"#, data: [0, 0]), "data section has 2"),
        ("overlap", craft(header: #"{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"b":{"dtype":"U8","shape":[2],"data_offsets":[1,3]}}"#, data: [0, 0, 0]), "overlap"),
        ("hole", craft(header: #"{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"b":{"dtype":"U8","shape":[1],"data_offsets":[2,3]}}"#, data: [0, 0, 0]), "hole"),
        ("trailing bytes", craft(header: #"{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}"#, data: [0, 9]), "belong to no tensor"),
        ("overflowing shape", craft(header: #"{"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}}"#, data: [0, 0, 0, 0]), "overflows"),
        ("missing field", craft(header: #"{"a":{"dtype":"U8","shape":[1]}}"#, data: [0]), "no data_offsets"),
        ("extra field", craft(header: #"{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"x":1}}"#, data: [0]), "unexpected key"),
        ("metadata not strings", craft(header: #"{"__metadata__":{"a":1}}"#), "not a string"),
        ("bad utf8", craft(header: "{\"\u{00e9}\":1}").enumerated().map { $0.offset == 10 ? 0xFF : $0.element }, "UTF-8"),
        ("too deep", craft(header: "{\"__metadata__\":" + String(repeating: "[", count: 100) + String(repeating: "]", count: 100) + "}"), "nesting"),
    ]

    @Test(arguments: 0..<cases.count) func refusesCraftedFile(_ index: Int) throws {
        let (what, bytes, words) = Self.cases[index]
        try withTempFile(bytes) { path in
            do {
                _ = try SafetensorsFile(path: path)
                Issue.record("\(what): accepted")
            } catch let e as ZooError {
                #expect(e.description.contains(words), "\(what): \(e.description)")
                #expect(e.file == path, "\(what): error does not name the file")
                #expect(!e.description.contains("\n"))
            }
        }
    }

    @Test func acceptsMinimalValidFiles() throws {
        try withTempFile(craft(header: "{}")) { path in
            let f = try SafetensorsFile(path: path)
            #expect(f.entries.isEmpty)
        }
        try withTempFile(craft(header: #"{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}}   "#, data: [7, 8])) {
            let f = try SafetensorsFile(path: $0)
            #expect(try f.tensor(named: "a").bytes == [7, 8])
        }
    }
}

@Suite struct AtomicWriteTests {
    struct Boom: Error {}

    @Test func failedWriteLeavesNoFile() throws {
        let dir = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("out.safetensors").path
        let good = TensorRecord(name: "a", tensor: try Tensor(zeros: .f32, shape: [1 << 20]))
        let bad = TensorRecord(name: "b", dtype: .f32, shape: [4]) { throw ZooError.bad("simulated read failure") }
        #expect(throws: ZooError.self) {
            try SafetensorsWriter.write([good, bad], metadata: [], to: path, overwrite: false)
        }
        #expect(!FileManager.default.fileExists(atPath: path))
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).isEmpty, "temporary file left behind")
    }

    @Test func refusesToOverwriteUnlessAsked() throws {
        let dir = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("out.bin").path
        try AtomicFileWriter.write([1], to: path, overwrite: false)
        #expect(throws: ZooError.self) { try AtomicFileWriter.write([2], to: path, overwrite: false) }
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == Data([1]))
        try AtomicFileWriter.write([2], to: path, overwrite: true)
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == Data([2]))
    }

    @Test func producedTensorMustMatchItsDeclaration() throws {
        let dir = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let liar = TensorRecord(name: "x", dtype: .f32, shape: [3]) { try Tensor(zeros: .f32, shape: [4]) }
        let path = dir.appendingPathComponent("o.safetensors").path
        #expect(throws: ZooError.self) { try SafetensorsWriter.write([liar], metadata: [], to: path, overwrite: false) }
        #expect(!FileManager.default.fileExists(atPath: path))
    }
}
