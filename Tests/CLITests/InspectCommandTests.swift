import Foundation
import Testing
import ZooFormats
import ZooJSON
import ZooTensor
import ZooTestSupport

@Suite struct InspectCommandTests {
    @Test func textListsFormatMetadataTensorsAndTotals() throws {
        let path = try TestSupport.fixture("core/safetensors/all_dtypes.safetensors")
        let r = try TestSupport.zoo(["inspect", path])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("format:  safetensors"))
        #expect(r.stdout.contains("note: written by safetensors.torch"))
        let row = r.stdout.split(separator: "\n").first { $0.hasPrefix("f32 ") }
        #expect(row.map { $0.split(separator: " ", omittingEmptySubsequences: true) } == ["f32", "F32", "[4,", "5]", "80"])
        #expect(r.stdout.contains("total: 18 tensors"))
        #expect(r.stderr.isEmpty)
    }

    @Test func jsonHasTheDocumentedShape() throws {
        let path = try TestSupport.fixture("core/safetensors/all_dtypes.safetensors")
        let r = try TestSupport.zoo(["inspect", path, "--json"])
        #expect(r.status == 0, "\(r.stderr)")
        let doc = try JSONValue.parse(r.stdout)
        #expect(doc["format"]?.stringValue == "safetensors")
        #expect(doc["metadata"]?["format"]?.stringValue == "pt")
        let tensors = try #require(doc["tensors"]?.arrayValue)
        #expect(tensors.count == 18)
        let f16 = try #require(tensors.first { $0["name"]?.stringValue == "f16" })
        #expect(f16["dtype"]?.stringValue == "F16")
        #expect(f16["shape"]?.arrayValue?.compactMap(\.intValue) == [2, 3])
        let scalar = try #require(tensors.first { $0["name"]?.stringValue == "scalar" })
        #expect(scalar["shape"]?.arrayValue?.isEmpty == true)
        // Parameter total = sum of element counts, checked against the file itself.
        let file = try SafetensorsFile(path: path)
        let expected = file.entries.reduce(0) { $0 + $1.shape.reduce(1, *) }
        #expect(doc["totals"]?["parameters"]?.intValue == expected)
    }

    @Test func nativeCheckpointShowsZooMetadata() throws {
        let dir = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("n.safetensors").path
        var meta = NativeMetadata()
        meta.architecture = "resnet18"
        meta.config = .object([("classes", .int(10))])
        try NativeCheckpoint.write([TensorRecord(name: "fc.bias", tensor: try Tensor(zeros: .f32, shape: [10]))],
                                   metadata: meta, to: path, overwrite: false)
        let r = try TestSupport.zoo(["inspect", "--json", path])
        #expect(r.status == 0, "\(r.stderr)")
        let doc = try JSONValue.parse(r.stdout)
        #expect(doc["format"]?.stringValue == "zoo-native")
        #expect(doc["metadata"]?["zoo.architecture"]?.stringValue == "resnet18")
        #expect(doc["metadata"]?["zoo.config"]?["classes"]?.intValue == 10)
    }

    @Test func detectsFormatFromBytesNotExtension() throws {
        let dir = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let src = try TestSupport.fixture("core/safetensors/no_metadata.safetensors")
        let renamed = dir.appendingPathComponent("weights.h5").path
        try FileManager.default.copyItem(atPath: src, toPath: renamed)
        let r = try TestSupport.zoo(["inspect", renamed])
        #expect(r.status == 0)
        #expect(r.stdout.contains("format:  safetensors"))
    }

    /// An absurd header length is still recognised as safetensors, so the message says what is
    /// wrong (the example in docs/cli.md) instead of "unknown format".
    @Test func absurdHeaderLengthIsNamedNotUnknown() throws {
        let dir = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("model.safetensors").path
        let bytes = withUnsafeBytes(of: (UInt64(1) << 60).littleEndian) { Array($0) } + Array(#"{"a":{}}"#.utf8)
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        let r = try TestSupport.zoo(["inspect", path])
        #expect(r.status == 2)
        #expect(r.stderr == "zoo: \(path): header length 1152921504606846976 exceeds the limit of 100000000 bytes (at byte 0)\n", "\(r.stderr)")
    }

    /// Every user-caused failure: non-zero exit, one line on stderr naming the file and the problem.
    @Test func errorsAreOneLineNamingTheFile() throws {
        let dir = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let text = dir.appendingPathComponent("notes.txt").path
        try Data("hello, not a checkpoint\n".utf8).write(to: URL(fileURLWithPath: text))
        let corrupt = dir.appendingPathComponent("corrupt.safetensors").path
        let original = [UInt8](try Data(contentsOf: URL(fileURLWithPath: TestSupport.fixture("core/safetensors/all_dtypes.safetensors"))))
        var bytes = original
        bytes[9] = UInt8(ascii: "#") // right after the header's opening brace
        try Data(bytes).write(to: URL(fileURLWithPath: corrupt))
        let truncated = dir.appendingPathComponent("truncated.safetensors").path
        try Data(original.prefix(original.count - 7)).write(to: URL(fileURLWithPath: truncated))
        let empty = dir.appendingPathComponent("empty.bin").path
        try Data().write(to: URL(fileURLWithPath: empty))
        let missing = dir.appendingPathComponent("missing.pth").path
        let cases: [(String, Int32, String)] = [
            (missing, 3, "cannot open"),
            (dir.path, 3, "is a directory"),
            (text, 2, "unknown format"),
            (corrupt, 2, "JSON"),
            (truncated, 2, "data section"),
            (empty, 2, "empty"),
        ]
        for (path, code, words) in cases {
            let r = try TestSupport.zoo(["inspect", path])
            #expect(r.status == code, "\(path): \(r.stderr)")
            let lines = r.stderr.split(separator: "\n")
            #expect(lines.count == 1, "\(r.stderr)")
            #expect(r.stderr.hasPrefix("zoo: \(path)"), "\(r.stderr)")
            #expect(r.stderr.contains(words), "\(r.stderr)")
            #expect(r.stdout.isEmpty)
        }
    }

    @Test func usageErrorsExitOne() throws {
        let r = try TestSupport.zoo(["inspect"])
        #expect(r.status != 0)
        let r2 = try TestSupport.zoo(["no-such-command"])
        #expect(r2.status != 0)
    }
}
