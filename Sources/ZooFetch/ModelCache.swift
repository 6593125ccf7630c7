import Foundation
import ZooErrors

/// The user's cache folder for downloaded and converted weights.
///
/// The root is `$ZOO_HOME` when set, else `$XDG_CACHE_HOME/modelzoo`, else
/// `~/.cache/modelzoo`. Inside: `downloads/` (files as published, verified) and `models/`
/// (converted native checkpoints, written by the converter).
public struct ModelCache: Sendable, Equatable {
    /// The cache's root folder.
    public let root: String

    /// A cache at an explicit folder.
    public init(root: String) {
        self.root = root
    }

    /// The cache the environment selects (`ZOO_HOME`, `XDG_CACHE_HOME`, `HOME`).
    public init(environment: [String: String] = ProcessInfo.processInfo.environment) throws {
        self.root = try ModelCache.defaultRoot(environment: environment)
    }

    /// Resolves the root folder from environment variables; an error when none gives a usable folder.
    public static func defaultRoot(environment: [String: String]) throws -> String {
        if let home = environment["ZOO_HOME"], !home.isEmpty { return home }
        // The XDG spec says relative values are invalid and must be ignored.
        if let xdg = environment["XDG_CACHE_HOME"], xdg.hasPrefix("/") { return xdg + "/modelzoo" }
        if let home = environment["HOME"], !home.isEmpty { return home + "/.cache/modelzoo" }
        throw ZooError(.usage, "no cache folder: set ZOO_HOME (or XDG_CACHE_HOME or HOME)")
    }

    /// Where downloaded files live.
    public var downloadsDirectory: String { root + "/downloads" }
    /// Where converted checkpoints live.
    public var modelsDirectory: String { root + "/models" }

    /// The path of a downloaded file named `fileName` (a plain name, no folders).
    public func downloadPath(_ fileName: String) throws -> String {
        try ModelCache.checkPlainName(fileName)
        return downloadsDirectory + "/" + fileName
    }

    /// The path of a converted checkpoint named `name` (`<name>.safetensors`).
    public func modelPath(_ name: String) throws -> String {
        try ModelCache.checkPlainName(name)
        return modelsDirectory + "/" + name + ".safetensors"
    }

    /// The converted checkpoints present, by name, sorted.
    public func cachedModels() -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: modelsDirectory)) ?? []
        return names.filter { ModelCache.kind(of: $0, in: "models") == .model }
            .map { String($0.dropLast(".safetensors".count)) }.sorted()
    }

    /// The verified downloads present, sorted (partial `.part` files excluded).
    public func cachedDownloads() -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: downloadsDirectory)) ?? []
        return names.filter { ModelCache.kind(of: $0, in: "downloads") == .download }.sorted()
    }

    /// Creates `path` and its parents when missing.
    public static func createDirectory(_ path: String) throws {
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        } catch {
            throw ZooError(.io, "cannot create the folder: \(error.localizedDescription)", file: path)
        }
    }

    package static func checkPlainName(_ name: String) throws {
        if name.isEmpty || name == "." || name == ".." || name.contains("/") || name.contains("\0") {
            throw ZooError(.usage, "\"\(name)\" is not a plain file name")
        }
    }
}
