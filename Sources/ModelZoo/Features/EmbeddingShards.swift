import Foundation
import ZooErrors
import ZooFiles
import ZooFormats
import ZooImages
import ZooJSON
import ZooRuntime
import ZooTensor

/// An image a run could not use: its path and why (`zoo features --skip-bad`, `--errors`).
public struct SkippedImage: Sendable, Equatable {
    /// The image's path, as the input list has it.
    public var path: String
    /// Why: the reader's or decoder's one-line message.
    public var reason: String

    /// A skipped image.
    public init(path: String, reason: String) {
        self.path = path
        self.reason = reason
    }

    /// `{"path": ..., "reason": ...}`: one line of an `--errors` report.
    public var json: JSONValue { .object([("path", .string(path)), ("reason", .string(reason))]) }

    /// Splits the next `count` images of `pipeline` into those that decoded (with their images) and
    /// those that did not: each of these goes to `onSkip` when `skipBad`, else stops the run with its
    /// error (naming the file).
    static func take(_ count: Int, from pipeline: DecodePipeline, skipBad: Bool,
                     onSkip: (DecodedImage, SkippedImage) -> Void) throws -> (good: [DecodedImage], images: [RGBImage], taken: Int) {
        var good: [DecodedImage] = [], images: [RGBImage] = []
        let chunk = pipeline.next(count)
        for item in chunk {
            switch item.image {
            case .success(let image):
                good.append(item)
                images.append(image)
            case .failure(let e):
                guard skipBad else { throw e }
                onSkip(item, SkippedImage(path: item.path, reason: e.message))
            }
        }
        return (good, images, chunk.count)
    }
}

/// How `FeatureExtractor.writeEmbeddingShards` splits the inputs: shard `k` holds inputs
/// `k * size ..< (k + 1) * size`, and this process writes the shards `k` with `k % count == index`, so
/// `count` processes given the same inputs write disjoint shards that together cover them all.
public struct ShardPlan: Sendable, Equatable {
    /// Inputs per shard (the last one may hold fewer).
    public var size: Int
    /// This process's part, `0 ..< count`.
    public var index: Int
    /// The number of processes sharing the inputs.
    public var count: Int

    /// A plan; throws `usage` unless `size > 0` and `0 <= index < count`.
    public init(size: Int, index: Int = 0, count: Int = 1) throws {
        guard size > 0 else { throw ZooError(.usage, "--shard-size must be positive") }
        guard count > 0, index >= 0, index < count else {
            throw ZooError(.usage, "--shard-index must be in 0..<--shard-count (got \(index) of \(count))")
        }
        self.size = size
        self.index = index
        self.count = count
    }

    /// The number of shards of `inputs` inputs.
    public func shards(of inputs: Int) -> Int { (inputs + size - 1) / size }

    /// The shards this process writes.
    public func mine(of inputs: Int) -> [Int] { Array(stride(from: index, to: shards(of: inputs), by: count)) }

    /// The file name of shard `k`: `shard-000042.safetensors`.
    public static func fileName(_ k: Int) -> String { "shard-" + FeatureExtractor.padded6(k) + ".safetensors" }

    /// The file name of this process's manifest: `manifest-0-of-2.json`.
    public var manifestName: String { "manifest-\(index)-of-\(count).json" }
}

/// What a sharded run did.
public struct ShardRunResult: Sendable {
    /// Shards this process is responsible for.
    public var shards: Int
    /// Of those, complete from an earlier run and kept (`resume`).
    public var resumed: Int
    /// Embedding rows in this process's shards.
    public var rows: Int
    /// Images skipped as unreadable or undecodable, in this process's shards (kept shards included).
    public var skipped: [SkippedImage]
}

