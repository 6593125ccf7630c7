import Crypto
import Foundation
import ZooFormats
import ZooPyTorch
import ZooErrors
import ZooFiles
import ZooTensor

/// Conversion of any checkpoint ModelZoo reads into a native checkpoint.
///
/// `convert(input:output:options:)` is the one conversion pipeline (`zoo convert`, `Pretrained.fetch`):
/// read, map to an architecture when `options.arch` is set, the caller's own transform, cast, write.
///
/// ```swift
/// try Converter.convert(input: "resnet50.pth", output: "resnet50.safetensors",
///                       options: Converter.Options(arch: "resnet50"))
/// ```
///
/// Its steps are public too, so that other stages (`[TensorRecord] -> [TensorRecord]` plus metadata)
/// slot in between without touching the others:
///
/// ```swift
/// var plan = try Converter.plan(input: "vgg16.pth")          // read: lazy records + metadata
/// plan.records = Converter.cast(plan.records, to: .f16)       // transform(s)
/// try Converter.write(plan, to: "vgg16.safetensors", overwrite: false)  // stream to disk
/// ```
///
/// Records are loaded one at a time while writing, so peak memory stays near the largest tensor
/// (zero for contiguous little-endian tensors, which are views of the mapped input).
public enum Converter {
    /// The element type of the floating-point tensors in the output.
    public enum TargetDType: String, Sendable, CaseIterable {
        /// Keep every tensor's dtype (bit-exact copy).
        case keep
        /// float32.
        case f32
        /// float16 (round to nearest even).
        case f16
        /// bfloat16 (round to nearest even).
        case bf16

        /// The dtype, or nil for `keep`.
        public var dtype: DType? {
            switch self {
            case .keep: return nil
            case .f32: return .f32
            case .f16: return .f16
            case .bf16: return .bf16
            }
        }
    }

    /// Options of a conversion.
    public struct Options: Sendable {
        /// Output float dtype.
        public var dtype: TargetDType
        /// Replace an existing output.
        public var overwrite: Bool
        /// Importer options (CRC verification, limits).
        public var pytorch: PyTorchImporter.Options
        /// Most bytes of tensors the output may hold (`zoo convert --max-output`); nil: the default,
        /// `OutputLimit.defaultBytes(forInput:)` (the larger of 1 GiB and 8x the input's size).
        public var maxOutputBytes: Int?
        /// Map the tensors to this architecture of the catalogue, or `auto` to recognise it
        /// (`mapArchitecture`, `zoo convert --arch`); nil: a raw conversion, every tensor under its own name.
        public var arch: String?
        /// With `arch`: write the tensors that fit even when some are missing, unexpected or mismatched
        /// (the report goes into the metadata).
        public var allowPartial: Bool
        /// With `arch`: map only the tensors under this dotted prefix of the checkpoint (`model_ema`, `state_dict`;
        /// `zoo convert --key`), wrappers below it still stripped. nil: the most complete candidate state dict,
        /// not an EMA copy when there is a choice (`Mapping.canonicalize`).
        public var key: String?

        /// Defaults: keep dtypes, never overwrite, verify CRCs, the default output limit, a raw conversion.
        public init(dtype: TargetDType = .keep, overwrite: Bool = false, pytorch: PyTorchImporter.Options = PyTorchImporter.Options(),
                    maxOutputBytes: Int? = nil, arch: String? = nil, allowPartial: Bool = false, key: String? = nil) {
            self.dtype = dtype
            self.overwrite = overwrite
            self.pytorch = pytorch
            self.maxOutputBytes = maxOutputBytes
            self.arch = arch
            self.allowPartial = allowPartial
            self.key = key
        }
    }

