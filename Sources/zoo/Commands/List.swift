import ArgumentParser
import ModelZoo

/// `zoo list [--family F] [--json]`: every architecture of the catalogue with its pretrained weights.
struct List: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List the architectures the zoo knows, with their pretrained weights."
    )

    @Option(help: "Only this family: resnet, vgg, mobilenet_v1, mobilenet_v2, mobilenet_v3 (or a prefix such as mobilenet).")
    var family: String?

    @Flag(help: "Print JSON: [{\"name\", \"family\", \"parameters\", \"gflops\", \"weights\": [{\"tag\", \"source\", \"url\", \"sha256_prefix\", \"sha256\" or \"md5\", \"acc1\", \"acc5\", ...}]}].")
    var json = false

    @Flag(help: "List the converted checkpoints in the cache instead (`zoo fetch`), with their paths.")
    var cached = false

    func run() throws {
        if cached {
            let cache = try ModelCache()
            let names = cache.cachedModels()
            if json {
                try CLIOutput.printJSON(try names.map { CachedModelResult(name: $0, path: try cache.modelPath($0)) })
            } else if names.isEmpty {
                print("no converted checkpoints in \(cache.modelsDirectory.escapingControlCharacters) (`zoo fetch NAME` adds them)")
            } else {
                print(CLIOutput.table(["name", "path"], try names.map { [$0, try cache.modelPath($0)] }), terminator: "")
            }
            return
        }
        let cat = try Catalogue.shared()
        var entries = cat.entries
        if let f = family {
            entries = entries.filter { $0.family.rawValue == f || $0.family.rawValue.hasPrefix(f) }
            guard !entries.isEmpty else {
                throw ZooError(.usage, "unknown family \"\(f)\" (families: \(Family.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
        }
        var rows: [[String]] = []
        var docs: [ListEntryResult] = []
        for e in entries {
            let config = try e.config()
            let g = try config.graph()
            let size = e.inputSize
            let gf = try g.gflops(height: size[0], width: size[1])
            if json {
                docs.append(ListEntryResult(
                    name: e.name, family: e.family.rawValue, flavours: e.flavours.map(\.rawValue), parameters: g.parameterCount,
                    gflops: CatalogueJSON.rounded(gf, 4), input_size: size,
                    keras_parameters: e.flavours.contains(.keras) ? try e.config(flavour: .keras).graph().kerasParameterCount : nil,
                    weights: e.weights.map(WeightsResult.init)))
            } else {
                rows.append([e.name, e.family.rawValue, e.flavours.map(\.rawValue).joined(separator: "+"), CLIOutput.millions(g.parameterCount),
                             String(format2: gf), "\(size[0])x\(size[1])", CatalogueJSON.weightsSummary(e)])
            }
        }
        if json {
            try CLIOutput.printJSON(docs)
        } else {
            print(CLIOutput.table(["name", "family", "flavours", "params", "GFLOPs", "input", "weights (acc@1)"], rows, rightAligned: [3, 4]), terminator: "")
            print("\n\(entries.count) architectures, \(entries.reduce(0) { $0 + $1.weights.count }) weight sets. `zoo info NAME` for details.")
        }
    }
}

extension CLIOutput {
    /// 25.6M
    static func millions(_ n: Int) -> String { String(format1: Double(n) / 1e6) + "M" }
}