extension FeatureExtractor {
    /// Embeds the next `count` images of `pipeline` in batches of `batch` inputs: the rows of the images
    /// that decode (in order, with the pipeline's items), and the images that did not. Without `skipBad`
    /// the first bad image stops the run with an error naming it.
    func embedRows(_ count: Int, of pipeline: DecodePipeline, backbone: Backbone, batch: Int, skipBad: Bool,
                   onRows: ([DecodedImage], Tensor) throws -> Void, onSkip: (DecodedImage, SkippedImage) -> Void) throws {
        var left = count
        while left > 0 {
            let (good, prepared, taken) = try SkippedImage.take(min(max(batch, 1), left), from: pipeline, skipBad: skipBad, onSkip: onSkip)
            guard taken > 0 else { throw ZooError(.io, "the decode pipeline ended early") }
            left -= taken
            guard !prepared.isEmpty else { continue }
            let out: Backbone.Output
            do {
                out = try backbone.forward(preprocessing.tensor(prepared: prepared))
            } catch let e as ZooError where e.file == nil {
                throw e.inFile(good[0].path)
            }
            guard let pooled = out.pooled, pooled.dtype == .f32, pooled.elementCount % good.count == 0 else {
                throw ZooError(.badInput, "the backbone produced no pooled float32 output")
            }
            try onRows(good, pooled)
        }
    }

    /// The `zoo.feature_info` of embeddings: the last stage's name, the width, the pooling.
    static func embeddingInfo(_ backbone: Backbone, width: Int, pool: Pool) -> JSONValue {
        .object([("name", .string(backbone.featureInfo.last?.name ?? "")), ("channels", .int(Int64(width))), ("pool", .string(pool.rawValue))])
    }

    /// The embedding backbone (pooled last stage, no head).
    func embeddingBackbone(threads: Int) throws -> Backbone {
        do {
            return try Backbone(graph: loaded.graph, weights: loaded.weights, head: false, pool: true, threads: threads)
        } catch let e as ZooError { throw e.inFile(path) }
    }

