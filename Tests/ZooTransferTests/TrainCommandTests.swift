import Foundation
import Testing
import ZooErrors
import ZooFiles
import ZooFormats
import ZooImages
import ZooJSON
import ZooTensor
import ZooTestSupport
import ZooTransfer

/// `zoo train` / `zoo eval` / `zoo predict` through the built tool on the digits fixture
/// (tools/fixtures/gen_transfer.py): the output against torchvision (strict load, same logits), the
/// embeddings against torch's, eval's accuracy against train's summary, the embedding cache (hits,
/// invalidation), and bad data refused or skipped.
@Suite(.serialized) struct TrainCommandTests {
    static func fixture(_ name: String) throws -> String { try TestSupport.fixture("transfer/\(name)") }

    /// A fresh folder with the base converted into it.
    static func workspace() throws -> (dir: URL, base: String) {
        let dir = try TestSupport.temporaryDirectory()
        let base = dir.appendingPathComponent("base.safetensors").path
        let r = try TestSupport.zoo(["convert", try fixture("resnet18.pth"), "--arch", "resnet18", "-o", base, "-q"])
        #expect(r.status == 0, "\(r.stderr)")
        return (dir, base)
    }

    /// Copies a fixture tree into `dir`.
    static func copyTree(_ split: String, to dir: URL) throws -> URL {
        let dest = dir.appendingPathComponent(split)
        try FileManager.default.copyItem(atPath: try fixture("digits/\(split)"), toPath: dest.path)
        return dest
    }

    static func train(_ args: [String], home: URL) throws -> (TestSupport.ProcessResult, JSONValue?) {
        let r = try TestSupport.zoo(["train"] + args + ["--json", "-q"], environment: ["ZOO_HOME": home.path])
        return (r, r.status == 0 ? try JSONValue.parse(r.stdout) : nil)
    }

    @Test func zooEmbeddingsEqualTorchs() throws {
        let (dir, base) = try Self.workspace()
        defer { try? FileManager.default.removeItem(at: dir) }
        let set = try LabelledImages.folder(try Self.fixture("digits/val"))
        let run = FeatureExtractionTraining(base: try TransferBase(path: base), threads: 2)
        let ours = try run.source(baseSHA256: "unused").embeddings(of: set.files).values
        let ref = try SafetensorsFile(path: try Self.fixture("embeddings.safetensors")).tensor(named: "val").floats()
        #expect(TransferTests.relError(ours, ref) <= 1e-4, "\(TransferTests.relError(ours, ref))")
        // Negative control: the images in another order give other rows.
        let reversed = try run.source(baseSHA256: "unused").embeddings(of: set.files.reversed()).values
        #expect(TransferTests.relError(reversed, ref) > 1e-2)
    }

