import Foundation
import Testing
import ZooFormats
import ZooJSON
import ZooTestSupport

/// Weight sets without a published digest (Keras MobileNet v1/v2): `zoo fetch` refuses them unless
/// `--unverified`, and the flag accepts only that case (it never turns a published check off).
/// Served by tools/http_range_server.py on 127.0.0.1; the file is a real tf-keras MobileNetV2
/// `save_weights` file (tools/fixtures/gen_keras.py) under the catalogue's file name.
@Suite(.serialized) struct FetchUnverifiedTests {
    static let tag = "KERAS_IMAGENET"
    static let file = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224.h5"

    /// Every file below `dir`, relative, sorted (nothing or a missing folder: []).
    static func files(under dir: String) -> [String] {
        guard let e = FileManager.default.enumerator(atPath: dir) else { return [] }
        return e.compactMap { $0 as? String }.filter {
            var isDir: ObjCBool = false
            return FileManager.default.fileExists(atPath: dir + "/" + $0, isDirectory: &isDir) && !isDir.boolValue
        }.sorted()
    }

    /// The requests the server logged (paths).
    static func requests(_ log: String) -> [String] {
        let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").compactMap { line in
            (try? JSONValue.parse(String(line)))?["path"]?.stringValue
        }
    }

    /// README's table of what "verify" means quotes these counts.
    @Test("The catalogue: 76 of 181 weight sets, all Keras MobileNet v1/v2, publish no digest; 47 torchvision prefixes, 48 Keras MD5s, 10 Keras SHA-256s")
    func catalogueCounts() throws {
        let r = try TestSupport.zoo(["list", "--json"])
        #expect(r.status == 0, "\(r.stderr)")
        let entries = try #require(try JSONValue.parse(r.stdout).arrayValue)
        var total = 0, unverifiable = 0, prefixes = 0, md5s = 0, sha256s = 0
        for e in entries {
            let family = e["family"]?.stringValue ?? ""
            for w in e["weights"]?.arrayValue ?? [] {
                total += 1
                let digest = w["sha256"]?.stringValue ?? w["sha256_prefix"]?.stringValue ?? w["md5"]?.stringValue
                if digest == nil {
                    unverifiable += 1
                    #expect(w["source"]?.stringValue == "keras" && ["mobilenet_v1", "mobilenet_v2"].contains(family),
                            "\(e["name"]?.stringValue ?? "") \(w["tag"]?.stringValue ?? "") has no digest")
                } else if w["source"]?.stringValue == "torchvision" {
                    // torchvision: the 8 hex digits of the file name, a prefix of the file's SHA-256.
                    #expect(w["sha256_prefix"]?.stringValue?.count == 8, "\(w)")
                    prefixes += 1
                } else if let sha = w["sha256"]?.stringValue {
                    // Keras's ConvNeXt files: the whole SHA-256 Keras checks.
                    #expect(sha.count == 64 && family == "convnext", "\(w)")
                    sha256s += 1
                } else {
                    #expect(w["md5"]?.stringValue?.count == 32, "\(w)")
                    md5s += 1
                }
            }
        }
        #expect(total == 181 && unverifiable == 76, "\(unverifiable) of \(total) weight sets without a digest")
        #expect(prefixes == 47 && md5s == 48 && sha256s == 10, "\(prefixes) torchvision prefixes, \(md5s) Keras MD5s, \(sha256s) SHA-256s")
    }

    @Test("zoo fetch refuses a weight set without a digest before downloading; --unverified fetches it and records its SHA-256")
    func refusalAndFlag() throws {
        let dir = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let served = dir.appendingPathComponent("served")
        try FileManager.default.createDirectory(at: served, withIntermediateDirectories: true)
        let source = try TestSupport.fixture("keras/tfk_mobilenetv2.h5")
        let copy = served.appendingPathComponent(Self.file).path
        try FileManager.default.copyItem(atPath: source, toPath: copy)
        let log = dir.appendingPathComponent("log.jsonl").path
        let server = try LocalServer(root: served.path, log: log)
        defer { server.stop() }
        let home = dir.appendingPathComponent("home").path
        let env = ["ZOO_HOME": home, "ZOO_MIRROR": "\(server.base)/files/"]

        // Without the flag: a usage error (exit 1), one line naming the file and the flag; no request, nothing cached.
        let refused = try TestSupport.zoo(["fetch", "mobilenet_v2", "--weights", Self.tag], environment: env)
        #expect(refused.status == 1, "\(refused.stderr)")
        #expect(refused.stderr.split(separator: "\n").count == 1, "\(refused.stderr)")
        #expect(refused.stderr.contains(Self.file) && refused.stderr.contains("no published checksum")
                && refused.stderr.contains("--unverified"), "\(refused.stderr)")
        #expect(refused.stdout.isEmpty)
        #expect(Self.requests(log).isEmpty, "the refused fetch downloaded: \(Self.requests(log))")
        #expect(Self.files(under: home).isEmpty, "\(Self.files(under: home))")

        // With the flag: downloaded once, converted, cached; the download's SHA-256 (by Python's hashlib) is recorded.
        let ok = try TestSupport.zoo(["fetch", "mobilenet_v2", "--weights", Self.tag, "--unverified"], environment: env)
        #expect(ok.status == 0, "\(ok.stderr)")
        let model = home + "/models/mobilenet_v2-\(Self.tag).safetensors"
        #expect(ok.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == model)
        #expect(Self.requests(log) == ["/files/\(Self.file)"])
        #expect(Self.files(under: home) == ["downloads/\(Self.file)", "models/mobilenet_v2-\(Self.tag).safetensors"])
        let digest = try TestSupport.python("import hashlib,sys; print(hashlib.sha256(open(sys.argv[1],'rb').read()).hexdigest())", [copy])
        let sha = digest.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(sha.count == 64, "\(digest.stderr)")
        let native = try NativeCheckpoint(path: model)
        #expect(native.metadata.architecture == "mobilenet_v2")
        #expect(native.metadata.source?.sha256 == sha)
        let downloaded = try Data(contentsOf: URL(fileURLWithPath: home + "/downloads/" + Self.file))
        #expect(downloaded == (try Data(contentsOf: URL(fileURLWithPath: copy))))
    }

    @Test("Negative control: --unverified does not switch off a published digest (Keras MD5, torchvision prefix)")
    func flagKeepsPublishedChecks() throws {
        let dir = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let served = dir.appendingPathComponent("served")
        try FileManager.default.createDirectory(at: served, withIntermediateDirectories: true)
        // The same real Keras file under names whose published digests it cannot match.
        let source = try TestSupport.fixture("keras/tfk_mobilenetv2.h5")
        let cases = [("resnet50", "KERAS_IMAGENET", "resnet50_weights_tf_dim_ordering_tf_kernels.h5", "md5"),
                     ("mobilenet_v3_small", "KERAS_IMAGENET", "weights_mobilenet_v3_small_224_1.0_float.h5", "md5"),
                     ("mobilenet_v2", "IMAGENET1K_V1", "mobilenet_v2-b0353104.pth", "sha256-prefix")]
        let list = try JSONValue.parse(try TestSupport.zoo(["list", "--json"]).stdout)
        for (name, tag, file, kind) in cases {
            // The catalogue really lists that file, with that kind of digest.
            let entry = list.arrayValue?.first { $0["name"]?.stringValue == name }
            let w = entry?["weights"]?.arrayValue?.first { $0["tag"]?.stringValue == tag }
            #expect(w?["file"]?.stringValue == file, "\(name) \(tag): \(String(describing: w))")
            #expect(w?[kind == "md5" ? "md5" : "sha256_prefix"]?.stringValue != nil)
            try FileManager.default.copyItem(atPath: source, toPath: served.appendingPathComponent(file).path)
        }
        let log = dir.appendingPathComponent("log.jsonl").path
        let server = try LocalServer(root: served.path, log: log)
        defer { server.stop() }
        let home = dir.appendingPathComponent("home").path
        for (name, tag, file, kind) in cases {
            let r = try TestSupport.zoo(["fetch", name, "--weights", tag, "--unverified"],
                                        environment: ["ZOO_HOME": home, "ZOO_MIRROR": "\(server.base)/files/"])
            #expect(r.status == 2, "\(name): \(r.stderr)")
            #expect(r.stderr.contains("checksum mismatch") && r.stderr.contains(kind + ":"), "\(name): \(r.stderr)")
            #expect(r.stderr.split(separator: "\n").count == 1)
            #expect(Self.requests(log).last == "/files/\(file)")
        }
        #expect(Self.files(under: home).isEmpty, "\(Self.files(under: home))")
    }
}
