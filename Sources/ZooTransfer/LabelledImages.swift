import Foundation
import ZooErrors
import ZooImages
import ZooTensor

/// Image files with integer class labels and the class names: a training or evaluation set.
///
/// Read from an ImageFolder tree (`DIR/<class>/**/*.jpg|jpeg|png`, as torchvision's `ImageFolder`) or a
/// CSV manifest (`path,label`). Classes are sorted by name (byte order, as Python's `sorted`), label `i`
/// is `classes[i]`, and files come in torchvision's order (class by class; within a class folder by
/// directory path, then by file name).
public struct LabelledImages: Sendable, Equatable {
    /// Image paths.
    public var files: [String]
    /// The class index of each file.
    public var labels: [Int]
    /// Class names, index order.
    public var classes: [String]

    /// A set from parallel arrays; throws `badInput` when the counts differ or a label is out of range.
    public init(files: [String], labels: [Int], classes: [String]) throws {
        guard files.count == labels.count else { throw ZooError(.badInput, "\(files.count) files but \(labels.count) labels") }
        if let bad = labels.first(where: { $0 < 0 || $0 >= classes.count }) {
            throw ZooError(.badInput, "label \(bad) is outside the \(classes.count) classes")
        }
        self.files = files
        self.labels = labels
        self.classes = classes
    }

    /// The file extensions read as images (lowercased; compared case-insensitively).
    public static let imageExtensions: Set<String> = ["jpg", "jpeg", "png"]
    /// Extensions torchvision's `ImageFolder` would take that ZooImages cannot decode; such files are
    /// listed by `check` as bad (with the reason), never dropped silently.
    public static let otherImageExtensions: Set<String> = ["ppm", "bmp", "pgm", "tif", "tiff", "webp"]

    /// Reads an ImageFolder tree: one folder per class directly under `directory`, images anywhere below
    /// it (symbolic links followed, each real folder once). Throws `badInput` naming the folder when it has
    /// no class folders, when a class folder has no image files, or when there is only one class
    /// (`minimumClasses`, 2 by default: a classifier needs two). When `classes` is given (the training
    /// set's, for a validation or test folder), every folder must be one of them and labels follow that list.
    public static func folder(_ directory: String, classes given: [String]? = nil, minimumClasses: Int = 2) throws -> LabelledImages {
        let fm = FileManager.default
        var isDir: ObjCBool = false
        guard fm.fileExists(atPath: directory, isDirectory: &isDir), isDir.boolValue else {
            throw ZooError(.badInput, "not a folder (expected one sub-folder of images per class)", file: directory)
        }
        let entries: [String]
        do { entries = try fm.contentsOfDirectory(atPath: directory) } catch {
            throw ZooError(.io, "cannot list the folder: \(error.localizedDescription)", file: directory)
        }
        let folders = entries.filter { name in
            var d: ObjCBool = false
            return !name.hasPrefix(".") && fm.fileExists(atPath: directory + "/" + name, isDirectory: &d) && d.boolValue
        }.sorted(by: byteOrder)
        guard !folders.isEmpty else {
            throw ZooError(.badInput, "no class folders (expected DIR/<class>/<images>)", file: directory)
        }
        let classes = given ?? folders
        if given == nil, classes.count < minimumClasses {
            throw ZooError(.badInput, "only \(classes.count) class folder (\(classes[0])); a classifier needs at least \(minimumClasses)", file: directory)
        }
        var index: [String: Int] = [:]
        for (i, c) in classes.enumerated() { index[c] = i }
        var files: [String] = [], labels: [Int] = []
        for name in folders {
            guard let label = index[name] else {
                throw ZooError(.badInput, "class folder \(name) is not one of the \(classes.count) classes the model was trained on", file: directory)
            }
            let found = try imageFiles(under: directory + "/" + name)
            guard !found.isEmpty else {
                throw ZooError(.badInput, "class folder \(name) has no image files (.jpg, .jpeg, .png)", file: directory)
            }
            files += found
            labels += Array(repeating: label, count: found.count)
        }
        return try LabelledImages(files: files, labels: labels, classes: classes)
    }

