import Foundation
import ModelZoo
import Testing
import ZooTestSupport

/// A made-up text format, defined here only, through the public `CheckpointImporter` protocol:
///
///     zoo-toy-text 1
///     NAME DIM DIM ... : VALUE VALUE ...
///
/// one float32 tensor a line. It shows that a new importer needs no edit anywhere else: once
/// registered, `Checkpoints.read` and `Converter.plan` pick it up by sniffing the bytes.
struct ToyTextImporter: CheckpointImporter {
    /// A typed option, handed over in `ImportOptions` like the built-in importers' ones.
    struct Options: ImporterOptions {
        var maxTensors = 16
        init() {}
    }

    static let magic = Array("zoo-toy-text 1\n".utf8)

    var id: String { "toy-text" }
    var displayName: String { "toy text" }

    func sniff(_ bytes: UnsafeRawBufferPointer) -> SniffMatch? {
        bytes.starts(with: Self.magic) ? .signature : nil
    }

    func read(_ file: MappedFile, options: Options) throws -> ImportedCheckpoint {
        let text = String(decoding: file.bytes.dropFirst(Self.magic.count), as: UTF8.self)
        var records: [TensorRecord] = []
        for (i, line) in text.split(separator: "\n").enumerated() {
            let halves = line.split(separator: ":", maxSplits: 1)
            let head = halves.first?.split(separator: " ") ?? []
            guard halves.count == 2, let name = head.first else { throw ZooError.bad("line \(i + 2) is not `NAME DIMS : VALUES`") }
            let shape = head.dropFirst().compactMap { Int($0) }
            let values = halves[1].split(separator: " ").compactMap { Float($0) }
            guard records.count < options.maxTensors else { throw ZooError.bad("more than \(options.maxTensors) tensors") }
            records.append(TensorRecord(name: String(name), tensor: try Tensor(shape: shape, floats: values)))
        }
        return ImportedCheckpoint(format: "toy-text", metadata: [("lines", .int(Int64(records.count)))], tensors: records)
    }
}

@Suite struct ImporterRegistryTests {
    /// Registering is idempotent (same `id`), so tests running in parallel may all call it.
    static func registerToy() { Checkpoints.register(ToyTextImporter()) }

    static func write(_ text: String, _ name: String, in dir: URL) throws -> String {
        let path = dir.appendingPathComponent(name).path
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        return path
    }

    static let toy = "zoo-toy-text 1\nfc.weight 2 3 : 1 2 3 4 5 6\nfc.bias 2 : 0.5 -1\n"

    /// Registers the toy importer, writes `text` as `name` in a new temporary folder and runs `body`
    /// with the file's path and the folder (removed afterwards).
    static func withToyFile(_ text: String = toy, named name: String, _ body: (String, URL) throws -> Void) throws {
        registerToy()
        let dir = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        try body(try write(text, name, in: dir), dir)
    }

    @Test func aRegisteredImporterIsPickedUpByCheckpointsRead() throws {
        // The extension says nothing: the bytes choose the importer.
        try Self.withToyFile(named: "weights.bin") { path, _ in
            let ckpt = try Checkpoints.read(path: path)
            #expect(ckpt.format == "toy-text")
            #expect(ckpt.tensors.map(\.name) == ["fc.weight", "fc.bias"])
            #expect(ckpt.tensors.map(\.shape) == [[2, 3], [2]])
            #expect(try ckpt.tensors[1].load().floats() == [0.5, -1])
            #expect(Checkpoints.importers.importers.map(\.id).suffix(1) == ["toy-text"])
        }
    }

    @Test func itsTypedOptionsArriveThroughImportOptions() throws {
        try Self.withToyFile(named: "weights.toy") { path, _ in
            var options = ImportOptions()
            options[ToyTextImporter.self].maxTensors = 1
            let e = try #require(throws: ZooError.self) { try Checkpoints.read(path: path, options: options) }
            #expect(e.description.contains(path) && e.description.contains("more than 1 tensors"), "\(e)")
            // Another importer's options leave it at its defaults.
            options = ImportOptions()
            options[PyTorchImporter.self].verifyCRC = false
            #expect(try Checkpoints.read(path: path, options: options).tensors.count == 2)
        }
    }

    @Test func converterPlansAndWritesItsFiles() throws {
        try Self.withToyFile(named: "toy.txt") { path, dir in
            let plan = try Converter.plan(input: path)
            #expect(plan.format == "toy-text")
            #expect(plan.metadata.source?.importer == "toy-text")
            #expect(plan.records.map(\.name) == ["fc.weight", "fc.bias"])
            let out = dir.appendingPathComponent("toy.safetensors").path
            _ = try Converter.write(plan, to: out, overwrite: false)
            let native = try Checkpoints.read(path: out)
            #expect(native.format == "zoo-native")
            let weight = try #require(native.tensors.first { $0.name == "fc.weight" })
            #expect(weight.shape == [2, 3])
            #expect(try weight.load().floats() == [1, 2, 3, 4, 5, 6])
        }
    }

