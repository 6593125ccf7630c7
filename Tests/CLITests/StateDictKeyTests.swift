import Foundation
import Testing
import ModelZoo
import ZooFormats
import ZooJSON
import ZooTensor
import ZooTestSupport

/// Several candidate state dicts in one checkpoint (issue 21, item 1): `zoo convert --key`, the stderr note,
/// `zoo.source`'s key and wrappers, `zoo inspect`'s listing. Fixtures: tools/fixtures/gen_multikey.py (a
/// torchvision training-reference checkpoint of a resnet18 with an EMA, and a Lightning-style checkpoint of a
/// torch.compile'd MobileNetV3-Small), with torch's logits for a fixed input.
@Suite struct StateDictKeyTests {
    static func fixture(_ file: String) throws -> String { try TestSupport.fixture("multikey/" + file) }

    static func npy(_ path: String) throws -> Tensor {
        let file = try MappedFile(path: path)
        return try file.withBytes { try NPY.read($0) }
    }

    /// Largest absolute difference over the largest magnitude of `reference`.
    static func relativeError(_ got: Tensor, _ reference: Tensor) -> Float {
        guard got.shape == reference.shape else { return .infinity }
        let a = got.floats(), b = reference.floats()
        var diff: Float = 0, scale: Float = 0
        for i in a.indices {
            if a[i].isNaN { return .infinity }
            diff = max(diff, abs(a[i] - b[i]))
            scale = max(scale, abs(b[i]))
        }
        return diff / max(scale, 1e-30)
    }

    /// `zoo run` of a converted checkpoint on the fixture's input batch: the logits.
    static func logits(of checkpoint: String, in dir: URL) throws -> Tensor {
        let out = dir.appendingPathComponent(UUID().uuidString + ".npy").path
        let r = try TestSupport.zoo(["run", checkpoint, "--input", try fixture("input.npy"), "-o", out])
        try #require(r.status == 0, "\(r.stderr)")
        return try npy(out)
    }

    static func source(_ path: String) throws -> NativeMetadata.Source {
        try #require(try NativeCheckpoint(path: path).metadata.source)
    }