    /// Writes the embeddings of `images` as shards of `plan.size` inputs into the directory `directory`
    /// (created when missing): this process's shards (`plan.mine`), each an atomic safetensors file in
    /// `writeEmbeddings`'s layout for its rows (`embeddings` [rows, C], `zoo.images`, `zoo.feature_info`)
    /// plus `zoo.image_sha256` (its rows' content hashes) and `zoo.shard` (index, first input, input
    /// count, checkpoint SHA-256, skipped images with their hashes), and the manifest
    /// `manifest-I-of-N.json` (the inputs' count and digest, the plan, the checkpoint's digest, whether
    /// the run is complete). With `resume`, a shard that is already complete for the same inputs, the same
    /// checkpoint and unchanged files (by content) is kept; without it (or `overwrite`), an existing
    /// manifest or shard of this process is an error. A kill loses at most the shard in progress.
    /// `decode` sets the decode pipeline (`DecodePipeline`: decoding overlaps inference; each file is read
    /// once for its pixels and its hash).
    @discardableResult
    public func writeEmbeddingShards(images: [String], to directory: String, plan: ShardPlan, pool: Pool = .avg, batch: Int = 8,
                                     threads: Int = defaultThreadCount, decode: DecodeOptions = DecodeOptions(), skipBad: Bool = false,
                                     resume: Bool = false, overwrite: Bool = false, onSkip: ((SkippedImage) -> Void)? = nil, progress: ((Int, Int) -> Void)? = nil) throws -> ShardRunResult {
        let fm = FileManager.default
        var isDirectory: ObjCBool = false
        if fm.fileExists(atPath: directory, isDirectory: &isDirectory) {
            guard isDirectory.boolValue else { throw ZooError(.io, "is not a directory (with --shard-size, -o names a directory)", file: directory) }
        } else {
            do { try fm.createDirectory(atPath: directory, withIntermediateDirectories: true) } catch {
                throw ZooError(.io, "cannot create the directory: \(error.localizedDescription)", file: directory)
            }
        }
        let mine = plan.mine(of: images.count)
        let manifestPath = directory + "/" + plan.manifestName
        if !resume && !overwrite {
            for name in [plan.manifestName] + mine.map(ShardPlan.fileName) where fm.fileExists(atPath: directory + "/" + name) {
                throw ZooError(.io, "already exists (use --resume to continue the run, or --force to start again)", file: directory + "/" + name)
            }
        }
        let checkpointSHA = try Converter.sha256(path: path)
        let inputsSHA = Converter.sha256(bytes: Array(images.joined(separator: "\n").utf8))
        func manifest(complete: Bool, rows: Int, skipped: Int) throws {
            let json: JSONValue = .object([
                ("format", .string(EmbeddingShards.format)), ("checkpoint", .string(path)), ("checkpoint_sha256", .string(checkpointSHA)),
                ("inputs", .int(Int64(images.count))), ("inputs_sha256", .string(inputsSHA)), ("shard_size", .int(Int64(plan.size))),
                ("shards", .int(Int64(plan.shards(of: images.count)))), ("shard_index", .int(Int64(plan.index))),
                ("shard_count", .int(Int64(plan.count))), ("pool", .string(pool.rawValue)), ("complete", .bool(complete)),
                ("rows", .int(Int64(rows))), ("skipped", .int(Int64(skipped))),
            ])
            try AtomicFileWriter.write(Array((json.serialized(pretty: true) + "\n").utf8), to: manifestPath, overwrite: true)
        }
        try manifest(complete: false, rows: 0, skipped: 0)
        let backbone = try embeddingBackbone(threads: threads)
        guard let width = backbone.featureInfo.last?.channels else { throw ZooError(.badInput, "the architecture has no feature stage", file: path) }
        let info = Self.embeddingInfo(backbone, width: width, pool: pool)
        let total = mine.reduce(0) { $0 + min(plan.size, images.count - $1 * plan.size) }
        var result = ShardRunResult(shards: mine.count, resumed: 0, rows: 0, skipped: [])
        func inputs(_ k: Int) -> ArraySlice<String> { images[(k * plan.size)..<min((k + 1) * plan.size, images.count)] }
        // Shards kept from an earlier run, then one decode pipeline over the inputs of the others (so
        // decoding runs ahead across shard boundaries).
        var kept: [Int: (rows: Int, skipped: [SkippedImage])] = [:]
        if resume {
            for k in mine {
                kept[k] = EmbeddingShards.completeShard(at: directory + "/" + ShardPlan.fileName(k), index: k, first: k * plan.size,
                                                        inputs: Array(inputs(k)), checkpointSHA: checkpointSHA, width: width)
            }
        }
        let pipeline = DecodePipeline(files: mine.filter { kept[$0] == nil }.flatMap { inputs($0) }, preprocessing: preprocessing,
                                      options: decode, digest: { Converter.sha256(bytes: $0) })
        defer { pipeline.stop() }
        var done = 0
        for k in mine {
            let first = k * plan.size
            let count = inputs(k).count
            let shardPath = directory + "/" + ShardPlan.fileName(k)
            if let old = kept[k] {
                result.resumed += 1
                result.rows += old.rows
                result.skipped += old.skipped
                for s in old.skipped { onSkip?(s) }
                done += count
                progress?(done, total)
                continue
            }
            var rows: [Float] = [], files: [String] = [], hashes: [JSONValue] = [], skipped: [JSONValue] = []
            var skips: [SkippedImage] = []
            rows.reserveCapacity(count * width)
            try embedRows(count, of: pipeline, backbone: backbone, batch: batch, skipBad: skipBad, onRows: { good, pooled in
                guard pooled.elementCount == good.count * width else {
                    throw ZooError(.badInput, "embeddings of \(pooled.elementCount / max(good.count, 1)) values, expected \(width)", file: good[0].path)
                }
                rows += pooled.floats()
                for item in good {
                    guard let digest = item.digest else { throw ZooError(.io, "no content hash", file: item.path) }
                    files.append(item.path)
                    hashes.append(.string(digest))
                }
                done += good.count
                progress?(done, total)
            }, onSkip: { item, s in
                skips.append(s)
                skipped.append(.object([("path", .string(s.path)), ("reason", .string(s.reason)),
                                        ("sha256", item.digest.map { .string($0) } ?? EmbeddingShards.contentHash(s.path))]))
                onSkip?(s)
                done += 1
            })
            let shard: JSONValue = .object([
                ("index", .int(Int64(k))), ("first", .int(Int64(first))), ("inputs", .int(Int64(count))),
                ("checkpoint_sha256", .string(checkpointSHA)), ("skipped", .array(skipped)),
            ])
            let metadata = [("format", "pt"), ("zoo.images", JSONValue.array(files.map { .string($0) }).serialized()),
                            ("zoo.feature_info", info.serialized()), ("zoo.image_sha256", JSONValue.array(hashes).serialized()),
                            ("zoo.shard", shard.serialized())]
            let record = TensorRecord(name: "embeddings", tensor: try Tensor(shape: [files.count, width], floats: rows))
            do { try SafetensorsWriter.write([record], metadata: metadata, to: shardPath, overwrite: true) } catch let e as ZooError {
                throw e.file == nil ? e.inFile(shardPath) : e
            }
            result.rows += files.count
            result.skipped += skips
            progress?(done, total)
        }
        try manifest(complete: true, rows: result.rows, skipped: result.skipped.count)
        return result
    }
}

