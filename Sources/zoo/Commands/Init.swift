import ArgumentParser
import Foundation
import ModelZoo

/// `zoo init ARCH -o FILE [--seed N] [--classes K] [--flavour torchvision|keras] [--force]`:
/// a native checkpoint of any zoo architecture with seeded random weights, written by the zoo itself.
struct Init: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init",
        abstract: "Write a native checkpoint of an architecture with seeded random weights.",
        discussion: """
        The weights follow the flavour's own initialisation (torchvision: Kaiming-normal convolutions, \
        BatchNorm 1/0 with running statistics 0/1, small-normal or uniform linear layers; Keras: \
        Glorot-uniform kernels, zero biases). Equal seeds give byte-identical files. The file holds \
        the architecture's config, preprocessing and, with 1000 classes, the ImageNet labels, and \
        loads like any converted checkpoint (a torchvision-flavour file loads into torchvision with \
        load_state_dict(strict=True)). A starting point for training, tests and demos.
        """
    )

    @Argument(help: "An architecture of the catalogue (`zoo list`).")
    var arch: String

    @OptionGroup var destination: OutputOption<Init>

    @Option(help: "Seed of the random weights.")
    var seed: UInt64 = 0

    @Option(help: "Classes of the classifier head.")
    var classes: Int = 1000

    @Option(help: "torchvision or keras (default: the architecture's first flavour, as `zoo info` lists).")
    var flavour: Choice<Flavour>?

    @OptionGroup var replace: ForceOption<Init>

    @OptionGroup var result: JSONOption

    var output: String { destination.output }

    func validate() throws {
        guard classes > 0, classes < 1 << 24 else { throw ValidationError("--classes must be a positive number, got \(classes)") }
        if let flavour, flavour.value == nil {
            throw ValidationError("--flavour must be torchvision or keras (got \"\(flavour.text)\")")
        }
    }

    func run() throws {
        let chosen = flavour?.value ?? Architectures.flavours(of: arch).first ?? .torchvision
        // An unknown name, or a flavour the architecture lacks, is a usage error (exit 1).
        let config = try CLIOutput.typedByUser { try Architectures.preset(arch, flavour: chosen, classes: classes) }
        let plan = try Initializer.plan(config: config, seed: seed)
        try replace.refuseExisting(output)
        try Converter.write(plan, to: output, overwrite: replace.force)
        let bytes = plan.records.reduce(0) { $0 + $1.byteCount }
        if result.json {
            try CLIOutput.printJSON(InitResult(output: output, architecture: arch, flavour: chosen.rawValue, classes: classes,
                                               tensors: plan.records.count, bytes: bytes, seed: seed))
            return
        }
        print("\(output.escapingControlCharacters): \(arch) (\(chosen.rawValue), \(classes) classes), \(plan.records.count) tensors, \(bytes) bytes (\(CLIOutput.bytes(bytes))), random weights, seed \(seed)")
    }
}

extension Init: OutputText, ForceText {
    static let outputHelp = "The native safetensors file to write."
    static let forceHelp = "Replace OUTPUT if it exists."
}
