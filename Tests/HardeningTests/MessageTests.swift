import Foundation
import Testing
import ZooArchitectures
import ZooFormats
import ZooRuntime
import ZooErrors
import ZooJSON
import ZooTensor
import ZooTestSupport

/// Issue #20, items 2 to 5, through the built `zoo` on files made here: the error line names the
/// file at fault, text from a file is escaped on the terminal, a bad file exits 2 (never 1), a
/// file from a newer zoo is refused as such.
@Suite struct MessageTests {
    /// A control sequence of each kind the issue names: set the window title (OSC ... BEL),
    /// clear the screen (ESC [ 2 J), a forged line (CR, LF), C1 CSI (U+009B) and DEL.
    static let hostile = "evil\u{1B}]0;pwned\u{07}\u{1B}[2J\r\nzoo: forged\u{9B}31m\u{7F}"
    /// The same, escaped as docs/cli.md documents it.
    static let hostileEscaped = #"evil\u{1B}]0;pwned\u{7}\u{1B}[2J\u{D}\u{A}zoo: forged\u{9B}31m\u{7F}"#

    /// True when `text` holds a C0 control other than the line feed, DEL or a C1 control.
    static func hasControls(_ text: String) -> Bool {
        text.unicodeScalars.contains { ($0.value < 0x20 && $0 != "\n") || ($0.value >= 0x7F && $0.value <= 0x9F) }
    }

    // MARK: Files made here

    /// A small native classifier (mobilenet_v3_small at width 0.25, 10 classes, 32 x 32 input,
    /// random weights): every command that runs a model can run it in a fraction of a second.
    /// `metadata` edits the native metadata before it is written.
    static func tinyModel(in dir: URL, name: String = "tiny.safetensors", labels: [String]? = nil,
                          edit: (inout [(String, String)]) -> Void = { _ in }) throws -> String {
        var config = try Architectures.preset("mobilenet_v3_small")
        config.width = 0.25
        config.classes = 10
        let graph = try config.graph()
        let weights = try RandomWeights.make(for: graph)
        var meta = NativeMetadata()
        meta.architecture = "mobilenet_v3_small"
        meta.config = try config.json
        meta.preprocessing = try JSONValue.parse(#"{"resize": [32], "crop": [32], "interpolation": "bilinear", "mode": "torch"}"#)
        meta.labels = labels ?? (0..<10).map { "class \($0)" }
        var encoded = meta.encoded()
        edit(&encoded)
        let path = dir.appendingPathComponent(name).path
        let records = weights.sorted { $0.key < $1.key }.map { TensorRecord(name: $0.key, tensor: $0.value) }
        try SafetensorsWriter.write(records, metadata: encoded, to: path, overwrite: true)
        return path
    }

    /// Replaces (or adds) a metadata key.
    static func set(_ key: String, _ value: String) -> (inout [(String, String)]) -> Void {
        { map in
            if let i = map.firstIndex(where: { $0.0 == key }) { map[i].1 = value } else { map.append((key, value)) }
        }
    }

    /// An 8-bit grayscale PNG of `width` x `height` (zlib stored blocks, real CRCs and Adler-32).
    static func png(width: Int, height: Int) -> [UInt8] {
        var raw: [UInt8] = []
        raw.reserveCapacity(height * (width + 1))
        for _ in 0..<height { raw.append(0); raw += [UInt8](repeating: 128, count: width) }
        var z: [UInt8] = [0x78, 0x01]
        var i = 0
        repeat {
            let n = min(65535, raw.count - i)
            z.append(i + n == raw.count ? 1 : 0)
            z += [UInt8(n & 0xFF), UInt8(n >> 8), UInt8(~n & 0xFF), UInt8((~n >> 8) & 0xFF)]
            z += raw[i..<(i + n)]
            i += n
        } while i < raw.count
        var a: UInt32 = 1, b: UInt32 = 0
        for byte in raw { a = (a + UInt32(byte)) % 65521; b = (b + a) % 65521 }
        z += be32((b << 16) | a)
        func chunk(_ type: String, _ data: [UInt8]) -> [UInt8] {
            let body = Array(type.utf8) + data
            return be32(UInt32(data.count)) + body + be32(crc32(body))
        }
        let ihdr = be32(UInt32(width)) + be32(UInt32(height)) + [8, 0, 0, 0, 0]
        return [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] + chunk("IHDR", ihdr) + chunk("IDAT", z) + chunk("IEND", [])
    }

    static func be32(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8((v >> 16) & 0xFF), UInt8((v >> 8) & 0xFF), UInt8(v & 0xFF)] }

