import ZooErrors
import ZooJSON
import ZooFiles
import ZooTensor
import ZooFormats

/// The fuzz targets: each feeds arbitrary bytes to one reader through its public API.
///
/// A target returns normally or throws a `ZooError`; anything else (a trap, a sanitizer
/// report, another error type, a broken round trip) is a finding. The `zoo-fuzz` executable
/// runs them under libFuzzer; the regression tests replay the saved crashers through them.
public enum FuzzTargets {
    /// One target.
    public struct Target: Sendable {
        /// Name used on the command line, in `ZOO_FUZZ_TARGET` and as the corpus folder.
        public let name: String
        /// What the target exercises.
        public let summary: String
        /// Parses `bytes`; throws `ZooError` for rejected input.
        public let body: @Sendable (UnsafeRawBufferPointer) throws -> Void
    }

    /// A property that must hold for every accepted input failed: a bug, reported as a finding.
    public struct PropertyViolation: Error, CustomStringConvertible {
        /// What went wrong.
        public let description: String
    }

    /// Every target, in the order `make fuzz` runs them.
    public static var all: [Target] { core + importers }

    /// The targets over ZooTensor and ZooFormats.
    static let core: [Target] = [
        Target(name: "safetensors", summary: "SafetensorsImporter over an in-memory file, every tensor loaded and widened",
               body: safetensors),
        Target(name: "json", summary: "JSONValue.parse, then serialize and parse again", body: json),
        Target(name: "npy", summary: "NPY.read, then encode and read again (must round-trip)", body: npy),
    ]

    /// The target called `name`.
    public static func named(_ name: String) -> Target? { all.first { $0.name == name } }

    /// Runs `target` on `bytes`: returns nil when the input was accepted or refused with a
    /// `ZooError`, or a description of the finding otherwise (the fuzzer then aborts).
    public static func check(_ target: Target, _ bytes: UnsafeRawBufferPointer, verbose: Bool = false) -> String? {
        do {
            try target.body(bytes)
            if verbose { print("accepted") }
            return nil
        } catch let error as ZooError {
            if verbose { print("refused: \(error)") }
            return nil
        } catch {
            return "\(target.name): \(type(of: error)): \(error)"
        }
    }

    // MARK: - Targets

    /// The byte caps of the fuzz targets (decompression, stride-0 expansion, and the floor of the
    /// output limit): 64 MiB instead of the 1-2 GiB a user gets, so that a fuzz input cannot
    /// legitimately ask for more than libFuzzer's per-allocation limit.
    static let smallCaps = 64 << 20

    /// The output limit the fuzz targets hold a reader's claims to: `OutputLimit`'s rule (8x the
    /// input) with the 64 MiB floor of `smallCaps` instead of 1 GiB.
    static func outputLimit(inputBytes: Int) -> Int {
        OutputLimit.defaultBytes(forInput: inputBytes, floor: smallCaps)
    }

    /// Loads every record of a checkpoint and reads its bytes (widening float types to f32).
    ///
    /// Amplification first, as `zoo convert` does: what the records claim is checked against the
    /// output limit for an input of `inputBytes` before anything is loaded (a claim above it is a
    /// refusal, a `ZooError`), and what loading produces must then match the claims exactly and stay
    /// within the limit (anything else is a finding: a reader that materialises more than it claims
    /// would slip past the limit).
    static func consume(_ checkpoint: ImportedCheckpoint, inputBytes: Int) throws {
        let limit = outputLimit(inputBytes: inputBytes)
        try OutputLimit.check(checkpoint.tensors, inputBytes: inputBytes, limit: limit, file: "fuzz input")
        let claimed = OutputLimit.totalBytes(checkpoint.tensors)
        guard claimed <= limit else {
            throw PropertyViolation(description: "records claim \(claimed) bytes, above the limit of \(limit), and the check passed")
        }
        var loaded = 0
        for record in checkpoint.tensors {
            let t = try record.load()
            guard t.dtype == record.dtype, t.shape == record.shape else {
                throw PropertyViolation(description: "\(record.name): record says \(record.dtype.name) \(record.shape), tensor is \(t.dtype.name) \(t.shape)")
            }
            loaded += t.byteCount
            guard loaded <= claimed else {
                throw PropertyViolation(description: "\(record.name): loading materialised \(loaded) bytes, the records claim \(claimed)")
            }
            var sum: UInt8 = 0
            t.withUnsafeBytes { for b in $0 { sum &+= b } }
            blackHole(sum)
            if t.dtype.isFloatingPoint, t.elementCount <= 1 << 16 { blackHole(t.floats().count) }
        }
        for (_, value) in checkpoint.metadata { blackHole(value.serialized().utf8.count) }
    }

    static let safetensors: @Sendable (UnsafeRawBufferPointer) throws -> Void = { bytes in
        let file = MappedFile(copying: bytes, path: "fuzz.safetensors")
        try importing(SafetensorsImporter(), file)
        _ = try? NativeMetadata(try SafetensorsFile(file: file).metadata)
    }

    static let json: @Sendable (UnsafeRawBufferPointer) throws -> Void = { bytes in
        let value = try JSONValue.parse(bytes)
        for pretty in [false, true] {
            let text = value.serialized(sortedKeys: false, pretty: pretty)
            do {
                _ = try JSONValue.parse(text)
            } catch {
                throw PropertyViolation(description: "serialized JSON does not parse again (\(error)): \(text.prefix(200))")
            }
        }
    }

    static let npy: @Sendable (UnsafeRawBufferPointer) throws -> Void = { bytes in
        let t = try NPY.read(bytes)
        let encoded = try NPY.encode(t)
        let again = try encoded.withUnsafeBytes { try NPY.read($0) }
        let same = t.withUnsafeBytes { a in again.withUnsafeBytes { b in a.elementsEqual(b) } }
        guard again.dtype == t.dtype, again.shape == t.shape, same else {
            throw PropertyViolation(description: ".npy round trip changed \(t.dtype.name) \(t.shape) into \(again.dtype.name) \(again.shape) (bytes equal: \(same))")
        }
    }

    @inline(never) static func blackHole<T>(_ value: T) { _ = value }
}