    /// Negative control: bytes of no registered format are refused with one line naming the file and
    /// listing the registered formats (the toy one included, once registered).
    @Test func unknownBytesAreRefusedNamingTheFileAndTheRegisteredFormats() throws {
        try Self.withToyFile("zoo-toy-text 2\nfc.bias 1 : 1\n", named: "almost.toy") { path, dir in
            let e = try #require(throws: ZooError.self) { try Checkpoints.read(path: path) }
            #expect(e.kind == .unsupported)
            #expect(e.file == path)
            #expect(e.message == "unknown format (not safetensors, PyTorch, HDF5, .npy or toy text)")
            let empty = try Self.write("", "empty.toy", in: dir)
            let e2 = try #require(throws: ZooError.self) { try Checkpoints.read(path: empty) }
            #expect(e2.message == "file is empty" && e2.file == empty)
        }
    }

    /// The built-in set's message is today's, byte for byte, and so is the CLI's line.
    @Test func theBuiltInSetKeepsTodaysMessage() throws {
        let builtIn = ImporterRegistry(Checkpoints.importers.importers.filter { $0.id != "toy-text" })
        #expect(builtIn.importers.map(\.id) == ["safetensors", "pytorch", "hdf5", "npy"])
        #expect(builtIn.unknownFormatMessage == "unknown format (not safetensors, PyTorch, HDF5 or .npy)")
        // The zoo binary registers nothing more: its line for the toy file is today's.
        try Self.withToyFile(named: "toy.txt") { path, _ in
            let r = try TestSupport.zoo(["inspect", path])
            #expect(r.status == 2)
            #expect(r.stderr == "zoo: \(path): unknown format (not safetensors, PyTorch, HDF5 or .npy)\n")
        }
    }

    /// `register` from many threads at once loses nothing and keeps one entry per `id`.
    @Test func registeringConcurrentlyIsSafe() async {
        struct Numbered: CheckpointImporter {
            let n: Int
            var id: String { "numbered-\(n % 10)" }
            var displayName: String { id }
            func sniff(_ bytes: UnsafeRawBufferPointer) -> SniffMatch? { nil }
            func read(_ file: MappedFile, options: NoImportOptions) throws -> ImportedCheckpoint { ImportedCheckpoint(format: id, tensors: []) }
        }
        let registry = ImporterRegistry()
        await withTaskGroup(of: Void.self) { group in
            for n in 0..<200 { group.addTask { registry.register(Numbered(n: n)) } }
        }
        #expect(Set(registry.importers.map(\.id)) == Set((0..<10).map { "numbered-\($0)" }))
        #expect(registry.importers.count == 10)
    }

    /// Detection keeps the precedence the closed `FileFormat.detect` had: `.npy` and zip magic numbers,
    /// then HDF5 (at 0 or after a user block), then safetensors' header, then a bare pickle.
    @Test func sniffingKeepsThePrecedenceBetweenFormats() throws {
        let registry = ImporterRegistry([SafetensorsImporter(), PyTorchImporter(), HDF5Importer(), NPYImporter()])
        func detect(_ bytes: [UInt8]) -> String? { bytes.withUnsafeBytes { registry.importer(for: $0)?.id } }
        let hdf5: [UInt8] = [0x89, 0x48, 0x44, 0x46, 0x0D, 0x0A, 0x1A, 0x0A]
        let safetensorsHeader: [UInt8] = [2, 0, 0, 0, 0, 0, 0, 0] + Array("{}".utf8)
        func padded(_ head: [UInt8], hdf5At offset: Int) -> [UInt8] {
            var b = head + [UInt8](repeating: 0, count: max(0, offset - head.count))
            b.replaceSubrange(offset..<min(b.count, offset + 8), with: hdf5)
            return b
        }
        #expect(detect(safetensorsHeader) == "safetensors")
        #expect(detect(hdf5) == "hdf5")
        #expect(detect(Array("PK\u{3}\u{4}".utf8)) == "pytorch")
        #expect(detect([0x80, 0x02, 0x8A]) == "pytorch")
        #expect(detect([0x93] + Array("NUMPY".utf8)) == "npy")
        // Files several sniffs accept.
        #expect(detect(padded(Array("PK\u{3}\u{4}".utf8), hdf5At: 512)) == "pytorch")
        #expect(detect(padded([0x93] + Array("NUMPY\u{1}\u{0}{".utf8), hdf5At: 1024)) == "npy")
        #expect(detect([0x93] + Array("NUMPY\u{1}\u{0}{ ".utf8)) == "npy")
        #expect(detect(padded(safetensorsHeader, hdf5At: 512)) == "hdf5")
        #expect(detect(padded([0x80, 0x02], hdf5At: 2048)) == "hdf5")
        #expect(detect([0x80, 0x02, 0, 0, 0, 0, 0, 0, UInt8(ascii: "{"), 0]) == "safetensors")
        // Negative controls: no signature where it may stand, a pickle protocol above 5, too few bytes.
        #expect(detect(padded([0x00], hdf5At: 700)) == nil)
        #expect(detect([0x80, 0x06]) == nil)
        #expect(detect(Array("PK".utf8)) == nil)
        #expect(detect([]) == nil)
    }
}
