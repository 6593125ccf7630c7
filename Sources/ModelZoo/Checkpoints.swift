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
                return try HDF5Importer.read(path: path)
            }
        } catch let e as ZooError {
            throw e.inFile(path)
        }
    }
}