    @Test func trainEvalPredictAgreeAndTheOutputLoadsIntoTorchvision() throws {
        let (dir, base) = try Self.workspace()
        defer { try? FileManager.default.removeItem(at: dir) }
        let home = dir.appendingPathComponent("home")
        let train = try Self.fixture("digits/train"), val = try Self.fixture("digits/val")
        let out = dir.appendingPathComponent("digits.safetensors").path
        let curves = dir.appendingPathComponent("curves.svg").path, confusionSVG = dir.appendingPathComponent("confusion.svg").path
        let args = [base, "--data", train, "--val", val, "-o", out, "--epochs", "6", "--lr", "0.01", "--seed", "1", "--plot", curves]
        let (r, doc) = try Self.train(args, home: home)
        #expect(r.status == 0, "\(r.stderr)")
        let summary = try #require(doc)
        let epochs = try #require(summary["epochs"]?.arrayValue)
        #expect(epochs.count == 6)
        let best = try #require(summary["best_epoch"]?.intValue)
        let valAccuracy = try #require(summary["val_accuracy"]?.doubleValue)
        #expect(epochs[best - 1]["val_accuracy"]?.doubleValue == valAccuracy)
        #expect(epochs.compactMap { $0["val_accuracy"]?.doubleValue }.max() == valAccuracy)
        #expect(summary["cached_embeddings"]?.intValue == 0)
        let classes = summary["classes"]?.arrayValue?.compactMap(\.stringValue) ?? []
        #expect(classes == ["eight", "five", "four", "nine", "one", "seven", "six", "three", "two", "zero"])

        // zoo eval on the validation folder gives exactly the kept epoch's accuracy.
        let e = try TestSupport.zoo(["eval", out, "--data", val, "--json", "-q", "--plot", confusionSVG])
        #expect(e.status == 0, "\(e.stderr)")
        let report = try JSONValue.parse(e.stdout)
        // The drawings are well-formed SVG: four curves (loss and accuracy, train and val) of 6 points, 100 cells.
        let svg = try TestSupport.python("""
        import sys, xml.etree.ElementTree as ET
        ns = "{http://www.w3.org/2000/svg}"
        c = ET.parse(sys.argv[1]).getroot(); m = ET.parse(sys.argv[2]).getroot()
        lines = c.findall(ns + "polyline")
        print(len(lines), sorted(set(len(l.get("points").split()) for l in lines)), len([r for r in m.iter(ns + "rect") if r.get("class") == "cell"]))
        """, [curves, confusionSVG])
        #expect(svg.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "4 [6] 100", "\(svg.stdout) \(svg.stderr)")
        #expect(report["accuracy"]?.doubleValue == valAccuracy)
        let confusion = try #require(report["confusion"]?.arrayValue)
        #expect(confusion.count == 10)
        #expect(confusion.flatMap { $0.arrayValue ?? [] }.compactMap(\.intValue).reduce(0, +) == 50)
        #expect(report["per_class"]?.arrayValue?.compactMap { $0["support"]?.intValue } == Array(repeating: 5, count: 10))
        #expect(report["top5"]?.doubleValue != nil)

        // zoo predict prints the folder names.
        let image = try LabelledImages.folder(val).files[0]
        let p = try TestSupport.zoo(["predict", out, image, "--top", "3", "--json", "-q"])
        #expect(p.status == 0, "\(p.stderr)")
        let labels = try JSONValue.parse(p.stdout)["top"]?.arrayValue?.compactMap { $0["label"]?.stringValue ?? $0.arrayValue?.last?.stringValue }
        #expect(labels?.count == 3)
        #expect(labels?.allSatisfy { classes.contains($0) } == true, "\(p.stdout)")

        // The output loads into torchvision's resnet18(num_classes=10) strictly and gives the same logits.
        let x = dir.appendingPathComponent("x.npy").path, ref = dir.appendingPathComponent("ref.npy").path
        let y = dir.appendingPathComponent("y.npy").path
        let py = try TestSupport.python("""
        import sys, numpy as np, torch, torchvision
        from safetensors.torch import load_file
        m = torchvision.models.resnet18(num_classes=10)
        m.load_state_dict(load_file(sys.argv[1]), strict=True)
        m.eval()
        x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
        np.save(sys.argv[2], x.numpy())
        with torch.no_grad():
            np.save(sys.argv[3], m(x).numpy())
        """, [out, x, ref])
        #expect(py.status == 0, "\(py.stderr)")
        let run = try TestSupport.zoo(["run", out, "--input", x, "-o", y, "-q"])
        #expect(run.status == 0, "\(run.stderr)")
        let ours = try Self.npy(y), theirs = try Self.npy(ref)
        #expect(TransferTests.relError(ours, theirs) <= 1e-4, "\(TransferTests.relError(ours, theirs))")
        // Negative control: the base's own (1000-class) head gives other logits for the same input.
        let baseRun = try TestSupport.zoo(["run", base, "--input", x, "-o", dir.appendingPathComponent("b.npy").path, "-q"])
        #expect(baseRun.status == 0)
        #expect(try Self.npy(dir.appendingPathComponent("b.npy").path).count == 2000)

        // A second run reads every embedding from the cache and writes the same bytes.
        let again = dir.appendingPathComponent("again.safetensors").path
        var second = args
        second[second.firstIndex(of: out)!] = again
        let (r2, doc2) = try Self.train(second, home: home)
        #expect(r2.status == 0, "\(r2.stderr)")
        #expect(doc2?["cached_embeddings"]?.intValue == 150)
        #expect(try Data(contentsOf: URL(fileURLWithPath: again)) == Data(contentsOf: URL(fileURLWithPath: out)))
    }

    static func npy(_ path: String) throws -> [Float] {
        let file = try MappedFile(path: path)
        return try file.withBytes { try NPY.read($0) }.floats()
    }