/// Sharded embedding directories (`zoo features --shard-size`): checking a shard for `--resume`, and
/// `zoo merge-features`, which joins them into `FeatureExtractor.writeEmbeddings`'s single-file layout.
public enum EmbeddingShards {
    /// The manifests' `format`.
    public static let format = "zoo.features.shards/1"

    /// The SHA-256 of a file's content, or null when it cannot be read.
    static func contentHash(_ path: String) -> JSONValue {
        (try? Converter.sha256(path: path)).map { .string($0) } ?? .null
    }

    /// The shard at `path` when it is complete for these inputs, this checkpoint and the files' current
    /// content: its row count and skipped images; nil when it must be computed (again).
    static func completeShard(at path: String, index: Int, first: Int, inputs: [String], checkpointSHA: String, width: Int)
        -> (rows: Int, skipped: [SkippedImage])? {
        guard FileManager.default.fileExists(atPath: path), let file = try? SafetensorsFile(path: path),
              let shard = file.metadataValue("zoo.shard").flatMap({ try? JSONValue.parse($0) }),
              let images = file.metadataValue("zoo.images").flatMap({ try? JSONValue.parse($0) })?.arrayValue?.compactMap(\.stringValue),
              let hashes = file.metadataValue("zoo.image_sha256").flatMap({ try? JSONValue.parse($0) })?.arrayValue?.compactMap(\.stringValue),
              shard["index"]?.intValue == index, shard["first"]?.intValue == first, shard["inputs"]?.intValue == inputs.count,
              shard["checkpoint_sha256"]?.stringValue == checkpointSHA, hashes.count == images.count,
              let entry = file.entry(named: "embeddings"), entry.shape == [images.count, width], entry.dtype == .f32,
              let skippedJSON = shard["skipped"]?.arrayValue else { return nil }
        var skipped: [SkippedImage] = [], skippedHashes: [String: JSONValue] = [:]
        for s in skippedJSON {
            guard let p = s["path"]?.stringValue, let r = s["reason"]?.stringValue else { return nil }
            skipped.append(SkippedImage(path: p, reason: r))
            skippedHashes[p] = s["sha256"] ?? .null
        }
        // The inputs, in order, are the rows and the skipped images interleaved.
        var row = 0, skip = 0
        for input in inputs {
            if row < images.count, images[row] == input {
                guard (try? Converter.sha256(path: input)) == hashes[row] else { return nil }
                row += 1
            } else if skip < skipped.count, skipped[skip].path == input {
                guard contentHash(input) == skippedHashes[input] else { return nil }
                skip += 1
            } else {
                return nil
            }
        }
        guard row == images.count, skip == skipped.count else { return nil }
        return (images.count, skipped)
    }

    /// What a merge wrote.
    public struct MergeResult: Sendable {
        /// Rows of the merged `embeddings`.
        public var rows: Int
        /// Shards joined.
        public var shards: Int
        /// Images the shards skipped.
        public var skipped: [SkippedImage]
    }