    /// Reads a CSV manifest: one `path,label` row per image (a first row `path,label` is a header; fields
    /// may be double-quoted; relative paths are relative to the manifest's folder). Classes are the sorted
    /// distinct labels, or `classes` when given (then a label that names none of them is an error).
    public static func manifest(_ path: String, classes given: [String]? = nil, minimumClasses: Int = 2) throws -> LabelledImages {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ZooError(.io, "cannot read the manifest", file: path)
        }
        guard let text = String(data: data, encoding: .utf8) else { throw ZooError(.badInput, "the manifest is not UTF-8 text", file: path) }
        let base = (path as NSString).deletingLastPathComponent
        var rows: [(String, String)] = []
        for (n, raw) in text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" }).enumerated() {
            let line = raw.hasSuffix("\r") ? String(raw.dropLast()) : String(raw)
            if line.trimmingCharacters(in: .whitespaces).isEmpty { continue }
            let fields: [String]
            do { fields = try csvFields(line) } catch let e as ZooError {
                throw ZooError(.badInput, "line \(n + 1): \(e.message)", file: path)
            }
            guard fields.count == 2, !fields[0].isEmpty, !fields[1].isEmpty else {
                throw ZooError(.badInput, "line \(n + 1): expected `path,label`, got \(fields.count) fields", file: path)
            }
            if rows.isEmpty, fields[0] == "path", fields[1] == "label" { continue }
            let p = fields[0].hasPrefix("/") || base.isEmpty ? fields[0] : base + "/" + fields[0]
            rows.append((p, fields[1]))
        }
        guard !rows.isEmpty else { throw ZooError(.badInput, "the manifest lists no images", file: path) }
        let classes = given ?? Set(rows.map(\.1)).sorted(by: byteOrder)
        if given == nil, classes.count < minimumClasses {
            throw ZooError(.badInput, "only \(classes.count) class (\(classes[0])); a classifier needs at least \(minimumClasses)", file: path)
        }
        var index: [String: Int] = [:]
        for (i, c) in classes.enumerated() { index[c] = i }
        var labels: [Int] = []
        for (p, label) in rows {
            guard let i = index[label] else {
                throw ZooError(.badInput, "label \(label) (for \(p)) names none of the \(classes.count) classes", file: path)
            }
            labels.append(i)
        }
        return try LabelledImages(files: rows.map(\.0), labels: labels, classes: classes)
    }

    /// An ImageFolder tree or, for a `.csv` file, a manifest.
    public static func load(_ path: String, classes: [String]? = nil) throws -> LabelledImages {
        path.lowercased().hasSuffix(".csv") ? try manifest(path, classes: classes) : try folder(path, classes: classes)
    }

    /// The number of images per class, index order.
    public var counts: [Int] {
        var c = [Int](repeating: 0, count: classes.count)
        for y in labels { c[y] += 1 }
        return c
    }

    /// The subset at `indices` (same classes).
    public func subset(_ indices: [Int]) -> LabelledImages {
        // Indices come from this set; labels stay in range.
        (try? LabelledImages(files: indices.map { files[$0] }, labels: indices.map { labels[$0] }, classes: classes))
            ?? self
    }

    /// A seeded, stratified split: from each class, `round(fraction x count)` images (at least one when
    /// the class has two or more and the fraction is positive) go to validation. Both parts keep this
    /// set's order. The same seed gives the same split.
    public func split(validationFraction fraction: Double, seed: UInt64) throws -> (train: LabelledImages, validation: LabelledImages) {
        guard fraction >= 0, fraction < 1 else { throw ZooError(.usage, "the validation fraction must be in [0, 1), got \(fraction)") }
        var isValidation = [Bool](repeating: false, count: files.count)
        for c in classes.indices {
            var members = labels.indices.filter { labels[$0] == c }
            var take = Int((fraction * Double(members.count)).rounded())
            if fraction > 0, members.count >= 2 { take = min(max(take, 1), members.count - 1) }
            var rng = SplitMix64(state: seed &+ UInt64(c) &* 0x9E37_79B9_7F4A_7C15)
            // Fisher-Yates, then the first `take` go to validation.
            if members.count > 1 {
                for i in stride(from: members.count - 1, to: 0, by: -1) {
                    let j = Int(rng.next() % UInt64(i + 1))
                    members.swapAt(i, j)
                }
            }
            for m in members.prefix(take) { isValidation[m] = true }
        }
        let train = files.indices.filter { !isValidation[$0] }, val = files.indices.filter { isValidation[$0] }
        return (subset(train), subset(val))
    }

    /// Python's `sorted` order for strings: by Unicode code point (UTF-8 bytes).
    static func byteOrder(_ a: String, _ b: String) -> Bool { a.utf8.lexicographicallyPrecedes(b.utf8) }

    /// The image files under `root`, in torchvision's order: `sorted(os.walk(root, followlinks=True))`,
    /// then each folder's files sorted. Files whose extension is neither an image extension ZooImages reads
    /// nor one torchvision would take are ignored, as torchvision does.
    static func imageFiles(under root: String) throws -> [String] {
        let fm = FileManager.default
        var folders: [(String, [String])] = []
        var seen = Set<String>()
        var pending = [root]
        while let dir = pending.popLast() {
            let real = (dir as NSString).resolvingSymlinksInPath
            guard seen.insert(real).inserted else { continue }
            let names: [String]
            do { names = try fm.contentsOfDirectory(atPath: dir) } catch {
                throw ZooError(.io, "cannot list the folder: \(error.localizedDescription)", file: dir)
            }
            var here: [String] = []
            for name in names where !name.hasPrefix(".") {
                let p = dir + "/" + name
                var d: ObjCBool = false
                guard fm.fileExists(atPath: p, isDirectory: &d) else { continue }
                if d.boolValue { pending.append(p); continue }
                let ext = (name as NSString).pathExtension.lowercased()
                if imageExtensions.contains(ext) || otherImageExtensions.contains(ext) { here.append(name) }
            }
            folders.append((dir, here.sorted(by: byteOrder)))
        }
        folders.sort { byteOrder($0.0, $1.0) }
        return folders.flatMap { dir, names in names.map { dir + "/" + $0 } }
    }

    /// The fields of one CSV line (RFC 4180 quoting: `"a,b"`, `""` for a quote).
    static func csvFields(_ line: String) throws -> [String] {
        var fields: [String] = [], current = "", quoted = false, atStart = true
        var it = Array(line).makeIterator()
        var pendingQuote = false
        while let ch = it.next() {
            if quoted {
                if pendingQuote {
                    pendingQuote = false
                    if ch == "\"" { current.append("\""); continue }
                    quoted = false
                } else if ch == "\"" { pendingQuote = true; continue } else { current.append(ch); continue }
            }
            if ch == "," { fields.append(current); current = ""; atStart = true; continue }
            if ch == "\"", atStart, current.isEmpty { quoted = true; atStart = false; continue }
            atStart = false
            current.append(ch)
        }
        if quoted, !pendingQuote { throw ZooError(.badInput, "unterminated quoted field") }
        fields.append(current)
        return fields
    }
}

/// An image that cannot be used, and why.
public struct BadImage: Sendable, Equatable, Codable {
    /// The file.
    public var path: String
    /// The reason (the decoder's or the file system's message).
    public var reason: String

    /// A record.
    public init(path: String, reason: String) {
        self.path = path
        self.reason = reason
    }
}

extension LabelledImages {
    /// Decodes every image (on `threads` threads) and returns those that cannot be read or decoded, in
    /// file order. `progress` receives images checked and the total.
    public func check(limits: ImageLimits = .standard, threads: Int = 1, progress: ((Int, Int) -> Void)? = nil) -> [BadImage] {
        let reasons = ParallelMap.run(count: files.count, threads: threads, progress: progress) { i -> String? in
            do {
                _ = try ImageDecoder.decode(path: files[i], limits: limits)
                return nil
            } catch let e as ZooError {
                return e.message
            } catch {
                return "\(error)"
            }
        }
        return zip(files, reasons).compactMap { f, r in r.map { BadImage(path: f, reason: $0) } }
    }

    /// This set without the files in `bad`.
    public func removing(_ bad: [BadImage]) -> LabelledImages {
        let drop = Set(bad.map(\.path))
        return subset(files.indices.filter { !drop.contains(files[$0]) })
    }
}
