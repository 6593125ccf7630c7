@_exported import ZooTensor
@_exported import ZooFormats
@_exported import ZooPyTorch
@_exported import ZooHDF5

/// Entry points for reading any checkpoint file ModelZoo understands.
public enum Checkpoints {
    /// Reads `path`, detecting its format from the bytes, and returns its flat named tensors.
    ///
    /// Errors are `ZooError`s that name the file.
    public static func read(path: String) throws -> ImportedCheckpoint {
        try read(path: path, pytorch: PyTorchImporter.Options())
    }

    /// Reads `path` with options for the PyTorch importer (CRC verification, limits).
    public static func read(path: String, pytorch: PyTorchImporter.Options) throws -> ImportedCheckpoint {
        do {
            return try read(file: try MappedFile(path: path), pytorch: pytorch)
        } catch let e as ZooError {
            throw e.inFile(path)
        }
    }

    /// Reads an already mapped file (e.g. one a checksum is being computed over at the same time).
    public static func read(file: MappedFile, pytorch: PyTorchImporter.Options = PyTorchImporter.Options()) throws -> ImportedCheckpoint {
        let path = file.path
        do {
            let checkpoint = try readAnyFormat(file, pytorch: pytorch)
            try checkNames(checkpoint.tensors)
            return checkpoint
        } catch let e as ZooError {
            throw e.inFile(path)
        }
    }

    /// Refuses tensor names no native (safetensors) file can hold, so that `zoo inspect` and
    /// `zoo convert` refuse the same files with the same line, naming the input (not the output).
    /// (A safetensors file cannot contain them: its reader would take them for the metadata.)
    static func checkNames(_ tensors: [TensorRecord]) throws {
        if tensors.contains(where: { $0.name == reservedName }) {
            throw ZooError(.unsupported, "a tensor is named \(reservedName), which safetensors reserves for its metadata; the file cannot be converted (rename that key)",
                           item: reservedName)
        }
    }

    /// The safetensors header's metadata key.
    static let reservedName = "__metadata__"

    private static func readAnyFormat(_ file: MappedFile, pytorch: PyTorchImporter.Options) throws -> ImportedCheckpoint {
        guard let format = file.withBytes({ FileFormat.detect($0) }) else {
            if file.count == 0 { throw ZooError.bad("file is empty") }
            throw ZooError(.unsupported, "unknown format (not safetensors, PyTorch, HDF5 or .npy)")
        }
        switch format {
        case .safetensors:
            return try SafetensorsFile(file: file).imported()
        case .npy:
            let t = try file.withBytes { try NPY.read($0) }
            return ImportedCheckpoint(format: "npy", tensors: [TensorRecord(name: "array", tensor: t)])
        case .zip, .pickle:
            return try PyTorchImporter.read(file, options: pytorch)
        case .hdf5:
            return try HDF5Importer.read(path: file.path)
        }
    }
}
