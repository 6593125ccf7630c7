@_exported import ZooErrors
@_exported import ZooJSON
@_exported import ZooFiles
@_exported import ZooTensor
@_exported import ZooFormats
@_exported import ZooPyTorch
@_exported import ZooHDF5
@_exported import ZooImporters

/// Entry points for reading any checkpoint file ModelZoo understands.
public enum Checkpoints {
    /// The importers `read` chooses from, by sniffing a file's bytes: safetensors, PyTorch (zip,
    /// legacy, TorchScript), HDF5 and `.npy`, in this order (the order the unknown-format message
    /// names them in). `register(_:)` adds more.
    public static let importers = BuiltInImporters.registry()

    /// Adds an importer (or replaces the registered one with the same `id`): from then on `read`,
    /// and so `Converter.plan`, `zoo inspect` and `zoo convert`, read its files.
    public static func register(_ importer: any CheckpointImporter) {
        importers.register(importer)
    }

    /// Reads `path`, detecting its format from the bytes, and returns its flat named tensors.
    ///
    /// Errors are `ZooError`s that name the file.
    public static func read(path: String) throws -> ImportedCheckpoint {
        try read(path: path, options: ImportOptions())
    }

    /// Reads `path` with options for the PyTorch importer (CRC verification, limits).
    public static func read(path: String, pytorch: PyTorchImporter.Options) throws -> ImportedCheckpoint {
        try read(path: path, options: options(pytorch: pytorch))
    }

    /// Reads `path` with options for any of the importers.
    public static func read(path: String, options: ImportOptions) throws -> ImportedCheckpoint {
        do {
            return try read(file: try MappedFile(path: path), options: options)
        } catch let e as ZooError {
            throw e.inFile(path)
        }
    }

    /// Reads an already mapped file (e.g. one a checksum is being computed over at the same time).
    public static func read(file: MappedFile, pytorch: PyTorchImporter.Options = PyTorchImporter.Options()) throws -> ImportedCheckpoint {
        try read(file: file, options: options(pytorch: pytorch))
    }

    /// Reads an already mapped file with options for any of the importers.
    public static func read(file: MappedFile, options: ImportOptions) throws -> ImportedCheckpoint {
        let path = file.path
        do {
            let checkpoint = try importers.read(file, options: options)
            try checkNames(checkpoint.tensors)
            return checkpoint
        } catch let e as ZooError {
            throw e.inFile(path)
        }
    }

    /// Import options holding `pytorch` for the PyTorch importer (defaults for the others).
    static func options(pytorch: PyTorchImporter.Options) -> ImportOptions {
        var options = ImportOptions()
        options[PyTorchImporter.self] = pytorch
        return options
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
}
