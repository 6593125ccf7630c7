import ArgumentParser
import Foundation
import ModelZoo

/// `zoo features CKPT|NAME INPUT... -o OUT.safetensors [--stages 1,2,3,4] [--pool avg]`, and sharded,
/// resumable runs with `--shard-size` (`-o` a directory; `zoo merge-features` joins the shards).
struct Features: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Embeddings (pooled last feature map) or stage feature maps for many images, streamed to a .safetensors file.",
        discussion: """
        Without --stages: one tensor `embeddings` [N, C] (global average pool of the last stage). With --stages: \
        one NCHW tensor per image and stage, named `<image index, 6 digits>.<stage name>`, computed one image \
        at a time so memory stays flat. The metadata `zoo.images` lists the image files in index order and \
        `zoo.feature_info` the stages (name, channels, reduction). Inputs: files, directories (every .jpg, .jpeg \
        and .png under them, sorted), glob patterns, and --files-from. With --shard-size N (embeddings), -o is a \
        directory of shards of N inputs and a manifest; --resume keeps the complete shards of an interrupted run; \
        --shard-index/--shard-count split the shards between processes; `zoo merge-features` joins them. \
        Exit status 4: done, with images skipped (--skip-bad).
        """
    )

    @Argument(help: "A native checkpoint, or a model fetched with `zoo fetch`.")
    var model: String

    @Argument(help: "JPEG or PNG files, directories (recursive, sorted) or glob patterns.")
    var images: [String] = []

    @Option(name: .customLong("files-from"), help: "A file listing one input per line (`-`: standard input), after the arguments.")
    var filesFrom: String?

    @OptionGroup var destination: OutputOption<Features>

    @Option(help: "Comma-separated stage indices (timm out_indices, e.g. 1,2,3,4); `zoo info NAME` lists the stages.")
    var stages: String?

    @Option(help: "Pooling of the last map for embeddings: avg.")
    var pool = Choice(FeatureExtractor.Pool.avg)

    @Option(help: "Images per forward pass (embeddings mode).")
    var batch = 8

    @Flag(name: .customLong("skip-bad"), help: "Skip images that cannot be read or decoded (listed, counted; exit status 4) instead of stopping at the first.")
    var skipBad = false

    @Option(help: "With --skip-bad: write the skipped images to this file, one JSON object per line ({\"path\", \"reason\"}).")
    var errors: String?

    @Option(name: .customLong("shard-size"), help: "Write shards of this many inputs into the directory -o names, with a manifest (embeddings only).")
    var shardSize: Int?

    @Option(name: .customLong("shard-index"), help: "With --shard-count: this process's part of the shards (0-based).")
    var shardIndex = 0

    @Option(name: .customLong("shard-count"), help: "The number of processes sharing the inputs: this one writes shards k with k % count == index.")
    var shardCount = 1

    @Flag(help: "With --shard-size: keep the shards an earlier run completed for the same inputs, model and unchanged files.")
    var resume = false

    @OptionGroup var compute: ThreadsOption

    @OptionGroup var decoding: DecodeOption

    @OptionGroup var replace: ForceOption<Features>

    @OptionGroup var result: JSONOption

    @OptionGroup var verbosity: QuietOption

    var output: String { destination.output }

    func validate() throws {
        guard !images.isEmpty || filesFrom != nil else { throw ValidationError("give at least one image, directory or pattern, or --files-from") }
        guard pool.value != nil else { throw ValidationError("--pool supports avg") }
        guard batch > 0, compute.threads > 0 else { throw ValidationError("--batch and --threads must be positive") }
        if errors != nil, !skipBad { throw ValidationError("--errors goes with --skip-bad") }
        if shardSize == nil, shardCount != 1 || shardIndex != 0 || resume {
            throw ValidationError("--shard-index, --shard-count and --resume go with --shard-size")
        }
        if let n = shardSize {
            guard n > 0 else { throw ValidationError("--shard-size must be positive") }
            guard shardCount > 0, shardIndex >= 0, shardIndex < shardCount else {
                throw ValidationError("--shard-index must be in 0..<--shard-count (got \(shardIndex) of \(shardCount))")
            }
            if stages != nil { throw ValidationError("--shard-size writes embeddings; --stages writes one file") }
        }
        if skipBad, stages != nil { throw ValidationError("--skip-bad goes with embeddings, not --stages") }
        if decoding.fastDecode, stages != nil { throw ValidationError("--fast-decode goes with embeddings, not --stages") }
    }

    func run() throws {
        verbosity.apply()
        let inputs = try ImageInputs.collect(images, filesFrom: filesFrom)
        let extractor = try FeatureExtractor(path: try Pretrained.resolve(model))
        if shardSize == nil { try replace.refuseExisting(output) }
        if let errors { try replace.refuseExisting(errors) }
        let indices = try stages.map { try CLIOutput.indices($0, option: "--stages") }
        let bar = ProgressBar(enabled: inputs.count > 1, counting: "images")
        var skipped: [SkippedImage] = []
        var shards: (total: Int, resumed: Int)?
        let count: Int
        if let indices {
            count = try extractor.writeStageMaps(images: inputs, stages: indices, to: output, threads: compute.threads,
                                                 overwrite: replace.force, progress: bar.update)
        } else if let shardSize {
            let plan = try ShardPlan(size: shardSize, index: shardIndex, count: shardCount)
            let r = try extractor.writeEmbeddingShards(images: inputs, to: output, plan: plan, pool: pool.value ?? .avg, batch: batch,
                                                       threads: compute.threads, decode: decoding.options, skipBad: skipBad, resume: resume, overwrite: replace.force,
                                                       onSkip: { skipped.append($0) }, progress: bar.update)
            shards = (r.shards, r.resumed)
            count = r.rows
        } else {
            count = try extractor.writeEmbeddings(images: inputs, to: output, pool: pool.value ?? .avg, batch: batch, threads: compute.threads,
                                                  decode: decoding.options, overwrite: replace.force, skipBad: skipBad, onSkip: { skipped.append($0) }, progress: bar.update)
        }
        bar.finish()
        if let errors {
            let lines = skipped.map { $0.json.serialized() + "\n" }.joined()
            try AtomicFileWriter.write(Array(lines.utf8), to: errors, overwrite: replace.force)
        }
        if !skipped.isEmpty {
            CLIOutput.note("skipped \(skipped.count) image\(skipped.count == 1 ? "" : "s") that could not be read or decoded"
                           + (errors.map { " (listed in \($0.escapingControlCharacters))" } ?? ""))
        }
        if result.json {
            try CLIOutput.printJSON(FeaturesResult(
                output: output, images: inputs.count, kind: indices == nil ? "embeddings" : "stages", tensors: indices != nil ? count : (shards?.total ?? 1),
                rows: indices == nil ? count : inputs.count, skipped: skipped.count, shards: shards?.total, resumed: shards?.resumed,
                stages: try extractor.stages(indices).map {
                    .init(index: $0.index, name: $0.tap.name, channels: $0.tap.channels, reduction: $0.tap.reduction, shape: nil)
                }))
        } else if let shards {
            print("\(output.escapingControlCharacters): \(count) embeddings for \(inputs.count) images in \(shards.total) shards"
                  + (shards.resumed > 0 ? " (\(shards.resumed) kept from an earlier run)" : ""))
        } else {
            print("\(output.escapingControlCharacters): \(indices == nil ? 1 : count) tensors for \(inputs.count) images"
                  + (indices == nil && count != inputs.count ? " (\(count) rows)" : ""))
        }
        if !skipped.isEmpty { throw ExitCode(Features.skippedExitCode) }
    }

    /// The exit status of a run that finished with images skipped (`--skip-bad`).
    static let skippedExitCode: Int32 = 4
}

