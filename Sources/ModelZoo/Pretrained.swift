import Foundation
import ZooFetch

/// Pretrained weights from the catalogue: download, verify, convert, cache.
///
/// ```swift
/// let path = try Pretrained.fetch("resnet50", tag: "IMAGENET1K_V2")   // ~/.cache/modelzoo/models/resnet50-IMAGENET1K_V2.safetensors
/// let model = try Classifier(contentsOf: URL(fileURLWithPath: path))
/// ```
public enum Pretrained {
    /// Where a download comes from and how it is verified.
    public struct Source: Sendable {
        /// The URL to download.
        public var url: URL
        /// The digest the file must match (nil: not verified).
        public var checksum: Checksum?
        /// The file name the download is cached under.
        public var fileName: String

        /// Creates a source.
        public init(url: URL, checksum: Checksum?, fileName: String) {
            self.url = url
            self.checksum = checksum
            self.fileName = fileName
        }
    }

    /// The catalogue's weight set `tag` of `name` (its first listed set when `tag` is nil).
    public static func weights(_ name: String, tag: String?) throws -> Catalogue.Weights {
        let entry = try Catalogue.shared().entry(name)
        guard !entry.weights.isEmpty else { throw ZooError(.usage, "\(name) has no pretrained weights in the catalogue", item: name) }
        guard let tag else { return entry.weights[0] }
        if let w = entry.weights.first(where: { $0.tag == tag }) { return w }
        throw ZooError(.usage, "\(name) has no weights \"\(tag)\" (available: \(entry.weights.map(\.tag).joined(separator: ", ")))", item: name)
    }

    /// The download source of a weight set. `mirror` (or `$ZOO_MIRROR`), when set, replaces
    /// everything before the file name in the URL: a local copy of the published files.
    public static func source(of weights: Catalogue.Weights, mirror: String? = ProcessInfo.processInfo.environment["ZOO_MIRROR"]) throws -> Source {
        let checksum: Checksum?
        if let h = weights.sha256 { checksum = .sha256(h) }
        else if let p = weights.sha256Prefix { checksum = .sha256Prefix(p) }
        else if let m = weights.md5 { checksum = .md5(m) }
        else { checksum = nil }
        var text = weights.url
        if let mirror, !mirror.isEmpty {
            text = (mirror.hasSuffix("/") ? mirror : mirror + "/") + weights.file
        }
        guard let url = URL(string: text) else { throw ZooError(.usage, "invalid URL \"\(text)\"") }
        return Source(url: url, checksum: checksum, fileName: weights.file)
    }

    /// The cache name of a converted weight set: `resnet50-IMAGENET1K_V2`.
    public static func modelName(_ name: String, tag: String) -> String { "\(name)-\(tag)" }

    /// Downloads (resuming, verifying), converts to the native format with the architecture's
    /// mapping, and caches weight set `tag` of `name`. Returns the native checkpoint's path.
    /// An already-converted cached checkpoint is returned as is.
    /// A weight set without a published checksum (some Keras files) is refused unless
    /// `allowUnverified`; its SHA-256 is then still recorded in the checkpoint's `zoo.source`.
    /// `offline` (default: `$ZOO_OFFLINE`, `offlineRequested`) uses only the cache: a weight set not
    /// converted yet, `force` or a `source` is then a usage error, and no connection is opened.
    @discardableResult
    public static func fetch(_ name: String, tag: String? = nil, cache: ModelCache? = nil, source override: Source? = nil,
                             force: Bool = false, allowUnverified: Bool = false, offline: Bool = Pretrained.offlineRequested(),
                             progress: (@Sendable (DownloadProgress) -> Void)? = nil) throws -> String {
        let cache = try cache ?? ModelCache()
        let weights = try weights(name, tag: tag)
        let cacheName = modelName(name, tag: weights.tag)
        let output = try cache.modelPath(cacheName)
        if !force, FileManager.default.fileExists(atPath: output), override == nil { return output }
        if offline {
            let why = force ? "--force downloads again" : override != nil ? "--url downloads" : "\(cacheName) is not cached"
            throw ZooError(.usage, "\(why) and offline mode is on (ZOO_OFFLINE or --offline): nothing was downloaded", item: name)
        }
        let source = try override ?? source(of: weights)
        if source.checksum == nil, !allowUnverified {
            throw ZooError(.usage, "\(weights.file) has no published checksum, so the download cannot be verified; pass --unverified to accept it (its SHA-256 is recorded in the checkpoint)", item: name)
        }
        let download = try cache.downloadPath(source.fileName)
        try Downloader().download(source.url, to: download, checksum: source.checksum, progress: progress)
        try ModelCache.createDirectory(cache.modelsDirectory)
        try Converter.convert(input: download, output: output, options: Converter.Options(overwrite: true, arch: name)) { plan in
            plan.metadata.preprocessing = try Catalogue.shared().recipe(for: name, flavour: weights.flavour, classes: 0, weights: weights).preprocessing
        }
        return output
    }

    /// Resolves what a user typed: an existing file path, or a catalogue name (`resnet50`) or cache
    /// name (`resnet50-IMAGENET1K_V2`) with a converted checkpoint in the cache.
    public static func resolve(_ nameOrPath: String, cache: ModelCache? = nil) throws -> String {
        if nameOrPath.contains("/") || FileManager.default.fileExists(atPath: nameOrPath) { return nameOrPath }
        let cache = try cache ?? ModelCache()
        let cached = cache.cachedModels()
        if cached.contains(nameOrPath) { return try cache.modelPath(nameOrPath) }
        if let entry = try? Catalogue.shared().entry(nameOrPath) {
            for w in entry.weights where cached.contains(modelName(nameOrPath, tag: w.tag)) {
                return try cache.modelPath(modelName(nameOrPath, tag: w.tag))
            }
            if offlineRequested() {
                throw ZooError(.usage, "no converted \(nameOrPath) in the cache \(cache.modelsDirectory), and offline mode is on (ZOO_OFFLINE): it is not cached and nothing was downloaded", item: nameOrPath)
            }
            throw ZooError(.usage, "no converted \(nameOrPath) in the cache \(cache.modelsDirectory); run `zoo fetch \(nameOrPath)` first", item: nameOrPath)
        }
        throw ZooError(.io, "no such file, and not a cached model (`zoo list --cached`)", file: nameOrPath)
    }
}
