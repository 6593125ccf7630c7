import Foundation
import ZooArchitectures
import ZooFormats
import ZooImages
import ZooRuntime
import ZooErrors
import ZooJSON
import ZooFiles
import ZooTensor

/// Embeddings or stage feature maps of many images from a native checkpoint, streamed to a
/// safetensors file (what `zoo features` runs).
///
/// ```swift
/// let extractor = try FeatureExtractor(path: "resnet50.safetensors")
/// try extractor.writeEmbeddings(images: files, to: "embeddings.safetensors")          // `embeddings` [N, C]
/// try extractor.writeStageMaps(images: files, stages: [1, 2, 3, 4], to: "maps.safetensors")
/// ```
///
/// Both files hold `zoo.images` (the image files in index order) and `zoo.feature_info` in their
/// metadata, and appear only when complete. Memory stays flat whatever the number of images: one
/// batch of embeddings, or one image's maps, at a time.
public struct FeatureExtractor: Sendable {
    /// How the last feature map is pooled into an embedding.
    public enum Pool: String, Sendable, CaseIterable {
        /// Global average pooling.
        case avg
    }

    /// The checkpoint's path.
    public let path: String
    /// The checkpoint's preprocessing (its `zoo.preprocessing` metadata).
    public let preprocessing: Preprocessing
    let loaded: LoadedCheckpoint

    /// Opens the native checkpoint at `path`. Throws `badInput` naming it when it has no (or invalid)
    /// preprocessing metadata.
    public init(path: String) throws {
        let loaded = try LoadedCheckpoint(path: path)
        guard let json = loaded.checkpoint.metadata.preprocessing else {
            throw ZooError(.badInput, "no preprocessing metadata (zoo.preprocessing)", file: path)
        }
        do { preprocessing = try Preprocessing(json: json) } catch let e as ZooError { throw e.inFile(path) }
        self.path = path
        self.loaded = loaded
    }

    /// Writes one tensor `embeddings` [rows, C] F32 (the pooled last feature map, a row per image)
    /// to `output`, computed `batch` images per forward pass and streamed: each batch's rows go to the
    /// file as soon as they are computed, and the file appears only when every row is written.
    /// `zoo.images` lists the images of the rows, `zoo.feature_info` holds the stage name, the width and
    /// the pooling. Without `skipBad` the first image that cannot be read or decoded stops the run with an
    /// error naming it; with it, such images get no row and go to `onSkip` (the rows are then spooled to a
    /// temporary file next to `output`, since the header, which comes first, holds the row count).
    /// `progress` receives images done and the total after each batch. `decode` sets the decode pipeline
    /// (`DecodePipeline`: background threads decode the next images while a batch runs; the rows do not
    /// depend on it, except with `fastDecode`). Returns the number of rows.
    @discardableResult
    public func writeEmbeddings(images: [String], to output: String, pool: Pool = .avg, batch: Int = 8,
                                threads: Int = defaultThreadCount, decode: DecodeOptions = DecodeOptions(), overwrite: Bool = false,
                                skipBad: Bool = false, onSkip: ((SkippedImage) -> Void)? = nil, progress: ((Int, Int) -> Void)? = nil) throws -> Int {
        try refuseExisting(output, overwrite: overwrite)
        let backbone = try embeddingBackbone(threads: threads)
        guard let width = backbone.featureInfo.last?.channels else { throw ZooError(.badInput, "the architecture has no feature stage", file: path) }
        let info = Self.embeddingInfo(backbone, width: width, pool: pool)
        func header(_ names: [String]) throws -> [UInt8] {
            let record = TensorRecord(name: "embeddings", dtype: .f32, shape: [names.count, width]) {
                throw ZooError(.io, "embeddings are streamed, not loaded")
            }
            let metadata = [("format", "pt"), ("zoo.images", JSONValue.array(names.map { .string($0) }).serialized()),
                            ("zoo.feature_info", info.serialized())]
            return try SafetensorsWriter.header(for: [record], metadata: metadata)
        }
        let writer = try AtomicFileWriter(destination: output, overwrite: overwrite)
        // With skips the row count is known at the end only: rows go to a spool file first.
        let spool = skipBad ? try AtomicFileWriter(destination: output + ".rows", overwrite: true) : nil
        var kept: [String] = []
        var done = 0
        do {
            if spool == nil { try writer.write(header(images)) }
            let pipeline = DecodePipeline(files: images, preprocessing: preprocessing, options: decode)
            defer { pipeline.stop() }
            try embedRows(images.count, of: pipeline, backbone: backbone, batch: batch, skipBad: skipBad, onRows: { good, pooled in
                guard pooled.elementCount == good.count * width else {
                    throw ZooError(.badInput, "embeddings of \(pooled.elementCount / max(good.count, 1)) values, expected \(width)", file: good[0].path)
                }
                try pooled.withUnsafeBytes { try (spool ?? writer).write($0) }
                kept += good.map(\.path)
                done += good.count
                progress?(done, images.count)
            }, onSkip: { _, s in
                onSkip?(s)
                done += 1
            })
            if let spool {
                try writer.write(header(kept))
                try spool.flush()
                if spool.bytesWritten > 0 {
                    try MappedFile(path: spool.temporaryPath).withBytes { try writer.write($0) }
                }
                spool.abandon()
            }
            try writer.commit()
        } catch let e as ZooError {
            spool?.abandon()
            writer.abandon()
            throw e.file == nil ? e.inFile(output) : e
        }
        return kept.count
    }

