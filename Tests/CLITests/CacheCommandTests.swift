#if canImport(Glibc)
import Glibc
#endif
import Foundation
import ModelZoo
import Testing
import ZooJSON
import ZooTestSupport

/// `zoo cache list|rm|prune` on a temporary cache folder (`ZOO_HOME`) filled with small files under the
/// catalogue's names, and offline mode (`ZOO_OFFLINE=1`, `zoo fetch --offline`) against a mirror that
/// nothing listens on (`127.0.0.1:9`): an offline miss must say so rather than fail to connect.
@Suite(.serialized) struct CacheCommandTests {
    static let unroutable = "http://127.0.0.1:9/"

    /// A cache folder with two weight sets of resnet18 (model + download), one of resnet50, a partial
    /// download, a temporary file and a file the catalogue does not name. Returns the root.
    struct Fixture {
        let root: String
        let r18: [(tag: String, file: String)]
        let r50: (tag: String, file: String)

        init() throws {
            root = try TestSupport.temporaryDirectory().path
            let list = try TestSupport.zoo(["list", "--json"])
            let entries = try #require(try JSONValue.parse(list.stdout).arrayValue)
            func weights(_ name: String) -> [(tag: String, file: String)] {
                let e = entries.first { $0["name"]?.stringValue == name }
                return (e?["weights"]?.arrayValue ?? []).compactMap { w in
                    guard let t = w["tag"]?.stringValue, let f = w["file"]?.stringValue else { return nil }
                    return (t, f)
                }
            }
            r18 = weights("resnet18")
            let r50s = weights("resnet50")
            try #require(r18.count >= 1 && r50s.count >= 1)
            r50 = r50s[0]
            try write("models/resnet18-\(r18[0].tag).safetensors", 3000)
            try write("downloads/\(r18[0].file)", 2000)
            try write("models/resnet50-\(r50.tag).safetensors", 1500)
            try write("downloads/\(r50.file).part", 700)
            try write("models/.resnet50-X.safetensors.zoo-tmp-abc123", 50)
            try write("models/mine.safetensors", 10)
        }

        func write(_ relative: String, _ bytes: Int) throws {
            let path = root + "/" + relative
            try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try Data(repeating: 7, count: bytes).write(to: URL(fileURLWithPath: path))
        }

        func exists(_ relative: String) -> Bool {
            var st = stat()
            return lstat(root + "/" + relative, &st) == 0
        }

        /// Sets the access and modification times of `relative` to `days` ago.
        func age(_ relative: String, days: Double) throws {
            let t = Date().timeIntervalSince1970 - days * 86400
            var times = [timespec(tv_sec: Int(t), tv_nsec: 0), timespec(tv_sec: Int(t), tv_nsec: 0)]
            #expect(utimensat(AT_FDCWD, root + "/" + relative, &times, AT_SYMLINK_NOFOLLOW) == 0)
        }

        func zoo(_ arguments: [String], _ extra: [String: String] = [:]) throws -> TestSupport.ProcessResult {
            var env = ["ZOO_HOME": root, "ZOO_MIRROR": CacheCommandTests.unroutable]
            for (k, v) in extra { env[k] = v }
            return try TestSupport.zoo(arguments, environment: env)
        }

        /// `zoo cache list --json`, decoded.
        func listing() throws -> CacheListing {
            let r = try zoo(["cache", "list", "--json"])
            #expect(r.status == 0, "\(r.stderr)")
            return try JSONDecoder().decode(CacheListing.self, from: Data(r.stdout.utf8))
        }

        func remove() { try? FileManager.default.removeItem(atPath: root) }
    }

    @Test("cache list: every file with its kind, catalogue name, tag and size, and the total")
    func listWithSizes() throws {
        let f = try Fixture()
        defer { f.remove() }
        let r = try f.zoo(["cache", "list"])
        #expect(r.status == 0, "\(r.stderr)")
        let lines = r.stdout.split(separator: "\n").map(String.init)
        #expect(lines.first?.hasPrefix("kind") == true, "\(r.stdout)")
        let model = lines.first { $0.contains("models/resnet18-\(f.r18[0].tag).safetensors") } ?? ""
        #expect(model.hasPrefix("model") && model.contains("resnet18") && model.contains(f.r18[0].tag) && model.contains("3.0 KB"), "\(model)")
        let partial = lines.first { $0.contains("downloads/\(f.r50.file).part") } ?? ""
        #expect(partial.hasPrefix("partial") && partial.contains("resnet50") && partial.contains("700 B"), "\(partial)")
        #expect(lines.contains { $0.hasPrefix("temporary") }, "\(r.stdout)")
        #expect(lines.last == "total: 6 files, 7.3 KB in \(f.root)", "\(r.stdout)")
    }

