#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import ArgumentParser
import Foundation
import ModelZoo

// Option groups and typed values shared by the commands: one spelling and one meaning of `--threads`,
// `-o/--output` and `--force` everywhere. A group's help text is the command's own (a `…Text` type
// per command), so `zoo CMD --help` reads as before.

/// `--threads N`: compute threads (bench, features, predict, run). Each command checks the value
/// itself (its message names its other positive options too).
struct ThreadsOption: ParsableArguments {
    @Option(help: "Compute threads (default: the active cores).")
    var threads = defaultThreadCount
}

/// `--decode-threads N --fast-decode`: how `features` and `predict` decode their images.
struct DecodeOption: ParsableArguments {
    @Option(name: .customLong("decode-threads"),
            help: "Threads decoding and resizing the next images while a batch runs (0: decode between batches).")
    var decodeThreads = DecodeOptions.defaultThreads

    @Flag(name: .customLong("fast-decode"),
          help: "Decode JPEGs at 1/2, 1/4 or 1/8 size when the resize allows (libjpeg-turbo DCT scaling): faster, but not Pillow's pixels.")
    var fastDecode = false

    func validate() throws {
        guard decodeThreads >= 0 else { throw ValidationError("--decode-threads must be 0 or more") }
    }

    /// The library's options.
    var options: DecodeOptions { DecodeOptions(threads: decodeThreads, fastDecode: fastDecode) }
}

/// The help text of a command's `-o/--output`.
protocol OutputText {
    /// The help of `-o/--output`.
    static var outputHelp: String { get }
}

/// `-o/--output FILE`: the file a command writes.
struct OutputOption<Text: OutputText>: ParsableArguments {
    @Option(name: .shortAndLong, help: ArgumentHelp(Text.outputHelp))
    var output: String
}

/// The names and help text of a command's `--force`.
protocol ForceText {
    /// The flag's help.
    static var forceHelp: String { get }
    /// Its names: `--force`; `run` also keeps its older spelling `--overwrite`.
    static var forceNames: NameSpecification { get }
}

extension ForceText {
    static var forceNames: NameSpecification { .customLong("force") }
}

/// `--force`: replace an existing output (convert, init, features, run; fetch: convert again).
struct ForceOption<Text: ForceText>: ParsableArguments {
    @Flag(name: Text.forceNames, help: ArgumentHelp(Text.forceHelp))
    var force = false

    /// Refuses an existing `output` unless `--force` (exit 3, before any work).
    func refuseExisting(_ output: String) throws {
        if !force, access(output, F_OK) == 0 {
            throw ZooError(.io, "already exists (use --force to replace it)", file: output)
        }
    }
}

/// A value of an option with a fixed set of values (one of the library's enums): `--help` and shell
/// completion list the values. A value outside the set is kept as typed, so that the command refuses
/// it with its own message and exit code (1, docs/cli.md) rather than ArgumentParser's.
struct Choice<Value: RawRepresentable & CaseIterable & Sendable>: ExpressibleByArgument, Sendable where Value.RawValue == String {
    /// What the user typed.
    let text: String

    /// The value, nil when `text` is not one of the set.
    var value: Value? { Value(rawValue: text) }

    init?(argument: String) { text = argument }

    init(_ value: Value) { text = value.rawValue }

    var defaultValueDescription: String { text }

    static var allValueStrings: [String] { Value.allCases.map(\.rawValue) }

    static var defaultCompletionKind: CompletionKind { .list(allValueStrings) }
}

extension CLIOutput {
    /// A `.npy` file's tensor; errors name the file.
    static func readNPY(_ path: String) throws -> Tensor {
        do {
            let file = try MappedFile(path: path)
            return try file.withBytes { try NPY.read($0) }
        } catch let e as ZooError { throw e.inFile(path) }
    }

    /// The stage indices of `--stages` / `--features` (`1,2,3,4`, spaces allowed); anything else is a
    /// usage error naming the option.
    static func indices(_ text: String, option: String) throws -> [Int] {
        try text.split(separator: ",").map { s -> Int in
            guard let i = Int(s.trimmingCharacters(in: .whitespaces)) else {
                throw ZooError(.usage, "\(option) takes comma-separated integers, got \"\(text)\"")
            }
            return i
        }
    }
}