    /// Writes the feature maps of `stages` (timm `out_indices`; `FeatureTap`s of the graph) for every
    /// image to `output`: one NCHW F32 tensor per image and stage, named `<image index, 6 digits>.<stage
    /// name>`, computed one image at a time (the header's shapes come from the images' headers and the
    /// graph's shape inference, without decoding). `zoo.feature_info` lists the stages (index, name,
    /// channels, reduction). `progress` receives images written (as far as the bytes written tell)
    /// and the total. Returns the number of tensors written.
    @discardableResult
    public func writeStageMaps(images: [String], stages: [Int], to output: String,
                               threads: Int = defaultThreadCount, overwrite: Bool = false,
                               progress: ((Int, Int) -> Void)? = nil) throws -> Int {
        try refuseExisting(output, overwrite: overwrite)
        let backbone = try inCheckpoint { try Backbone(graph: loaded.graph, weights: loaded.weights, outIndices: stages, threads: threads) }
        let cache = FeatureCache(backbone: backbone, preprocessing: preprocessing, files: images)
        var records: [TensorRecord] = []
        for (i, file) in images.enumerated() {
            let shapes = try cache.shapes(image: i)
            for (s, tap) in backbone.featureInfo.enumerated() {
                let name = FeatureExtractor.padded6(i) + "." + tap.name
                records.append(TensorRecord(name: name, dtype: .f32, shape: shapes[s], details: [("image", .string(file))]) {
                    try cache.maps(image: i)[s]
                })
            }
        }
        let info = FeatureExtractor.stageInfo(stages, backbone.featureInfo)
        let imagesJSON = JSONValue.array(images.map { .string($0) })
        let metadata = [("format", "pt"), ("zoo.images", imagesJSON.serialized()), ("zoo.feature_info", info.serialized())]
        do {
            let count = images.count
            try SafetensorsWriter.write(records, metadata: metadata, to: output, overwrite: overwrite, progress: progress.map { report in
                { done, total in report(total > 0 ? Int((Double(done) / Double(total) * Double(count)).rounded(.down)) : count, count) }
            })
        } catch let e as ZooError { throw e.inFile(output) }
        return records.count
    }

    /// The feature taps of `stages` (timm `out_indices`) with their indices, or the last stage (what
    /// embeddings pool) when `stages` is nil. Throws a usage error for an index out of range.
    public func stages(_ stages: [Int]?) throws -> [(index: Int, tap: LayerGraph.FeatureTap)] {
        let taps = loaded.graph.taps
        guard let stages else { return taps.last.map { [(taps.count - 1, $0)] } ?? [] }
        return try stages.map { i in
            guard taps.indices.contains(i) else {
                throw ZooError(.usage, "feature index \(i) is out of range; the architecture has \(taps.count) taps (0..<\(taps.count))")
            }
            return (i, taps[i])
        }
    }

