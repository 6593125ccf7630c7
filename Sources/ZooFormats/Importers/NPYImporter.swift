import ZooFiles
import ZooTensor

/// The NumPy `.npy` importer: one array, as a checkpoint of one tensor named `array` (format `npy`).
public struct NPYImporter: CheckpointImporter {
    /// Creates the importer.
    public init() {}

    /// `npy`.
    public var id: String { "npy" }
    /// `.npy`.
    public var displayName: String { ".npy" }

    /// The magic string `\x93NUMPY` at byte 0.
    public func sniff(_ bytes: UnsafeRawBufferPointer) -> SniffMatch? {
        bytes.starts(with: [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59]) ? .signature : nil
    }

    /// Reads the array into memory.
    public func read(_ file: MappedFile, options: NoImportOptions) throws -> ImportedCheckpoint {
        let t = try file.withBytes { try NPY.read($0) }
        return ImportedCheckpoint(format: "npy", tensors: [TensorRecord(name: "array", tensor: t)])
    }
}