    @Test("cache list --json parses: kinds, names, tags, byte counts and total_bytes")
    func listJSON() throws {
        let f = try Fixture()
        defer { f.remove() }
        let listing = try f.listing()
        #expect(listing.cache == f.root)
        #expect(listing.totalBytes == 3000 + 2000 + 1500 + 700 + 50 + 10)
        #expect(listing.files.count == 6)
        let download = try #require(listing.files.first { $0.file == "downloads/\(f.r18[0].file)" })
        #expect(download.kind == .download && download.name == "resnet18" && download.tag == f.r18[0].tag && download.bytes == 2000)
        let mine = try #require(listing.files.first { $0.file == "models/mine.safetensors" })
        #expect(mine.name == "mine" && mine.tag == nil)
        // The raw JSON has the documented keys, `tag` null when unknown.
        let raw = try #require(try JSONValue.parse(try f.zoo(["cache", "list", "--json"]).stdout)["files"]?.arrayValue)
        let rawMine = try #require(raw.first { $0["file"]?.stringValue == "models/mine.safetensors" })
        #expect(rawMine["tag"] == .null && rawMine["modified"]?.stringValue?.hasSuffix("Z") == true)
        // An empty cache is an empty list with a zero total.
        let empty = try TestSupport.zoo(["cache", "list", "--json"], environment: ["ZOO_HOME": f.root + "/nothing"])
        #expect(try JSONDecoder().decode(CacheListing.self, from: Data(empty.stdout.utf8)).totalBytes == 0)
    }

    @Test("cache rm NAME-TAG removes one weight set; rm NAME all of the architecture's; other files stay")
    func removeByNameAndTag() throws {
        let f = try Fixture()
        defer { f.remove() }
        let one = try f.zoo(["cache", "rm", "resnet18-\(f.r18[0].tag)"])
        #expect(one.status == 0, "\(one.stderr)")
        #expect(!f.exists("models/resnet18-\(f.r18[0].tag).safetensors") && !f.exists("downloads/\(f.r18[0].file)"))
        #expect(one.stdout.contains("freed: 2 files, 5.0 KB"), "\(one.stdout)")
        #expect(f.exists("models/resnet50-\(f.r50.tag).safetensors"))

        if f.r18.count > 1 {
            try f.write("models/resnet18-\(f.r18[1].tag).safetensors", 100)
        }
        try f.write("models/resnet18-\(f.r18[0].tag).safetensors", 100)
        let all = try f.zoo(["cache", "rm", "resnet18"])
        #expect(all.status == 0, "\(all.stderr)")
        #expect(!f.r18.contains { f.exists("models/resnet18-\($0.tag).safetensors") })
        #expect(f.exists("models/resnet50-\(f.r50.tag).safetensors") && f.exists("models/mine.safetensors"))

        // A model the catalogue does not name is removed by its cache name.
        #expect(try f.zoo(["cache", "rm", "mine"]).status == 0)
        #expect(!f.exists("models/mine.safetensors"))
    }

    @Test("cache rm of a name the cache does not hold: exit 1, one line naming it, nothing removed")
    func removeUnknown() throws {
        let f = try Fixture()
        defer { f.remove() }
        for name in ["resnet34", "nosuchmodel"] {
            let r = try f.zoo(["cache", "rm", name])
            #expect(r.status == 1, "\(r.stderr)")
            #expect(r.stderr.split(separator: "\n").count == 1 && r.stderr.contains(name) && r.stderr.contains("not in the cache"), "\(r.stderr)")
            #expect(r.stdout.isEmpty)
        }
        #expect(try f.listing().files.count == 6)
    }

    @Test("cache rm never leaves the cache: paths, `..` and leading dots are refused; a symlink is removed, not its target")
    func removeRefusesEscapes() throws {
        let f = try Fixture()
        defer { f.remove() }
        let outside = try TestSupport.temporaryDirectory().path
        defer { try? FileManager.default.removeItem(atPath: outside) }
        let victim = outside + "/victim.safetensors"
        try Data(repeating: 1, count: 64).write(to: URL(fileURLWithPath: victim))
        // The negative control: the same file inside the cache is removed by the same spelling of its name.
        try f.write("models/victim.safetensors", 64)
        for name in [victim, "../victim", "..", ".", "models/../../victim", ".resnet50-X.safetensors.zoo-tmp-abc123"] {
            let r = try f.zoo(["cache", "rm", name])
            #expect(r.status == 1, "\(name): \(r.stderr)")
            #expect(r.stderr.hasPrefix("zoo: ") && r.stderr.split(separator: "\n").count == 1, "\(r.stderr)")
        }
        #expect(FileManager.default.fileExists(atPath: victim) && f.exists("models/victim.safetensors"))
        #expect(f.exists("models/.resnet50-X.safetensors.zoo-tmp-abc123"))
        #expect(try f.zoo(["cache", "rm", "victim"]).status == 0)
        #expect(!f.exists("models/victim.safetensors"))

        // A symbolic link in the cache pointing outside: listed with the link's own size, removed as a link.
        try FileManager.default.createSymbolicLink(atPath: f.root + "/models/linked.safetensors", withDestinationPath: victim)
        let link = try #require(try f.listing().files.first { $0.file == "models/linked.safetensors" })
        #expect(link.bytes == victim.utf8.count)
        #expect(try f.zoo(["cache", "rm", "linked"]).status == 0)
        #expect(!f.exists("models/linked.safetensors") && FileManager.default.fileExists(atPath: victim))
        // Pruning everything never follows a link out either.
        try FileManager.default.createSymbolicLink(atPath: f.root + "/models/old.safetensors", withDestinationPath: victim)
        try f.age("models/old.safetensors", days: 400)
        #expect(try f.zoo(["cache", "prune", "--older-than", "0"]).status == 0)
        #expect(!f.exists("models/old.safetensors") && FileManager.default.fileExists(atPath: victim))
    }

