import Foundation
import ModelZoo
import Testing
import ZooTestSupport

/// The pipelines live in the library and the commands are thin (#12): a Swift user calling
/// `Converter.convert` or `FeatureExtractor` gets byte for byte the file `zoo convert --arch` or
/// `zoo features` writes; the options with a fixed set of values list them in `--help` and completion.
@Suite struct LibraryPipelineTests {
    static let image = TestSupport.root.appendingPathComponent("zoo/samples/sailboat.jpg").path

    static func bytes(_ path: String) throws -> Data { try Data(contentsOf: URL(fileURLWithPath: path)) }

    @Test func converterConvertWritesWhatZooConvertWrites() throws {
        let dir = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let source = try TestSupport.fixture("predict/mobilenet_v3_small.pth")
        let cli = dir.appendingPathComponent("cli.safetensors").path
        let r = try TestSupport.zoo(["convert", source, "--arch", "mobilenet_v3_small", "-o", cli])
        #expect(r.status == 0, "\(r.stderr)")

        let lib = dir.appendingPathComponent("lib.safetensors").path
        let summary = try Converter.convert(input: source, output: lib, options: Converter.Options(arch: "mobilenet_v3_small"))
        #expect(try Self.bytes(lib) == Self.bytes(cli))
        #expect(summary.report?.architecture == "mobilenet_v3_small")
        #expect(summary.report?.isComplete == true)
        #expect(summary.sha256 == (try Converter.sha256(path: source)))
        #expect(summary.metadata.source?.sha256 == summary.sha256)
        #expect(r.stdout.contains("\(summary.tensors) tensors, \(summary.bytes) bytes"), "\(r.stdout)")

        // Negative controls: an existing output is refused without overwrite (exit 3's kind), and a
        // cast changes the bytes (the comparison above can fail).
        #expect(throws: ZooError.self) { try Converter.convert(input: source, output: lib, options: Converter.Options(arch: "mobilenet_v3_small")) }
        let half = dir.appendingPathComponent("half.safetensors").path
        try Converter.convert(input: source, output: half, options: Converter.Options(dtype: .f16, arch: "mobilenet_v3_small"))
        #expect(try Self.bytes(half) != Self.bytes(cli))
        // A raw conversion has no mapping report.
        let raw = dir.appendingPathComponent("raw.safetensors").path
        #expect(try Converter.convert(input: source, output: raw).report == nil)
    }

    @Test func featureExtractorWritesWhatZooFeaturesWrites() throws {
        let dir = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let ckpt = dir.appendingPathComponent("m.safetensors").path
        try Converter.convert(input: try TestSupport.fixture("predict/mobilenet_v3_small.pth"), output: ckpt,
                              options: Converter.Options(arch: "mobilenet_v3_small"))
        let extractor = try FeatureExtractor(path: ckpt)
        let images = [Self.image, Self.image, Self.image]

        let cliEmb = dir.appendingPathComponent("cli-emb.safetensors").path
        let e = try TestSupport.zoo(["features", ckpt] + images + ["-o", cliEmb, "--batch", "2"])
        #expect(e.status == 0, "\(e.stderr)")
        let libEmb = dir.appendingPathComponent("lib-emb.safetensors").path
        #expect(try extractor.writeEmbeddings(images: images, to: libEmb, batch: 2) == 3) // rows
        #expect(try Self.bytes(libEmb) == Self.bytes(cliEmb))

        let cliMaps = dir.appendingPathComponent("cli-maps.safetensors").path
        let s = try TestSupport.zoo(["features", ckpt] + images + ["-o", cliMaps, "--stages", "1,4"])
        #expect(s.status == 0, "\(s.stderr)")
        let libMaps = dir.appendingPathComponent("lib-maps.safetensors").path
        #expect(try extractor.writeStageMaps(images: images, stages: [1, 4], to: libMaps) == 6)
        #expect(try Self.bytes(libMaps) == Self.bytes(cliMaps))

        // Negative controls: other stages give other bytes; an existing output is refused without overwrite.
        let other = dir.appendingPathComponent("other.safetensors").path
        try extractor.writeStageMaps(images: images, stages: [1, 3], to: other)
        #expect(try Self.bytes(other) != Self.bytes(cliMaps))
        #expect(throws: ZooError.self) { try extractor.writeEmbeddings(images: images, to: libEmb) }
    }

    @Test(arguments: [(["convert", "--help"], "(values: keep, f32, f16, bf16; default: keep)"),
                      (["init", "--help"], "(values:"), (["features", "--help"], "(values:"), (["bench", "--help"], "(values:")])
    func helpListsTheValues(_ arguments: [String], _ expected: String) throws {
        let r = try TestSupport.zoo(arguments)
        #expect(r.status == 0)
        #expect(r.stdout.contains(expected), "\(r.stdout)")
    }

    @Test func completionOffersTheValuesAndABadValueKeepsItsMessage() throws {
        let fish = try TestSupport.zoo(["--generate-completion-script", "fish"])
        #expect(fish.status == 0)
        #expect(fish.stdout.contains("'keep f32 f16 bf16'"), "fish completion lacks the dtypes")
        #expect(fish.stdout.contains("'torchvision keras'"), "fish completion lacks the flavours")
        // A value outside the set: the command's own message, exit 1, as before the typed values.
        let refused: [([String], String)] = [
            (["init", "resnet18", "--flavour", "jax", "-o", "/nonexistent/x.safetensors"], "zoo: --flavour must be torchvision or keras (got \"jax\")\n"),
            (["convert", "/nonexistent.pt", "-o", "/nonexistent/x.safetensors", "--dtype", "f8"], "zoo: --dtype must be keep, f32, f16 or bf16 (got \"f8\")\n"),
            (["features", "m.safetensors", "a.jpg", "-o", "/nonexistent/x.safetensors", "--pool", "max"], "zoo: --pool supports avg\n"),
        ]
        for (arguments, message) in refused {
            let r = try TestSupport.zoo(arguments)
            #expect(r.status == 1 && r.stderr.hasPrefix(message), "\(arguments): \(r.stderr)")
        }
    }

    /// `run` keeps its older spelling of `--force`, `--overwrite`; both replace an existing output.
    @Test func runAcceptsForceAndOverwrite() throws {
        let dir = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let ckpt = dir.appendingPathComponent("m.safetensors").path
        let i = try TestSupport.zoo(["init", "mobilenet_v3_small", "--classes", "3", "-o", ckpt])
        #expect(i.status == 0, "\(i.stderr)")
        let x = dir.appendingPathComponent("x.npy").path
        try Data(try NPY.encode(try Tensor(shape: [1, 3, 32, 32], floats: [Float](repeating: 0.5, count: 3 * 32 * 32)))).write(to: URL(fileURLWithPath: x))
        let y = dir.appendingPathComponent("y.npy").path
        #expect(try TestSupport.zoo(["run", ckpt, "--input", x, "-o", y]).status == 0)
        // Negative control: without either spelling the existing output is refused (exit 3).
        #expect(try TestSupport.zoo(["run", ckpt, "--input", x, "-o", y]).status == 3)
        for flag in ["--force", "--overwrite"] {
            let r = try TestSupport.zoo(["run", ckpt, "--input", x, "-o", y, flag])
            #expect(r.status == 0, "\(flag): \(r.stderr)")
        }
    }
}
