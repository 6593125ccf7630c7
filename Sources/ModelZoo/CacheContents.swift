import Foundation
import ZooFetch

/// A file of the fetch cache named after the catalogue: what `zoo cache list` prints and `--json`
/// encodes (docs/cli.md, "zoo cache").
public struct CachedFile: Sendable, Equatable, Codable {
    /// `model`, `download`, `partial` or `temporary`.
    public var kind: ModelCache.File.Kind
    /// The catalogue's architecture name (`resnet18`); for a file the catalogue does not name, the
    /// model's cache name or the file name.
    public var name: String
    /// The weight set's tag (`IMAGENET1K_V1`), nil when the catalogue does not name the file.
    public var tag: String?
    /// The path relative to the cache's root: `models/resnet18-IMAGENET1K_V1.safetensors`.
    public var file: String
    /// The full path.
    public var path: String
    /// The size in bytes.
    public var bytes: Int
    /// The modification time, ISO 8601 in UTC (`2026-12-03T21:40:00Z`).
    public var modified: String
    /// The cache file listed (nil in a decoded listing).
    var entry: ModelCache.File?

    enum CodingKeys: String, CodingKey { case kind, name, tag, file, path, bytes, modified }

    /// Creates the description of `entry`.
    public init(_ entry: ModelCache.File, name: String, tag: String?) {
        self.entry = entry
        kind = entry.kind
        self.name = name
        self.tag = tag
        file = entry.relativePath
        path = entry.path
        bytes = entry.bytes
        modified = CachedFile.iso8601(entry.modified)
    }

    /// Decodes an entry of `zoo cache list --json`.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        kind = try c.decode(ModelCache.File.Kind.self, forKey: .kind)
        name = try c.decode(String.self, forKey: .name)
        tag = try c.decodeIfPresent(String.self, forKey: .tag)
        file = try c.decode(String.self, forKey: .file)
        path = try c.decode(String.self, forKey: .path)
        bytes = try c.decode(Int.self, forKey: .bytes)
        modified = try c.decode(String.self, forKey: .modified)
        entry = nil
    }

    /// Encodes the documented fields (`tag` is `null` when absent).
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(kind, forKey: .kind)
        try c.encode(name, forKey: .name)
        try c.encode(tag, forKey: .tag)
        try c.encode(file, forKey: .file)
        try c.encode(path, forKey: .path)
        try c.encode(bytes, forKey: .bytes)
        try c.encode(modified, forKey: .modified)
    }

    static func iso8601(_ seconds: Double) -> String {
        ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: seconds.rounded(.down)))
    }
}

/// The result of `zoo cache list --json`: the cache's root, its files and their total size.
public struct CacheListing: Sendable, Equatable, Codable {
    /// The cache's root folder.
    public var cache: String
    /// The files, sorted by folder and name.
    public var files: [CachedFile]
    /// The sum of the files' sizes in bytes.
    public var totalBytes: Int

    enum CodingKeys: String, CodingKey {
        case cache, files
        case totalBytes = "total_bytes"
    }

    /// Creates a listing of `files` in `cache`.
    public init(cache: String, files: [CachedFile]) {
        self.cache = cache
        self.files = files
        totalBytes = files.reduce(0) { $0 + $1.bytes }
    }
}

extension Pretrained {
    /// Whether the environment asks for offline mode: `ZOO_OFFLINE` set to anything but empty or `0`.
    /// Offline, `fetch` and name resolution use only the cache and never open a connection.
    public static func offlineRequested(environment: [String: String] = ProcessInfo.processInfo.environment) -> Bool {
        guard let value = environment["ZOO_OFFLINE"] else { return false }
        return !value.isEmpty && value != "0"
    }

    /// The files of `cache` (models, downloads, partial downloads, temporary files), each named after
    /// the catalogue's architecture and tag where the catalogue knows the file.
    public static func cacheContents(_ cache: ModelCache) throws -> CacheListing {
        var models: [String: (String, String)] = [:]
        var downloads: [String: (String, String)] = [:]
        for entry in try Catalogue.shared().entries {
            for w in entry.weights {
                models[modelName(entry.name, tag: w.tag) + ".safetensors"] = (entry.name, w.tag)
                if downloads[w.file] == nil { downloads[w.file] = (entry.name, w.tag) }
            }
        }
        let files = cache.files().map { f -> CachedFile in
            let known: (String, String)?
            switch f.kind {
            case .model: known = models[f.fileName]
            case .download: known = downloads[f.fileName]
            case .partial: known = downloads[String(f.fileName.dropLast(Downloader.partialSuffix.count))]
            case .temporary: known = nil
            }
            if let (name, tag) = known { return CachedFile(f, name: name, tag: tag) }
            let stem = f.kind == .model ? String(f.fileName.dropLast(".safetensors".count)) : f.fileName
            return CachedFile(f, name: stem, tag: nil)
        }
        return CacheListing(cache: cache.root, files: files)
    }

    /// Removes what the cache holds of `name`: a catalogue name (`resnet18`) removes every tag's
    /// converted checkpoint, download and partial download; a cache name (`resnet18-IMAGENET1K_V1`)
    /// one weight set's; a file name of the cache that one file. Returns what was removed. A name
    /// with a folder, `.`/`..` or a leading dot is a usage error, and so is a name the cache does not
    /// hold (nothing is removed then). Symbolic links are removed, never followed; a partial download
    /// another process is downloading now is left alone.
    @discardableResult
    public static func removeCached(_ name: String, cache: ModelCache) throws -> [CachedFile] {
        if (try? ModelCache.checkPlainName(name)) == nil || name.hasPrefix(".") {
            throw ZooError(.usage, "\"\(name)\" is not a model name of the cache (`zoo cache list`)", item: name)
        }
        let listing = try cacheContents(cache)
        let matches = listing.files.filter { f in
            guard f.kind != .temporary, !(f.entry.map(cache.isInUse) ?? false) else { return false }
            let fileName = f.entry?.fileName
            if f.name == name || fileName == name { return true }
            if let tag = f.tag, modelName(f.name, tag: tag) == name { return true }
            return f.kind == .model && fileName == name + ".safetensors"
        }
        guard !matches.isEmpty else {
            throw ZooError(.usage, "\(name) is not in the cache \(cache.root) (`zoo cache list`)", item: name)
        }
        for f in matches { if let e = f.entry { try cache.remove(e) } }
        return matches
    }

    /// Removes the cache's leftovers (partial downloads not being downloaded now, temporary files of
    /// interrupted writes) and,
    /// with `olderThanDays`, also the models and downloads not used or modified for that long
    /// (the later of access and modification time). Returns what was removed.
    @discardableResult
    public static func pruneCache(_ cache: ModelCache, olderThanDays days: Double? = nil, now: Date = Date()) throws -> [CachedFile] {
        let cutoff = days.map { now.timeIntervalSince1970 - $0 * 86400 }
        let doomed = try cacheContents(cache).files.filter { f in
            switch f.kind {
            case .partial: return !(f.entry.map(cache.isInUse) ?? false)
            case .temporary: return true
            case .model, .download: return cutoff.map { (f.entry?.lastUsed ?? .infinity) < $0 } ?? false
            }
        }
        for f in doomed { if let e = f.entry { try cache.remove(e) } }
        return doomed
    }
}