    /// What will be written: lazy tensor records and the native metadata.
    public struct Plan: Sendable {
        /// The tensors, in the source's order (the writer orders them for alignment).
        public var records: [TensorRecord]
        /// The metadata of the output file.
        public var metadata: NativeMetadata
        /// The importer's format name (`pytorch-zip`, `hdf5`, ...).
        public var format: String
        /// The source's structure (Keras's layer order, for Keras weight files; drives the Keras mapping).
        public var structure: SourceStructure?
        /// The input file, when the plan was read from one (`plan(input:)`): named by the output-limit error.
        public var input: String?
        /// The input's size in bytes, when the plan was read from a file.
        public var inputBytes: Int?
        /// Most bytes of tensors `write` may write (checked before it creates anything); nil: no limit.
        /// `plan(input:)` sets it from `Options.maxOutputBytes` or the default `OutputLimit`.
        public var maxOutputBytes: Int?
        /// The input's SHA-256 still being computed (`plan(input:options:hashInBackground: true)`);
        /// `write` fills it into `metadata.source` when it is ready.
        var pendingDigest: BackgroundSHA256?

        /// Creates a plan.
        public init(records: [TensorRecord], metadata: NativeMetadata, format: String, structure: SourceStructure? = nil) {
            self.records = records
            self.metadata = metadata
            self.format = format
            self.structure = structure
        }

        /// True when `metadata.source.sha256` is a placeholder that `write` replaces.
        public var digestPending: Bool { pendingDigest != nil }
    }

    /// What a conversion did.
    public struct Summary: Sendable {
        /// The importer's format.
        public var format: String
        /// Tensors written.
        public var tensors: Int
        /// Bytes of tensor data written.
        public var bytes: Int
        /// SHA-256 of the input.
        public var sha256: String
        /// The mapping's report, when the conversion mapped to an architecture (`Options.arch`).
        public var report: MappingReport?
        /// The metadata written (architecture, config, preprocessing, labels, provenance).
        public var metadata: NativeMetadata
    }

    /// Step 1: reads `input` (any format `Checkpoints.read` detects) and describes the output:
    /// every tensor under its own name, the provenance (`zoo.source`: file name, SHA-256 of the
    /// input, importer, original float dtype) and the importer's metadata as `zoo.extras`.
    ///
    /// With `hashInBackground`, the SHA-256 is computed on a second thread while the plan is
    /// transformed and written: `metadata.source.sha256` holds 64 zeros until `write` fills it in.
    public static func plan(input: String, options: Options = Options(), hashInBackground: Bool = false) throws -> Plan {
        // One mapping of the input serves the digest (on its own thread) and the importer, so
        // each page of it is faulted in once.
        let file: MappedFile
        do { file = try MappedFile(path: input) } catch let e as ZooError { throw e.inFile(input) }
        let hash = BackgroundSHA256(file: file)
        let checkpoint = try Checkpoints.read(file: file, pytorch: options.pytorch)
        let digest: String
        if hashInBackground {
            digest = String(repeating: "0", count: 64)
        } else {
            digest = hash.result()
        }
        var meta = NativeMetadata()
        let fileName = input.split(separator: "/").last.map(String.init) ?? input
        meta.source = NativeMetadata.Source(file: fileName, sha256: digest, importer: checkpoint.format,
                                            dtype: originalFloatDType(checkpoint.tensors))
        meta.extras = .object(checkpoint.metadata)
        // Errors that surface while a record loads (CRC, truncation) name the input, not the output.
        let records = checkpoint.tensors.map { r -> TensorRecord in
            var copy = r
            let load = r.load
            copy.load = {
                do { return try load() } catch var e as ZooError {
                    if e.item == nil { e.item = r.name }
                    throw e.singleLine.inFile(input)
                }
            }
            return copy
        }
        var plan = Plan(records: records, metadata: meta, format: checkpoint.format, structure: checkpoint.structure)
        plan.input = input
        plan.inputBytes = file.count
        plan.maxOutputBytes = options.maxOutputBytes ?? OutputLimit.defaultBytes(forInput: file.count)
        if hashInBackground { plan.pendingDigest = hash }
        return plan
    }