    @Test("default: model, not model_ema; stderr names both; the weights are model's (torch's logits)", arguments: ["resnet18", "auto"])
    func defaultTakesModel(_ arch: String) throws {
        let dir = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("model.safetensors").path
        let r = try TestSupport.zoo(["convert", try Self.fixture("training_ref.pth"), "-o", out, "--arch", arch])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.contains("zoo: state dict: model (ignored: model_ema with 122 tensors; use --key to choose)\n"), "\(r.stderr)")
        let source = try Self.source(out)
        #expect(source.key == "model" && source.wrappers.isEmpty)
        let logits = try Self.logits(of: out, in: dir)
        let model = try Self.npy(try Self.fixture("logits_model.npy"))
        let ema = try Self.npy(try Self.fixture("logits_ema.npy"))
        #expect(Self.relativeError(logits, model) <= 1e-4, "\(Self.relativeError(logits, model))")
        // Negative control: the EMA's logits are far from these, so the comparison above tells the copies apart.
        #expect(Self.relativeError(logits, ema) > 1e-2, "\(Self.relativeError(logits, ema))")
    }

    @Test("--key model_ema: the EMA weights (module. stripped), matching torch's EMA logits", arguments: ["resnet18", "auto"])
    func keyTakesTheEMA(_ arch: String) throws {
        let dir = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("ema.safetensors").path
        let r = try TestSupport.zoo(["convert", try Self.fixture("training_ref.pth"), "-o", out, "--arch", arch, "--key", "model_ema"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.contains("zoo: state dict: model_ema (stripped module.; ignored: model with 122 tensors; use --key to choose)\n"),
                "\(r.stderr)")
        #expect(r.stdout.contains("resnet18 (torchvision, 1000 classes), 122 tensors"), "\(r.stdout)")
        let source = try Self.source(out)
        #expect(source.key == "model_ema" && source.wrappers == ["module."])
        let logits = try Self.logits(of: out, in: dir)
        let ema = try Self.npy(try Self.fixture("logits_ema.npy"))
        let model = try Self.npy(try Self.fixture("logits_model.npy"))
        #expect(Self.relativeError(logits, ema) <= 1e-4, "\(Self.relativeError(logits, ema))")
        #expect(Self.relativeError(logits, model) > 1e-2, "\(Self.relativeError(logits, model))")
    }

    @Test("--key with the wrapper spelled out, and a trailing dot, take the same tensors")
    func keyBelowAKey() throws {
        let dir = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        for key in ["model_ema.module", "model_ema."] {
            let out = dir.appendingPathComponent(UUID().uuidString + ".safetensors").path
            let r = try TestSupport.zoo(["convert", try Self.fixture("training_ref.pth"), "-o", out, "--arch", "resnet18", "--key", key])
            #expect(r.status == 0, "\(r.stderr)")
            let ema = try Self.npy(try Self.fixture("logits_ema.npy"))
            #expect(Self.relativeError(try Self.logits(of: out, in: dir), ema) <= 1e-4, "\(key)")
        }
    }

    @Test("--key nosuch: one line naming the file and the candidates, exit 1, no output; --key without --arch is a usage error")
    func unknownKey() throws {
        let dir = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let input = try Self.fixture("training_ref.pth")
        for arch in ["resnet18", "auto"] {
            let out = dir.appendingPathComponent("never.safetensors").path
            let r = try TestSupport.zoo(["convert", input, "-o", out, "--arch", arch, "--key", "nosuch"])
            #expect(r.status == 1)
            #expect(r.stdout.isEmpty)
            #expect(r.stderr == "zoo: \(input): --key \"nosuch\" selects no state dict; candidates: model (122 tensors), model_ema (122 tensors, module.)\n",
                    "\(r.stderr)")
            #expect(!FileManager.default.fileExists(atPath: out))
            #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).isEmpty, "no temporary file either")
        }
        // A key that exists but holds no model (the optimizer's state) is refused the same way.
        let optimizer = try TestSupport.zoo(["convert", input, "-o", dir.appendingPathComponent("o.safetensors").path, "--arch", "resnet18", "--key", "optimizer"])
        #expect(optimizer.status == 1 && optimizer.stderr.contains("--key \"optimizer\" selects no state dict"), "\(optimizer.stderr)")
        let noArch = try TestSupport.zoo(["convert", input, "-o", dir.appendingPathComponent("x.safetensors").path, "--key", "model"])
        #expect(noArch.status == 1)
        #expect(noArch.stderr == "zoo: --key needs --arch (it picks the state dict the architecture is mapped from)\n", "\(noArch.stderr)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).isEmpty)
    }

    @Test("Lightning state_dict. + torch.compile _orig_mod.: stripped, reported, recorded; torch's logits", arguments: [nil, "state_dict"] as [String?])
    func wrappersAreStripped(_ key: String?) throws {
        let dir = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("w.safetensors").path
        let r = try TestSupport.zoo(["convert", try Self.fixture("wrapped.pth"), "-o", out, "--arch", key == nil ? "auto" : "mobilenet_v3_small"]
                                    + (key.map { ["--key", $0] } ?? []))
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.contains("zoo: state dict: state_dict (stripped _orig_mod.)\n"), "\(r.stderr)")
        #expect(!r.stderr.contains("ignored"), "one candidate only: \(r.stderr)")
        let source = try Self.source(out)
        #expect(source.key == "state_dict" && source.wrappers == ["_orig_mod."])
        let native = try NativeCheckpoint(path: out)
        #expect(native.metadata.architecture == "mobilenet_v3_small")
        #expect(native.file.entries.allSatisfy { !$0.name.hasPrefix("state_dict") && !$0.name.contains("_orig_mod") })
        let expected = try Self.npy(try Self.fixture("wrapped_logits.npy"))
        #expect(Self.relativeError(try Self.logits(of: out, in: dir), expected) <= 1e-4)
    }

    @Test("the library: Converter.Options.key, MappingReport's key, wrappers and other candidates")
    func library() throws {
        let dir = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let input = try Self.fixture("training_ref.pth")
        let ema = try Converter.convert(input: input, output: dir.appendingPathComponent("e.safetensors").path,
                                        options: Converter.Options(arch: "resnet18", key: "model_ema"))
        let report = try #require(ema.report)
        #expect(report.key == "model_ema" && report.wrappers == ["module."] && report.prefix == "model_ema.module.")
        #expect(report.otherStateDicts.map(\.key) == ["model"] && report.otherStateDicts.map(\.tensors) == [122])
        #expect(report.ignored.contains("model.conv1.weight") && report.ignored.contains("model_ema.n_averaged"))
        #expect(ema.metadata.source?.key == "model_ema")
        let plain = try Converter.convert(input: input, output: dir.appendingPathComponent("m.safetensors").path,
                                          options: Converter.Options(arch: "resnet18"))
        #expect(plain.report?.key == "model" && plain.report?.wrappers == [])
        #expect(plain.report?.stateDictNote == "state dict: model (ignored: model_ema with 122 tensors; use --key to choose)")
        #expect(throws: ZooError.self) {
            try Converter.convert(input: input, output: dir.appendingPathComponent("n.safetensors").path,
                                  options: Converter.Options(arch: "resnet18", key: "nosuch"))
        }
        let candidates = StateDicts.candidates(try Checkpoints.read(path: input).tensors)
        #expect(candidates.map(\.key) == ["model", "model_ema"])
        #expect(candidates.map(\.wrappers) == [[], ["module."]])
        #expect(candidates.allSatisfy { $0.tensors == 122 && $0.architectures == ["resnet18"] })
    }

    @Test("a plain state dict records no key and no wrappers: zoo.source is what it was")
    func plainStateDictUnchanged() throws {
        let dir = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let input = try TestSupport.fixture("arch/tv_resnet18.safetensors")
        let out = dir.appendingPathComponent("p.safetensors").path
        let r = try TestSupport.zoo(["convert", input, "-o", out, "--arch", "resnet18"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(!r.stderr.contains("state dict"), "no note for a plain state dict: \(r.stderr)")
        let raw = try #require(try SafetensorsFile(path: out).metadata.first { $0.0 == NativeMetadata.Key.source }?.1)
        #expect(try JSONValue.parse(raw).objectValue?.map(\.0) == ["file", "sha256", "importer", "dtype"], "\(raw)")
    }

    @Test("zoo inspect lists the candidate state dicts, in text and as --json's state_dicts")
    func inspectListsCandidates() throws {
        let input = try Self.fixture("training_ref.pth")
        let text = try TestSupport.zoo(["inspect", input])
        #expect(text.status == 0, "\(text.stderr)")
        let lines = text.stdout.split(separator: "\n").map { $0.split(separator: " ", omittingEmptySubsequences: true).map(String.init) }
        #expect(lines.contains(["model", "model.", "122", "resnet18"]), "\(text.stdout.suffix(2000))")
        #expect(lines.contains(["model_ema", "model_ema.module.", "122", "resnet18"]))
        let json = try TestSupport.zoo(["inspect", "--json", input])
        #expect(json.status == 0, "\(json.stderr)")
        let dicts = try #require(try JSONValue.parse(json.stdout)["state_dicts"]?.arrayValue)
        #expect(dicts.map { $0["key"]?.stringValue } == ["model", "model_ema"])
        #expect(dicts.map { $0["prefix"]?.stringValue } == ["model.", "model_ema.module."])
        #expect(dicts.map { $0["wrappers"]?.arrayValue?.compactMap(\.stringValue) } == [[], ["module."]])
        #expect(dicts.map { $0["tensors"]?.intValue } == [122, 122])
        #expect(dicts.map { $0["architectures"]?.arrayValue?.compactMap(\.stringValue) } == [["resnet18"], ["resnet18"]])
        #expect(dicts.map { $0["families"]?.arrayValue?.compactMap(\.stringValue) } == [["resnet"], ["resnet"]])
        // The wrapped checkpoint: one candidate, key state_dict, wrapper _orig_mod.
        let wrapped = try JSONValue.parse(try TestSupport.zoo(["inspect", "--json", try Self.fixture("wrapped.pth")]).stdout)
        let w = try #require(wrapped["state_dicts"]?.arrayValue)
        #expect(w.count == 1 && w.first?["key"]?.stringValue == "state_dict" && w.first?["wrappers"]?.arrayValue == [.string("_orig_mod.")])
        #expect(w.first?["architectures"]?.arrayValue?.contains(.string("mobilenet_v3_small")) == true)
        // Negative control: a file of tensors with no catalogue names has an empty listing and no table.
        let none = try TestSupport.zoo(["inspect", "--json", input.replacingOccurrences(of: "training_ref.pth", with: "input.npy")])
        #expect(try JSONValue.parse(none.stdout)["state_dicts"] == .array([]), "\(none.stderr)")
        #expect(!(try TestSupport.zoo(["inspect", try Self.fixture("input.npy")])).stdout.contains("state dicts"))
    }
}
