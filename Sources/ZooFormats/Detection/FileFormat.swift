import ZooTensor

/// File formats ModelZoo recognises, detected from the bytes, never from the extension.
public enum FileFormat: String, Sendable, CaseIterable {
    /// safetensors, including the zoo's native checkpoints.
    case safetensors
    /// A zip archive (PyTorch >= 1.6 `torch.save`, TorchScript).
    case zip
    /// A bare pickle stream (PyTorch < 1.6 legacy `torch.save`).
    case pickle
    /// HDF5 (Keras weight files and others).
    case hdf5
    /// NumPy `.npy`.
    case npy

    /// HDF5's signature; it may stand at 0, 512, 1024, 2048, ... (after a user block).
    static let hdf5Signature: [UInt8] = [0x89, 0x48, 0x44, 0x46, 0x0D, 0x0A, 0x1A, 0x0A]

    /// Detects the format of a file's bytes; nil when none matches.
    public static func detect(_ bytes: UnsafeRawBufferPointer) -> FileFormat? {
        func starts(_ sig: [UInt8], at offset: Int = 0) -> Bool {
            bytes.count >= offset + sig.count && sig.indices.allSatisfy { bytes[offset + $0] == sig[$0] }
        }
        if starts([0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59]) { return .npy }
        if starts([0x50, 0x4B, 0x03, 0x04]) || starts([0x50, 0x4B, 0x05, 0x06]) { return .zip }
        var offset = 0
        while offset + 8 <= bytes.count {
            if starts(hdf5Signature, at: offset) { return .hdf5 }
            offset = offset == 0 ? 512 : offset * 2
        }
        if bytes.count >= 10 {
            let n = bytes.loadUnaligned(as: UInt64.self).littleEndian
            // A header running past the end still counts (a truncated download), and so does an
            // absurd header length: the reader then says "truncated" or "exceeds the limit" rather
            // than "unknown format".
            if n >= 2, bytes[8] == UInt8(ascii: "{") { return .safetensors }
        }
        if bytes.count >= 2, bytes[0] == 0x80, bytes[1] <= 5 { return .pickle }
        return nil
    }

    /// Detects the format of a file on disk.
    public static func detect(path: String) throws -> FileFormat? {
        try MappedFile(path: path).withBytes { detect($0) }
    }
}
