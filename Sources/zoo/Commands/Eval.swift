import ArgumentParser
import Foundation
import ModelZoo

/// `zoo eval CKPT --data DIR`: accuracy, top-5, per-class precision/recall and the confusion matrix.
struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Accuracy, top-5 accuracy, per-class precision/recall and the confusion matrix of a classifier on labelled images.",
        discussion: """
        The data is an ImageFolder tree or a .csv manifest whose class names are the checkpoint's labels \
        (the classes `zoo train` was given). Top-5 accuracy needs at least 5 classes. The figures are computed \
        as `zoo train` measures validation accuracy, so the same images give the same accuracy.
        """
    )

    @Argument(help: "A native classifier checkpoint (e.g. the output of `zoo train`).")
    var model: String

    @Option(help: "Labelled images: an ImageFolder tree or a .csv manifest (path,label).")
    var data: String

    @Option(help: "Images per forward pass.")
    var batch = 8

    @Option(help: "Draw the confusion matrix into this SVG file.")
    var plot: String?

    @OptionGroup var compute: ThreadsOption

    @OptionGroup var result: JSONOption

    @OptionGroup var verbosity: QuietOption

    func validate() throws {
        guard batch > 0, compute.threads > 0 else { throw ValidationError("--batch and --threads must be positive") }
    }

    func run() throws {
        verbosity.apply()
        let path = try Pretrained.resolve(model)
        let base = try TransferBase(path: path)
        let set = try LabelledImages.load(data, classes: base.labels)
        let bar = ProgressBar(enabled: set.files.count > 1, counting: "images")
        let report = try ClassifierEvaluation.evaluate(checkpoint: path, data: set, threads: compute.threads, batch: batch, progress: { bar.update($0, $1) })
        bar.finish()
        if let plot { try AtomicFileWriter.write(Array(Plots.confusion(report).utf8), to: plot, overwrite: true) }
        if result.json {
            try CLIOutput.printJSON(EvalResult(
                accuracy: report.accuracy, top5: report.top5, images: report.count, classes: report.classes, confusion: report.confusion,
                per_class: report.perClass.map { .init(class: $0.name, precision: $0.precision, recall: $0.recall, support: $0.support) }))
            return
        }
        print("accuracy " + String(format: "%.4f", report.accuracy) + " (\(report.count) images)"
              + (report.top5.map { ", top-5 " + String(format: "%.4f", $0) } ?? ""))
        let nameWidth = max(5, report.classes.map(\.count).max() ?? 5)
        func pad(_ s: String, _ n: Int) -> String { s.count >= n ? s : s + String(repeating: " ", count: n - s.count) }
        print(pad("class", nameWidth) + "  precision  recall  support")
        for c in report.perClass {
            print(pad(c.name.escapingControlCharacters, nameWidth) + "  " + pad(String(format: "%.4f", c.precision), 9) + "  "
                  + pad(String(format: "%.4f", c.recall), 6) + "  \(c.support)")
        }
        print("confusion (rows: true class, columns: predicted, class order as above):")
        for row in report.confusion { print(row.map { String($0) }.joined(separator: " ")) }
    }
}

/// `zoo eval --json`.
struct EvalResult: Encodable {
    struct PerClass: Encodable {
        var `class`: String
        var precision: Double
        var recall: Double
        var support: Int
    }

    var accuracy: Double
    @NullWhenNil var top5: Double?
    var images: Int
    var classes: [String]
    var confusion: [[Int]]
    var per_class: [PerClass]
}