    /// Step 2 (a transform): floating-point records converted to `target`; others untouched.
    /// Lazy: the conversion happens when the writer loads each record, and streams: the writer
    /// takes the converted data piece by piece (`TensorRecord.stream`, 1 Mi elements at a time), so
    /// a conversion holds the source tensor and one piece, never the whole converted tensor.
    public static func cast(_ records: [TensorRecord], to target: TargetDType) -> [TensorRecord] {
        guard let dtype = target.dtype else { return records }
        return records.map { r in
            guard r.dtype.isFloatingPoint, r.dtype != dtype else { return r }
            let load = r.load
            var cast = TensorRecord(name: r.name, dtype: dtype, shape: r.shape, details: r.details) {
                try load().converted(to: dtype)
            }
            cast.stream = { piece in try load().convertedPieces(to: dtype, piece) }
            return cast
        }
    }

    /// Throws the output-limit error (naming the input) when `plan` describes more tensor bytes than
    /// `plan.maxOutputBytes`. `write` calls it before creating anything; callers may call it earlier.
    public static func checkOutputLimit(_ plan: Plan) throws {
        guard let limit = plan.maxOutputBytes else { return }
        try OutputLimit.check(plan.records, inputBytes: plan.inputBytes ?? 0, limit: limit, file: plan.input ?? "input")
    }

    /// Step 3: streams the plan to `output` atomically (no file appears unless complete).
    /// Refused before anything is created: more tensor bytes than `plan.maxOutputBytes` (a `badInput`
    /// error naming the input), an output larger than the destination's free space or the process's
    /// file-size limit (`.io`, `AtomicFileWriter.reserve`).
    /// `progress` receives bytes written and the total. Returns the metadata written (with the
    /// input's SHA-256 filled in when it was pending).
    @discardableResult
    public static func write(_ plan: Plan, to output: String, overwrite: Bool, progress: ((Int, Int) -> Void)? = nil) throws -> NativeMetadata {
        try checkOutputLimit(plan)
        guard let pending = plan.pendingDigest else {
            try NativeCheckpoint.write(plan.records, metadata: plan.metadata, to: output, overwrite: overwrite, progress: progress)
            return plan.metadata
        }
        // The digest is still being computed: write the header with a placeholder of the same
        // length, stream the tensors, then put the real header in place before the commit.
        // (The streaming loop is SafetensorsWriter.writeData; only the header patch is added.)
        do {
            let ordered = SafetensorsWriter.order(plan.records)
            var meta = plan.metadata
            let head = try SafetensorsWriter.header(for: ordered, metadata: meta.encoded())
            let total = ordered.reduce(0) { $0 + $1.byteCount }
            let writer = try AtomicFileWriter(destination: output, overwrite: overwrite)
            try writer.reserve(head.count + total)
            try writer.write(head)
            try SafetensorsWriter.writeData(ordered, to: writer, total: total, progress: progress)
            // The disk writes the data while the digest finishes; commit's fsync then waits for little.
            try writer.startWriteback()
            meta.source?.sha256 = pending.result()
            let finalHead = try SafetensorsWriter.header(for: ordered, metadata: meta.encoded())
            if finalHead.count == head.count, try patch(writer.temporaryPath, expected: head, with: finalHead) {
                try writer.commit()
            } else {
                // The header was still in the writer's buffer (a small file): write again, digest known.
                writer.abandon()
                try NativeCheckpoint.write(plan.records, metadata: meta, to: output, overwrite: overwrite, progress: progress)
            }
            return meta
        } catch let e as ZooError {
            throw e.inFile(output)
        }
    }

