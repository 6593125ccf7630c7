import ZooJSON
import ZooFiles

extension SafetensorsFile {
    /// The file as an imported checkpoint: tensors in data order, metadata as found
    /// (zoo keys holding JSON text are shown as JSON).
    public func imported() throws -> ImportedCheckpoint {
        var meta: [(String, JSONValue)] = []
        for (k, v) in metadata {
            if k.hasPrefix("zoo."), k != NativeMetadata.Key.architecture, k != NativeMetadata.Key.version,
               let j = try? JSONValue.parse(v) {
                meta.append((k, j))
            } else {
                meta.append((k, .string(v)))
            }
        }
        let format = metadata.contains { $0.0 == NativeMetadata.Key.version } ? "zoo-native" : "safetensors"
        return ImportedCheckpoint(format: format, metadata: meta, tensors: records)
    }
}

/// The safetensors importer (format `safetensors`, or `zoo-native` for the zoo's own checkpoints).
public struct SafetensorsImporter: CheckpointImporter {
    /// Creates the importer.
    public init() {}

    /// `safetensors`.
    public var id: String { "safetensors" }
    /// `safetensors`.
    public var displayName: String { "safetensors" }

    /// An 8-byte little-endian header length of at least 2 followed by `{`. A header running past the
    /// end still counts (a truncated download), and so does an absurd length: the reader then says
    /// "truncated" or "exceeds the limit" rather than "unknown format".
    public func sniff(_ bytes: UnsafeRawBufferPointer) -> SniffMatch? {
        guard bytes.count >= 10 else { return nil }
        let n = bytes.loadUnaligned(as: UInt64.self).littleEndian
        return n >= 2 && bytes[8] == UInt8(ascii: "{") ? .structural : nil
    }

    /// Reads the header; tensors are zero-copy views of the mapped file.
    public func read(_ file: MappedFile, options: NoImportOptions) throws -> ImportedCheckpoint {
        try SafetensorsFile(file: file).imported()
    }
}
