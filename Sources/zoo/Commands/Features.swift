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

    @OptionGroup var destination: OutputOption<Features>

    @Option(help: "Comma-separated stage indices (timm out_indices, e.g. 1,2,3,4); `zoo info NAME` lists the stages.")
    var stages: String?

    @Option(help: "Pooling of the last map for embeddings: avg.")
    var pool = Choice(FeatureExtractor.Pool.avg)

    @Option(help: "Images per forward pass (embeddings mode).")
    var batch = 8

    @OptionGroup var compute: ThreadsOption

    @OptionGroup var replace: ForceOption<Features>

    @OptionGroup var result: JSONOption

    @OptionGroup var verbosity: QuietOption

    var output: String { destination.output }

    func validate() throws {
        guard !images.isEmpty else { throw ValidationError("give at least one image") }
        guard pool.value != nil else { throw ValidationError("--pool supports avg") }
        guard batch > 0, compute.threads > 0 else { throw ValidationError("--batch and --threads must be positive") }
    }

    func run() throws {
        verbosity.apply()
        let extractor = try FeatureExtractor(path: try Pretrained.resolve(model))
        try replace.refuseExisting(output)
        let indices = try stages.map { try CLIOutput.indices($0, option: "--stages") }
        let bar = ProgressBar(enabled: images.count > 1, counting: "images")
        let count: Int
        if let indices {
            count = try extractor.writeStageMaps(images: images, stages: indices, to: output, threads: compute.threads,
                                                 overwrite: replace.force, progress: bar.update)
        } else {
            count = try extractor.writeEmbeddings(images: images, to: output, pool: pool.value ?? .avg, batch: batch,
                                                  threads: compute.threads, overwrite: replace.force, progress: bar.update)
        }
        bar.finish()
        if result.json {
            try CLIOutput.printJSON(FeaturesResult(
                output: output, images: images.count, kind: indices == nil ? "embeddings" : "stages", tensors: count,
                stages: try extractor.stages(indices).map {
                    .init(index: $0.index, name: $0.tap.name, channels: $0.tap.channels, reduction: $0.tap.reduction, shape: nil)
                }))
            return
        }
        print("\(output.escapingControlCharacters): \(count) tensors for \(images.count) images")
    }
}

extension Features: OutputText, ForceText {
    static let outputHelp = "The output .safetensors file."
    static let forceHelp = "Replace an existing output file."
}
