import ArgumentParser
import Foundation
import ModelZoo

/// `zoo fetch NAME [--weights TAG] [--dir D]`: download, verify, convert, cache.
struct Fetch: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Download pretrained weights from the catalogue, verify their checksum, convert them and cache the result.",
        discussion: """
        The cache is $ZOO_HOME, else $XDG_CACHE_HOME/modelzoo, else ~/.cache/modelzoo (--dir overrides): \
        downloads/ keeps the published files, models/ the converted checkpoints (NAME-TAG.safetensors), which \
        `zoo predict NAME` and `zoo features NAME` use. Interrupted downloads resume. $ZOO_MIRROR replaces the \
        URL's folder with a mirror of the published files.
        """
    )

    @Argument(help: "An architecture of the catalogue (`zoo list`).")
    var name: String

    @Option(help: "The weight set's tag (default: the first listed by `zoo info NAME`).")
    var weights: String?

    @Option(help: "Cache folder (default: $ZOO_HOME, $XDG_CACHE_HOME/modelzoo or ~/.cache/modelzoo).")
    var dir: String?

    @Option(help: "Download from this URL instead of the catalogue's (a mirror or your own copy); needs --checksum.")
    var url: String?

    @Option(help: "With --url: the file's digest, sha256:HEX, sha256-prefix:HEX or md5:HEX.")
    var checksum: String?

    @OptionGroup var replace: ForceOption<Fetch>

    @Flag(help: "Accept weights that have no published checksum (some Keras files); their SHA-256 is recorded.")
    var unverified = false

    @Flag(help: "Use only the cache, never the network (also $ZOO_OFFLINE=1): a weight set not cached yet is an error.")
    var offline = false

    @OptionGroup var result: JSONOption

    @OptionGroup var verbosity: QuietOption

    func validate() throws {
        if url != nil, checksum == nil { throw ValidationError("--url needs --checksum") }
        if checksum != nil, url == nil { throw ValidationError("--checksum goes with --url") }
    }

    func run() throws {
        verbosity.apply()
        let cache = try dir.map { ModelCache(root: $0) } ?? ModelCache()
        var source: Pretrained.Source?
        if let url, let checksum {
            guard let u = URL(string: url), u.scheme != nil else { throw ZooError(.usage, "invalid URL \"\(url)\"") }
            let file = u.lastPathComponent.isEmpty ? "\(name).download" : u.lastPathComponent
            source = Pretrained.Source(url: u, checksum: try Checksum(parsing: checksum), fileName: file)
        }
        let bar = ProgressBar()
        let path = try Pretrained.fetch(name, tag: weights, cache: cache, source: source, force: replace.force,
                                        allowUnverified: unverified, offline: offline || Pretrained.offlineRequested()) { p in
            bar.update(Int(p.bytesReceived), Int(p.totalBytes ?? 0))
        }
        bar.finish()
        if result.json {
            let tag = try Pretrained.weights(name, tag: weights).tag
            try CLIOutput.printJSON(FetchResult(name: name, tag: tag, path: path, bytes: CLIOutput.fileSize(path)))
            return
        }
        print(path.escapingControlCharacters)
    }
}

extension Fetch: ForceText {
    static let forceHelp = "Download and convert again even when a converted checkpoint is cached."
}
