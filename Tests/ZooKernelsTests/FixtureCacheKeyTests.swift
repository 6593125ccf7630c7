import Foundation
import Testing
import ZooTestSupport

/// tools/fixtures/cache_key.py, which keys generate.sh's fixture cache: every input that shapes a
/// fixture must change the key (so a reference made by an older torch or Pillow, or from an older
/// sample image or helper module, cannot survive), and nothing else may (or every run regenerates).
/// (Kept with the kernel tests because their references are the first to go stale on a torch upgrade.)
@Suite struct FixtureCacheKeyTests {
    static var script: String { TestSupport.root.appendingPathComponent("tools/fixtures/cache_key.py").path }

    /// A miniature repository: a generator importing a helper that imports another, reading a data
    /// file and a data folder, plus files that shape nothing.
    static func makeRepo() throws -> URL {
        let root = try TestSupport.temporaryDirectory()
        let files: [String: String] = [
            "tools/fixtures/gen_demo.py": "# fixture-data: data/sample.png data/dir\nfrom helper import x\nimport os\n",
            "tools/fixtures/helper.py": "import helper2\nx = 1\n",
            "tools/fixtures/helper2.py": "y = 2\n",
            "tools/fixtures/common.py": "def outdir(): pass\n",
            "tools/fixtures/generate.sh": "#!/bin/sh\nexport PYTHONHASHSEED=0\n",
            "tools/fixtures/unrelated.py": "z = 3\n",
            "tools/requirements.txt": "torch\npillow\n",
            "data/sample.png": "pixels v1",
            "data/dir/a.bin": "weights v1",
            "other/unrelated.txt": "nothing\n",
            "env.txt": "python 3.11.7\ntorch==2.15.0\npillow==13.0.0\n",
        ]
        for (path, text) in files {
            let url = root.appendingPathComponent(path)
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try Data(text.utf8).write(to: url)
        }
        return root
    }

    static func key(_ root: URL) throws -> String {
        let r = try TestSupport.run(TestSupport.python, [script, "--root", root.path, "--environment",
                                                         root.appendingPathComponent("env.txt").path,
                                                         root.appendingPathComponent("tools/fixtures/gen_demo.py").path])
        guard r.status == 0 else { throw CacheKeyFailure(message: r.stderr) }
        let parts = r.stdout.split(separator: " ")
        guard parts.count == 2, parts[0] == "demo" else { throw CacheKeyFailure(message: r.stdout) }
        return parts[1].trimmingCharacters(in: .whitespacesAndNewlines)
    }

    struct CacheKeyFailure: Error { var message: String }

    @Test func everyInputChangesTheKeyAndNothingElseDoes() throws {
        let root = try Self.makeRepo()
        defer { try? FileManager.default.removeItem(at: root) }
        let base = try Self.key(root)
        #expect(base.count == 64)
        #expect(try Self.key(root) == base, "the key is not deterministic")
        func edit(_ path: String, _ text: String) throws -> String {
            let url = root.appendingPathComponent(path)
            let old = try Data(contentsOf: url)
            try Data(text.utf8).write(to: url)
            defer { try? old.write(to: url) }
            return try Self.key(root)
        }
        let shaping: [(String, String)] = [
            ("tools/fixtures/gen_demo.py", "# fixture-data: data/sample.png data/dir\nfrom helper import x\nimport os\n# edited\n"),
            ("tools/fixtures/helper.py", "import helper2\nx = 10\n"),
            ("tools/fixtures/helper2.py", "y = 20\n"),          // imported by the helper, not by the generator
            ("tools/fixtures/common.py", "def outdir(): return 1\n"),
            ("tools/fixtures/generate.sh", "#!/bin/sh\nexport PYTHONHASHSEED=1\n"),
            ("tools/requirements.txt", "torch\npillow\nh5py\n"),
            ("data/sample.png", "pixels v2"),
            ("data/dir/a.bin", "weights v2"),
            ("env.txt", "python 3.11.7\ntorch==2.16.0\npillow==13.0.0\n"),   // a torch upgrade
            ("env.txt", "python 3.11.7\ntorch==2.15.0\npillow==13.1.0\n"),   // a Pillow upgrade
            ("env.txt", "python 3.12.1\ntorch==2.15.0\npillow==13.0.0\n"),   // another interpreter
        ]
        for (path, text) in shaping {
            #expect(try edit(path, text) != base, "changing \(path) leaves the key as it was")
        }
        #expect(try Self.key(root) == base, "restoring every input restores the key")
        // Negative control: files no generator reads leave the key alone.
        #expect(try edit("other/unrelated.txt", "changed\n") == base)
        #expect(try edit("tools/fixtures/unrelated.py", "z = 30\n") == base)
        // A new file in a data folder counts too.
        let extra = root.appendingPathComponent("data/dir/b.bin")
        try Data("more".utf8).write(to: extra)
        #expect(try Self.key(root) != base, "a file added to a fixture-data folder leaves the key as it was")
        try FileManager.default.removeItem(at: extra)
        // A named data file that does not exist is an error, not a smaller key.
        try FileManager.default.removeItem(at: root.appendingPathComponent("data/sample.png"))
        #expect(throws: CacheKeyFailure.self) { try Self.key(root) }
    }

    @Test func realGeneratorsAreKeyedByTheirInputsAndTheInstalledFrameworks() throws {
        let fixtures = TestSupport.root.appendingPathComponent("tools/fixtures")
        let gens = try FileManager.default.contentsOfDirectory(atPath: fixtures.path)
            .filter { $0.hasPrefix("gen_") && $0.hasSuffix(".py") }.sorted().map { fixtures.appendingPathComponent($0).path }
        #expect(gens.count >= 10)
        let explain = try TestSupport.run(TestSupport.python, [Self.script, "--explain"] + gens)
        #expect(explain.status == 0, "\(explain.stderr)")
        let lines = explain.stdout.split(separator: "\n").map(String.init)
        #expect(lines.contains("predict zoo/samples/sailboat.jpg"), "gen_predict.py reads the sample image")
        #expect(lines.contains("parity_torch tools/fixtures/parity_torch.py") && lines.contains("parity_torch tools/fixtures/parity_lib.py"))
        #expect(lines.contains("hdf5 tools/fixtures/h5manifest.py"))
        for gen in gens {
            let name = String(URL(fileURLWithPath: gen).deletingPathExtension().lastPathComponent.dropFirst(4))
            #expect(lines.contains("\(name) tools/fixtures/common.py") && lines.contains("\(name) tools/requirements.txt"), "\(name)")
            #expect(lines.contains { $0.hasPrefix("\(name) <python environment") }, "\(name): no environment in the key")
        }
        // The environment text names the frameworks the references come from, with versions.
        let env = try TestSupport.run(TestSupport.python, [Self.script, "--print-environment"])
        let pins = Set(env.stdout.split(separator: "\n").compactMap { $0.split(separator: "=").first.map(String.init) })
        for package in ["torch", "torchvision", "keras", "tf-keras", "h5py", "numpy", "pillow", "safetensors"] {
            #expect(pins.contains(package), "\(package) is not in the environment part of the key")
        }
        #expect(pins.contains("tensorflow") || pins.contains("tensorflow-cpu"))
    }
}
