import ArgumentParser
import Foundation
import ModelZoo

/// `zoo info NAME [--json]`: one architecture layer by layer.
struct Info: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show an architecture: parameters, GFLOPs, input size, preprocessing, feature stages, layers and weights."
    )

    @Argument(help: "Architecture name (`zoo list` shows them).")
    var name: String

    @Option(help: "torchvision or keras (default: the architecture's first flavour).")
    var flavour: Choice<Flavour>?

    @Option(help: "Number of classes of the head (default 1000).")
    var classes: Int?

    @Option(name: .customLong("input-size"), help: "Input size H or HxW for shapes and GFLOPs (default: the catalogue's).")
    var inputSize: String?

    @Flag(help: "Print JSON: {\"name\", \"parameters\", \"gflops\", \"input_size\", \"stages\", \"layers\", \"weights\", ...}.")
    var json = false

    func run() throws {
        let cat = try Catalogue.shared()
        let e: Catalogue.Entry
        do { e = try cat.entry(name) } catch var error as ZooError where FileManager.default.fileExists(atPath: name) {
            error.message = "a file, not an architecture name: `zoo inspect \(name)` shows a checkpoint"
            throw error
        }
        var fl: Flavour?
        if let f = flavour {
            guard let v = f.value else { throw ZooError(.usage, "unknown flavour \"\(f.text)\" (torchvision or keras)") }
            fl = v
        }
        // Everything here comes from the command line: a flavour the architecture lacks, or an
        // input size too small for it, is a usage error (exit 1, docs/cli.md), not a bad file.
        var config = try CLIOutput.typedByUser { try e.config(flavour: fl) }
        if let c = classes {
            guard c > 0 else { throw ZooError(.usage, "--classes must be positive") }
            config.classes = c
        }
        var size = e.inputSize
        if let s = inputSize {
            let parts = s.split(separator: "x").compactMap { Int($0) }
            guard (parts.count == 1 || parts.count == 2), parts.allSatisfy({ $0 > 0 && $0 < 100_000 }) else {
                throw ZooError(.usage, "--input-size must be H or HxW, got \"\(s)\"")
            }
            size = parts.count == 1 ? [parts[0], parts[0]] : parts
        }
        config.fit(inputHeight: size[0], width: size[1])
        let g = try config.graph()
        let shapes: [[Int]], macs: [Int]
        do {
            shapes = try g.shapes(height: size[0], width: size[1])
            macs = try g.macs(height: size[0], width: size[1])
        } catch var error as ZooError where inputSize != nil {
            error.kind = .usage
            throw error
        }
        let params = g.nodeParameterCounts
        let gf = Double(macs.reduce(0, +)) / 1e9
        // Keras flavour: the preprocessing of its Keras weights at the default input size (MobileNets
        // also ship 96-192 px weights, which resize differently).
        let pre = cat.recipe(for: e.name, flavour: config.flavour, classes: config.classes).preprocessing
        if json {
            try CLIOutput.printJSON(InfoResult(
                name: e.name, family: e.family.rawValue, flavour: config.flavour.rawValue, flavours: e.flavours.map(\.rawValue),
                parameters: g.parameterCount, keras_parameters: g.kerasParameterCount, tensors: g.parameterSpec.count,
                gflops: CatalogueJSON.rounded(gf, 4), macs: macs.reduce(0, +), input_size: size, config: config.json,
                preprocessing: pre ?? .null,
                stages: g.taps.map { .init(name: $0.name, channels: $0.channels, reduction: $0.reduction) },
                layers: g.nodes.indices.map { i in
                    let d = LayerGraph.describe(g.nodes[i].op)
                    return .init(name: g.nodes[i].name, kind: d.kind, detail: d.detail, output_shape: shapes[i], params: params[i], macs: macs[i])
                },
                weights: e.weights.map(WeightsResult.init)))
            return
        }
        var out = "\(e.name) — \(e.familyTitle), \(config.flavour.rawValue) flavour (available: \(e.flavours.map(\.rawValue).joined(separator: ", ")))\n"
        out += "parameters:    \(g.parameterCount)" + (config.flavour == .keras ? " (Keras count_params: \(g.kerasParameterCount))" : "") + "\n"
        out += "GFLOPs:        \(String(format2: gf)) at \(size[0])x\(size[1]) (multiply-accumulates / 1e9)\n"
        out += "classes:       \(config.classes)\n"
        if let pre { out += "preprocessing: \(pre.serialized())\n" }
        out += "stages:        " + g.taps.map { "\($0.name) (\($0.channels) ch, /\($0.reduction))" }.joined(separator: ", ") + "\n\n"
        let rows = g.nodes.indices.map { i -> [String] in
            let d = LayerGraph.describe(g.nodes[i].op)
            return [g.nodes[i].name, d.kind, d.detail, "[" + shapes[i].map(String.init).joined(separator: ", ") + "]",
                    params[i] == 0 ? "" : String(params[i]), macs[i] == 0 ? "" : String(macs[i])]
        }
        out += CLIOutput.table(["layer", "kind", "detail", "output", "params", "MACs"], rows, rightAligned: [4, 5])
        out += "\nweights:\n"
        if e.weights.isEmpty { out += "  (none in the catalogue)\n" }
        for w in e.weights {
            let acc = w.acc1.map { "acc@1 \($0)" + (w.acc5.map { ", acc@5 \($0)" } ?? "") } ?? "no published accuracy"
            let hash = w.sha256 ?? w.sha256Prefix.map { "sha256 \($0)…" } ?? w.md5.map { "md5 \($0)" } ?? "no published hash"
            out += "  \(w.tag) [\(w.source)] \(acc); \(hash)\n    \(w.url)\n"
        }
        print(CLIOutput.escapedLines(out), terminator: "")
    }
}