extension Features: OutputText, ForceText {
    static let outputHelp = "The output .safetensors file (with --shard-size: a directory)."
    static let forceHelp = "Replace an existing output file (with --shard-size: this process's shards and manifest)."
}

/// `zoo merge-features DIR... -o OUT.safetensors`: joins the shard directories of a sharded `zoo features` run.
struct MergeFeatures: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "merge-features",
        abstract: "Join the shard directories of `zoo features --shard-size` into one embeddings file.",
        discussion: """
        The result is the file one process writes without --shard-size: `embeddings` [N, C] in input order, \
        `zoo.images`, `zoo.feature_info`. Every shard of the run must be present once, in any of the directories.
        """
    )

    @Argument(help: "Shard directories (one run's, possibly written by several processes).")
    var directories: [String]

    @OptionGroup var destination: OutputOption<MergeFeatures>

    @OptionGroup var replace: ForceOption<MergeFeatures>

    @OptionGroup var result: JSONOption

    @OptionGroup var verbosity: QuietOption

    func validate() throws {
        guard !directories.isEmpty else { throw ValidationError("give at least one shard directory") }
    }

    func run() throws {
        verbosity.apply()
        try replace.refuseExisting(destination.output)
        let r = try EmbeddingShards.merge(directories: directories, to: destination.output, overwrite: replace.force)
        if result.json {
            try CLIOutput.printJSON(MergeFeaturesResult(output: destination.output, rows: r.rows, shards: r.shards, skipped: r.skipped.count))
            return
        }
        print("\(destination.output.escapingControlCharacters): \(r.rows) embeddings from \(r.shards) shards"
              + (r.skipped.isEmpty ? "" : " (\(r.skipped.count) images skipped)"))
    }
}

extension MergeFeatures: OutputText, ForceText {
    static let outputHelp = "The merged .safetensors file."
    static let forceHelp = "Replace an existing output file."
}