    @Test func theCacheMissesWhenAnImageOrTheBaseChanges() throws {
        let (dir, base) = try Self.workspace()
        defer { try? FileManager.default.removeItem(at: dir) }
        let home = dir.appendingPathComponent("home")
        let train = try Self.copyTree("train", to: dir)
        let common = ["--data", train.path, "--val-split", "0", "--epochs", "1", "--force"]
        let out = dir.appendingPathComponent("o.safetensors").path
        let (r1, d1) = try Self.train([base] + common + ["-o", out], home: home)
        #expect(r1.status == 0, "\(r1.stderr)")
        #expect(d1?["cached_embeddings"]?.intValue == 0)
        // One image changed (one pixel, re-encoded by PIL): only it is computed again.
        let changed = try LabelledImages.folder(train.path).files[7]
        let py = try TestSupport.python("""
        import sys
        from PIL import Image
        im = Image.open(sys.argv[1]).convert("RGB"); im.putpixel((0, 0), (255, 0, 0)); im.save(sys.argv[1])
        """, [changed])
        #expect(py.status == 0, "\(py.stderr)")
        let (r2, d2) = try Self.train([base] + common + ["-o", out], home: home)
        #expect(r2.status == 0, "\(r2.stderr)")
        #expect(d2?["cached_embeddings"]?.intValue == 99)
        // Another base (same architecture, other weights: the trained output) misses everything.
        let (r3, d3) = try Self.train([out] + common + ["-o", dir.appendingPathComponent("o2.safetensors").path], home: home)
        #expect(r3.status == 0, "\(r3.stderr)")
        #expect(d3?["cached_embeddings"]?.intValue == 0)
        // --no-cache neither reads nor writes.
        let (r4, d4) = try Self.train([base] + common + ["-o", out, "--no-cache"], home: home)
        #expect(r4.status == 0, "\(r4.stderr)")
        #expect(d4?["cached_embeddings"]?.intValue == 0)
    }

    @Test func badImagesAreRefusedOrSkipped() throws {
        let (dir, base) = try Self.workspace()
        defer { try? FileManager.default.removeItem(at: dir) }
        let home = dir.appendingPathComponent("home")
        let train = try Self.copyTree("train", to: dir)
        let good = try LabelledImages.folder(train.path).files[0]
        let truncated = train.appendingPathComponent("five/truncated.png").path
        try Data(try Data(contentsOf: URL(fileURLWithPath: good)).prefix(60)).write(to: URL(fileURLWithPath: truncated))
        try Data("not an image".utf8).write(to: train.appendingPathComponent("five/notes.txt"))
        let out = dir.appendingPathComponent("o.safetensors").path
        let (refused, _) = try Self.train([base, "--data", train.path, "--val-split", "0", "--epochs", "1", "-o", out], home: home)
        #expect(refused.status == 2)
        #expect(refused.stderr.contains("truncated.png"), "\(refused.stderr)")
        #expect(!refused.stderr.contains("notes.txt"))
        #expect(!FileManager.default.fileExists(atPath: out))
        let (skipped, doc) = try Self.train([base, "--data", train.path, "--val-split", "0", "--epochs", "1", "-o", out, "--skip-bad"], home: home)
        #expect(skipped.status == 0, "\(skipped.stderr)")
        #expect(doc?["skipped"]?.intValue == 1)
        #expect(doc?["train_images"]?.intValue == 100)

        // An empty class folder, a single class, and a manifest label that names no class are errors.
        try FileManager.default.createDirectory(at: train.appendingPathComponent("ten"), withIntermediateDirectories: true)
        let (empty, _) = try Self.train([base, "--data", train.path, "-o", out, "--force"], home: home)
        #expect(empty.status == 2)
        #expect(empty.stderr.contains("ten"), "\(empty.stderr)")
        let single = dir.appendingPathComponent("single")
        try FileManager.default.createDirectory(at: single, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: train.appendingPathComponent("one"), to: single.appendingPathComponent("one"))
        let (one, _) = try Self.train([base, "--data", single.path, "-o", out, "--force"], home: home)
        #expect(one.status == 2)
        #expect(one.stderr.contains("at least 2"), "\(one.stderr)")
        let manifest = dir.appendingPathComponent("val.csv")
        try "path,label\n\(good),eleven\n".write(to: manifest, atomically: true, encoding: .utf8)
        try FileManager.default.removeItem(at: train.appendingPathComponent("ten"))
        let (label, _) = try Self.train([base, "--data", train.path, "--val", manifest.path, "--skip-bad", "-o", out, "--force"], home: home)
        #expect(label.status == 2)
        #expect(label.stderr.contains("eleven") && label.stderr.contains("val.csv"), "\(label.stderr)")
    }