    /// Joins the shards of `directories` (one run's, possibly split over several processes and folders)
    /// into `output` in `FeatureExtractor.writeEmbeddings`'s single-file layout: `embeddings` [N, C] in
    /// input order, `zoo.images`, `zoo.feature_info`; byte for byte what one process writes without
    /// shards (and with the same skips). Every manifest must describe the same run (inputs, checkpoint,
    /// shard size) and every shard must be present once; otherwise `badInput` names what is missing.
    @discardableResult
    public static func merge(directories: [String], to output: String, overwrite: Bool = false) throws -> MergeResult {
        guard !directories.isEmpty else { throw ZooError(.usage, "give at least one shard directory") }
        var run: JSONValue?, runFile = ""
        var shardFiles: [Int: String] = [:]
        for dir in directories {
            let names: [String]
            do { names = try FileManager.default.contentsOfDirectory(atPath: dir) } catch {
                throw ZooError(.io, "cannot list the directory: \(error.localizedDescription)", file: dir)
            }
            for name in ImageInputs.sorted(names) {
                let p = (dir.hasSuffix("/") ? dir : dir + "/") + name
                if name.hasPrefix("manifest-"), name.hasSuffix(".json") {
                    let json: JSONValue
                    do { json = try JSONValue.parse(String(decoding: try Data(contentsOf: URL(fileURLWithPath: p)), as: UTF8.self)) } catch let e as ZooError {
                        throw e.inFile(p)
                    } catch { throw ZooError(.io, "cannot read: \(error.localizedDescription)", file: p) }
                    guard json["format"]?.stringValue == format else { throw ZooError(.badInput, "not a shard manifest (format \(format))", file: p) }
                    let key = ["inputs", "inputs_sha256", "shard_size", "shards", "checkpoint_sha256", "pool"]
                    if let r = run {
                        for k in key where r[k] != json[k] {
                            throw ZooError(.badInput, "another run than \(runFile): its \(k) differs", file: p)
                        }
                    } else {
                        run = json
                        runFile = p
                    }
                } else if name.hasPrefix("shard-"), name.hasSuffix(".safetensors"), let k = Int(name.dropFirst(6).dropLast(12)) {
                    if let other = shardFiles[k] { throw ZooError(.badInput, "shard \(k) is also in \(other)", file: p) }
                    shardFiles[k] = p
                }
            }
        }
        guard let run, let count = run["shards"]?.intValue, let size = run["shard_size"]?.intValue, let inputs = run["inputs"]?.intValue else {
            throw ZooError(.badInput, "no shard manifest (manifest-I-of-N.json) in \(directories.joined(separator: ", "))")
        }
        var files: [SafetensorsFile] = [], images: [JSONValue] = [], skipped: [SkippedImage] = []
        var info: String?, width = 0, rows = 0
        for k in 0..<count {
            guard let p = shardFiles[k] else { throw ZooError(.badInput, "shard \(k) of \(count) is missing (\(ShardPlan.fileName(k)))", file: directories[0]) }
            let f = try SafetensorsFile(path: p)
            guard let shard = f.metadataValue("zoo.shard").flatMap({ try? JSONValue.parse($0) }),
                  shard["index"]?.intValue == k, shard["first"]?.intValue == k * size,
                  shard["inputs"]?.intValue == min(size, inputs - k * size),
                  shard["checkpoint_sha256"] == run["checkpoint_sha256"],
                  let e = f.entry(named: "embeddings"), e.dtype == .f32, e.shape.count == 2,
                  let names = f.metadataValue("zoo.images").flatMap({ try? JSONValue.parse($0) })?.arrayValue, names.count == e.shape[0],
                  let i = f.metadataValue("zoo.feature_info") else {
                throw ZooError(.badInput, "not shard \(k) of this run (its zoo.shard, zoo.images or embeddings do not fit)", file: p)
            }
            if info == nil { info = i; width = e.shape[1] }
            guard i == info, e.shape[1] == width else { throw ZooError(.badInput, "embeddings of another width or stage than shard 0's", file: p) }
            for s in shard["skipped"]?.arrayValue ?? [] {
                skipped.append(SkippedImage(path: s["path"]?.stringValue ?? "", reason: s["reason"]?.stringValue ?? ""))
            }
            images += names
            rows += e.shape[0]
            files.append(f)
        }
        let record = TensorRecord(name: "embeddings", dtype: .f32, shape: [rows, width]) { throw ZooError(.io, "embeddings are streamed, not loaded") }
        let metadata = [("format", "pt"), ("zoo.images", JSONValue.array(images).serialized()), ("zoo.feature_info", info ?? "{}")]
        let writer = try AtomicFileWriter(destination: output, overwrite: overwrite)
        do {
            try writer.write(SafetensorsWriter.header(for: [record], metadata: metadata))
            for f in files {
                guard let e = f.entry(named: "embeddings") else { continue }
                try f.file.withBytes { raw in
                    try writer.write(UnsafeRawBufferPointer(rebasing: raw[(f.dataStart + e.range.lowerBound)..<(f.dataStart + e.range.upperBound)]))
                }
            }
            try writer.commit()
        } catch let e as ZooError {
            writer.abandon()
            throw e.file == nil ? e.inFile(output) : e
        }
        return MergeResult(rows: rows, shards: count, skipped: skipped)
    }
}