    @Test("cache prune removes partial and temporary files only; --older-than DAYS also models and downloads unused for that long")
    func prune() throws {
        let f = try Fixture()
        defer { f.remove() }
        try f.age("models/resnet18-\(f.r18[0].tag).safetensors", days: 40)
        try f.age("downloads/\(f.r18[0].file)", days: 40)
        let plain = try f.zoo(["cache", "prune"])
        #expect(plain.status == 0, "\(plain.stderr)")
        #expect(!f.exists("downloads/\(f.r50.file).part") && !f.exists("models/.resnet50-X.safetensors.zoo-tmp-abc123"))
        #expect(f.exists("models/resnet18-\(f.r18[0].tag).safetensors") && f.exists("downloads/\(f.r18[0].file)"))
        #expect(plain.stdout.contains("freed: 2 files, 750 B"), "\(plain.stdout)")

        let month = try f.zoo(["cache", "prune", "--older-than", "30"])
        #expect(month.status == 0, "\(month.stderr)")
        #expect(!f.exists("models/resnet18-\(f.r18[0].tag).safetensors") && !f.exists("downloads/\(f.r18[0].file)"))
        // Fresh files stay (the negative control of the age test).
        #expect(f.exists("models/resnet50-\(f.r50.tag).safetensors") && f.exists("models/mine.safetensors"))

        // A partial download that another process is downloading (it holds the Downloader's lock) stays.
        try f.write("downloads/\(f.r50.file).part", 300)
        let fd = open(f.root + "/downloads/\(f.r50.file).part", O_RDWR)
        #expect(fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) == 0)
        let busy = try f.zoo(["cache", "prune"])
        #expect(busy.status == 0 && f.exists("downloads/\(f.r50.file).part"), "\(busy.stdout)")
        close(fd)
        #expect(try f.zoo(["cache", "prune"]).status == 0)
        #expect(!f.exists("downloads/\(f.r50.file).part"))

        let bad = try f.zoo(["cache", "prune", "--older-than", "-1"])
        #expect(bad.status == 1 && bad.stderr.contains("--older-than"), "\(bad.stderr)")
    }

    @Test("offline: a cached model is used; a missing one is one line saying offline (exit 1), no connection, nothing written")
    func offline() throws {
        let f = try Fixture()
        defer { f.remove() }
        let cached = f.root + "/models/resnet18-\(f.r18[0].tag).safetensors"
        for (args, env) in [(["fetch", "resnet18"], ["ZOO_OFFLINE": "1"]), (["fetch", "resnet18", "--offline"], [:])] {
            let hit = try f.zoo(args, env)
            #expect(hit.status == 0 && hit.stdout == cached + "\n", "\(hit.stderr)")
        }
        let before = try f.listing()
        let misses: [([String], [String: String])] = [
            (["fetch", "resnet34"], ["ZOO_OFFLINE": "1"]), (["fetch", "resnet34", "--offline"], [:]),
            (["fetch", "resnet18", "--offline", "--force"], [:]),
            (["predict", "resnet34", f.root + "/no-image.jpg"], ["ZOO_OFFLINE": "1"]),
        ]
        for (args, env) in misses {
            let miss = try f.zoo(args, env)
            #expect(miss.status == 1, "\(args): \(miss.stderr)")
            #expect(miss.stderr.split(separator: "\n").count == 1 && miss.stderr.contains("offline"), "\(args): \(miss.stderr)")
            #expect(!miss.stderr.contains("127.0.0.1") && !miss.stderr.lowercased().contains("connect"), "\(miss.stderr)")
        }
        #expect(try f.listing().files.map(\.file) == before.files.map(\.file))

        // Offline name resolution finds the cached model (the file is not a real checkpoint, so
        // predict then fails on it, naming the cache's file rather than offline mode).
        let resolved = try f.zoo(["predict", "resnet18", f.root + "/no-image.jpg"], ["ZOO_OFFLINE": "1"])
        #expect(resolved.status != 0 && resolved.stderr.contains(cached) && !resolved.stderr.contains("offline"), "\(resolved.stderr)")

        // Negative control: without offline mode the same fetch goes to the mirror and fails to connect (exit 3).
        let online = try f.zoo(["fetch", "resnet34"])
        #expect(online.status == 3 && !online.stderr.contains("offline"), "\(online.stderr)")
    }
}