    /// The `zoo.feature_info` of stage maps (`writeStageMaps`, `zoo run --features`): one object per
    /// stage, `{"index", "name", "channels", "reduction"}`, `stages[i]` the index the user gave for `taps[i]`.
    public static func stageInfo(_ stages: [Int], _ taps: [LayerGraph.FeatureTap]) -> JSONValue {
        .array(zip(stages, taps).map { i, t in
            .object([("index", .int(Int64(i))), ("name", .string(t.name)), ("channels", .int(Int64(t.channels))),
                     ("reduction", .int(Int64(t.reduction)))])
        })
    }

    /// Zero-padded to 6 digits: the image index of a stage map's name.
    static func padded6(_ i: Int) -> String {
        let digits = String(i)
        return String(repeating: "0", count: Swift.max(0, 6 - digits.count)) + digits
    }

    private func refuseExisting(_ output: String, overwrite: Bool) throws {
        if !overwrite, FileSystem.exists(output) {
            throw ZooError(.io, "already exists (use --force to replace it)", file: output)
        }
    }

    /// Runs `body`, naming the checkpoint in a ZooError that names no file (the checkpoint is opened
    /// once, by `LoadedCheckpoint`, and its graph and weights are compiled from there).
    private func inCheckpoint<T>(_ body: () throws -> T) throws -> T {
        do { return try body() } catch let e as ZooError { throw e.inFile(path) }
    }
}

/// Computes one image's stage maps at a time and keeps the last image's, so the writer (which asks
/// for every stage of an image in a row) runs the network once per image.
final class FeatureCache: @unchecked Sendable {
    private let backbone: Backbone
    private let preprocessing: Preprocessing
    private let files: [String]
    private let lock = NSLock()
    private var current: (Int, [Tensor])?
    private var promised: [Int: [[Int]]] = [:]

    init(backbone: Backbone, preprocessing: Preprocessing, files: [String]) {
        self.backbone = backbone
        self.preprocessing = preprocessing
        self.files = files
    }

    /// The map shapes [1, C, H, W] for image `i` without decoding the image or running the network:
    /// the input size after preprocessing (fixed by a crop or an exact resize, else from the image's
    /// size in its header, `ImageDecoder.size`), through the graph's shape inference. Each image is
    /// decoded once, in `maps`.
    func shapes(image i: Int) throws -> [[Int]] {
        let shapes: [[Int]]
        do {
            let h: Int, w: Int
            if let fixed = preprocessing.fixedOutputSize {
                (h, w) = fixed
            } else {
                let size = try ImageDecoder.size(path: files[i])
                (h, w) = try preprocessing.outputSize(width: size.width, height: size.height)
            }
            let all = try backbone.graph.shapes(height: h, width: w)
            shapes = backbone.featureInfo.map { [1] + all[$0.node] }
        } catch let e as ZooError { throw e.inFile(files[i]) }
        lock.lock()
        promised[i] = shapes
        lock.unlock()
        return shapes
    }

    /// Image `i`'s stage maps, computed once.
    func maps(image i: Int) throws -> [Tensor] {
        lock.lock()
        defer { lock.unlock() }
        if let (j, maps) = current, j == i { return maps }
        let maps: [Tensor]
        do {
            maps = try backbone.features(preprocessing.tensor(forFiles: [files[i]]))
        } catch let e as ZooError { throw e.inFile(files[i]) }
        // The header promised these shapes; a file whose pixels disagree with its header must not
        // produce a file whose data disagrees with its own header.
        if let expected = promised[i], expected != maps.map(\.shape) {
            throw ZooError(.badInput, "decodes to feature maps \(maps.map(\.shape)), its header promised \(expected)", file: files[i])
        }
        current = (i, maps)
        return maps
    }
}
