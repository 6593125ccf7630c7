import Foundation
import ModelZoo
import Testing
import ZooFormats
import ZooJSON
import ZooTestSupport

/// `zoo init` (seeded random checkpoints written by the zoo itself) and `make demo`'s tour, run
/// offline against the build under test, without the Python environment.
@Suite(.serialized) struct InitDemoTests {
    /// torchvision loads `zoo init` files strictly, counts the same parameters, and the weights follow
    /// torchvision's own initialisation: every tensor's mean and standard deviation are compared with
    /// those of a freshly constructed torchvision model (sampling tolerance), constants exactly.
    @Test func initFilesLoadIntoTorchvisionWithItsInitialisation() throws {
        let dir = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        var args: [String] = []
        for (name, classes) in [("resnet18", 10), ("vgg11_bn", 7), ("mobilenet_v2", 1000), ("mobilenet_v3_small", 3), ("resnext50_32x4d", 5)] {
            let out = dir.appendingPathComponent("\(name).safetensors").path
            let r = try TestSupport.zoo(["init", name, "--seed", "3", "--classes", "\(classes)", "-o", out])
            #expect(r.status == 0, "\(r.stderr)")
            #expect(r.stdout.contains("\(name) (torchvision, \(classes) classes)"))
            args += [name, "\(classes)", out]
        }
        let code = """
        import sys, json, torch, torchvision
        from safetensors.torch import load_file
        from safetensors import safe_open
        torch.manual_seed(0)
        args = sys.argv[1:]
        bad = []
        for i in range(0, len(args), 3):
            name, classes, path = args[i], int(args[i + 1]), args[i + 2]
            sd = load_file(path)
            m = torchvision.models.get_model(name, weights=None, num_classes=classes)
            ref = m.state_dict()
            m.load_state_dict(sd, strict=True)
            params = sum(p.numel() for p in m.parameters())
            ours = sum(v.numel() for k, v in sd.items() if k in dict(m.named_parameters()))
            if params != ours: bad.append(f"{name}: {ours} parameters, torchvision {params}")
            with safe_open(path, "pt") as f:
                meta = f.metadata()
            if json.loads(meta["zoo.config"])["classes"] != classes: bad.append(f"{name}: zoo.config classes")
            for k, v in ref.items():
                w = sd[k]
                if w.dtype != v.dtype or w.shape != v.shape:
                    bad.append(f"{name} {k}: {w.dtype} {tuple(w.shape)} vs {v.dtype} {tuple(v.shape)}"); continue
                if not v.is_floating_point() or v.numel() < 2 or float(v.std()) == 0:
                    if not torch.equal(w, v): bad.append(f"{name} {k}: constant differs")
                    continue
                if v.numel() < 256: continue
                sr, so = float(v.std()), float(w.std())
                if not (0.85 < so / sr < 1.18): bad.append(f"{name} {k}: std {so:.5g} vs torchvision {sr:.5g}")
                if abs(float(w.mean()) - float(v.mean())) > 6 * sr / v.numel() ** 0.5 + 1e-7:
                    bad.append(f"{name} {k}: mean {float(w.mean()):.3g} vs torchvision {float(v.mean()):.3g}")
        print("\\n".join(bad) if bad else "OK")
        """
        let r = try TestSupport.python(code, args)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "OK", "\(r.stdout)")
    }

    /// Negative control for the comparison above: a file whose convolutions were scaled by 2 (a wrong
    /// fan in the initialisation) must be reported.
    @Test func wrongInitialisationIsDetected() throws {
        let dir = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("r.safetensors").path
        #expect(try TestSupport.zoo(["init", "resnet18", "-o", out]).status == 0)
        let code = """
        import sys, torch, torchvision
        from safetensors.torch import load_file
        sd = load_file(sys.argv[1])
        ref = torchvision.models.resnet18().state_dict()
        k = "layer2.0.conv1.weight"
        ok = 0.85 < float(sd[k].std()) / float(ref[k].std()) < 1.18
        scaled = 0.85 < float(2 * sd[k].std()) / float(ref[k].std()) < 1.18
        print(ok, scaled)
        """
        let r = try TestSupport.python(code, [out])
        #expect(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "True False", "\(r.stdout) \(r.stderr)")
    }

    /// Every architecture in every flavour (the library's `Initializer`, whose plan `zoo init` writes):
    /// the checkpoint holds exactly the catalogue's parameter count and canonical names; through the CLI
    /// for small ones (the big VGG and ResNet files would cost minutes of writing in a debug build):
    /// metadata, Keras structure (convolution biases), the count in `zoo info --json`.
    @Test func everyArchitectureAndFlavourInitialises() throws {
        for name in Architectures.names {
            for flavour in Architectures.flavours(of: name) {
                let config = try Architectures.preset(name, flavour: flavour)
                let plan = try Initializer.plan(config: config, seed: 1)
                let spec = try config.parameterSpec()
                #expect(plan.records.map(\.name) == spec.map(\.name), "\(name) \(flavour)")
                #expect(plan.records.map(\.shape) == spec.map(\.shape), "\(name) \(flavour)")
                let params = plan.records.filter { r in spec.first { $0.name == r.name }?.isParameter == true }
                    .reduce(0) { $0 + $1.elementCount }
                let entry = try Catalogue.shared().entry(name)
                #expect(params == (try entry.config(flavour: flavour).graph().parameterCount), "\(name) \(flavour)")
                #expect(plan.metadata.architecture == name && plan.metadata.labels?.count == 1000)
            }
        }
        let dir = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        for (name, flavour) in [("mobilenet_v3_small", "torchvision"), ("mobilenet_v3_small", "keras"), ("mobilenet_v1_025", "keras"),
                                ("mobilenet_v2_035", "keras"), ("resnet50", "keras")] {
            let out = dir.appendingPathComponent("\(name)-\(flavour).safetensors").path
            let r = try TestSupport.zoo(["init", name, "--flavour", flavour, "-o", out])
            #expect(r.status == 0, "\(name) \(flavour): \(r.stderr)")
            let file = try NativeCheckpoint(path: out)
            #expect(file.metadata.architecture == name)
            #expect(file.metadata.config?["flavour"]?.stringValue == flavour)
            #expect(file.metadata.labels?.count == 1000)
            let info = try JSONValue.parse(try TestSupport.zoo(["info", name, "--flavour", flavour, "--json"]).stdout)
            let want = try #require(info["parameters"]?.intValue, "\(name) \(flavour): info has no parameter count")
            let have = file.file.records.filter {
                !$0.name.hasSuffix("running_mean") && !$0.name.hasSuffix("running_var") && !$0.name.hasSuffix("num_batches_tracked")
            }.reduce(0) { $0 + $1.elementCount }
            #expect(have == want, "\(name) \(flavour): \(have) parameters, catalogue \(want)")
            if name == "resnet50" { #expect(file.file.records.contains { $0.name == "conv1.bias" }) }
            try FileManager.default.removeItem(atPath: out)
        }
        // Determinism.
        let a = dir.appendingPathComponent("a.safetensors").path, b = dir.appendingPathComponent("b.safetensors").path
        let c = dir.appendingPathComponent("c.safetensors").path
        for (path, seed) in [(a, "7"), (b, "7"), (c, "8")] {
            #expect(try TestSupport.zoo(["init", "mobilenet_v3_small", "--seed", seed, "-o", path]).status == 0)
        }
        let da = try Data(contentsOf: URL(fileURLWithPath: a)), db = try Data(contentsOf: URL(fileURLWithPath: b))
        let dc = try Data(contentsOf: URL(fileURLWithPath: c))
        #expect(da == db)
        #expect(da != dc && da.count == dc.count)
    }

    /// Bad requests: one line, the documented exit code, no file.
    @Test func initRefusesBadRequests() throws {
        let dir = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("x.safetensors").path
        let cases: [([String], Int32, String)] = [
            (["init", "vit_b_16", "-o", out], 1, "unknown architecture"),
            (["init", "resnet18", "--flavour", "keras", "-o", out], 1, "has no keras flavour"),
            (["init", "resnet18", "--flavour", "jax", "-o", out], 1, "--flavour must be"),
            (["init", "resnet18", "--classes", "0", "-o", out], 1, "--classes"),
        ]
        for (args, code, text) in cases {
            let r = try TestSupport.zoo(args)
            #expect(r.status == code, "\(args): \(r.status) \(r.stderr)")
            #expect(r.stderr.hasPrefix("zoo: ") && r.stderr.contains(text), "\(args): \(r.stderr)")
            #expect(!FileManager.default.fileExists(atPath: out))
        }
        #expect(try TestSupport.zoo(["init", "resnet18", "-o", out]).status == 0)
        let again = try TestSupport.zoo(["init", "resnet18", "-o", out])
        #expect(again.status == 3 && again.stderr.contains("already exists"))
    }

    /// `make demo`'s script, offline, on the build under test: every step runs and prints what a user
    /// should see, and nothing calls Python (a `python3`/`python` first on PATH that records any call).
    @Test func demoRunsOfflineWithoutPython() throws {
        let dir = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let fake = dir.appendingPathComponent("bin")
        try FileManager.default.createDirectory(at: fake, withIntermediateDirectories: true)
        let marker = dir.appendingPathComponent("python-was-called").path
        for exe in ["python", "python3"] {
            let path = fake.appendingPathComponent(exe).path
            try "#!/bin/sh\necho \"$0 $*\" >> \(marker)\nexit 1\n".write(toFile: path, atomically: true, encoding: .utf8)
            chmod(path, 0o755)
        }
        let path = fake.path + ":" + (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin")
        let r = try TestSupport.run("/bin/bash", [TestSupport.root.appendingPathComponent("tools/demo.sh").path], environment: [
            "ZOO_BIN": TestSupport.zooBinary, "ZOO_DEMO_OFFLINE": "1", "ZOO_DEMO_WORK": dir.appendingPathComponent("work").path,
            "PATH": path, "ZOO_PYTHON": marker, "ZOO_VENV": dir.appendingPathComponent("no-venv").path,
        ])
        #expect(r.status == 0, "\(r.stdout)\n\(r.stderr)")
        for step in ["zoo init mobilenet_v3_small", "zoo convert", "zoo inspect", "zoo list", "zoo info", "zoo predict", "zoo features"] {
            #expect(r.stdout.contains("$ \(step)"), "demo output lacks \(step)")
        }
        #expect(r.stdout.contains("random weights, seed 0"))
        #expect(r.stdout.contains("probability  index  label"))
        #expect(r.stdout.contains("no network"))
        #expect(r.stdout.hasSuffix("demo: done\n"))
        #expect(!FileManager.default.fileExists(atPath: marker), "the demo called Python")
        let emb = try NativeCheckpoint(path: dir.appendingPathComponent("work/embeddings.safetensors").path)
        #expect(emb.file.records.first { $0.name == "embeddings" }?.shape == [1, 576])
    }
}