    @Test func manifestsReadLikeFolders() throws {
        let dir = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let folder = try LabelledImages.folder(try Self.fixture("digits/val"))
        var csv = "path,label\n"
        for (f, y) in zip(folder.files, folder.labels) { csv += "\"\(f)\",\(folder.classes[y])\n" }
        let path = dir.appendingPathComponent("m.csv").path
        try csv.write(toFile: path, atomically: true, encoding: .utf8)
        let manifest = try LabelledImages.manifest(path)
        #expect(manifest == folder)
        let (train, val) = try manifest.split(validationFraction: 0.4, seed: 5)
        #expect(train.files.count == 30 && val.files.count == 20)
        #expect(val.counts == Array(repeating: 2, count: 10))
        #expect(Set(train.files).isDisjoint(with: val.files))
        let again = try manifest.split(validationFraction: 0.4, seed: 5)
        #expect(again.validation == val)
        #expect(try manifest.split(validationFraction: 0.4, seed: 6).validation != val)
    }

    @Test func fineTuneFromTheCommandLine() throws {
        let dir = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let base = try FineTuningTests.base("resnet18", in: dir).path
        let home = dir.appendingPathComponent("home")
        let val = try Self.fixture("digits/val")
        let out = dir.appendingPathComponent("tuned.safetensors").path
        let log = dir.appendingPathComponent("metrics.jsonl").path
        let (r, doc) = try Self.train([base, "--data", try Self.fixture("digits/train"), "--val", val, "--mode", "finetune", "--trainable", "last:1",
                                       "--bn", "train", "--epochs", "2", "--lr", "1e-3", "--log", log, "-o", out], home: home)
        #expect(r.status == 0, "\(r.stderr)")
        let summary = try #require(doc)
        #expect(summary["epochs"]?.arrayValue?.count == 2)
        let e = try TestSupport.zoo(["eval", out, "--data", val, "--json", "-q"])
        #expect(e.status == 0, "\(e.stderr)")
        #expect(try JSONValue.parse(e.stdout)["accuracy"]?.doubleValue == summary["val_accuracy"]?.doubleValue)
        let lines = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 2)
        #expect(try JSONValue.parse(String(lines[1]))["epoch"]?.intValue == 2)
        // Every tensor was written: the file loads into torchvision strictly.
        let py = try TestSupport.python("""
        import sys, torchvision
        from safetensors.torch import load_file
        torchvision.models.resnet18(num_classes=10).load_state_dict(load_file(sys.argv[1]), strict=True)
        """, [out])
        #expect(py.status == 0, "\(py.stderr)")
        // Fine-tuning options are refused in feature-extraction mode.
        let (misuse, _) = try Self.train([base, "--data", try Self.fixture("digits/train"), "--bn", "train", "-o", out, "--force"], home: home)
        #expect(misuse.status == 1)
        #expect(misuse.stderr.contains("--mode finetune"), "\(misuse.stderr)")
        let (augment, _) = try Self.train([base, "--data", try Self.fixture("digits/train"), "--augment", "standard", "-o", out, "--force"], home: home)
        #expect(augment.status == 1)
        #expect(augment.stderr.contains("--augment"), "\(augment.stderr)")
    }

    @Test func aRunStoppedOrKilledResumesToTheUninterruptedResult() throws {
        let dir = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let base = try FineTuningTests.base("resnet18", in: dir).path
        let home = dir.appendingPathComponent("home")
        func args(_ out: String) throws -> [String] {
            [base, "--data", try Self.fixture("digits/train"), "--val", try Self.fixture("digits/val"), "--mode", "finetune", "--epochs", "3",
             "--batch", "10", "--lr", "1e-3", "--augment", "standard", "-o", out]
        }
        let whole = dir.appendingPathComponent("whole.safetensors").path
        let (r, _) = try Self.train(try args(whole), home: home)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: whole + ".train-state"))

        // The same run stopped with Ctrl-C (SIGINT) in its second epoch: it saves where it is and exits 130; resumed,
        // then killed (SIGKILL) after the second epoch, and resumed again.
        let out = dir.appendingPathComponent("resumed.safetensors").path
        let progress = out + ".train-state/progress.json"
        func progressDoc() -> JSONValue? {
            (try? Data(contentsOf: URL(fileURLWithPath: progress))).flatMap { try? JSONValue.parse(String(decoding: $0, as: UTF8.self)) }
        }
        func start(_ extra: [String]) throws -> Process {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: TestSupport.zooBinary)
            process.arguments = ["train"] + (try args(out)) + extra + ["-q"]
            process.environment = ProcessInfo.processInfo.environment.merging(["ZOO_HOME": home.path]) { $1 }
            process.standardError = FileHandle.nullDevice
            try process.run()
            return process
        }
        func wait(_ process: Process, until ready: () -> Bool) {
            let deadline = Date().addingTimeInterval(600)
            while !ready(), process.isRunning, Date() < deadline { usleep(50_000) }
        }
        let first = try start([])
        wait(first) { progressDoc()?["epoch"]?.intValue == 1 }
        usleep(300_000)
        kill(first.processIdentifier, SIGINT)
        first.waitUntilExit()
        #expect(first.terminationReason == .exit && first.terminationStatus == 130, "\(first.terminationReason) \(first.terminationStatus)")
        let stopped = progressDoc()
        #expect(stopped?["epoch"]?.intValue == 1 && (stopped?["position"]?.intValue ?? 0) > 0, "\(String(describing: stopped))")
        #expect(!FileManager.default.fileExists(atPath: out))
        let second = try start(["--resume"])
        wait(second) { progressDoc()?["epoch"]?.intValue == 2 }
        kill(second.processIdentifier, SIGKILL)
        second.waitUntilExit()
        #expect(second.terminationReason == .uncaughtSignal, "the resumed run ended before it could be killed")
        #expect(!FileManager.default.fileExists(atPath: out))
        let (resumed, doc) = try Self.train(try args(out) + ["--resume"], home: home)
        #expect(resumed.status == 0, "\(resumed.stderr)")
        #expect(doc?["epochs"]?.arrayValue?.count == 3)
        #expect(try Data(contentsOf: URL(fileURLWithPath: out)) == Data(contentsOf: URL(fileURLWithPath: whole)))
        #expect(!FileManager.default.fileExists(atPath: out + ".train-state"))
        // Resuming with other settings is refused.
        let other = dir.appendingPathComponent("other.safetensors").path
        let (_, _) = try Self.train(try args(other) + ["--epochs", "1"], home: home)
        let (none, _) = try Self.train(try args(other) + ["--resume"], home: home)
        #expect(none.status == 1)
        #expect(none.stderr.contains("no saved training state"), "\(none.stderr)")
    }

    @Test func aKerasFlavourBaseTrainsLikeATorchvisionOne() throws {
        let dir = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let base = dir.appendingPathComponent("keras.safetensors").path
        let c = try TestSupport.zoo(["convert", try TestSupport.fixture("grad_keras/mobilenet_v1_keras.h5"), "--arch", "mobilenet_v1", "-o", base, "-q"])
        #expect(c.status == 0, "\(c.stderr)")
        let val = try Self.fixture("digits/val"), out = dir.appendingPathComponent("out.safetensors").path
        let (r, doc) = try Self.train([base, "--data", try Self.fixture("digits/train"), "--val", val, "--epochs", "2", "--no-cache", "-o", out],
                                      home: dir.appendingPathComponent("home"))
        #expect(r.status == 0, "\(r.stderr)")
        let trained = try TransferBase(path: out)
        #expect(trained.loaded.config.flavour == .keras && trained.loaded.config.classes == 10)
        #expect(trained.preprocessing == (try TransferBase(path: base)).preprocessing)
        let e = try TestSupport.zoo(["eval", out, "--data", val, "--json", "-q"])
        #expect(e.status == 0, "\(e.stderr)")
        #expect(try JSONValue.parse(e.stdout)["accuracy"]?.doubleValue == doc?["val_accuracy"]?.doubleValue)
    }

    /// A backbone converted without its top (Keras `include_top=False`) gets the classifier Keras's
    /// transfer-learning guide builds on it (GlobalAveragePooling2D -> Dense): `fc` for ResNet, a pooled `head`
    /// for VGG. The result equals tf-keras's model of that shape with the trained Dense, within 1e-4.
    @Test(arguments: [("resnet50", "fc", 2048), ("vgg16", "head", 512)])
    func aBackboneWithoutTopGetsAPooledLinearClassifier(arch: String, layer: String, width: Int) throws {
        let dir = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let h5 = try TestSupport.fixture("keras/tfk_\(arch).h5")
        let converted = dir.appendingPathComponent("converted.safetensors").path, base = dir.appendingPathComponent("base.safetensors").path
        let c = try TestSupport.zoo(["convert", h5, "--arch", arch, "-o", converted, "-q"])
        #expect(c.status == 0, "\(c.stderr)")
        // A small input keeps the test quick: resize 64, centre crop 56.
        let source = try NativeCheckpoint(path: converted)
        var metadata = source.metadata
        metadata.preprocessing = Preprocessing.torchvision(resize: 64, crop: 56).json
        try NativeCheckpoint.write(source.file.records, metadata: metadata, to: base, overwrite: false)
        let opened = try TransferBase(path: base)
        #expect(!opened.hasClassifier && opened.finalLayer == layer && opened.width == width)
        #expect(throws: ZooError.self) { try opened.currentHead() }

        let val = try Self.fixture("digits/val"), out = dir.appendingPathComponent("out.safetensors").path
        let (r, doc) = try Self.train([base, "--data", try Self.fixture("digits/train"), "--val", val, "--epochs", "2", "--no-cache", "-o", out],
                                      home: dir.appendingPathComponent("home"))
        #expect(r.status == 0, "\(r.stderr)")
        let trained = try TransferBase(path: out)
        #expect(trained.hasClassifier && trained.loaded.config.classes == 10 && trained.finalLayer == layer)
        #expect(trained.loaded.config.head == (arch == "vgg16" ? .linear : .standard))
        // Every backbone tensor is the base's, bit for bit; the classifier is the only addition.
        let a = try SafetensorsFile(path: base), b = try SafetensorsFile(path: out)
        #expect(Set(b.entries.map(\.name)) == Set(a.entries.map(\.name)).union([layer + ".weight", layer + ".bias"]))
        for entry in a.entries { #expect(try a.tensor(entry).floats() == b.tensor(named: entry.name).floats(), "\(entry.name)") }
        let e = try TestSupport.zoo(["eval", out, "--data", val, "--json", "-q"])
        #expect(e.status == 0, "\(e.stderr)")
        #expect(try JSONValue.parse(e.stdout)["accuracy"]?.doubleValue == doc?["val_accuracy"]?.doubleValue)

        // tf-keras: the same backbone (the original file's weights), pooled, then Dense with the trained
        // classifier; and with max pooling (negative control; at 96 px the last maps are 3x3, so the two differ).
        // Inputs and Keras's outputs go through .npy files.
        let x = dir.appendingPathComponent("x.npy").path, y = dir.appendingPathComponent("y.npy").path
        let keras = dir.appendingPathComponent("keras.npy").path, maxPooled = dir.appendingPathComponent("max.npy").path
        let py = try TestSupport.python("""
        import sys, numpy as np, tf_keras as k
        from safetensors.numpy import load_file
        arch, h5, out, layer, x_path, keras_path, max_path = sys.argv[1:]
        backbone = {"resnet50": k.applications.ResNet50, "vgg16": k.applications.VGG16}[arch](include_top=False, weights=None, input_shape=(96, 96, 3))
        backbone.load_weights(h5)
        t = load_file(out)
        x = np.random.default_rng(0).standard_normal((2, 96, 96, 3)).astype(np.float32)
        np.save(x_path, x.transpose(0, 3, 1, 2).copy())
        for pool, path in ((k.layers.GlobalAveragePooling2D, keras_path), (k.layers.GlobalMaxPooling2D, max_path)):
            dense = k.layers.Dense(10)
            model = k.Sequential([backbone, pool(), dense])
            model.build((None, 96, 96, 3))
            dense.set_weights([t[layer + ".weight"].T, t[layer + ".bias"]])
            np.save(path, model(x, training=False).numpy())
        """, [arch, h5, out, layer, x, keras, maxPooled])
        #expect(py.status == 0, "\(py.stderr)")
        let run = try TestSupport.zoo(["run", out, "--input", x, "-o", y, "-q"])
        #expect(run.status == 0, "\(run.stderr)")
        func npy(_ path: String) throws -> [Float] {
            try Data(contentsOf: URL(fileURLWithPath: path)).withUnsafeBytes { try NPY.read($0).floats() }
        }
        let ours = try npy(y), reference = try npy(keras), control = try npy(maxPooled)
        #expect(ours.count == 20 && TransferTests.relError(ours, reference) <= 1e-4, "\(TransferTests.relError(ours, reference))")
        #expect(TransferTests.relError(ours, control) > 1e-2)
    }
}
