import ArgumentParser
import Foundation
import ModelZoo

/// `zoo predict CKPT|NAME IMAGE... [--top K] [--json]`: classify images.
struct Predict: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Classify images: the top-K labels with softmax probabilities for each image."
    )

    @Argument(help: "A native checkpoint, or a model fetched with `zoo fetch` (resnet50, resnet50-IMAGENET1K_V2).")
    var model: String

    @Argument(help: "JPEG or PNG files, directories (recursive, sorted) or glob patterns.")
    var images: [String] = []

    @Option(name: .customLong("files-from"), help: "A file listing one input per line (`-`: standard input), after the arguments.")
    var filesFrom: String?

    @Flag(name: .customLong("skip-bad"), help: "Skip images that cannot be read or decoded (listed, counted; exit status 4) instead of stopping at the first.")
    var skipBad = false

    @Option(help: "With --skip-bad: write the skipped images to this file, one JSON object per line ({\"path\", \"reason\"}).")
    var errors: String?

    @Flag(help: "With --errors: replace an existing report.")
    var force = false

    @Option(help: "How many classes to show per image.")
    var top = 5

    @Option(help: "A text file of class names, one per line, replacing the checkpoint's labels (custom heads).")
    var labels: String?

    @Option(help: "Images per forward pass.")
    var batch = 8

    @OptionGroup var compute: ThreadsOption

    @OptionGroup var decoding: DecodeOption

    @Flag(help: "Print JSON Lines, one object per image as results arrive: {\"image\", \"top\": [{\"index\", \"label\", \"probability\"}]}.")
    var json = false

    func validate() throws {
        guard !images.isEmpty || filesFrom != nil else { throw ValidationError("give at least one image, directory or pattern, or --files-from") }
        if errors != nil, !skipBad { throw ValidationError("--errors goes with --skip-bad") }
        guard top > 0 else { throw ValidationError("--top must be positive") }
        guard batch > 0 else { throw ValidationError("--batch must be positive") }
        guard compute.threads > 0 else { throw ValidationError("--threads must be positive") }
    }

    @OptionGroup var verbosity: QuietOption

    func run() throws {
        verbosity.apply()
        let path = try Pretrained.resolve(model)
        let names = try labels.map(Predict.readLabels)
        let images = try ImageInputs.collect(self.images, filesFrom: filesFrom)
        let classifier = try ImageClassifier(contentsOf: URL(fileURLWithPath: path), labels: names, threads: compute.threads)
        if let errors, !force, FileManager.default.fileExists(atPath: errors) {
            throw ZooError(.io, "already exists (use --force to replace it)", file: errors)
        }
        let bar = ProgressBar(enabled: images.count > batch, counting: "images")
        var skipped: [SkippedImage] = []
        var done = 0
        // Results go out batch by batch as they are computed (JSON Lines with --json), flushed, so a
        // consumer reading the pipe sees the first images while the rest are running; the next images
        // decode meanwhile (--decode-threads).
        try classifier.classify(files: images, top: top, batch: batch, decode: decoding.options, skipBad: skipBad, onSkip: { s in
            skipped.append(s)
            done += 1
        }, onResults: { results in
            done += results.count
            bar.finish() // clears the bar's line before results are printed under it
            for (image, top) in results {
                if json {
                    try CLIOutput.printJSON(PredictResult(
                        image: image, top: top.map { .init(index: $0.index, label: $0.label, probability: Double($0.probability)) }), pretty: false)
                } else {
                    print(image.escapingControlCharacters) // labels are escaped by the table
                    let rows = top.map { p in [CLIOutput.decimals4(Double(p.probability)), String(p.index), p.label] }
                    print(CLIOutput.table(["probability", "index", "label"], rows, rightAligned: [0, 1]), terminator: "")
                }
            }
            fflush(nil) // every stdio output stream: stdout, without naming the global
            bar.update(done, images.count)
        })
        bar.finish()
        if let errors {
            try AtomicFileWriter.write(Array(skipped.map { $0.json.serialized() + "\n" }.joined().utf8), to: errors, overwrite: true)
        }
        if !skipped.isEmpty {
            CLIOutput.note("skipped \(skipped.count) image\(skipped.count == 1 ? "" : "s") that could not be read or decoded"
                           + (errors.map { " (listed in \($0.escapingControlCharacters))" } ?? ""))
            throw ExitCode(Features.skippedExitCode)
        }
    }

    static func readLabels(_ path: String) throws -> [String] {
        do {
            let text = try String(contentsOfFile: path, encoding: .utf8)
            return text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init).filter { !$0.isEmpty }
        } catch {
            throw ZooError(.io, "cannot read labels: \(error.localizedDescription)", file: path)
        }
    }
}

extension CLIOutput {
    /// Four decimal places, without Foundation's format strings.
    static func decimals4(_ v: Double) -> String {
        let scaled = Int((v * 10000).rounded())
        let frac = String(scaled % 10000)
        let pad = Swift.max(0, 4 - frac.count)
        return "\(scaled / 10000)." + String(repeating: "0", count: pad) + frac
    }
}
