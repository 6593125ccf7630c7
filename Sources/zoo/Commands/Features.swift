import ArgumentParser
import Foundation
import ModelZoo

/// `zoo features CKPT|NAME IMAGE... -o OUT.safetensors [--stages 1,2,3,4] [--pool avg]`.
struct Features: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Embeddings (pooled last feature map) or stage feature maps for many images, streamed to a .safetensors file.",
        discussion: """
        Without --stages: one tensor `embeddings` [N, C] (global average pool of the last stage). With --stages: \
        one NCHW tensor per image and stage, named `<image index, 6 digits>.<stage name>`, computed one image \
        at a time so memory stays flat. The metadata `zoo.images` lists the image files in index order and \
        `zoo.feature_info` the stages (name, channels, reduction).
        """
    )

    @Argument(help: "A native checkpoint, or a model fetched with `zoo fetch`.")
    var model: String

    @Argument(help: "JPEG or PNG files.")
    var images: [String]

    @Option(name: [.short, .long], help: "The output .safetensors file.")
    var output: String

    @Option(help: "Comma-separated stage indices (timm out_indices, e.g. 1,2,3,4); `zoo info NAME` lists the stages.")
    var stages: String?

    @Option(help: "Pooling of the last map for embeddings: avg.")
    var pool = "avg"

    @Option(help: "Images per forward pass (embeddings mode).")
    var batch = 8

    @Option(help: "Compute threads (default: the active cores).")
    var threads = defaultThreadCount

    @Flag(help: "Replace an existing output file.")
    var force = false

    func validate() throws {
        guard !images.isEmpty else { throw ValidationError("give at least one image") }
        guard pool == "avg" else { throw ValidationError("--pool supports avg") }
        guard batch > 0, threads > 0 else { throw ValidationError("--batch and --threads must be positive") }
    }

    func run() throws {
        let path = try Pretrained.resolve(model)
        let loaded = try LoadedCheckpoint(path: path)
        guard let preJSON = loaded.checkpoint.metadata.preprocessing else {
            throw ZooError(.badInput, "no preprocessing metadata (zoo.preprocessing)", file: path)
        }
        let pre: Preprocessing
        do { pre = try Preprocessing(json: preJSON) } catch let e as ZooError { throw e.inFile(path) }
        if !force, FileManager.default.fileExists(atPath: output) {
            throw ZooError(.io, "already exists (use --force to replace it)", file: output)
        }
        // Every image gives the same input size after preprocessing only when there is a crop or an exact
        // resize; otherwise sizes differ per image and the shapes are measured per image.
        let files = images
        var records: [TensorRecord] = []
        let imagesJSON = JSONValue.array(files.map { .string($0) })
        if let stages {
            let indices = try stages.split(separator: ",").map { s -> Int in
                guard let i = Int(s.trimmingCharacters(in: .whitespaces)) else {
                    throw ZooError(.usage, "--stages takes comma-separated integers, got \"\(stages)\"")
                }
                return i
            }
            let backbone = try inFile(path) { try Backbone(graph: loaded.graph, weights: loaded.weights, outIndices: indices, threads: threads) }
            let cache = FeatureCache(backbone: backbone, preprocessing: pre, files: files)
            for (i, file) in files.enumerated() {
                let shapes = try cache.shapes(image: i)
                for (s, tap) in backbone.featureInfo.enumerated() {
                    let name = CLIOutput.padded6(i) + "." + tap.name
                    records.append(TensorRecord(name: name, dtype: .f32, shape: shapes[s], details: [("image", .string(file))]) {
                        try cache.maps(image: i)[s]
                    })
                }
            }
            let info: JSONValue = .array(zip(indices, backbone.featureInfo).map { i, t in
                .object([("index", .int(Int64(i))), ("name", .string(t.name)), ("channels", .int(Int64(t.channels))),
                         ("reduction", .int(Int64(t.reduction)))])
            })
            try write(records, [("zoo.images", imagesJSON.serialized()), ("zoo.feature_info", info.serialized())])
        } else {
            let backbone = try inFile(path) { try Backbone(graph: loaded.graph, weights: loaded.weights, head: false, pool: true, threads: threads) }
            try writeEmbeddings(backbone: backbone, preprocessing: pre, files: files, imagesJSON: imagesJSON)
        }
        print("\(output.escapingControlCharacters): \(records.isEmpty ? 1 : records.count) tensors for \(files.count) images")
    }

    /// Pooled embeddings, one row per image, streamed: each batch's rows go to the output file as
    /// soon as they are computed, so memory stays at one batch whatever the number of images. The
    /// first batch gives the width, which fixes the header ([images, width] F32); the file appears
    /// only when every row is written.
    private func writeEmbeddings(backbone: Backbone, preprocessing pre: Preprocessing, files: [String], imagesJSON: JSONValue) throws {
        var writer: AtomicFileWriter?
        var width = 0
        var start = 0
        do {
            while start < files.count {
                let chunk = Array(files[start..<min(start + batch, files.count)])
                let out: Backbone.Output
                do {
                    out = try backbone.forward(pre.tensor(forFiles: chunk))
                } catch let e as ZooError where e.file == nil {
                    // The images of a batch preprocess to one size: the first one names the batch.
                    throw e.inFile(chunk[0])
                }
                guard let pooled = out.pooled, pooled.dtype == .f32, pooled.elementCount % chunk.count == 0 else {
                    throw ZooError(.badInput, "the backbone produced no pooled float32 output")
                }
                let rowWidth = pooled.elementCount / chunk.count
                if writer == nil {
                    width = rowWidth
                    let last = backbone.featureInfo.last
                    let info: JSONValue = .object([("name", .string(last?.name ?? "")), ("channels", .int(Int64(width))), ("pool", .string(pool))])
                    let record = TensorRecord(name: "embeddings", dtype: .f32, shape: [files.count, width]) {
                        throw ZooError(.io, "embeddings are streamed, not loaded")
                    }
                    let metadata = [("format", "pt"), ("zoo.images", imagesJSON.serialized()), ("zoo.feature_info", info.serialized())]
                    let w = try AtomicFileWriter(destination: output, overwrite: force)
                    try w.write(SafetensorsWriter.header(for: [record], metadata: metadata))
                    writer = w
                }
                guard rowWidth == width else {
                    throw ZooError(.badInput, "embedding width changed from \(width) to \(rowWidth)", file: chunk[0])
                }
                try pooled.withUnsafeBytes { try writer?.write($0) }
                start += chunk.count
            }
            try writer?.commit()
        } catch let e as ZooError {
            writer?.abandon()
            throw e.file == nil ? e.inFile(output) : e
        }
    }

    /// Runs `body`, naming `path` in a ZooError that names no file (the checkpoint is opened once,
    /// by `LoadedCheckpoint`, and its graph and weights are compiled from there).
    private func inFile<T>(_ path: String, _ body: () throws -> T) throws -> T {
        do { return try body() } catch let e as ZooError { throw e.inFile(path) }
    }

    private func write(_ records: [TensorRecord], _ metadata: [(String, String)]) throws {
        do {
            try SafetensorsWriter.write(records, metadata: [("format", "pt")] + metadata, to: output, overwrite: force)
        } catch let e as ZooError { throw e.inFile(output) }
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

    init(backbone: Backbone, preprocessing: Preprocessing, files: [String]) {
        self.backbone = backbone
        self.preprocessing = preprocessing
        self.files = files
    }

    private var promised: [Int: [[Int]]] = [:]

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

extension CLIOutput {
    /// Zero-padded to 6 digits (a static function, not a `String` initialiser: an unlabeled
    /// `String.init` reference must never pick it up).
    static func padded6(_ i: Int) -> String {
        let digits = String(i)
        return String(repeating: "0", count: Swift.max(0, 6 - digits.count)) + digits
    }
}
