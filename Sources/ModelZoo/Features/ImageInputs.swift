#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import ZooErrors

/// The image files a command reads (`zoo features`, `zoo predict`), from its arguments and a list file.
///
/// - A directory stands for every image file under it (`jpg`, `jpeg`, `png` in any case), recursively, in
///   sorted order (byte order of the paths, which is Python's `sorted` on the same strings). Symbolic links
///   are followed, each directory entered once (by its resolved path), so a link loop ends.
/// - An argument that names no file and holds `*`, `?` or `[` is a glob pattern (the shell's, for when it
///   was quoted or for `--files-from`); its matches, sorted, stand for it. A pattern matching nothing is an
///   error.
/// - Anything else is a file, taken as it is (a missing one fails when it is read, naming it).
///
/// The arguments expand in their own order, then the lines of `filesFrom` (one path per line; empty lines
/// are skipped), each line expanded the same way. The result is the input order of every result and of
/// `--shard-index`'s split, whatever the thread count or batch size.
public enum ImageInputs {
    /// The file extensions a directory's images have (lower case).
    public static let extensions: Set<String> = ["jpg", "jpeg", "png"]

    /// The image files of `arguments` and then of the list file `filesFrom` (`-`: `standardInput`).
    /// Throws `usage` when the result is empty or a pattern matches nothing, `io` when the list file
    /// or a directory cannot be read.
    public static func collect(_ arguments: [String], filesFrom: String? = nil,
                               standardInput: () -> Data = { FileHandle.standardInput.readDataToEndOfFile() }) throws -> [String] {
        var files: [String] = []
        for argument in arguments { try expand(argument, into: &files) }
        if let list = filesFrom {
            let data: Data
            if list == "-" {
                data = standardInput()
            } else {
                do { data = try Data(contentsOf: URL(fileURLWithPath: list)) } catch {
                    throw ZooError(.io, "cannot read the list of files: \(error.localizedDescription)", file: list)
                }
            }
            guard let text = String(data: data, encoding: .utf8) else {
                throw ZooError(.badInput, "the list of files is not UTF-8 text", file: list == "-" ? "standard input" : list)
            }
            for line in text.split(separator: "\n", omittingEmptySubsequences: true) {
                let path = line.hasSuffix("\r") ? String(line.dropLast()) : String(line)
                if !path.isEmpty { try expand(path, into: &files) }
            }
        }
        guard !files.isEmpty else { throw ZooError(.usage, "no images: give files, directories, patterns or --files-from") }
        return files
    }

    /// True for a path with an image extension.
    public static func isImage(_ path: String) -> Bool {
        extensions.contains((path as NSString).pathExtension.lowercased())
    }

    /// Byte order of the paths' UTF-8 (Python's `sorted` on the same strings).
    public static func sorted(_ paths: [String]) -> [String] {
        paths.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
    }

    static func expand(_ argument: String, into files: inout [String]) throws {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: argument, isDirectory: &isDirectory) {
            if isDirectory.boolValue {
                var visited: Set<String> = []
                try walk(argument, visited: &visited, into: &files)
            } else {
                files.append(argument)
            }
            return
        }
        guard argument.contains(where: { $0 == "*" || $0 == "?" || $0 == "[" }) else {
            files.append(argument)
            return
        }
        let matches = matching(argument)
        guard !matches.isEmpty else { throw ZooError(.usage, "no file matches the pattern \"\(argument)\"") }
        for match in sorted(matches) {
            if FileManager.default.fileExists(atPath: match, isDirectory: &isDirectory), isDirectory.boolValue {
                var visited: Set<String> = []
                try walk(match, visited: &visited, into: &files)
            } else if isImage(match) {
                files.append(match)
            }
        }
    }

    /// The images under `directory`, sorted per directory level: a directory's entries in byte order,
    /// each subdirectory's images where its name sorts.
    static func walk(_ directory: String, visited: inout Set<String>, into files: inout [String]) throws {
        let resolved = URL(fileURLWithPath: directory).resolvingSymlinksInPath().path
        guard visited.insert(resolved).inserted else { return }
        let names: [String]
        do { names = try FileManager.default.contentsOfDirectory(atPath: directory) } catch {
            throw ZooError(.io, "cannot list the directory: \(error.localizedDescription)", file: directory)
        }
        let prefix = directory.hasSuffix("/") ? directory : directory + "/"
        for name in sorted(names) {
            let path = prefix + name
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else { continue } // a dangling link
            if isDirectory.boolValue {
                try walk(path, visited: &visited, into: &files)
            } else if isImage(name) {
                files.append(path)
            }
        }
    }

    /// The paths matching a shell pattern (glob(3), no sorting: the caller sorts).
    static func matching(_ pattern: String) -> [String] {
        var g = glob_t()
        defer { globfree(&g) }
        guard glob(pattern, 0, nil, &g) == 0 else { return [] }
        var paths: [String] = []
        for i in 0..<Int(g.gl_pathc) {
            if let p = g.gl_pathv[i] { paths.append(String(cString: p)) }
        }
        return paths
    }
}