    /// Replaces the first bytes of `path` by `bytes` when they currently equal `expected`.
    private static func patch(_ path: String, expected: [UInt8], with bytes: [UInt8]) throws -> Bool {
        let fd = open(path, O_RDWR | O_CLOEXEC)
        if fd < 0 { throw ZooError(.io, "cannot reopen the temporary file: \(String(cString: strerror(errno)))", file: path) }
        defer { close(fd) }
        var current = [UInt8](repeating: 0, count: expected.count)
        let n = current.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 0) }
        guard n == expected.count, current == expected else { return false }
        let w = bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
        guard w == bytes.count else { throw ZooError(.io, "cannot write the header: \(String(cString: strerror(errno)))", file: path) }
        return true
    }

    /// The whole conversion: refuses an existing `output` unless `options.overwrite`, reads `input`
    /// (its SHA-256 computed while the rest runs), maps to `options.arch` when set, from the state dict
    /// `options.key` names if set (a mapping error names the input; a key without an architecture is a
    /// usage error), applies `transform` (e.g. metadata of the caller's own), casts to
    /// `options.dtype` and writes atomically. `progress` receives bytes written and the total.
    @discardableResult
    public static func convert(input: String, output: String, options: Options = Options(),
                               transform: ((inout Plan) throws -> Void)? = nil,
                               progress: ((Int, Int) -> Void)? = nil) throws -> Summary {
        if options.key != nil, options.arch == nil {
            throw ZooError(.usage, "--key needs --arch (it picks the state dict the architecture is mapped from)")
        }
        if !options.overwrite, FileSystem.exists(output) {
            throw ZooError(.io, "already exists (use --force to replace it)", file: output)
        }
        var p = try plan(input: input, options: options, hashInBackground: true)
        var report: MappingReport?
        if let arch = options.arch {
            do { report = try mapArchitecture(&p, arch: arch, allowPartial: options.allowPartial, key: options.key) } catch let e as ZooError { throw e.inFile(input) }
        }
        try transform?(&p)
        p.records = cast(p.records, to: options.dtype)
        let written = try write(p, to: output, overwrite: options.overwrite, progress: progress)
        return Summary(format: p.format, tensors: p.records.count, bytes: p.records.reduce(0) { $0 + $1.byteCount },
                       sha256: written.source?.sha256 ?? "", report: report, metadata: written)
    }

    /// The float dtype holding the most bytes (`F32` for a typical checkpoint); `none` without float tensors.
    public static func originalFloatDType(_ records: [TensorRecord]) -> String {
        var bytes: [DType: Int] = [:]
        for r in records where r.dtype.isFloatingPoint { bytes[r.dtype, default: 0] += r.byteCount }
        guard let best = bytes.max(by: { $0.value != $1.value ? $0.value < $1.value : $0.key.name > $1.key.name }) else { return "none" }
        return best.key.name
    }

    /// SHA-256 of a file, lowercase hex. The file is memory-mapped and hashed in place.
    public static func sha256(path: String) throws -> String {
        sha256(try MappedFile(path: path))
    }

    /// SHA-256 of bytes, lowercase hex.
    public static func sha256(bytes: [UInt8]) -> String {
        hex(SHA256.hash(data: bytes))
    }

    /// SHA-256 of bytes in memory (hashed in place), lowercase hex.
    public static func sha256(bytes: UnsafeRawBufferPointer) -> String {
        var hasher = SHA256()
        hasher.update(bufferPointer: bytes)
        return hex(hasher.finalize())
    }

    /// Lowercase hex of a digest.
    static func hex<D: Sequence>(_ digest: D) -> String where D.Element == UInt8 {
        digest.map { b in
            let h = String(b, radix: 16)
            return h.count == 1 ? "0" + h : h
        }.joined()
    }

    /// SHA-256 of a mapped file's bytes, lowercase hex (hashed in place: no copy into a read buffer).
    public static func sha256(_ file: MappedFile) -> String {
        file.withBytes { sha256(bytes: $0) }
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// SHA-256 of a mapped file computed on its own thread.
final class BackgroundSHA256: @unchecked Sendable {
    private let done = DispatchSemaphore(value: 0)
    private var value = ""

    init(file: MappedFile) {
        let thread = Thread { [self] in
            value = Converter.sha256(file)
            done.signal()
        }
        thread.stackSize = 1 << 20
        thread.start()
    }

    /// Waits for the digest.
    func result() -> String {
        done.wait()
        return value
    }
}

enum FileSystem {
    static func exists(_ path: String) -> Bool { access(path, F_OK) == 0 }
}
