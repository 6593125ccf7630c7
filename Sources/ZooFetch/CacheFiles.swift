#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import ZooErrors

extension ModelCache {
    /// One file of the cache, as `zoo cache list` shows it.
    ///
    /// Only the entries directly inside `models/` and `downloads/` are files of the cache; they are
    /// examined with `lstat`, so a symbolic link is listed (and removed) as the link itself and never
    /// followed out of the cache. Folders and other names are left alone.
    public struct File: Sendable, Equatable {
        /// What a cache file is.
        public enum Kind: String, Sendable, Codable, CaseIterable {
            /// A converted native checkpoint, `models/NAME-TAG.safetensors`.
            case model
            /// A verified download as published, `downloads/FILE`.
            case download
            /// An interrupted download, `downloads/FILE.part` (resumed by the next fetch).
            case partial
            /// A temporary file of an interrupted write, `.NAME.zoo-tmp-RANDOM`.
            case temporary
        }

        /// The file's kind.
        public var kind: Kind
        /// Its folder inside the cache: `models` or `downloads`.
        public var folder: String
        /// Its name inside that folder.
        public var fileName: String
        /// Its full path.
        public var path: String
        /// Its size in bytes (of the link itself for a symbolic link).
        public var bytes: Int
        /// Its modification time, in seconds since 1970.
        public var modified: Double
        /// The later of its access and modification times, in seconds since 1970: when it was last used.
        public var lastUsed: Double
        /// Whether the entry is a symbolic link (never followed).
        public var isSymbolicLink: Bool

        /// The path relative to the cache's root: `models/resnet18-IMAGENET1K_V1.safetensors`.
        public var relativePath: String { folder + "/" + fileName }
    }

    /// The temporary-file marker of `AtomicFileWriter` (`.<name>.zoo-tmp-<random>`).
    static let temporaryMarker = ".zoo-tmp-"

    /// Every file of the cache (models, downloads, partial downloads, temporary files), sorted by
    /// folder and name. A missing folder holds nothing.
    public func files() -> [File] {
        var result: [File] = []
        for (folder, directory) in [("models", modelsDirectory), ("downloads", downloadsDirectory)] {
            let names = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).sorted()
            for name in names {
                guard let kind = ModelCache.kind(of: name, in: folder) else { continue }
                let path = directory + "/" + name
                var st = stat()
                guard lstat(path, &st) == 0 else { continue }
                let type = st.st_mode & S_IFMT
                guard type == S_IFREG || type == S_IFLNK else { continue }
                let mtime = Double(st.st_mtim.tv_sec) + Double(st.st_mtim.tv_nsec) / 1e9
                let atime = Double(st.st_atim.tv_sec) + Double(st.st_atim.tv_nsec) / 1e9
                result.append(File(kind: kind, folder: folder, fileName: name, path: path, bytes: Int(st.st_size),
                                   modified: mtime, lastUsed: max(mtime, atime), isSymbolicLink: type == S_IFLNK))
            }
        }
        return result
    }

    /// The kind of an entry named `name` in `folder`, nil when it is no file of the cache.
    static func kind(of name: String, in folder: String) -> File.Kind? {
        if name.hasPrefix("."), name.contains(temporaryMarker) { return .temporary }
        if name.hasPrefix(".") { return nil }
        if folder == "models" { return name.hasSuffix(".safetensors") ? .model : nil }
        return name.hasSuffix(Downloader.partialSuffix) ? .partial : .download
    }

    /// Whether a partial download is being downloaded now: another process holds the exclusive lock
    /// `Downloader` takes on it. Other files, and a file that cannot be opened, are not in use.
    public func isInUse(_ file: File) -> Bool {
        guard file.kind == .partial else { return false }
        let fd = open(file.path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        return flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK
    }

    /// Removes one file of the cache (a symbolic link is removed, not its target). Refuses anything
    /// that is not directly inside `models/` or `downloads/` of this cache.
    public func remove(_ file: File) throws {
        let directory = file.folder == "models" ? modelsDirectory : file.folder == "downloads" ? downloadsDirectory : nil
        guard let directory, (try? ModelCache.checkPlainName(file.fileName)) != nil,
              file.path == directory + "/" + file.fileName else {
            throw ZooError(.usage, "not a file of the cache \(root)", file: file.path)
        }
        if unlink(file.path) != 0 {
            throw ZooError(.io, "cannot remove: \(String(cString: strerror(errno)))", file: file.path)
        }
    }
}
