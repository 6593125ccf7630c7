import Crypto
import Foundation
import ZooErrors
import ZooFiles
import ZooImages
import ZooJSON
import ZooRuntime
import ZooTensor

/// Embeddings of images under one base checkpoint, cached on disk: a second training run on the same
/// images (other head settings) reads them instead of running the backbone again.
///
/// An entry's key is the base checkpoint's SHA-256, the preprocessing (its JSON), the embedding width and
/// the image file's content (SHA-256): a changed base, preprocessing or image misses the cache. Layout:
/// `ROOT/<key of base and preprocessing>/<image SHA-256>.f32`, raw little-endian float32 of the width,
/// each written atomically. An entry of the wrong size is ignored and computed again.
public struct EmbeddingCache: Sendable {
    /// The folder of this base and preprocessing.
    public let folder: String
    /// The embedding width.
    public let width: Int

    /// The cache for `baseSHA256` (the base checkpoint's digest) and `preprocessing` under `root`
    /// (`ModelCache.root + "/embeddings"` for the user's cache).
    public init(root: String, baseSHA256: String, preprocessing: Preprocessing, width: Int) {
        let identity = "zoo-embeddings-v1\n\(baseSHA256)\n\(preprocessing.json.serialized())\n\(width)"
        folder = root + "/" + EmbeddingCache.hex(SHA256.hash(data: Data(identity.utf8)))
        self.width = width
    }

    /// The SHA-256 of a file's content, lowercase hex.
    public static func sha256(file path: String) throws -> String {
        let file = try MappedFile(path: path)
        return withExtendedLifetime(file) { hex(SHA256.hash(data: file.bytes)) }
    }

    static func hex<D: Sequence>(_ digest: D) -> String where D.Element == UInt8 {
        digest.map { String(format: "%02x", $0) }.joined()
    }

    /// The cached embedding of the image whose content digest is `imageSHA256`, or nil.
    public func lookup(_ imageSHA256: String) -> [Float]? {
        let path = folder + "/" + imageSHA256 + ".f32"
        guard let file = try? MappedFile(path: path), file.count == width * 4 else { return nil }
        return withExtendedLifetime(file) {
            var out = [Float](repeating: 0, count: width)
            out.withUnsafeMutableBytes { $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: file.bytes[0..<(width * 4)])) }
            return out.map { Float(bitPattern: UInt32(littleEndian: $0.bitPattern)) }
        }
    }

    /// Stores an embedding (atomically; an existing entry is replaced).
    public func store(_ embedding: UnsafeBufferPointer<Float>, for imageSHA256: String) throws {
        guard embedding.count == width else { throw ZooError(.badInput, "an embedding of \(embedding.count) values for width \(width)") }
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let bytes = embedding.flatMap { v -> [UInt8] in
            let b = v.bitPattern.littleEndian
            return [UInt8(b & 0xFF), UInt8((b >> 8) & 0xFF), UInt8((b >> 16) & 0xFF), UInt8(b >> 24)]
        }
        try AtomicFileWriter.write(bytes, to: folder + "/" + imageSHA256 + ".f32", overwrite: true)
    }
}

/// Computes the embeddings of labelled images with a base checkpoint's `Embedder`, through the cache.
public struct EmbeddingSource: Sendable {
    /// The embedder (the base up to its final layer's input).
    public let embedder: Embedder
    /// The base's preprocessing.
    public let preprocessing: Preprocessing
    /// The cache, or nil to compute every embedding.
    public let cache: EmbeddingCache?
    /// Images per forward pass.
    public var batch: Int

    /// A source; `batch` images go through the backbone at a time.
    public init(embedder: Embedder, preprocessing: Preprocessing, cache: EmbeddingCache?, batch: Int = 8) {
        self.embedder = embedder
        self.preprocessing = preprocessing
        self.cache = cache
        self.batch = max(1, batch)
    }

    /// What `embeddings(of:)` returns.
    public struct Result: Sendable {
        /// Row-major [files, width] float32.
        public var values: [Float]
        /// How many rows came from the cache.
        public var cached: Int
    }

    /// The embedding of every file, [files, width]. Files the cache holds are read; the others go
    /// through the backbone `batch` at a time (in file order) and are stored. An image that cannot be
    /// decoded throws its error naming the file. `progress` receives images done and the total.
    public func embeddings(of files: [String], progress: ((Int, Int) -> Void)? = nil) throws -> Result {
        let width = embedder.width
        var values = [Float](repeating: 0, count: files.count * width)
        var digests: [String?] = Array(repeating: nil, count: files.count)
        var missing: [Int] = []
        var cached = 0
        for (i, f) in files.enumerated() {
            if let cache {
                let digest: String
                do { digest = try EmbeddingCache.sha256(file: f) } catch let e as ZooError { throw e.file == nil ? e.inFile(f) : e }
                digests[i] = digest
                if let row = cache.lookup(digest) {
                    values.replaceSubrange((i * width)..<((i + 1) * width), with: row)
                    cached += 1
                    continue
                }
            }
            missing.append(i)
        }
        var done = cached
        progress?(done, files.count)
        var start = 0
        while start < missing.count {
            // Ctrl-C (TrainingInterrupt): stop between batches; what is computed is in the cache already.
            if TrainingInterrupt.isRequested, let cache {
                throw TrainingInterrupted(stateFolder: cache.folder, epoch: 0, position: 0, embedding: true)
            }
            let chunk = Array(missing[start..<min(start + batch, missing.count)])
            let input: Tensor
            do { input = try preprocessing.tensor(forFiles: chunk.map { files[$0] }) } catch let e as ZooError where e.file == nil {
                throw e.inFile(files[chunk[0]])
            }
            let out = try embedder(input)
            let rows = out.floats()
            for (r, i) in chunk.enumerated() {
                values.replaceSubrange((i * width)..<((i + 1) * width), with: rows[(r * width)..<((r + 1) * width)])
                if let cache, let digest = digests[i] {
                    try rows.withUnsafeBufferPointer { try cache.store(UnsafeBufferPointer(rebasing: $0[(r * width)..<((r + 1) * width)]), for: digest) }
                }
            }
            start += chunk.count
            done += chunk.count
            progress?(done, files.count)
        }
        return Result(values: values, cached: cached)
    }
}
