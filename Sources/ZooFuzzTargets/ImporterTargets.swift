#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import ZooFormats
import ZooHDF5
import ZooImporters
import ZooImages
import ZooPyTorch
import ZooErrors
import ZooFiles

/// The importer targets: pickle VM, zip reader, PyTorch importer (zip / legacy / TorchScript),
/// HDF5 through libhdf5, and the image decoders.
///
/// Limits a user gets by default are kept, except the byte caps for decompression, expansion and
/// the output limit's floor (`smallCaps`), lowered so that a fuzz input (at most a few hundred KB) cannot legitimately ask
/// for more than libFuzzer's per-allocation limit: a larger allocation is then a finding.
extension FuzzTargets {
    static let importers: [Target] = [
        Target(name: "pickle", summary: "PickleMachine (protocols 0-5) over raw pickle bytes, persistent ids echoed", body: pickle),
        Target(name: "zip", summary: "ZipArchive: central directory, local headers, every record read (stored or inflated, CRC checked)", body: zip),
        Target(name: "torch", summary: "PyTorchImporter (zip, legacy, TorchScript), every tensor gathered and loaded", body: torch),
        Target(name: "hdf5", summary: "HDF5Importer (HDF5File through libhdf5; input written to a temporary file), every dataset loaded", body: hdf5),
        Target(name: "image", summary: "ImageDecoder (JPEG via libjpeg-turbo, PNG via libpng) with EXIF orientation", body: image),
    ]

    static let pickle: @Sendable (UnsafeRawBufferPointer) throws -> Void = { bytes in
        let machine = PickleMachine()
        defer { machine.release() }
        machine.persistentLoad = { $0 }
        var reader = ByteReader(bytes)
        _ = try machine.load(&reader)
    }

    static let zip: @Sendable (UnsafeRawBufferPointer) throws -> Void = { bytes in
        let file = MappedFile(copying: bytes, path: "fuzz.zip")
        let archive = try ZipArchive(file: file, options: .init(verifyCRC: true, maxInflatedBytes: smallCaps))
        for entry in archive.entries {
            let storage = try archive.storage(of: entry)
            guard storage.count == entry.uncompressedSize else {
                throw PropertyViolation(description: "\(entry.name): read \(storage.count) bytes, entry says \(entry.uncompressedSize)")
            }
        }
    }

    /// The checkpoint importers, built from the same list as `Checkpoints.importers` (ModelZoo):
    /// every importer target first runs the detection over them (sniffing runs on every file a user
    /// opens, so it is fuzzed too), then reads with its own importer through `CheckpointImporter`.
    static let registry = BuiltInImporters.registry()

    /// The fuzz target that reads each built-in importer's files (importer id -> target name).
    /// `FuzzRegressionTests` checks that every importer of `BuiltInImporters.all` has one.
    public static let targetOfImporter: [String: String] = ["safetensors": "safetensors", "pytorch": "torch", "hdf5": "hdf5", "npy": "npy"]

    /// The importers' options with the fuzz caps (`smallCaps`); defaults otherwise.
    static let importOptions: ImportOptions = {
        var options = ImportOptions()
        options[PyTorchImporter.self] = PyTorchImporter.Options(maxExpandedBytes: smallCaps, maxInflatedBytes: smallCaps)
        return options
    }()

    /// Detects `file`'s format over `registry`, then reads it with `importer` and consumes every record.
    static func importing(_ importer: some CheckpointImporter, _ file: MappedFile) throws {
        blackHole(file.withBytes { registry.importer(for: $0)?.id })
        try consume(try importer.read(file, using: importOptions), inputBytes: file.count)
    }

    static let torch: @Sendable (UnsafeRawBufferPointer) throws -> Void = { bytes in
        try importing(PyTorchImporter(), MappedFile(copying: bytes, path: "fuzz.pt"))
    }

    /// libhdf5 reads files only: each input goes to its own temporary file (unique per call,
    /// since the tests replay inputs in parallel).
    static let hdf5: @Sendable (UnsafeRawBufferPointer) throws -> Void = { bytes in
        let dir = getenv("TMPDIR").map { String(cString: $0) } ?? "/tmp"
        var random = SystemRandomNumberGenerator()
        let path = "\(dir)/zoo-fuzz-hdf5-\(getpid())-\(String(random.next(), radix: 36)).h5"
        guard let f = fopen(path, "wb") else { throw ZooError(.io, "cannot write", file: path) }
        let written = bytes.isEmpty ? 0 : fwrite(bytes.baseAddress, 1, bytes.count, f)
        fclose(f)
        defer { unlink(path) }
        guard written == bytes.count else { throw ZooError(.io, "short write", file: path) }
        try importing(HDF5Importer(), try MappedFile(path: path))
    }

    static let image: @Sendable (UnsafeRawBufferPointer) throws -> Void = { bytes in
        let limits = ImageLimits(maxPixels: 1 << 22, maxFileBytes: 1 << 24, maxJPEGScans: 1000)
        // The header-only size reader (zoo features --stages) on the same bytes: refusing is fine, trapping is not.
        _ = try? ImageDecoder.size(bytes: bytes, limits: limits)
        let img = try ImageDecoder.decode(bytes: bytes, limits: limits)
        guard img.width > 0, img.height > 0, img.width * img.height <= limits.maxPixels,
              img.pixels.count == img.width * img.height * 3 else {
            throw PropertyViolation(description: "decoded \(img.width)x\(img.height) with \(img.pixels.count) bytes")
        }
    }
}