    static func crc32(_ bytes: [UInt8]) -> UInt32 {
        var c: UInt32 = 0xFFFF_FFFF
        for byte in bytes {
            c ^= UInt32(byte)
            for _ in 0..<8 { c = (c & 1) != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        }
        return ~c
    }

    /// A legacy (`_use_new_zipfile_serialization=False`) `torch.save` of a state_dict with one
    /// float32 tensor of one element under `key`, written opcode by opcode.
    static func legacyStateDict(key: String) -> [UInt8] {
        func unicode(_ s: String) -> [UInt8] {
            let u = Array(s.utf8)
            return [0x58] + withUnsafeBytes(of: UInt32(u.count).littleEndian, Array.init) + u
        }
        func global(_ m: String, _ n: String) -> [UInt8] { Array("c\(m)\n\(n)\n".utf8) }
        var p: [UInt8] = [0x80, 0x02, 0x7D, 0x28] // PROTO 2, EMPTY_DICT, MARK
        p += unicode(key)
        p += global("torch._utils", "_rebuild_tensor_v2") + [0x28]                   // MARK (arguments)
        p += [0x28] + unicode("storage") + global("torch", "FloatStorage") + unicode("0") + unicode("cpu") + [0x4B, 1, 0x4E, 0x74] // numel 1, view None
        p += [0x51]                                                                  // BINPERSID
        p += [0x4B, 0]                                                               // offset 0
        p += [0x4B, 1, 0x85] + [0x4B, 1, 0x85]                                        // size (1,), stride (1,)
        p += [0x89]                                                                  // requires_grad False
        p += global("collections", "OrderedDict") + [0x29, 0x52]                    // OrderedDict()
        p += [0x74, 0x52]                                                            // TUPLE, REDUCE
        p += [0x75, 0x2E]                                                            // SETITEMS, STOP
        let magic: [UInt8] = [0x80, 0x02, 0x8A, 0x0A, 0x6C, 0xFC, 0x9C, 0x46, 0xF9, 0x20, 0x6A, 0xA8, 0x50, 0x19, 0x2E]
        let version: [UInt8] = [0x80, 0x02, 0x4D, 0xE9, 0x03, 0x2E]
        let info: [UInt8] = [0x80, 0x02, 0x7D, 0x2E]
        let keys: [UInt8] = [0x80, 0x02, 0x5D] + unicode("0") + [0x61, 0x2E]
        let storage = withUnsafeBytes(of: Int64(1).littleEndian, Array.init) + withUnsafeBytes(of: Float(1.5).bitPattern.littleEndian, Array.init)
        return magic + version + info + p + keys + storage
    }

    static func write(_ bytes: [UInt8], _ dir: URL, _ name: String) throws -> String {
        let path = dir.appendingPathComponent(name).path
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }

    /// Checks a failed run: the exit code, one line on stderr that starts with `zoo: FILE: ` and
    /// contains `words`, nothing on stdout.
    static func expectFailure(_ r: TestSupport.ProcessResult, code: Int32, names file: String, _ words: String,
                              sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(r.status == code, "\(r.status) \(r.stderr)", sourceLocation: sourceLocation)
        #expect(r.stderr.hasPrefix("zoo: \(file): "), "\(r.stderr)", sourceLocation: sourceLocation)
        #expect(r.stderr.contains(words), "\(r.stderr)", sourceLocation: sourceLocation)
        #expect(r.stderr.filter { $0 == "\n" }.count == 1 && r.stderr.hasSuffix("\n"), "\(r.stderr)", sourceLocation: sourceLocation)
        #expect(r.stdout.isEmpty, "\(r.stdout)", sourceLocation: sourceLocation)
    }

    // MARK: 2. The message names the file at fault

    /// A 1 x 89000 PNG decodes (89,000 pixels) but resizes to 32 x 2,848,000, above the pixel
    /// limit: `predict` and `features` (both modes) name the image, not the model or the output.
    @Test func resizeLimitNamesTheImage() throws {
        let dir = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let model = try Self.tinyModel(in: dir)
        let wide = try Self.write(Self.png(width: 89000, height: 1), dir, "wide.png")
        let good = try Self.write(Self.png(width: 40, height: 48), dir, "good.png")
        let out = dir.appendingPathComponent("out.safetensors").path
        Self.expectFailure(try TestSupport.zoo(["predict", model, good, wide]), code: 2, names: wide, "exceeds the limit")
        Self.expectFailure(try TestSupport.zoo(["features", model, good, wide, "-o", out]), code: 2, names: wide, "exceeds the limit")
        Self.expectFailure(try TestSupport.zoo(["features", model, good, wide, "-o", out, "--stages", "1,2"]), code: 2, names: wide, "exceeds the limit")
        #expect(!FileManager.default.fileExists(atPath: out))
        // Negative control: the same commands on the good image alone succeed.
        #expect(try TestSupport.zoo(["predict", model, good]).status == 0)
        let ok = try TestSupport.zoo(["features", model, good, "-o", out])
        #expect(ok.status == 0, "\(ok.stderr)")
    }

    /// `zoo run` with a .npy of the wrong rank, an integer dtype, an empty batch or a size too
    /// small for the network: the line names the .npy, not a generic `input`.
    @Test func runNamesTheNpyAtFault() throws {
        let dir = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let model = try Self.tinyModel(in: dir)
        let out = dir.appendingPathComponent("y.npy").path
        let cases: [(String, Tensor, String)] = [
            ("rank.npy", try Tensor(shape: [3, 32, 32], floats: [Float](repeating: 0, count: 3 * 32 * 32)), "must be [N, 3, H, W]"),
            ("int.npy", try Tensor(dtype: .i32, shape: [1, 3, 32, 32], bytes: [UInt8](repeating: 0, count: 4 * 3 * 32 * 32)), "not a float type"),
            ("empty.npy", try Tensor(shape: [0, 3, 32, 32], floats: []), "is empty"),
            ("channels.npy", try Tensor(shape: [1, 4, 32, 32], floats: [Float](repeating: 0, count: 4 * 32 * 32)), "input has 4 channels"),
        ]
        for (name, tensor, words) in cases {
            let npy = try Self.write(try NPY.encode(tensor), dir, name)
            let r = try TestSupport.zoo(["run", model, "--input", npy, "--output", out])
            Self.expectFailure(r, code: 2, names: npy, words)
            #expect(!r.stderr.contains(": input: "), "\(r.stderr)")
            #expect(!FileManager.default.fileExists(atPath: out))
        }
        // Negative control: a right batch runs.
        let x = try Self.write(try NPY.encode(try Tensor(shape: [2, 3, 32, 32], floats: [Float](repeating: 0.5, count: 2 * 3 * 32 * 32))), dir, "x.npy")
        let r = try TestSupport.zoo(["run", model, "--input", x, "--output", out])
        #expect(r.status == 0, "\(r.stderr)")
    }

    /// A state_dict with a key `__metadata__` cannot become a safetensors file: `convert` and
    /// `inspect` refuse it with the same line, naming the input (not the output).
    @Test func reservedTensorNameNamesTheInputInConvertAndInspect() throws {
        let dir = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let pt = try Self.write(Self.legacyStateDict(key: "__metadata__"), dir, "meta.pt")
        let out = dir.appendingPathComponent("out.safetensors").path
        let convert = try TestSupport.zoo(["convert", pt, "-o", out])
        Self.expectFailure(convert, code: 2, names: pt, "__metadata__")
        #expect(!FileManager.default.fileExists(atPath: out))
        let inspect = try TestSupport.zoo(["inspect", pt])
        Self.expectFailure(inspect, code: 2, names: pt, "__metadata__")
        #expect(inspect.stderr == convert.stderr)
        // Negative control: the same file with another key converts, and holds the tensor.
        let fine = try Self.write(Self.legacyStateDict(key: "weight"), dir, "fine.pt")
        let r = try TestSupport.zoo(["convert", fine, "-o", out])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(try SafetensorsFile(path: out).tensor(named: "weight").floats() == [1.5])
    }

    // MARK: 3. Terminal safety

    /// The one escaping function: C0, DEL and C1 as `\u{XX}`, everything else untouched, idempotent.
    @Test func escapingFunctionCoversC0DelAndC1Only() throws {
        for v in Array(0..<0x20) + [0x7F] + Array(0x80...0x9F) {
            let s = String(Character(Unicode.Scalar(UInt32(v))!))
            #expect(s.escapingControlCharacters == "\\u{" + String(v, radix: 16, uppercase: true) + "}")
        }
        let plain = "résumé \\ ü\u{A0}😀 layer.0.weight"
        #expect(plain.escapingControlCharacters == plain)
        #expect(Self.hostile.escapingControlCharacters == Self.hostileEscaped)
        #expect(Self.hostileEscaped.escapingControlCharacters == Self.hostileEscaped)
        // ZooError's one line goes through it; JSON escapes DEL and C1 too.
        let e = ZooError(.badInput, "bad \(Self.hostile)", file: "f\nx", item: Self.hostile)
        #expect(!Self.hasControls(e.description) && !e.description.contains("\n"))
        #expect(!Self.hasControls(JSONValue.string(Self.hostile).serialized()))
        #expect(try JSONValue.parse(JSONValue.string(Self.hostile).serialized()).stringValue == Self.hostile)
    }

    /// `zoo inspect` of a safetensors file whose tensor name, metadata key and value carry escape
    /// sequences: the text output has no control character and shows them escaped; `--json`
    /// still gives the exact values (negative control: the bytes really are in the file).
    @Test func inspectEscapesNamesAndMetadata() throws {
        let dir = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("evil.safetensors").path
        let records = [TensorRecord(name: Self.hostile, tensor: try Tensor(shape: [1], floats: [1]))]
        try SafetensorsWriter.write(records, metadata: [("k" + Self.hostile, "v" + Self.hostile),
                                                        ("zoo.extras", JSONValue.object([("x" + Self.hostile, .string(Self.hostile))]).serialized())],
                                    to: path, overwrite: true)
        let r = try TestSupport.zoo(["inspect", path])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(!Self.hasControls(r.stdout), "\(r.stdout.debugDescription)")
        #expect(r.stdout.contains(Self.hostileEscaped + "  F32"), "\(r.stdout)")
        #expect(r.stdout.contains("k\(Self.hostileEscaped): v\(Self.hostileEscaped)"), "\(r.stdout)")
        #expect(!r.stdout.contains("\nzoo: forged"))
        let json = try TestSupport.zoo(["inspect", path, "--json"])
        #expect(!Self.hasControls(json.stdout))
        let doc = try JSONValue.parse(json.stdout)
        #expect(doc["tensors"]?.arrayValue?.first?["name"]?.stringValue == Self.hostile)
    }

    /// Labels from the checkpoint and image paths are escaped in `predict`'s table.
    @Test func predictEscapesLabelsAndPaths() throws {
        let dir = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let labels = (0..<10).map { "\($0) " + Self.hostile }
        let model = try Self.tinyModel(in: dir, labels: labels)
        let image = try Self.write(Self.png(width: 32, height: 32), dir, "a\u{1B}[2Jb.png")
        let r = try TestSupport.zoo(["predict", model, image, "--top", "10"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(!Self.hasControls(r.stdout), "\(r.stdout.debugDescription)")
        #expect(r.stdout.contains(#"a\u{1B}[2Jb.png"#))
        for i in 0..<10 { #expect(r.stdout.contains(" \(i) " + Self.hostileEscaped + "\n"), "\(i): \(r.stdout)") }
        // Negative control: --json keeps the labels exact.
        let json = try TestSupport.zoo(["predict", model, image, "--top", "1", "--json"])
        let label = try JSONValue.parse(json.stdout)["top"]?.arrayValue?.first?["label"]?.stringValue
        #expect(label.map(labels.contains) == true)
    }

    /// `list --cached` shows cache file names escaped; an error line quoting a name from a file,
    /// and a usage error quoting the command line, are escaped and stay one line.
    @Test func listCachedAndErrorLinesAreEscaped() throws {
        let dir = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let models = dir.appendingPathComponent("models")
        try FileManager.default.createDirectory(at: models, withIntermediateDirectories: true)
        try Data().write(to: models.appendingPathComponent("m\u{1B}]0;t\u{7}\u{9B}2J.safetensors"))
        let list = try TestSupport.zoo(["list", "--cached"], environment: ["ZOO_HOME": dir.path])
        #expect(list.status == 0, "\(list.stderr)")
        #expect(!Self.hasControls(list.stdout), "\(list.stdout.debugDescription)")
        #expect(list.stdout.contains(#"m\u{1B}]0;t\u{7}\u{9B}2J"#), "\(list.stdout)")

        let model = try Self.tinyModel(in: dir, edit: Self.set("zoo.architecture", Self.hostile))
        let run = try TestSupport.zoo(["bench", model, "--iterations", "1", "--warmup", "0"])
        Self.expectFailure(run, code: 2, names: model, Self.hostileEscaped)
        #expect(!Self.hasControls(run.stderr))

        let usage = try TestSupport.zoo(["inspect", model, "--no-such\u{1B}[2J\u{9B}"])
        #expect(usage.status == 1)
        #expect(!Self.hasControls(usage.stderr), "\(usage.stderr.debugDescription)")
        #expect(usage.stderr.contains(#"--no-such\u{1B}[2J\u{9B}"#), "\(usage.stderr)")
    }

    // MARK: 4. Exit codes

    /// A native file naming an architecture this zoo does not know is a bad file (exit 2, its
    /// path first), not a usage error (exit 1), in every command that loads a model.
    @Test func unknownArchitectureInAFileExitsTwo() throws {
        let dir = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let image = try Self.write(Self.png(width: 32, height: 32), dir, "a.png")
        let x = try Self.write(try NPY.encode(try Tensor(shape: [1, 3, 32, 32], floats: [Float](repeating: 0, count: 3 * 32 * 32))), dir, "x.npy")
        for arch in ["vit_b_16", "../../etc/passwd"] {
            let model = try Self.tinyModel(in: dir, name: "m.safetensors", edit: Self.set("zoo.architecture", arch))
            for args in [["predict", model, image], ["run", model, "--input", x, "--output", dir.appendingPathComponent("y.npy").path],
                         ["features", model, image, "-o", dir.appendingPathComponent("f.safetensors").path],
                         ["bench", model, "--iterations", "1", "--warmup", "0"]] {
                let r = try TestSupport.zoo(args)
                Self.expectFailure(r, code: 2, names: model, "unknown architecture \"\(arch)\"")
                #expect(r.stderr.contains("newer zoo"), "\(r.stderr)")
            }
        }
        // The same name on the command line is a usage error (exit 1): it is the user's argument;
        // so is a flavour the architecture lacks (it was exit 2).
        #expect(try TestSupport.zoo(["info", "vit_b_16"]).status == 1)
        #expect(try TestSupport.zoo(["bench", "vit_b_16"]).status == 1)
        let flavour = try TestSupport.zoo(["bench", "mobilenet_v1", "--flavour", "torchvision"])
        #expect(flavour.status == 1 && flavour.stderr.contains("no torchvision flavour"), "\(flavour.stderr)")
        // Negative control: the unedited file runs.
        let good = try Self.tinyModel(in: dir)
        #expect(try TestSupport.zoo(["predict", good, image]).status == 0)
    }

    // MARK: 5. Versions

    /// `zoo.format_version` "99" is refused as written by a newer zoo (exit 2); a minor version of
    /// version 1 ("1.7") is read; malformed versions are bad input.
    @Test func newerFormatVersionIsRefused() throws {
        let dir = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let image = try Self.write(Self.png(width: 32, height: 32), dir, "a.png")
        for v in ["99", "2", "2.0"] {
            let model = try Self.tinyModel(in: dir, edit: Self.set("zoo.format_version", v))
            let r = try TestSupport.zoo(["predict", model, image])
            Self.expectFailure(r, code: 2, names: model, "zoo.format_version: format version \(v): written by a newer zoo")
        }
        for v in ["0", "-1", "1.x", "1.2.3", "", " 1", "１"] {
            let model = try Self.tinyModel(in: dir, edit: Self.set("zoo.format_version", v))
            Self.expectFailure(try TestSupport.zoo(["predict", model, image]), code: 2, names: model, "is not a format version")
        }
        // Negative controls: "1" and a newer minor version of 1 are read.
        for v in ["1", "1.7"] {
            let model = try Self.tinyModel(in: dir, edit: Self.set("zoo.format_version", v))
            let r = try TestSupport.zoo(["predict", model, image])
            #expect(r.status == 0, "\(v): \(r.stderr)")
        }
    }

    /// An unknown `family` in `zoo.config` is refused like a newer version (exit 2); a known family
    /// that contradicts the architecture is bad input; the right one is read.
    @Test func unknownFamilyInConfigIsRefused() throws {
        let dir = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let image = try Self.write(Self.png(width: 32, height: 32), dir, "a.png")
        var config = try Architectures.preset("mobilenet_v3_small")
        config.width = 0.25
        config.classes = 10
        func withFamily(_ family: JSONValue) throws -> String {
            guard case .object(var members) = try config.json else { return "" }
            if let i = members.firstIndex(where: { $0.0 == "family" }) { members[i].1 = family } else { members.append(("family", family)) }
            return JSONValue.object(members).serialized()
        }
        let cases: [(JSONValue, String)] = [
            (.string("transformer"), "unknown family \"transformer\""), (.int(3), "unknown family 3"),
            (.string("resnet"), "family \"resnet\" does not match the architecture mobilenet_v3_small"),
        ]
        for (family, words) in cases {
            let model = try Self.tinyModel(in: dir, edit: Self.set("zoo.config", withFamily(family)))
            Self.expectFailure(try TestSupport.zoo(["predict", model, image]), code: 2, names: model, "zoo.config: " + words)
        }
        let newer = try Self.tinyModel(in: dir, edit: Self.set("zoo.config", withFamily(.string("transformer"))))
        #expect(try TestSupport.zoo(["predict", newer, image]).stderr.contains("newer zoo"))
        // Negative control: the right family is read.
        let model = try Self.tinyModel(in: dir, edit: Self.set("zoo.config", withFamily(.string("mobilenet_v3"))))
        #expect(try TestSupport.zoo(["predict", model, image]).status == 0)
    }
}
