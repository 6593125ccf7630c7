import ArgumentParser
import Foundation
import ModelZoo

/// `zoo cache list|rm NAME|prune [--older-than DAYS]`: the fetch cache's files, with sizes.
struct Cache: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List, remove and prune the fetch cache's models and downloads.",
        discussion: """
        The cache is $ZOO_HOME, else $XDG_CACHE_HOME/modelzoo, else ~/.cache/modelzoo: models/ holds the \
        converted checkpoints (NAME-TAG.safetensors), downloads/ the published files and interrupted \
        downloads (.part). Symbolic links in the cache are listed and removed as links, never followed.
        """,
        subcommands: [CacheList.self, CacheRemove.self, CachePrune.self],
        defaultSubcommand: CacheList.self
    )
}

/// `--dir D`: the cache folder of the `cache` subcommands.
struct CacheDirectoryOption: ParsableArguments {
    @Option(help: "Cache folder (default: $ZOO_HOME, $XDG_CACHE_HOME/modelzoo or ~/.cache/modelzoo).")
    var dir: String?

    /// The cache it selects.
    func cache() throws -> ModelCache { try dir.map { ModelCache(root: $0) } ?? ModelCache() }
}

/// `zoo cache list [--json]`.
struct CacheList: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list",
        abstract: "List the cache's files (models, downloads, partial downloads, temporary files) with their sizes and a total."
    )

    @OptionGroup var location: CacheDirectoryOption

    @Flag(help: "Print JSON: {\"cache\", \"files\": [{\"kind\", \"name\", \"tag\", \"file\", \"path\", \"bytes\", \"modified\"}], \"total_bytes\"}.")
    var json = false

    func run() throws {
        let listing = try Pretrained.cacheContents(try location.cache())
        if json {
            print(try CacheCommand.json(listing))
            return
        }
        if !listing.files.isEmpty {
            let rows = listing.files.map { f in
                [f.kind.rawValue, f.name, f.tag ?? "-", CLIOutput.bytes(f.bytes), CacheCommand.date(f.modified), f.file]
            }
            print(CLIOutput.table(["kind", "name", "tag", "size", "modified", "file"], rows, rightAligned: [3]), terminator: "")
        }
        print(CacheCommand.total(listing.files, verb: nil, cache: listing.cache))
    }
}

/// `zoo cache rm NAME`.
struct CacheRemove: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rm",
        abstract: "Remove a model from the cache: a catalogue name (resnet18) removes all its weight sets, NAME-TAG (resnet18-IMAGENET1K_V1) one.",
        discussion: "Removes the converted checkpoints, the downloads and the partial downloads of the name. A name the cache does not hold is a usage error (exit 1) and removes nothing."
    )

    @Argument(help: "A catalogue name, a cache name NAME-TAG, or a file name of the cache (`zoo cache list`).")
    var name: String

    @OptionGroup var location: CacheDirectoryOption

    func run() throws {
        let cache = try location.cache()
        let removed = try Pretrained.removeCached(name, cache: cache)
        CacheCommand.report(removed, cache: cache)
    }
}

/// `zoo cache prune [--older-than DAYS]`.
struct CachePrune: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prune",
        abstract: "Remove partial downloads and temporary files; with --older-than, also models and downloads unused for that many days."
    )

    @Option(name: .customLong("older-than"), help: ArgumentHelp("Also remove models and downloads not used or modified for this many days.", valueName: "days"))
    var olderThan: Double?

    @OptionGroup var location: CacheDirectoryOption

    func validate() throws {
        if let olderThan, !(olderThan >= 0) || !olderThan.isFinite {
            throw ValidationError("--older-than must be a number of days, 0 or more")
        }
    }

    func run() throws {
        let cache = try location.cache()
        let removed = try Pretrained.pruneCache(cache, olderThanDays: olderThan)
        CacheCommand.report(removed, cache: cache)
    }
}

/// Output shared by the `cache` subcommands.
enum CacheCommand {
    /// `value` as JSON with sorted keys, laid out like the other commands' JSON (`JSONValue`).
    static func json<T: Encodable>(_ value: T) throws -> String {
        try JSONValue(encoding: value, sortedKeys: true).serialized(pretty: true)
    }

    /// `2026-12-03 21:40` (UTC) from `2026-12-03T21:40:35Z`.
    static func date(_ iso8601: String) -> String {
        String(iso8601.prefix(16)).replacingOccurrences(of: "T", with: " ")
    }

    /// `total: 3 files, 93.6 MB in /root` (or `removed: ...`).
    static func total(_ files: [CachedFile], verb: String?, cache: String) -> String {
        let bytes = files.reduce(0) { $0 + $1.bytes }
        let count = files.count == 1 ? "1 file" : "\(files.count) files"
        return "\(verb ?? "total"): \(count), \(CLIOutput.bytes(bytes)) in \(cache.escapingControlCharacters)"
    }

    /// One line per removed file, then the total freed.
    static func report(_ removed: [CachedFile], cache: ModelCache) {
        for f in removed { print("removed \(f.file.escapingControlCharacters) (\(CLIOutput.bytes(f.bytes)))") }
        print(total(removed, verb: "freed", cache: cache.root))
    }
}
